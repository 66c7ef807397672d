#!/usr/bin/env bash
# Benchmarks: libsmtpbridge beside Postfix's smtp-source, against one
# smtp-sink on 127.0.0.1, in one run. Needs smtp-sink and smtp-source
# (Debian: postfix) and openssl. Results go to stdout; docs/PERFORMANCE.md
# records a run.
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"
build_library
work="$(mktemp -d)"
sink_pid=""
cleanup() { [ -n "$sink_pid" ] && kill "$sink_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
smtp-sink -u "$(id -un)" "127.0.0.1:$port" 1024 &
sink_pid=$!
sleep 0.3

cc -O2 -std=c99 -Wall -Wextra -Werror -Iinclude bench/bench.c -Ltarget/release -lsmtpbridge \
   -Wl,-rpath,"$PWD/target/release" -o "$work/bench"
openssl genrsa -out "$work/dkim.pem" 2048 2>/dev/null

# The same 10 KB message for the reference client.
python3 - "$work/msg.eml" <<'PY'
import sys
body = "".join(("\n" if i % 80 == 79 else chr(97 + i % 26)) for i in range(10240)).replace("\n", " ")
open(sys.argv[1], "w").write("From: bench@firm.example\nTo: sink@example.com\nSubject: benchmark\n\n" + body + "\n")
PY

printf '%-34s %7s %9s %12s %s\n' "measurement" "count" "seconds" "rate" "notes"
t0=$(date +%s.%N)
smtp-source -c -d -s 1 -m 2000 -f bench@firm.example -t sink@example.com -F "$work/msg.eml" "127.0.0.1:$port" >/dev/null
t1=$(date +%s.%N)
python3 -c "import sys; s=float(sys.argv[2])-float(sys.argv[1]); print('%-34s %7d %9.3f %10.0f/s %s' % ('smtp-source (reference), 1 session', 2000, s, 2000/s, 'Postfix'))" "$t0" "$t1"
"$work/bench" "$port" "$work" "$work/dkim.pem"
