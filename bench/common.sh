# Sourced by bench/compare.sh and bench/encode.sh: the release library
# built, a work folder, one Postfix smtp-sink listening on 127.0.0.1:$port
# (both gone at exit), bench/bench.c and bench/pipelined.c built into
# $work/bench and $work/pipelined, and bench/messages.py's files in $work.
build_library
work="$(mktemp -d)"
sink=""
cleanup() { [ -n "$sink" ] && kill "$sink" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
smtp-sink -u "$(id -un)" "127.0.0.1:$port" 1024 &
sink=$!
for _ in $(seq 100); do
    python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), 1).close()" "$port" \
        2>/dev/null && break
    sleep 0.05
done
cc -O2 -std=c99 -Wall -Wextra -Werror -Iinclude bench/bench.c -Ltarget/release -lsmtpbridge -lpthread \
   -Wl,-rpath,"$PWD/target/release" -o "$work/bench"
cc -O2 -std=c99 -Wall -Wextra -Werror bench/pipelined.c -o "$work/pipelined"
# The messages: the 5 MiB attachment and the reference clients' files.
python3 bench/messages.py "$work"
