#!/usr/bin/env python3
"""OAuth2 browser sign-in with the Windows command line under Wine.

    python tests/windows/oauth_login.py --data-dir-win 'C:\\...' --data-dir-host PATH -- WINE... smtpbridge.exe

Run by scripts/windows/test.sh. On the Linux side it starts the test
authorization server (oidc-provider, `tests/servers/oidc.OidcProvider`) and
an SMTP server that takes only XOAUTH2 tokens it introspects there
(`tests/servers/oauth_smtp.IntrospectingServer`). Then, through the command
after ``--`` (Wine running smtpbridge.exe):

1. ``config import -``: an OpenID profile naming that issuer and the public client;
2. ``login emp-42 --browser``: the library's loopback redirect listener runs
   inside Wine; the address the program prints is followed by the test
   browser (`OidcProvider.browser_sign_in`) through login and consent to
   that listener, and the program must end with the user signed in;
3. ``send --user emp-42``: the server must receive it after AUTH XOAUTH2 as
   the signed-in account;
4. no token or code the provider issued is in any file of the data_dir.

Prints one "ok:" line per step; exits 1 naming the first that failed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from servers.oauth_smtp import IntrospectingServer  # noqa: E402
from servers.oidc import PUBLIC_CLIENT, OidcProvider  # noqa: E402

TIMEOUT_S = 60.0


def fail(what: str) -> None:
    print(f"oauth_login: FAIL: {what}", file=sys.stderr)
    sys.exit(1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir-win", required=True)
    parser.add_argument("--data-dir-host", required=True, type=Path)
    parser.add_argument("--body-win", required=True)
    parser.add_argument("command", nargs="+")
    args = parser.parse_args()
    cli = [*args.command, "--data-dir", args.data_dir_win, "--json"]

    def run(*argv: str, stdin: str | None = None) -> dict:
        done = subprocess.run([*cli, *argv], input=stdin, capture_output=True, text=True, timeout=TIMEOUT_S)
        if done.returncode != 0:
            fail(f"smtpbridge.exe {' '.join(argv)}: exit {done.returncode}: {done.stderr.strip()}")
        return json.loads(done.stdout)

    with OidcProvider() as provider, IntrospectingServer(provider.introspection_endpoint, auth_required=True) as server:
        settings = {
            "SMTPServer": "127.0.0.1", "SMTPServerPort": server.port, "SMTPAuthentication": "Required",
            "SMTPAllowPlaintextAuth": "true", "SMTPSenderEmail": "office@firm.example",
            "SMTPAuthModel": "OAuth2", "SMTPOAuth2Provider": "OpenID", "SMTPOAuth2Issuer": provider.issuer,
            "SMTPOAuth2ClientId": PUBLIC_CLIENT, "SMTPOAuth2Scopes": "smtp.send offline_access",
        }
        run("config", "import", "-", stdin="".join(f"{k}={v}\n" for k, v in settings.items()))
        print("ok: an OpenID profile imported")

        login = subprocess.Popen([*cli, "login", "emp-42", "--browser", "--timeout", "60"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert login.stderr is not None
        url = ""
        deadline = time.monotonic() + TIMEOUT_S
        while not url and time.monotonic() < deadline:
            line = login.stderr.readline()
            if not line:
                break
            url = line.strip() if line.strip().startswith("http") else ""
        if not url:
            login.kill()
            fail("login printed no address to open")
        status, page = provider.browser_sign_in(url, "anna")
        if status != 200 or "You may close this window" not in page:
            login.kill()
            fail(f"the loopback redirect inside Wine answered {status}: {page[:200]!r}")
        print("ok: signed in through the library's loopback listener inside Wine")
        out, err = login.communicate(timeout=TIMEOUT_S)
        if login.returncode != 0:
            fail(f"login exited {login.returncode}: {err.strip()}")
        masked = json.loads(out)
        if masked.get("user_id") != "emp-42" or masked.get("refreshable") is not True or \
                masked.get("username") != "anna@example.test":
            fail(f"login's result: {masked}")
        print(f"ok: emp-42 signed in as {masked['username']}, refreshable")

        sent = run("send", "--user", "emp-42", "--to", "client@example.com", "--subject", "Windows OAuth2",
                   "--text", args.body_win)
        if sent.get("state") != "sent":
            fail(f"send: {sent}")
        (received,) = server.wait_for(1, timeout=TIMEOUT_S)
        if received.auth_user != "anna@example.test" or str(received.parsed["subject"]) != "Windows OAuth2":
            fail(f"the server got {received.parsed['subject']!r} after AUTH as {received.auth_user!r}")
        print("ok: sent after AUTH XOAUTH2 as anna@example.test with the token the library got")
        secrets = provider.secrets()

    if not secrets:
        fail("the provider reports no issued secrets to look for")
    for path in args.data_dir_host.rglob("*"):
        if path.is_file() and any(secret.encode() in path.read_bytes() for secret in secrets):
            fail(f"a token or code is in plaintext in {path}")
    print(f"ok: none of the {len(secrets)} tokens and codes is in a file of the data_dir")


if __name__ == "__main__":
    main()
