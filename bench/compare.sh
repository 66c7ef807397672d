#!/usr/bin/env bash
# Side by side: runs `bench` variants in turn against one Postfix
# smtp-sink on 127.0.0.1, ROUNDS times each (the order rotating every
# round), and prints each variant's median, lowest and highest rate. For
# differences smaller than the spread between runs of bench/run.sh.
#
#   bench/compare.sh ROUNDS COUNT VARIANT...
#
# A VARIANT is a mode of bench/bench.c built against this library (send,
# send-off, send4, big: the 5 MiB attachment), PROGRAM:MODE for another
# build of the bench (say, bench.c built against an earlier release of the
# library), or a reference: smtp-source (the 10 KB message, 1 session),
# smtp-source-big (the 5 MiB one), made as bench/run.sh makes them, or
# pipelined-long / pipelined-lines (bench/pipelined.c, the minimal
# pipelined client, sending the MIME of bench send / bench send-lines):
#
#   bench/compare.sh 9 3000 send send-off smtp-source
#   bench/compare.sh 9 3000 send /tmp/bench-1.0:send
#   bench/compare.sh 5 20 big /tmp/bench-1.0:big smtp-source-big
#   bench/compare.sh 9 3000 send pipelined-long send-lines pipelined-lines
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"
[ $# -ge 3 ] || { echo "usage: bench/compare.sh ROUNDS COUNT VARIANT..." >&2; exit 2; }
rounds=$1 count=$2
shift 2
command -v smtp-sink >/dev/null || { echo "error: smtp-sink is missing (apt-get install postfix)" >&2; exit 1; }
source bench/common.sh  # scripts/env.sh made the repository the working folder

source_rate() { # file
    python3 - "$port" "$count" "$1" <<'PY'
import subprocess, sys, time
port, count, path = sys.argv[1:]
t = time.monotonic()
subprocess.run(["smtp-source", "-c", "-d", "-s", "1", "-m", count, "-f", "bench@firm.example",
                "-t", "sink@example.com", "-F", path, f"127.0.0.1:{port}"], check=True, stdout=subprocess.DEVNULL)
print(f"{int(count) / (time.monotonic() - t):.1f}/s")
PY
}

variants=("$@")
n=${#variants[@]}
for ((r = 0; r < rounds; r++)); do
    for ((k = 0; k < n; k++)); do
        i=$(((r + k) % n))
        v=${variants[$i]}
        program="$work/bench" mode="$v"
        if [[ "$v" == *:* ]]; then program=${v%%:*} mode=${v#*:}; fi
        args=()
        [ "$mode" = big ] && args=("$work/big.bin")
        # The rate is the field that ends in /s.
        case "$v" in
            smtp-source) source_rate "$work/msg.eml" ;;
            smtp-source-big) source_rate "$work/big.eml" ;;
            pipelined-long | pipelined-lines) "$work/pipelined" "$port" "$count" "$work/${v#pipelined-}.eml" ;;
            *) "$program" "$mode" "$port" "$count" "${args[@]}" ;;
        esac | awk -v i="$i" '{ for (f = 1; f <= NF; f++) if ($f ~ /\/s$/) { sub(/\/s$/, "", $f); print i, $f } }' \
            >> "$work/rates"
    done
done
printf '%-40s %8s %8s %8s  (%d rounds of %d messages)\n' "variant" "median" "lowest" "highest" "$rounds" "$count"
for ((i = 0; i < n; i++)); do
    awk -v i="$i" '$1 == i { print $2 }' "$work/rates" | sort -n | awk -v name="${variants[$i]}" '
        { v[NR] = $1 }
        END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
              printf "%-40s %6.0f/s %6.0f/s %6.0f/s\n", name, m, v[1], v[NR] }'
done
