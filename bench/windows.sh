#!/usr/bin/env bash
# The C benchmark (bench/bench.c) built for Windows with MinGW and run under
# Wine, beside the Linux build, against one Postfix smtp-sink on 127.0.0.1,
# in one run; prints both rates and their ratio (docs/PERFORMANCE.md).
#
#   bench/windows.sh [x64|x86] [N]       (default: x64, 3000 messages)
#
# Run by hand, as root, after scripts/windows/build.sh (it tests the release
# folder) and with smtp-sink installed (Debian: postfix). Not part of the
# test command. Each side runs `bench send` (smtpb_send of a 10 KB message
# over one pooled connection) ROUNDS times (default 5), alternating; the
# medians are compared.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$REPO/scripts/windows/chroot.sh"
arch="${1:-x64}" n="${2:-3000}" rounds="${ROUNDS:-5}"
case "$arch" in x64) prefix=x86_64-w64-mingw32 ;; x86) prefix=i686-w64-mingw32 ;; *) win_fail "x64 or x86" ;; esac
[ "$(id -u)" -eq 0 ] || win_fail "run as root (chroot and bind mounts need it)"
command -v smtp-sink >/dev/null || win_fail "smtp-sink is missing (apt-get install postfix)"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$REPO/Cargo.toml" | head -n 1)"
release="target/windows/$arch/smtpbridge-$version-windows-$arch"
[ -f "$REPO/$release/smtpbridge.dll" ] || win_fail "no $release: run scripts/windows/build.sh $arch first"
[ -f "$REPO/target/release/libsmtpbridge.so" ] || win_fail "no target/release/libsmtpbridge.so: cargo build --release"

work="$REPO/target/windows/bench"
rm -rf "$work" && mkdir -p "$work"
cc -O2 -std=c99 -I"$REPO/include" "$REPO/bench/bench.c" -L"$REPO/target/release" -lsmtpbridge -lpthread \
    -o "$work/bench-linux"

exec 8>"$WINCHROOT.lock"
flock 8
E=(WINEPREFIX=/root/.wine-smtpbridge WINEDEBUG=-all "WINEDLLOVERRIDES=mscoree,mshtml=" HOME=/root USER=root
    XDG_RUNTIME_DIR=/run/user/0)
sink_pid=""
cleanup() {
    [ -z "$sink_pid" ] || kill "$sink_pid" 2>/dev/null || true
    in_chroot env "${E[@]}" /usr/lib/x86_64-linux-gnu/wine/wineserver -k >/dev/null 2>&1 || true
    win_umount
}
trap cleanup EXIT
win_mount "$REPO"
in_chroot bash -c "cd $WIN_SRC && $prefix-gcc -O2 -std=c99 -I$release/include bench/bench.c -L$release -lsmtpbridge \
    -static-libgcc -Wl,-Bstatic -lpthread -Wl,-Bdynamic -o target/windows/bench/bench.exe && cp $release/smtpbridge.dll target/windows/bench/"

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
smtp-sink -u "$(id -un)" "127.0.0.1:$port" 1024 &
sink_pid=$!
python3 - "$port" <<'PY' || win_fail "smtp-sink did not listen on 127.0.0.1:$port within 10 s"
import socket, sys, time
deadline = time.monotonic() + 10
while True:
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1).close()
        break
    except OSError:
        if time.monotonic() > deadline:
            sys.exit(1)
        time.sleep(0.05)
PY
median() { sort -n | sed -n "$(((rounds + 1) / 2))p"; }
rate() { awk '{for (i = 1; i <= NF; i++) if ($i ~ /\/s$/) { sub(/\/s$/, "", $i); print $i }}'; }
linux=() windows=()
for round in $(seq "$rounds"); do
    out="$(LD_LIBRARY_PATH="$REPO/target/release" "$work/bench-linux" send "$port" "$n")"
    echo "round $round, Linux:   $out"
    linux+=("$(rate <<<"$out")")
    out="$(in_chroot env "${E[@]}" wine "$WIN_SRC/target/windows/bench/bench.exe" send "$port" "$n")"
    echo "round $round, Windows: $out"
    windows+=("$(rate <<<"$out")")
done
l="$(printf '%s\n' "${linux[@]}" | median)" w="$(printf '%s\n' "${windows[@]}" | median)"
echo "bench send, $n messages of 10 KB, median of $rounds: Linux $l/s, Windows $arch under Wine $w/s," \
    "ratio Windows/Linux $(awk -v a="$w" -v b="$l" 'BEGIN { printf "%.2f", a / b }')"
