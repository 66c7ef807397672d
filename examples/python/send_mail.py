#!/usr/bin/env python3
"""Send one HTML mail with an attachment through the Python bindings.

    python3 examples/python/send_mail.py PORT ATTACHMENT [TO]

Sends to 127.0.0.1:PORT without TLS or AUTH (a loopback test server such as
examples/smtp_server.py); ATTACHMENT is a file path. The library is the one
in SMTPBRIDGE_LIBRARY, else this checkout's target/release build.
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bindings" / "python"))  # not needed once `pip install ./bindings/python`
os.environ.setdefault("SMTPBRIDGE_LIBRARY", str(ROOT / "target" / "release" / "libsmtpbridge.so"))

import smtpbridge  # noqa: E402  (loads the library and checks its ABI version)


def main(port: str, attachment: str, to: str = "client@example.com") -> int:
    with smtpbridge.Client() as client:  # in memory
        client.configure(SMTPServer="127.0.0.1", SMTPServerPort=port, SMTPAuthentication="None")
        try:
            status = client.send({
                "from": {"email": "anna@firm.example", "name": "Anna Smith"},
                "to": [to],
                "subject": "Your invoice - Python example",
                "html": "<p>Dear client,</p><p>your invoice is attached.</p>",
                "attachments": [Path(attachment)],  # an os.PathLike is made absolute
            })
        except smtpbridge.SmtpBridgeError as error:  # ConnectError, RejectedError, ...
            print(error, file=sys.stderr)  # "SMTPB_ERR_CONNECT: cannot connect to ..."
            if error.status is not None:
                print("status:", error.status, file=sys.stderr)
            return 1
    print(status["state"], status["id"], status["message_id"])
    return 0


if __name__ == "__main__":
    if not 3 <= len(sys.argv) <= 4:
        sys.exit(__doc__)
    sys.exit(main(*sys.argv[1:]))
