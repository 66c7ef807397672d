"""A competing writer for bench/store.sh: writes 4 MiB to a file in DIR
and fdatasyncs it, over and over, until killed — another process keeping
the disk busy, as a host's other programs do (issue 25: fdatasync 0.1-0.24
ms on a quiet disk, ~4 ms under such load).

    python3 bench/fsync_load.py DIR
"""

import os
import sys

path = os.path.join(sys.argv[1], "fsync-load.bin")
block = os.urandom(4 << 20)
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
n = 0
while True:
    os.pwrite(fd, block, (n % 16) * len(block))
    os.fdatasync(fd)
    n += 1
