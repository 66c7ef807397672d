# Sourced by scripts/windows/test.sh for each architecture ($arch, $bin_in,
# $plain_port, wine_run, check_mail): smtpbridge.exe as a Windows service
# under Wine's service control manager (services.exe, sc.exe). A mail is
# queued by one smtpbridge.exe process while delivery is held; the service,
# installed with `service install` and started with `sc start`, delivers it
# and a second one that another smtpbridge.exe process queues while it runs
# (the data directory shared, ABI.md §17); `service status` names it; a
# MAPISendMail meanwhile is queued by the drop-in submit-only and delivered
# by the service (its log names the message id);
# `sc stop` stops it cleanly (the log's closing lines); started again with
# `net start`, `service uninstall` stops and removes it (`sc query` then
# knows no such service).
svc_dir="C:\\users\\root\\AppData\\Local\\smtpbridge-service-$arch"
svc_dir_host="$DRIVE_C/users/root/AppData/Local/smtpbridge-service-$arch"
rm -rf "$svc_dir_host"
svc() { wine_run "$bin_in/smtpbridge.exe" --data-dir "$svc_dir" "$@"; }
sc_state() { in_chroot env "${WINE_ENV[@]}" wine sc query smtpbridge 2>/dev/null | tr -d '\r' | sed -n 's/^ *STATE *: *[0-9]* *\([A-Z_]*\).*/\1/p'; }
wait_state() {
    for _ in $(seq 300); do [ "$(sc_state)" = "$1" ] && return 0; sleep 0.1; done
    win_fail "$arch: the service is not $1 within 30 s (sc query: $(sc_state))"
}
for setting in "SMTPServer 127.0.0.1" "SMTPServerPort $plain_port" "SMTPAuthentication None" \
    "SMTPSenderEmail office@firm.example"; do
    # shellcheck disable=SC2086
    svc config set $setting >/dev/null
done
# Queued while the profile is paused, so that this process does not send it.
svc outbox pause Default >/dev/null
svc send --queue --timeout 0 --to client@example.com --subject "Service delivery ($arch)" \
    --text 'C:\users\root\Documents\cli body.txt' >/dev/null
svc outbox resume Default >/dev/null
check_mail plain --subject "Service delivery ($arch)" --count 0 --timeout 0
svc service install
wait_state STOPPED
echo "ok: sc query smtpbridge: STOPPED after install"
wine_run sc start smtpbridge
wait_state RUNNING
echo "ok: sc query smtpbridge: RUNNING"
check_mail plain --subject "Service delivery ($arch)" --count 1 --from office@firm.example
svc --json service status >"$work/service-running-$arch.json"
"$PYTHON" - "$work/service-running-$arch.json" <<'PY' || win_fail "$arch: service status while it runs"
import json, sys
status = json.load(open(sys.argv[1]))
assert status["service"] == "running" and status["holder"]["pid"] > 0, status
print("ok: service status names the lease holder:", status["holder"])
PY
svc send --queue --timeout 30 --to client@example.com --subject "Queued beside the service ($arch)" \
    --text 'C:\users\root\Documents\cli body.txt' >/dev/null
check_mail plain --subject "Queued beside the service ($arch)" --count 1 --from office@firm.example
# The Simple MAPI drop-in beside the service (smtpbridge_mapi.dll called
# directly, its data_dir from the registry): it finds the service holding
# the delivery lease, queues submit-only, and the service delivers the mail;
# the service's log names its message id.
wine_run reg add 'HKCU\Software\smtpbridge' /v DataDir /d "$svc_dir" /f
wine_run "$bin_in/mapitest.exe" series "Z:${bin_in//\//\\}\\smtpbridge_mapi.dll" "MAPI beside the service ($arch)" 1 \
    mapi-service@example.com
check_mail plain --subject "MAPI beside the service ($arch) 1" --count 1 --rcpt mapi-service@example.com \
    --from office@firm.example
svc --json outbox query --limit 1 >"$work/service-mapi-$arch.json"
"$PYTHON" - "$work/service-mapi-$arch.json" "$svc_dir_host/service.log" <<'PY' || win_fail "$arch: MAPI beside the service"
import json, sys, time
item = json.load(open(sys.argv[1]))["items"][0]
assert item["recipients"] == ["mapi-service@example.com"] and item["state"] == "sent", item
line = f"message {item['id']} sent (attempts 1)"
deadline = time.monotonic() + 10
while not any(l.endswith(line) for l in open(sys.argv[2], encoding="utf-8").read().splitlines()):
    assert time.monotonic() < deadline, f"the service log has no line '{line}' within 10 s"
    time.sleep(0.1)
print("ok: the service delivered the mail queued by MAPISendMail:", line)
PY
wine_run sc stop smtpbridge
wait_state STOPPED
echo "ok: sc stop smtpbridge: STOPPED"
svc --json service status | tee "$work/service-status-$arch.json"
"$PYTHON" - "$work/service-status-$arch.json" "$svc_dir_host/service.log" <<'PY' || win_fail "$arch: service status and log"
import json, sys
status = json.load(open(sys.argv[1]))
assert status["holder"] is None and status["service"] == "stopped", status
assert status["counts"]["sent"] == 3 and status["counts"]["queued"] == 0, status
lines = [line.split(" ", 1)[1] for line in open(sys.argv[2], encoding="utf-8").read().splitlines()]
assert sum(line.startswith("message ") and line.endswith(" sent (attempts 1)") for line in lines) == 3, lines
assert lines[-3:] == ["stop requested (service stop): closing the client",
                      "lease released: deliveries ended, the data directory is closed", "stopped"], lines
print("ok: the service delivered, logged and stopped cleanly; status:", status["service"])
PY
# Started again with `net start`, then uninstalled while it runs: uninstall stops it first.
wine_run net start smtpbridge
wait_state RUNNING
svc service uninstall
tail -n 1 "$svc_dir_host/service.log" | grep -q ' stopped$' || win_fail "$arch: uninstall did not stop the service cleanly"
[ -z "$(sc_state)" ] || win_fail "$arch: the service is still known after uninstall: $(sc_state)"
echo "ok: service uninstall removed the service"
