"""The Python reference client: smtplib sends one .eml file N times over
one connection (plain, or implicit TLS trusting a given CA)."""
import smtplib
import ssl
import sys
import time

port, count, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
ca = sys.argv[4] if len(sys.argv) > 4 else None
data = open(path, "rb").read()
if ca:
    context = ssl.create_default_context(cafile=ca)
    smtp = smtplib.SMTP_SSL("localhost", port, local_hostname="bench.local", context=context)
else:
    smtp = smtplib.SMTP("127.0.0.1", port, local_hostname="bench.local")
smtp.sendmail("bench@firm.example", ["sink@example.com"], data)  # warm-up
started = time.monotonic()
for _ in range(count):
    smtp.sendmail("bench@firm.example", ["sink@example.com"], data)
took = time.monotonic() - started
smtp.quit()
name = "python smtplib, implicit TLS, 1 connection" if ca else "python smtplib, 1 connection"
if len(data) > 1 << 20:
    name = "python smtplib, 5 MiB attachment, 1 connection"
print("%-44s %6d %8.3f %9.0f/s  %s" % (name, count, took, count / took, "reference"))
