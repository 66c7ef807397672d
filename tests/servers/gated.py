"""A loopback SMTP server that holds its reply to the final dot until the
test releases it, so a test can change the world (fill the disk) between
the message's arrival and its acceptance.

    with GatedServer() as server:
        ...                      # the client sends
        server.arrived.wait(10)  # the final dot is in; the reply waits
        ...
        server.release.set()     # now "250 OK"
"""

from __future__ import annotations

import socket
import threading
from email import message_from_bytes
from email.message import Message


class GatedServer:
    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(8)
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self.arrived = threading.Event()
        self.release = threading.Event()
        self.messages: list[Message] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(t)
            t.start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(30)
        f = conn.makefile("rb")
        try:
            conn.sendall(b"220 gated ESMTP\r\n")
            while True:
                line = f.readline()
                if not line:
                    return
                verb = line[:4].upper()
                if verb in (b"EHLO", b"HELO"):
                    conn.sendall(b"250-gated\r\n250 8BITMIME\r\n")
                elif verb == b"DATA":
                    conn.sendall(b"354 go on\r\n")
                    data = b""
                    while True:
                        chunk = f.readline()
                        if not chunk or chunk == b".\r\n":
                            break
                        data += chunk[1:] if chunk.startswith(b"..") else chunk
                    self.messages.append(message_from_bytes(data))
                    self.arrived.set()
                    self.release.wait(60)
                    conn.sendall(b"250 OK accepted\r\n")
                elif verb == b"QUIT":
                    conn.sendall(b"221 bye\r\n")
                    return
                else:
                    conn.sendall(b"250 OK\r\n")
        except OSError:
            return
        finally:
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self.release.set()
        self._sock.close()

    def __enter__(self) -> "GatedServer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
