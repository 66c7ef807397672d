#!/bin/bash
# The store measurements of issue 25, side by side: each row for the
# library of this tree ("new") and, when given, a bench binary built
# against another library ("old"), in one run against one smtp-sink.
#
#   bench/store.sh [OLD_BENCH]
#
# SMTPB_BENCH_LONG=1 takes `uptime` to 1,000,000 sends (minutes; 200,000 otherwise).
# Needs smtp-sink (Debian: postfix) and strace.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d /tmp/smtpb-store-bench.XXXXXX)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT
port=$(python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])")
smtp-sink -u "$(id -un)" 127.0.0.1:"$port" 256 >/dev/null & pids+=($!)
for _ in $(seq 100); do
    python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), 1).close()" "$port" 2>/dev/null && break
    sleep 0.05
done
cc -O2 -std=c99 -Wall -Wextra -Werror -Iinclude bench/bench.c -Ltarget/release -lsmtpbridge -lpthread \
   -Wl,-rpath,"$PWD/target/release" -o "$work/bench"
benches=("new=$work/bench")
[ $# -ge 1 ] && benches+=("old=$1")

python3 bench/limits.py "$work"
run() { # label args... : each library in turn, a fresh data_dir each
    for b in "${benches[@]}"; do
        rm -rf "$work/dd"
        printf '%-4s ' "${b%%=*}"
        "${b#*=}" "$@"
    done
}
fsyncs() { # label args...: fdatasync+fsync calls per message, under strace
    local n=$3
    for b in "${benches[@]}"; do
        rm -rf "$work/dd"
        strace -f --seccomp-bpf -qq -c -e trace=fdatasync,fsync -o "$work/strace" "${b#*=}" "$@" >/dev/null
        awk -v who="${b%%=*}" -v what="$1" -v n="$n" \
            '/fdatasync|fsync/ && $NF ~ /sync/ { c += $4 } END { printf "%-4s %s: %.2f fsyncs a message\n", who, what, c / n }' \
            "$work/strace"
    done
}
with_load() { # runs "$@" beside three competing fsync-heavy writers
    local loads=() d
    for d in 1 2 3; do
        mkdir -p "$work/load$d"
        python3 bench/fsync_load.py "$work/load$d" & loads+=($!)
    done
    sleep 1
    "$@"
    kill "${loads[@]}"; wait "${loads[@]}" 2>/dev/null || true
}

echo "== durable enqueue, 1 and 4 threads, quiet disk"
run enqueue "$port" 2000 "$work/dd" 1
run enqueue "$port" 2000 "$work/dd" 4
echo "== the same beside three competing fsync-heavy writers (bench/fsync_load.py), 3 rounds"
slow() {
    for _ in 1 2 3; do
        python3 bench/limits.py "$work" | sed -n 1p  # sed reads to the end: no broken pipe under pipefail
        run enqueue "$port" 1000 "$work/dd" 1
        run enqueue "$port" 1000 "$work/dd" 4
    done
}
with_load slow
echo "== fsyncs a message (strace -f -c), quiet disk, then beside the writers"
fsyncs enqueue "$port" 1000 "$work/dd" 1
fsyncs enqueue "$port" 1000 "$work/dd" 4
fsyncs durable "$port" 1000 "$work/dd"
fsyncs merge "$port" 1000 "$work/dd"
with_load fsyncs enqueue "$port" 1000 "$work/dd" 1
with_load fsyncs enqueue "$port" 1000 "$work/dd" 4
echo "== durable smtpb_send"
run durable "$port" 1000 "$work/dd"
echo "== merge of 10,000 recipients, quiet disk, then beside the writer"
run merge "$port" 10000 "$work/dd"
with_load run merge "$port" 10000 "$work/dd"
echo "== the cost of an open (PBKDF2 of the credential store included), 3 times"
for _ in 1 2 3; do run open "$port" 0 "$work/dd"; done
echo "== profile choice: 1 and 1,000 profiles"
run profiles "$port" 2000 1
run profiles "$port" 2000 1000
echo "== merge of 100,000 recipients: memory"
run merge "$port" 100000 "$work/dd"
echo "== one in-memory client over many sends"
n=200000
[ "${SMTPB_BENCH_LONG:-0}" = 1 ] && n=1000000
run uptime "$port" "$n"
run uptime "$port" "$n" All
