#!/usr/bin/env bash
# Benchmarks: libsmtpbridge beside the reference clients (Postfix's
# smtp-source, Python's smtplib), all against one Postfix smtp-sink on
# 127.0.0.1 (and stunnel in front of it for implicit TLS), in one run.
# Needs: smtp-sink and smtp-source (Debian: postfix; its daemon need not
# run), stunnel4, openssl. Prints a table; docs/PERFORMANCE.md records one.
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"
for tool in smtp-sink smtp-source stunnel openssl; do
    command -v "$tool" >/dev/null || { echo "error: $tool is missing (apt-get install postfix stunnel4 openssl)" >&2; exit 1; }
done
build_library
work="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port="$(free_port)"
tls_port="$(free_port)"
smtp-sink -u "$(id -un)" "127.0.0.1:$port" 1024 & pids+=($!)

# A test CA and a certificate for localhost signed by it (rustls refuses a
# CA certificate used as the server's own), and stunnel for implicit TLS.
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=bench CA" \
    -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout "$work/tls.key" -out "$work/tls.csr" 2>/dev/null
printf 'subjectAltName=DNS:localhost\n' > "$work/san.ext"
openssl x509 -req -in "$work/tls.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial -days 2 \
    -extfile "$work/san.ext" -out "$work/tls.pem" 2>/dev/null
cat > "$work/stunnel.conf" <<CONF
foreground = yes
pid =
socket = l:TCP_NODELAY=1
socket = r:TCP_NODELAY=1
[smtps]
accept = 127.0.0.1:$tls_port
connect = 127.0.0.1:$port
cert = $work/tls.pem
key = $work/tls.key
CONF
stunnel "$work/stunnel.conf" 2>/dev/null & pids+=($!)
openssl genrsa -out "$work/dkim.pem" 2048 2>/dev/null
for p in "$port" "$tls_port"; do   # wait until both listen
    for _ in $(seq 100); do
        python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), 1).close()" "$p" 2>/dev/null && break
        sleep 0.05
    done
done

cc -O2 -std=c99 -Wall -Wextra -Werror -Iinclude bench/bench.c -Ltarget/release -lsmtpbridge -lpthread \
   -Wl,-rpath,"$PWD/target/release" -o "$work/bench"

# The same messages for the reference clients: 10 KB of text, and one
# carrying a 5 MiB attachment.
python3 bench/messages.py "$work"

source_run() { # name count sessions file
    local t0 t1
    t0=$(date +%s.%N)
    smtp-source -c -d -s "$3" -m "$2" -f bench@firm.example -t sink@example.com -F "$4" "127.0.0.1:$port" >/dev/null
    t1=$(date +%s.%N)
    python3 -c "import sys; s=float(sys.argv[2])-float(sys.argv[1]); print('%-44s %6d %8.3f %9.0f/s  %s' % (sys.argv[3], int(sys.argv[4]), s, int(sys.argv[4])/s, 'reference'))" "$t0" "$t1" "$1" "$2"
}

printf '%-44s %6s %8s %11s  %s\n' "measurement" "count" "seconds" "rate" "notes"
source_run "smtp-source, 1 session" 2000 1 "$work/msg.eml"
source_run "smtp-source, 4 sessions" 2000 4 "$work/msg.eml"
python3 bench/smtplib_client.py "$port" 2000 "$work/msg.eml"
"$work/bench" send "$port" 2000
"$work/bench" send-off "$port" 2000
"$work/bench" send4 "$port" 2000
python3 bench/smtplib_client.py "$tls_port" 2000 "$work/msg.eml" "$work/ca.pem"
"$work/bench" tls "$tls_port" 2000 "$work/ca.pem"
source_run "smtp-source, 5 MiB attachment, 1 session" 20 1 "$work/big.eml"
python3 bench/smtplib_client.py "$port" 20 "$work/big.eml"
/usr/bin/time -f "  (peak RSS of the process: %M KiB)" "$work/bench" big "$port" 20 "$work/big.bin"
"$work/bench" durable "$port" 1000 "$work/durable"
"$work/bench" outbox "$port" 1000 "$work/outbox"
"$work/bench" open "$port" 10000 "$work/open"
"$work/bench" merge "$port" 10000 "$work/merge"
"$work/bench" dkim "$port" 1000 "$work/dkim.pem"
