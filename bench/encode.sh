#!/usr/bin/env bash
# Instructions per 10 KB message on the send path, counted by valgrind's
# callgrind: inside smtpb_send for the library (bench send: one long line,
# quoted-printable; bench send-lines: 72-character lines, 7bit), and the
# whole process for the minimal pipelined client (bench/pipelined.c)
# sending the same MIME, all against one Postfix smtp-sink on 127.0.0.1.
# Each figure is (count at 300 messages - count at 100) / 200, so the
# connection's setup and the first message's one-time work drop out.
#
#   bench/encode.sh [PROGRAM...]
#
# A PROGRAM is another build of bench/bench.c (say, against an earlier
# library, as docs/PERFORMANCE.md shows); this build's is always counted.
# Rates side by side: bench/compare.sh 9 3000 send pipelined-long send-lines pipelined-lines
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"
for tool in smtp-sink valgrind; do
    command -v "$tool" >/dev/null || { echo "error: $tool is missing (apt-get install postfix valgrind)" >&2; exit 1; }
done
source bench/common.sh  # scripts/env.sh made the repository the working folder

collected() { # callgrind arguments... -> instructions collected
    valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 >/dev/null |
        sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
per_message() { # name, then the command with @N@ where the count goes
    local name=$1 low high
    shift
    low=$(collected "${@//@N@/100}")
    high=$(collected "${@//@N@/300}")
    printf '%-60s %9d\n' "$name" $(((high - low) / 200))
}

printf '%-60s %9s\n' "instructions per message" "count"
for program in "$work/bench" "$@"; do
    for mode in send send-lines; do
        name=$program
        [ "$program" = "$work/bench" ] && name="this build"
        per_message "$name: bench $mode (inside smtpb_send)" \
            --toggle-collect=smtpb_send "$program" "$mode" "$port" @N@
    done
done
per_message "minimal pipelined client, long.eml (whole process)" "$work/pipelined" "$port" @N@ "$work/long.eml"
per_message "minimal pipelined client, lines.eml (whole process)" "$work/pipelined" "$port" @N@ "$work/lines.eml"
