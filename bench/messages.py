"""Writes the benchmark's messages into DIR: big.bin (5 MiB of random
bytes, the attachment bench.c sends), and for the reference clients
msg.eml (10 KB of text) and big.eml (big.bin attached), with LF line ends
as smtp-source reads them; and for bench/pipelined.c the two 10 KB bodies
of bench.c as MIME: long.eml (one long line, quoted-printable) and
lines.eml (lines of 72 characters, 7bit).

    python3 bench/messages.py DIR
"""

import email.message
import os
import sys

work = sys.argv[1]
with open(f"{work}/big.bin", "wb") as f:
    f.write(os.urandom(5 * 1024 * 1024))
body = "".join(" " if i % 80 == 79 else chr(97 + i % 26) for i in range(10240))
with open(f"{work}/msg.eml", "w") as f:
    f.write("From: bench@firm.example\nTo: sink@example.com\nSubject: benchmark\n\n" + body + "\n")
for name, text, cte in [
    ("long", body, "quoted-printable"),
    ("lines", "".join("\n" if i % 73 == 72 else chr(97 + i % 26) for i in range(10240)), "7bit"),
]:
    m = email.message.EmailMessage()
    m["From"], m["To"], m["Subject"] = "bench@firm.example", "sink@example.com", "benchmark"
    m.set_content(text, cte=cte)
    with open(f"{work}/{name}.eml", "wb") as f:
        f.write(bytes(m))
m = email.message.EmailMessage()
m["From"], m["To"], m["Subject"] = "bench@firm.example", "sink@example.com", "benchmark"
m.set_content("see attached")
with open(f"{work}/big.bin", "rb") as f:
    m.add_attachment(f.read(), maintype="application", subtype="octet-stream", filename="big.bin")
with open(f"{work}/big.eml", "wb") as f:
    f.write(bytes(m).replace(b"\r\n", b"\n"))
