#!/usr/bin/env bash
# The main job: build the library, start a local SMTP server, send an HTML
# mail with an attachment through the C ABI (examples/c/send_mail.c), and
# show what arrived.
source "$(dirname "$0")/env.sh"

echo "== building libsmtpbridge (release)"
build_library

work="$(mktemp -d)"
server_pid=""
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

echo "== compiling examples/c/send_mail.c"
cc -std=c99 -Wall -Wextra -Werror -pedantic -Iinclude examples/c/send_mail.c \
   -Ltarget/release -lsmtpbridge -Wl,-rpath,"$ROOT/target/release" -o "$work/send_mail"

echo "== starting a local SMTP server on 127.0.0.1"
python examples/smtp_server.py --port-file "$work/port" --maildir "$work/mail" --max-seconds 60 &
server_pid=$!
for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.05; done
port="$(cat "$work/port")"

printf 'Invoice 2026-117\nAmount due: 1,250.00 EUR\n' > "$work/Invoice 2026-117.txt"
echo "== sending through the C ABI to 127.0.0.1:$port"
"$work/send_mail" "$port" "$work/Invoice 2026-117.txt"

for _ in $(seq 100); do ls "$work/mail"/*.eml >/dev/null 2>&1 && break; sleep 0.05; done
echo
echo "== what the server received"
python - "$work/mail" <<'PY'
import email, email.policy, pathlib, sys
for path in sorted(pathlib.Path(sys.argv[1]).glob("*.eml")):
    msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    for h in ("From", "To", "Subject", "Message-ID", "Date"):
        print(f"{h}: {msg[h]}")
    for part in msg.walk():
        if part.is_multipart():
            print(f"  [{part.get_content_type()}]")
            continue
        name = part.get_filename()
        payload = part.get_payload(decode=True) or b""
        label = f" attachment {name!r}" if name else ""
        print(f"  - {part.get_content_type()}{label}: {len(payload)} bytes")
        if part.get_content_type() == "text/plain" and not name:
            print("    " + payload.decode().strip().replace("\n", "\n    "))
PY
