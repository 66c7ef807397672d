#!/usr/bin/env bash
# Builds and runs every example (C, C++, C#, Python) and the C++ and C#
# binding tests against a fresh examples/smtp_server.py, and checks that
# each one's mail arrived. The C example and the C++ test also run under
# AddressSanitizer + UndefinedBehaviorSanitizer (leak checks on), and
# under Valgrind memcheck, which also sees inside the (uninstrumented)
# library: no definite or indirect leak, no invalid read or write.
#
#   examples/run_all.sh
#
# Uses target/release/libsmtpbridge.so as it is (it does not build it).
# Everything is built in a temporary folder that is removed at exit, with
# the server. Environment: CC (gcc), CXX (g++), PYTHON (python3, with aiosmtpd).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
LIB_DIR="$ROOT/target/release"
CC="${CC:-gcc}"
CXX="${CXX:-g++}"
PYTHON="${PYTHON:-python3}"

fail() { echo "run_all: FAILED: $*" >&2; exit 1; }

[ -f "$LIB_DIR/libsmtpbridge.so" ] ||
    fail "$LIB_DIR/libsmtpbridge.so is missing: build it first (cargo build --release)"
for tool in "$CC" "$CXX" mcs mono "$PYTHON" valgrind; do
    command -v "$tool" >/dev/null || fail "$tool not found"
done
"$PYTHON" -c "import aiosmtpd" 2>/dev/null || fail "$PYTHON cannot import aiosmtpd (pip install aiosmtpd)"

echo "== the bindings mirror every function of include/smtpbridge.h"
unmirrored=()
for function in $(grep -oE 'SMTPB_CALL smtpb_[a-z0-9_]+' include/smtpbridge.h | cut -d' ' -f2); do
    grep -q "\b$function(" bindings/cpp/smtpbridge.hpp || unmirrored+=("bindings/cpp/smtpbridge.hpp: $function")
    grep -q "extern .* $function(" bindings/csharp/SmtpBridge.Native.cs || unmirrored+=("bindings/csharp/SmtpBridge.Native.cs: $function")
done
[ ${#unmirrored[@]} -eq 0 ] || fail "functions without a wrapper:$(printf '\n  %s' "${unmirrored[@]}")"
echo "ok"

work="$(mktemp -d "${TMPDIR:-/tmp}/smtpbridge-examples.XXXXXX")"
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Prints a command, then runs it.
run() { echo "+ $*"; "$@"; }

echo "== starting examples/smtp_server.py"
maildir="$work/mail"
"$PYTHON" examples/smtp_server.py --port-file "$work/port" --maildir "$maildir" --max-seconds 300 \
    >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 200); do
    [ -s "$work/port" ] && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; fail "the SMTP server did not start"; }
    sleep 0.05
done
[ -s "$work/port" ] || fail "the SMTP server wrote no port within 10 s"
port="$(cat "$work/port")"
echo "listening on 127.0.0.1:$port"
# A loopback port nothing listens on, for the failures the tests expect:
# one the system handed out and that was closed again, not a fixed one.
closed_port="$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"

mails() { find "$maildir" -name '*.eml' | wc -l; }

# step LABEL MAILS SUBJECT COMMAND...: runs COMMAND, which must succeed and
# deliver MAILS more messages; SUBJECT (if not empty) must be the newest's subject.
step() {
    local label="$1" expected="$2" subject="$3" before after newest
    shift 3
    echo
    echo "== $label"
    before="$(mails)"
    run "$@" || fail "$label (exit code $?)"
    for _ in $(seq 100); do
        [ "$(mails)" -ge $((before + expected)) ] && break
        sleep 0.05
    done
    after="$(mails)"
    [ "$after" -eq $((before + expected)) ] ||
        fail "$label: expected $expected new mail(s), the server got $((after - before))"
    if [ -n "$subject" ]; then
        newest="$(find "$maildir" -name '*.eml' | sort | tail -n 1)"
        grep -q "^Subject: $subject" "$newest" || fail "$label: $newest is not \"$subject\""
    fi
    echo "ok: $label ($expected mail(s) arrived)"
}

attachment="$work/Invoice 2026-117 Ä.txt"  # a space and a non-ASCII letter on purpose
printf 'Invoice 2026-117\nAmount due: 1,250.00 EUR\n' >"$attachment"

CFLAGS=(-std=c99 -Wall -Wextra -Werror -pedantic -Iinclude)
CXXFLAGS=(-std=c++17 -Wall -Wextra -Werror -pedantic -Iinclude -Ibindings/cpp)
LDFLAGS=(-L"$LIB_DIR" -lsmtpbridge -Wl,-rpath,"$LIB_DIR")
SANITIZE=(-g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all)
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
# Memcheck: any invalid access, or a definite/indirect leak, fails the step.
# ("Possibly lost"/"still reachable" are the library's process-wide state,
# e.g. the certificate store loaded once, which lives until exit.)
# examples/valgrind.supp: one false report of LLVM's code, explained there.
VALGRIND=(valgrind --quiet --error-exitcode=97 --leak-check=full --suppressions=examples/valgrind.supp
    --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect)

echo
echo "== building"
run "$CC" "${CFLAGS[@]}" examples/c/send_mail.c "${LDFLAGS[@]}" -o "$work/send_mail_c"
run "$CC" "${CFLAGS[@]}" "${SANITIZE[@]}" examples/c/send_mail.c "${LDFLAGS[@]}" -o "$work/send_mail_c_asan"
run "$CXX" "${CXXFLAGS[@]}" examples/cpp/send_mail.cpp "${LDFLAGS[@]}" -o "$work/send_mail_cpp"
run "$CXX" "${CXXFLAGS[@]}" bindings/cpp/test_smtpbridge.cpp "${LDFLAGS[@]}" -o "$work/test_smtpbridge"
run "$CXX" "${CXXFLAGS[@]}" "${SANITIZE[@]}" bindings/cpp/test_smtpbridge.cpp "${LDFLAGS[@]}" \
    -o "$work/test_smtpbridge_asan"
# The C# test: bindings and test in one assembly, library from LD_LIBRARY_PATH.
CSHARP_BINDINGS=(-r:System.Runtime.Serialization bindings/csharp/SmtpBridge.cs bindings/csharp/SmtpBridge.Native.cs
    bindings/csharp/SmtpBridge.Typed.cs)
run mcs -warn:4 -warnaserror -out:"$work/SmtpBridgeTests.exe" \
    "${CSHARP_BINDINGS[@]}" bindings/csharp/tests/SmtpBridgeTests.cs
# The C# example as shipped: SmtpBridge.Net.dll with its dllmap config and
# the native library beside it, no LD_LIBRARY_PATH.
mkdir -p "$work/csharp"
run mcs -warn:4 -warnaserror -target:library -out:"$work/csharp/SmtpBridge.Net.dll" "${CSHARP_BINDINGS[@]}"
run mcs -warn:4 -warnaserror -r:"$work/csharp/SmtpBridge.Net.dll" -out:"$work/csharp/SendMail.exe" \
    examples/csharp/SendMail.cs
run cp bindings/csharp/SmtpBridge.Net.dll.config "$LIB_DIR/libsmtpbridge.so" "$work/csharp/"

step "C example" 1 "Your invoice - C example" \
    "$work/send_mail_c" "$port" "$attachment"
step "C example under ASan + UBSan" 1 "Your invoice - C example" \
    "$work/send_mail_c_asan" "$port" "$attachment"
echo
echo "== C example against a closed port: must fail, send nothing"
before="$(mails)"
echo "+ $work/send_mail_c $closed_port $attachment"
if "$work/send_mail_c" "$closed_port" "$attachment"; then fail "the C example succeeded without a server"; fi
[ "$(mails)" -eq "$before" ] || fail "a mail arrived from the failed send"
echo "ok: it failed, as it should"

step "C example under Valgrind memcheck" 1 "Your invoice - C example" \
    "${VALGRIND[@]}" "$work/send_mail_c" "$port" "$attachment"

step "C++ example" 1 "Your invoice - C++ example" \
    "$work/send_mail_cpp" "$port" "$attachment"
step "C++ binding test" 1 "C++ binding test" \
    "$work/test_smtpbridge" "$port" "$closed_port"
step "C++ binding test under ASan + UBSan" 1 "C++ binding test" \
    "$work/test_smtpbridge_asan" "$port" "$closed_port"
step "C++ binding test under Valgrind memcheck" 1 "C++ binding test" \
    "${VALGRIND[@]}" "$work/test_smtpbridge" "$port" "$closed_port"
step "C# binding test" 1 "C# binding test" \
    env LD_LIBRARY_PATH="$LIB_DIR" mono "$work/SmtpBridgeTests.exe" "$port" "$closed_port"
step "C# example" 1 "Your invoice - C# example" \
    env -u LD_LIBRARY_PATH mono "$work/csharp/SendMail.exe" "$port" "$attachment"
step "Python example" 1 "Your invoice - Python example" \
    env SMTPBRIDGE_LIBRARY="$LIB_DIR/libsmtpbridge.so" "$PYTHON" examples/python/send_mail.py "$port" "$attachment"

echo
echo "== the server's log"
cat "$work/server.log"
echo
echo "run_all: all examples and binding tests passed ($(mails) mails)"
