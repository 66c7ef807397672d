"""The physical limits beside bench/store.sh's figures: the fdatasync rate
of the disk under DIR (4 KiB appended and fdatasynced, as a WAL commit
does), and the loopback round trip (one byte each way over TCP).

    python3 bench/limits.py DIR
"""

import os
import socket
import sys
import threading
import time

N = 2000
path = os.path.join(sys.argv[1], "limits.bin")
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
page = b"x" * 4096
t = time.perf_counter()
for _ in range(N):
    os.write(fd, page)
    os.fdatasync(fd)
took = time.perf_counter() - t
os.close(fd)
os.unlink(path)
print(f"fdatasync of a 4 KiB append: {N / took:,.0f}/s ({took / N * 1000:.3f} ms each)")

server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen(1)


def echo():
    conn, _ = server.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while data := conn.recv(1):
        conn.sendall(data)


threading.Thread(target=echo, daemon=True).start()
client = socket.create_connection(server.getsockname())
client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
t = time.perf_counter()
for _ in range(N):
    client.sendall(b"x")
    client.recv(1)
took = time.perf_counter() - t
print(f"loopback TCP round trip (Python both ends): {took / N * 1e6:.0f} us")
