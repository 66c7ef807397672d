#!/usr/bin/env bash
# Tests the Windows build under Wine: for x64 and x86, the release folder
# made by scripts/windows/build.sh (run that first) is what is tested.
#
#   scripts/windows/test.sh [x64|x86]...     (default: both)
#
# On the Linux side, tests/windows/servers.py runs the test suite's loopback
# servers (SMTP plain; SMTP with STARTTLS required + AUTH; Microsoft Graph
# over HTTPS; certificates from a test CA). Inside the
# build chroot, with MinGW against the release folder's header and import
# library, and run under Wine (one 64-bit prefix; Wine's WoW64 runs the x86
# programs in it):
#   - examples/c/send_mail.c and examples/cpp/send_mail.cpp (attachment from
#     a C:\ path; its bytes arrive); the C example also linked with an
#     import library made from smtpbridge.def by dlltool,
#   - bindings/cpp/test_smtpbridge.cpp (every method of the C++ wrapper) and
#     bindings/cpp/test_message.cpp (the C++ message builder),
#   - tests/windows/wintest.c: the version resources, data_dir and attachment
#     on non-ASCII C:\ paths, credentials, the outbox across close/reopen,
#     SMTPB_ERR_BUSY, log and event callbacks, master.key under DPAPI (and
#     its migration from a raw key file), owner-only ACLs, STARTTLS + AUTH with
#     SMTPCaFile, with the CA only in the Windows ROOT store, and refused
#     when the CA is trusted nowhere, a send through Microsoft Graph (HTTPS),
#   - tests/windows/mapitest.c: smtpbridge_mapi.dll registered as the default
#     mail client (smtpbridge.exe register-mapi --default), called through
#     Wine's mapi32.dll: MAPISendMail/MAPISendMailW with To/CC/BCC and two
#     files, MAPI_DIALOG (an .eml opened, nothing sent), refusals (nothing
#     queued); the same mail through the C ABI's smtpb_render is the same
#     MIME (tests/windows/same_mime.py); 5 mails in a row without MAPILogon
#     open the data_dir once (its log); a MAPISendMail beside the running
#     service is delivered by the service (tests/windows/service.sh),
#   - tests/windows/comtest.vbs: smtpbridge_com.dll registered with the
#     architecture's regsvr32 and driven by its cscript: a MailItem with
#     To/CC/BCC, HTMLBody and two files sent, its status by EntryID, errors for
#     an unsupported member, olMSG and send errors (with advice); SaveAs and Display write
#     the same MIME as MAPI and the C ABI; per-user registration,
#   - tests/windows/regfree.c (tests/windows/regfree.sh): the COM DLL registered
#     nowhere, created through an application manifest that depends on the
#     release folder's smtpbridge.com.manifest; its mail sent,
#   - smtpbridge.exe: config set, send (with an attachment), outbox query, probe,
#     `service install`, `sc start`/`net start`, `sc stop`, `service status` and
#     `uninstall` under Wine's service control manager (tests/windows/service.sh),
#     and an OAuth2 browser sign-in (tests/windows/oauth_login.py: the
#     library's loopback listener inside Wine, oidc-provider outside; needs
#     Node.js and `npm ci` in tests/servers/oidc, as the Linux tests do).
# Every mail is checked on the server side by tests/windows/check_mail.py
# (Python's email parser). Exits non-zero at the first failure.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
source "$REPO/scripts/windows/chroot.sh"

[ "$(id -u)" -eq 0 ] || win_fail "run as root (chroot and bind mounts need it)"
arches=("$@")
[ ${#arches[@]} -gt 0 ] || arches=(x64 x86)
[ -e "$WINCHROOT/.packages-done" ] || win_fail "no build chroot at $WINCHROOT: run scripts/windows/build.sh first"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$REPO/Cargo.toml" | head -n 1)"
for arch in "${arches[@]}"; do
    case "$arch" in x64 | x86) ;; *) win_fail "unknown architecture '$arch' (x64 or x86)" ;; esac
    [ -f "$REPO/target/windows/$arch/smtpbridge-$version-windows-$arch/smtpbridge.dll" ] ||
        win_fail "no $arch release folder for $version: run scripts/windows/build.sh $arch first"
done

PYTHON="$REPO/.venv/bin/python"
[ -x "$PYTHON" ] || PYTHON=python3
"$PYTHON" -c "import aiosmtpd, cryptography" 2>/dev/null ||
    win_fail "$PYTHON cannot import aiosmtpd and cryptography (source scripts/env.sh first)"

exec 8>"$WINCHROOT.lock"
flock 8

WINEPREFIX_IN=/root/.wine-smtpbridge
WINE_ENV=(WINEPREFIX="$WINEPREFIX_IN" WINEDEBUG=-all "WINEDLLOVERRIDES=mscoree,mshtml=" HOME=/root USER=root
    XDG_RUNTIME_DIR=/run/user/0)
mkdir -p -m 700 "$WINCHROOT/run/user/0"
DRIVE_C="$WINCHROOT$WINEPREFIX_IN/drive_c"
work="$REPO/target/windows/test"
work_in="$WIN_SRC/target/windows/test"
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    # Stop this prefix's wineserver (it outlives the programs by seconds),
    # so nothing holds the chroot's mounts.
    in_chroot env "${WINE_ENV[@]}" /usr/lib/x86_64-linux-gnu/wine/wineserver -k >/dev/null 2>&1 || true
    in_chroot env "${WINE_ENV[@]}" /usr/lib/x86_64-linux-gnu/wine/wineserver -w >/dev/null 2>&1 || true
    win_umount
}
trap cleanup EXIT
trap 'exit 130' INT TERM
win_mount "$REPO"

rm -rf "$work"
mkdir -p "$work/mail"
"$PYTHON" "$REPO/tests/windows/servers.py" --dir "$work/mail" >"$work/servers.log" 2>&1 &
server_pid=$!
for _ in $(seq 300); do
    [ -s "$work/mail/servers.json" ] && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$work/servers.log" >&2; win_fail "tests/windows/servers.py did not start"; }
    sleep 0.05
done
[ -s "$work/mail/servers.json" ] || win_fail "tests/windows/servers.py wrote no servers.json within 15 s"
server() { "$PYTHON" -c "import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$work/mail/servers.json" "$1"; }
plain_port="$(server plain)" tls_port="$(server tls)" closed_port="$(server closed)"
win_log "servers: plain 127.0.0.1:$plain_port, STARTTLS + AUTH 127.0.0.1:$tls_port"

if [ ! -f "$WINCHROOT$WINEPREFIX_IN/system.reg" ]; then
    win_log "wineboot: a new Wine prefix at $WINEPREFIX_IN"
    in_chroot env "${WINE_ENV[@]}" wineboot -i >/dev/null 2>&1 || win_fail "wineboot failed"
fi
# Files the programs read from C:\ paths, made from the Linux side.
documents="$DRIVE_C/users/root/Documents"
mkdir -p "$documents"
printf 'Invoice 2026-117\r\nAmount due: 1,250.00 EUR\r\n' >"$documents/Invoice 2026-117.txt"
cp "$work/mail/certs/ca.pem" "$documents/smtpbridge-test-ca.pem"
printf 'Sent by smtpbridge.exe under Wine.\n' >"$documents/cli body.txt"
ca_win='C:\users\root\Documents\smtpbridge-test-ca.pem'
printf 'a note\n' >"$work/note.txt"  # the bytes test_message.cpp attaches as note.txt

check_mail() { "$PYTHON" "$REPO/tests/windows/check_mail.py" "$work/mail" "$@"; }
# Runs a Windows program under Wine (arguments as Windows sees them).
# A non-zero exit fails the run, naming the program and its first argument.
wine_run() {
    echo "+ wine $*" >&2
    local rc=0
    in_chroot env "${WINE_ENV[@]}" wine "$@" || rc=$?
    [ "$rc" -eq 0 ] || win_fail "$(basename "$1") ${2:-} exited with $rc under Wine"
}
n=0
for arch in "${arches[@]}"; do
    n=$((n + 1))
    case "$arch" in x64) prefix=x86_64-w64-mingw32 ;; x86) prefix=i686-w64-mingw32 ;; esac
    release_in="$WIN_SRC/target/windows/$arch/smtpbridge-$version-windows-$arch"
    bin="$work/$arch" bin_in="$work_in/$arch"
    mkdir -p "$bin"
    cp "$REPO/target/windows/$arch/smtpbridge-$version-windows-$arch/"smtpbridge{.dll,.exe,_mapi.dll,_com.dll} "$bin/"
    win_log "$arch: building the examples and tests with MinGW"
    cflags="-std=c99 -Wall -Wextra -Werror -pedantic -I$release_in/include"
    cxxflags="-std=c++17 -Wall -Wextra -Werror -pedantic -I$release_in/include -static-libgcc -static-libstdc++"
    ldflags="-L$release_in -lsmtpbridge"
    in_chroot bash -c "cd $WIN_SRC && set -x &&
        $prefix-gcc $cflags examples/c/send_mail.c $ldflags -o $bin_in/send_mail.exe &&
        $prefix-g++ $cxxflags examples/cpp/send_mail.cpp $ldflags -o $bin_in/send_mail_cpp.exe &&
        $prefix-g++ $cxxflags bindings/cpp/test_smtpbridge.cpp $ldflags -o $bin_in/test_smtpbridge.exe &&
        $prefix-g++ $cxxflags bindings/cpp/test_message.cpp $ldflags -o $bin_in/test_message.exe &&
        $prefix-dlltool -d $release_in/smtpbridge.def -D smtpbridge.dll -l $bin_in/libsmtpbridge-from-def.a &&
        $prefix-gcc $cflags examples/c/send_mail.c $bin_in/libsmtpbridge-from-def.a -o $bin_in/send_mail_def.exe &&
        $prefix-gcc $cflags -static-libgcc tests/windows/wintest.c $ldflags -lcrypt32 -lversion -ladvapi32 -o $bin_in/wintest.exe &&
        $prefix-gcc $cflags -static-libgcc tests/windows/mapitest.c $ldflags -lshell32 -o $bin_in/mapitest.exe" ||
        win_fail "$arch: a MinGW build failed"

    win_log "$arch: version resources"
    wine_run "$bin_in/wintest.exe" version "$bin_in/smtpbridge.dll" "$version"
    wine_run "$bin_in/wintest.exe" version "$bin_in/smtpbridge.exe" "$version"

    win_log "$arch: examples/c/send_mail.c"
    wine_run "$bin_in/send_mail.exe" "$plain_port" 'C:\users\root\Documents\Invoice 2026-117.txt'
    check_mail plain --subject "Your invoice - C example" --count $((2 * n - 1)) \
        --attachment "Invoice 2026-117.txt=$documents/Invoice 2026-117.txt"
    # Linked with an import library made from smtpbridge.def alone (as MSVC's
    # `lib /def` would make smtpbridge.lib): the .def names every export.
    wine_run "$bin_in/send_mail_def.exe" "$plain_port" 'C:\users\root\Documents\Invoice 2026-117.txt'
    check_mail plain --subject "Your invoice - C example" --count $((2 * n)) \
        --attachment "Invoice 2026-117.txt=$documents/Invoice 2026-117.txt"

    win_log "$arch: examples/cpp/send_mail.cpp"
    wine_run "$bin_in/send_mail_cpp.exe" "$plain_port" 'C:\users\root\Documents\Invoice 2026-117.txt'
    check_mail plain --subject "Your invoice - C++ example" --count "$n" \
        --attachment "Invoice 2026-117.txt=$documents/Invoice 2026-117.txt"

    win_log "$arch: bindings/cpp/test_smtpbridge.cpp"
    wine_run "$bin_in/test_smtpbridge.exe" "$plain_port" "$closed_port"
    check_mail plain --subject "C++ binding test" --count "$n"

    win_log "$arch: bindings/cpp/test_message.cpp (the C++ message builder)"
    wine_run "$bin_in/test_message.exe" "$plain_port" 'C:\users\root\Documents\Invoice 2026-117.txt'
    check_mail plain --subject "C++ builder Ä €" --count "$n" \
        --attachment "Invoice.pdf=$documents/Invoice 2026-117.txt" --attachment "note.txt=$work/note.txt"

    win_log "$arch: tests/windows/wintest.c"
    wine_run "$bin_in/wintest.exe" store "$arch" "$plain_port"
    data_dir="$DRIVE_C/users/root/AppData/Local/smtpbridge-Jürgen-€-$arch"
    check_mail plain --subject "Windows outbox across reopen ($arch)" --count 1 \
        --attachment "Rechnung Müller €.txt=$data_dir-Anhänge/Rechnung Müller €.txt"
    [ -f "$data_dir/credentials.json" ] || win_fail "$arch: no credentials.json in $data_dir"
    ! grep -rl "s3cret-windows" "$data_dir" || win_fail "$arch: the password is in plaintext in the data_dir"
    echo "ok: the data_dir holds no plaintext password"
    wine_run "$bin_in/wintest.exe" keyfile "$arch"
    # The CA trusted nowhere, then in a C:\ file, then only in the ROOT store
    # (the library reads the system store once per process: separate runs).
    wine_run "$bin_in/wintest.exe" root-remove "$ca_win"
    wine_run "$bin_in/wintest.exe" tls "$arch" "$tls_port" "$ca_win"
    check_mail tls --subject "Windows untrusted ($arch)" --count 0
    check_mail tls --subject "Windows STARTTLS with SMTPCaFile ($arch)" --count 1 --tls --auth anna
    wine_run "$bin_in/wintest.exe" root-add "$ca_win"
    wine_run "$bin_in/wintest.exe" tls-root "$arch" "$tls_port"
    wine_run "$bin_in/wintest.exe" root-remove "$ca_win"
    check_mail tls --subject "Windows STARTTLS with the ROOT store ($arch)" --count 1 --tls --auth anna

    wine_run "$bin_in/wintest.exe" graph "$arch" "$(server graph_url)" "$(server graph_token)" "$ca_win"
    check_mail graph --subject "Windows Graph send ($arch)" --count 1 --from me

    win_log "$arch: smtpbridge.exe (the command line)"
    cli_dir="C:\\users\\root\\AppData\\Local\\smtpbridge-cli-$arch"
    rm -rf "$DRIVE_C/users/root/AppData/Local/smtpbridge-cli-$arch"
    cli() { wine_run "$bin_in/smtpbridge.exe" --data-dir "$cli_dir" --json "$@"; }
    for setting in "SMTPServer 127.0.0.1" "SMTPServerPort $plain_port" "SMTPAuthentication None" \
        "SMTPSenderEmail office@firm.example" "SMTPProbePorts 465=$closed_port,587=$closed_port,25=$plain_port"; do
        # shellcheck disable=SC2086
        cli config set $setting >/dev/null
    done
    cli send --to client@example.com --subject "CLI send ($arch)" --text 'C:\users\root\Documents\cli body.txt' \
        --attach 'C:\users\root\Documents\Invoice 2026-117.txt' | tee "$work/cli-send-$arch.json"
    check_mail plain --subject "CLI send ($arch)" --count 1 --from office@firm.example \
        --attachment "Invoice 2026-117.txt=$documents/Invoice 2026-117.txt"
    cli outbox query --limit 10 | tee "$work/cli-query-$arch.json"
    "$PYTHON" - "$work/cli-send-$arch.json" "$work/cli-query-$arch.json" <<'PY' || win_fail "$arch: outbox query"
import json, sys
sent = json.load(open(sys.argv[1]))
page = json.load(open(sys.argv[2]))
assert sent["state"] == "sent", sent
assert [item["id"] for item in page["items"]] == [sent["id"]], page
assert page["items"][0]["state"] == "sent", page
print("ok: outbox query lists the sent message", sent["id"])
PY
    cli probe 127.0.0.1 | tee "$work/cli-probe-$arch.json"
    # 465 and 587 lead to a closed port, 25 to the plain server: that is the suggestion.
    "$PYTHON" - "$work/cli-probe-$arch.json" "$plain_port" <<'PY' || win_fail "$arch: probe"
import json, sys
report = json.load(open(sys.argv[1]))
suggested = report["suggested"]
assert suggested["SMTPServerEncryption"] == "None", report
assert int(suggested["SMTPServerPort"]) == int(sys.argv[2]), report
print("ok: probe suggests", suggested)
PY

    win_log "$arch: smtpbridge.exe as a Windows service under Wine's SCM (tests/windows/service.sh)"
    source "$REPO/tests/windows/service.sh"

    win_log "$arch: OAuth2 browser sign-in with smtpbridge.exe (tests/windows/oauth_login.py)"
    oauth_dir="smtpbridge-oauth-$arch"
    rm -rf "$DRIVE_C/users/root/AppData/Local/$oauth_dir"
    "$PYTHON" "$REPO/tests/windows/oauth_login.py" --data-dir-win "C:\\users\\root\\AppData\\Local\\$oauth_dir" \
        --data-dir-host "$DRIVE_C/users/root/AppData/Local/$oauth_dir" --body-win 'C:\users\root\Documents\cli body.txt' \
        -- chroot "$WINCHROOT" /usr/bin/env -i PATH=/usr/bin:/bin LANG=C.UTF-8 "${WINE_ENV[@]}" wine "$bin_in/smtpbridge.exe" ||
        win_fail "$arch: OAuth2 sign-in under Wine"

    win_log "$arch: Simple MAPI: smtpbridge_mapi.dll through Wine's mapi32.dll (tests/windows/mapitest.c)"
    mapi_dir="C:\\users\\root\\AppData\\Local\\smtpbridge-mapi-$arch"
    rm -rf "$DRIVE_C/users/root/AppData/Local/smtpbridge-mapi-$arch"
    mapi_cli() { wine_run "$bin_in/smtpbridge.exe" --data-dir "$mapi_dir" --json "$@"; }
    for setting in "SMTPServer 127.0.0.1" "SMTPServerPort $plain_port" "SMTPAuthentication None" \
        "SMTPSenderEmail office@firm.example" "SMTPSenderName Office"; do
        # shellcheck disable=SC2086
        mapi_cli config set $setting >/dev/null
    done
    # The drop-in finds its data_dir here (ABI.md §19).
    wine_run reg add 'HKCU\Software\smtpbridge' /v DataDir /d "$mapi_dir" /f
    wine_run "$bin_in/smtpbridge.exe" register-mapi --default
    # "Opening" an .eml copies it where this script looks for it.
    displayed="$documents/displayed-$arch.eml"
    rm -f "$displayed"
    wine_run reg add 'HKCR\.eml' /ve /d smtpbridge.test.eml /f
    wine_run reg add 'HKCR\smtpbridge.test.eml\shell\open\command' /ve \
        /d "cmd.exe /c copy \"%1\" \"C:\\users\\root\\Documents\\displayed-$arch.eml\"" /f
    printf 'Overview: 3 open items\r\n' >"$documents/Übersicht €.txt"
    file1='C:\users\root\Documents\Invoice 2026-117.txt' file2='C:\users\root\Documents\Übersicht €.txt'
    wine_run "$bin_in/mapitest.exe" mapi "$arch" "$file1" "$file2" 'Übersicht €.txt'
    recipients=(--rcpt hans@example.com --rcpt cc@example.com --rcpt bcc@example.com --header "Cc=cc@example.com"
        --from office@firm.example --header "From=Office <office@firm.example>"
        --attachment "Invoice 2026-117.txt=$documents/Invoice 2026-117.txt")
    check_mail plain --subject "MAPI ANSI ($arch)" --count 1 "${recipients[@]}" --header "To=Hans Mueller <hans@example.com>" \
        --attachment "Overview.txt=$documents/Übersicht €.txt" --body "your invoice is attached"
    check_mail plain --subject "MAPI wide ($arch) Ä" --count 1 "${recipients[@]}" \
        --header 'To="Müller, Hans" <hans@example.com>' --attachment "Übersicht €.txt=$documents/Übersicht €.txt" \
        --body "<p>Dear client,<br>your invoice is attached.</p>"
    check_mail plain --subject "MAPI dialog ($arch) Ä" --count 0
    check_mail plain --subject "MAPI refused ($arch)" --count 0
    # The outbox holds the two sent mails and nothing else: the refused ones were not queued.
    mapi_cli outbox query --limit 10 >"$work/mapi-query-$arch.json"
    "$PYTHON" - "$work/mapi-query-$arch.json" <<'PY' || win_fail "$arch: the MAPI outbox"
import json, sys
items = json.load(open(sys.argv[1]))["items"]
assert sorted(item["state"] for item in items) == ["sent", "sent"], items
print("ok: the outbox holds the 2 sent MAPI mails, nothing refused was queued")
PY
    for _ in $(seq 150); do [ -s "$displayed" ] && break; sleep 0.1; done
    [ -s "$displayed" ] || win_fail "$arch: MAPI_DIALOG: no .eml was opened within 15 s"
    echo "ok: MAPI_DIALOG wrote an .eml and opened it"
    # The same mails through the C ABI (smtpb_render of the same message JSON).
    for which in wide dialog; do
        "$PYTHON" - "$work/mapi-$which-$arch.json" "$which" "$arch" <<'PY'
import json, sys
path, which, arch = sys.argv[1:]
docs = "C:\\users\\root\\Documents\\"
json.dump({
    "to": [{"email": "hans@example.com", "name": "Müller, Hans"}], "cc": ["cc@example.com"], "bcc": ["bcc@example.com"],
    "subject": f"MAPI {which} ({arch}) Ä", "html": "<p>Dear client,<br>your invoice is attached.</p>",
    "attachments": [{"path": docs + "Invoice 2026-117.txt"}, {"path": docs + "Übersicht €.txt", "name": "Übersicht €.txt"}],
}, open(path, "w", encoding="utf-8"), ensure_ascii=False)
PY
        wine_run "$bin_in/mapitest.exe" render "$mapi_dir" "$work_in/mapi-$which-$arch.json" "$work_in/c-abi-$which-$arch.eml"
    done
    wide_mail="$("$PYTHON" "$REPO/tests/windows/check_mail.py" "$work/mail" plain --subject "MAPI wide ($arch) Ä" --count 1 |
        sed -n 's/.*(\([0-9]*\.eml\),.*/\1/p')"
    "$PYTHON" "$REPO/tests/windows/same_mime.py" "$work/mail/plain/$wide_mail" "$work/c-abi-wide-$arch.eml" ||
        win_fail "$arch: MAPISendMailW and the C ABI made different MIME"
    "$PYTHON" "$REPO/tests/windows/same_mime.py" "$displayed" "$work/c-abi-dialog-$arch.eml" ||
        win_fail "$arch: MAPI_DIALOG's .eml and the C ABI's rendering differ"
    # Mails one after another, each MAPISendMail without MAPILogon: the
    # process opens the data_dir once, not once a mail (the client stays
    # open between the calls; whether another process delivers is read
    # from the store without a client). The log counts the opens.
    mapi_cli config set SMTPLogFile "$mapi_dir\\series.log" >/dev/null
    wine_run "$bin_in/mapitest.exe" series mapi32.dll "MAPI series ($arch)" 5 series@example.com
    opens="$(grep -c 'client opened' "$DRIVE_C/users/root/AppData/Local/smtpbridge-mapi-$arch/series.log")" || true
    [ "$opens" = 1 ] || win_fail "$arch: 5 mails by MAPISendMail opened the data_dir $opens times, not once"
    for k in 1 2 3 4 5; do
        check_mail plain --subject "MAPI series ($arch) $k" --count 1 --rcpt series@example.com --from office@firm.example
    done
    echo "ok: 5 mails by MAPISendMail without MAPILogon, one open of the data_dir"
    wine_run "$bin_in/smtpbridge.exe" register-mapi --unregister

    win_log "$arch: COM: SmtpBridge.Application from VBScript (tests/windows/comtest.vbs)"
    com_dir="C:\\users\\root\\AppData\\Local\\smtpbridge-com-$arch"
    rm -rf "$DRIVE_C/users/root/AppData/Local/smtpbridge-com-$arch"
    for setting in "SMTPServer 127.0.0.1" "SMTPServerPort $plain_port" "SMTPAuthentication None" \
        "SMTPSenderEmail office@firm.example" "SMTPSenderName Office"; do
        # shellcheck disable=SC2086
        wine_run "$bin_in/smtpbridge.exe" --data-dir "$com_dir" --json config set $setting >/dev/null
    done
    wine_run reg add 'HKCU\Software\smtpbridge' /v DataDir /d "$com_dir" /f
    # The architecture's own regsvr32, cscript and reg (32-bit ones from syswow64).
    case "$arch" in x64) system='C:\windows\system32' ;; x86) system='C:\windows\syswow64' ;; esac
    com_dll="Z:${bin_in//\//\\}\\smtpbridge_com.dll"
    wine_run "$system\\regsvr32.exe" /s "$com_dll"
    com_displayed="$documents/com-displayed-$arch.eml"
    rm -f "$com_displayed" "$documents/com-saved-$arch.eml"
    wine_run reg add 'HKCR\smtpbridge.test.eml\shell\open\command' /ve \
        /d "cmd.exe /c copy \"%1\" \"C:\\users\\root\\Documents\\com-displayed-$arch.eml\"" /f
    wine_run "$system\\cscript.exe" //nologo "Z:${WIN_SRC//\//\\}\\tests\\windows\\comtest.vbs" "$arch" "$file1" "$file2" \
        'C:\users\root\Documents' "$com_dir" "$tls_port" "$ca_win" | tee "$work/comtest-$arch.log"
    # A VBScript runtime error ends Wine's cscript silently with exit code 0: the last line tells.
    tr -d '\r' <"$work/comtest-$arch.log" | grep -qx "comtest.vbs: ok ($arch)" ||
        win_fail "$arch: comtest.vbs did not run to its end (see $work/comtest-$arch.log)"
    check_mail plain --subject "COM ($arch) Ä" --count 1 --rcpt hans@example.com --rcpt cc@example.com \
        --rcpt cc2@example.com --rcpt bcc@example.com --from office@firm.example \
        --header "From=Office <office@firm.example>" --header 'To="Müller, Hans" <hans@example.com>' \
        --header "Cc=cc@example.com, Second CC <cc2@example.com>" --header "Importance=High" --header "X-Priority=1" \
        --attachment "Invoice 2026-117.txt=$documents/Invoice 2026-117.txt" \
        --attachment "Übersicht €.txt=$documents/Übersicht €.txt" --body "<p>Dear client,<br>your invoice is attached.</p>"
    check_mail plain --subject "COM too large ($arch)" --count 0
    check_mail tls --subject "COM refused ($arch)" --count 0
    # SaveAs and Display sent nothing: the one "MAPI wide" mail is MAPISendMailW's.
    check_mail plain --subject "MAPI wide ($arch) Ä" --count 1
    for _ in $(seq 150); do [ -s "$com_displayed" ] && break; sleep 0.1; done
    [ -s "$com_displayed" ] || win_fail "$arch: MailItem.Display: no .eml was opened within 15 s"
    echo "ok: MailItem.Display wrote an .eml and opened it"
    # The COM mail through the C ABI (smtpb_render of the same message JSON).
    "$PYTHON" - "$work/com-$arch.json" "$arch" <<'PY'
import json, sys
path, arch = sys.argv[1:]
docs = "C:\\users\\root\\Documents\\"
json.dump({
    "to": [{"email": "hans@example.com", "name": "Müller, Hans"}], "cc": ["cc@example.com", "Second CC <cc2@example.com>"],
    "bcc": ["bcc@example.com"], "subject": f"COM ({arch}) Ä", "html": "<p>Dear client,<br>your invoice is attached.</p>",
    "attachments": [{"path": docs + "Invoice 2026-117.txt"}, {"path": docs + "Übersicht €.txt", "name": "Übersicht €.txt"}],
    "headers": {"Importance": "High", "X-Priority": "1"},
}, open(path, "w", encoding="utf-8"), ensure_ascii=False)
PY
    wine_run "$bin_in/mapitest.exe" render "$com_dir" "$work_in/com-$arch.json" "$work_in/c-abi-com-$arch.eml"
    com_mail="$("$PYTHON" "$REPO/tests/windows/check_mail.py" "$work/mail" plain --subject "COM ($arch) Ä" --count 1 |
        sed -n 's/.*(\([0-9]*\.eml\),.*/\1/p')"
    "$PYTHON" "$REPO/tests/windows/same_mime.py" "$work/mail/plain/$com_mail" "$work/c-abi-com-$arch.eml" ||
        win_fail "$arch: MailItem.Send and the C ABI made different MIME"
    # One mail through Simple MAPI (sent), the C ABI (rendered) and COM (SaveAs, Display).
    "$PYTHON" "$REPO/tests/windows/same_mime.py" "$work/mail/plain/$wide_mail" "$work/c-abi-wide-$arch.eml" \
        "$documents/com-saved-$arch.eml" "$com_displayed" || win_fail "$arch: COM, MAPI and the C ABI made different MIME"
    # Per-user registration (regsvr32 /n /i:user), where no administrator is needed.
    com_key='HKCU\Software\Classes\CLSID\{B45463DD-655F-4D18-9AD5-55B0E786CABE}\InprocServer32'
    wine_run "$system\\regsvr32.exe" /s /u "$com_dll"
    wine_run "$system\\regsvr32.exe" /s /n /i:user "$com_dll"
    wine_run "$system\\reg.exe" query "$com_key" /v ThreadingModel
    wine_run "$system\\regsvr32.exe" /s /u /n /i:user "$com_dll"
    ! in_chroot env "${WINE_ENV[@]}" wine "$system\\reg.exe" query "$com_key" >/dev/null 2>&1 ||
        win_fail "$arch: regsvr32 /u /n /i:user left $com_key"
    echo "ok: registered and unregistered per user"

    win_log "$arch: COM without registration: a manifest (tests/windows/regfree.c, tests/windows/regfree.sh)"
    source "$REPO/tests/windows/regfree.sh"

    win_log "$arch: all passed"
done
win_log "mails received: plain $(find "$work/mail/plain" -name '*.eml' | wc -l), STARTTLS $(find "$work/mail/tls" -name '*.eml' | wc -l)"
win_log "all passed (${arches[*]})"
