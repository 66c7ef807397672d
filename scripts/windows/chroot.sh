# Sourced by scripts/windows/build.sh and test.sh: the Debian sid chroot
# that holds the Windows toolchain (rustc + rust-src for -Z build-std,
# MinGW-w64 gcc/g++/binutils for both architectures, Wine 10).
#
# Why a chroot: Debian 12's rustc is too old for the project (rust-version
# 1.89) and has no rust-src; sid has rustc 1.97 with rust-src and Wine 10,
# whose WoW64 runs 32-bit programs in a 64-bit prefix. The chroot is made
# once and kept (WINCHROOT, default /var/cache/smtpbridge-winchroot, about
# 7 GB); every later run reuses it. Needs root (debootstrap, chroot, mount).
#
# Environment: WINCHROOT (the chroot's folder), WINCHROOT_MIRROR (the Debian
# mirror, default http://deb.debian.org/debian).
set -euo pipefail

WINCHROOT="${WINCHROOT:-/var/cache/smtpbridge-winchroot}"
WINCHROOT_MIRROR="${WINCHROOT_MIRROR:-http://deb.debian.org/debian}"
# Where the repository appears inside the chroot.
WIN_SRC=/src
# Everything the chroot must hold; a change here reinstalls on the next run.
WIN_PACKAGES="rustc cargo rust-src gcc-mingw-w64-x86-64 gcc-mingw-w64-i686 g++-mingw-w64-x86-64
 g++-mingw-w64-i686 binutils-mingw-w64-x86-64 binutils-mingw-w64-i686 wine wine64 python3 ca-certificates zip"

win_log() { echo "[windows] $*"; }
win_fail() { echo "[windows] error: $*" >&2; exit 1; }

# Runs a command inside the chroot (as root, HOME=/root, repository at /src).
in_chroot() {
    chroot "$WINCHROOT" /usr/bin/env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        LANG=C.UTF-8 TERM=dumb "$@"
}

win_is_mounted() { mountpoint -q "$1"; }

# Mounts /proc, /dev, /dev/pts, /dev/shm and the repository into the chroot.
win_mount() {
    local repo="$1"
    win_is_mounted "$WINCHROOT/proc" || mount -t proc proc "$WINCHROOT/proc"
    win_is_mounted "$WINCHROOT/dev" || mount --bind /dev "$WINCHROOT/dev"
    win_is_mounted "$WINCHROOT/dev/pts" || mount --bind /dev/pts "$WINCHROOT/dev/pts"
    mkdir -p "$WINCHROOT$WIN_SRC"
    if win_is_mounted "$WINCHROOT$WIN_SRC"; then umount "$WINCHROOT$WIN_SRC"; fi
    mount --bind "$repo" "$WINCHROOT$WIN_SRC"
}

win_umount() {
    local point
    for point in "$WIN_SRC" /dev/pts /dev /proc; do
        if win_is_mounted "$WINCHROOT$point"; then
            umount "$WINCHROOT$point" 2>/dev/null || umount -l "$WINCHROOT$point" || true
        fi
    done
}

# Makes the chroot and installs the toolchain, unless already done.
win_setup_chroot() {
    if [ ! -x "$WINCHROOT/usr/bin/apt-get" ] || [ ! -e "$WINCHROOT/.debootstrap-done" ]; then
        command -v debootstrap >/dev/null || {
            win_log "installing debootstrap on the host"
            DEBIAN_FRONTEND=noninteractive apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
        }
        win_umount
        rm -rf "$WINCHROOT"
        mkdir -p "$WINCHROOT"
        win_log "debootstrap sid into $WINCHROOT"
        debootstrap --variant=minbase sid "$WINCHROOT" "$WINCHROOT_MIRROR" >"$WINCHROOT.debootstrap.log" 2>&1 ||
            { tail -n 20 "$WINCHROOT.debootstrap.log" >&2; win_fail "debootstrap failed (log: $WINCHROOT.debootstrap.log)"; }
        touch "$WINCHROOT/.debootstrap-done"
    fi
    # sid's Release files may be past their Valid-Until on a frozen mirror.
    echo 'Acquire::Check-Valid-Until "false";' >"$WINCHROOT/etc/apt/apt.conf.d/99no-valid-until"
    cp /etc/resolv.conf "$WINCHROOT/etc/resolv.conf" 2>/dev/null || true
    # The host's extra CA certificates (a proxy's, say), so apt and cargo
    # in the chroot reach the mirror and crates.io as the host does.
    mkdir -p "$WINCHROOT/usr/local/share/ca-certificates"
    if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
        cp /usr/local/share/ca-certificates/*.crt "$WINCHROOT/usr/local/share/ca-certificates/"
    fi
    local wanted
    wanted="$(echo $WIN_PACKAGES)"
    if [ "$(cat "$WINCHROOT/.packages-done" 2>/dev/null)" != "$wanted" ]; then
        win_log "installing the toolchain in the chroot: $wanted"
        mountpoint -q "$WINCHROOT/proc" || mount -t proc proc "$WINCHROOT/proc"
        in_chroot env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        # shellcheck disable=SC2086
        in_chroot env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $wanted \
            >"$WINCHROOT.apt.log" 2>&1 || { tail -n 20 "$WINCHROOT.apt.log" >&2; win_fail "apt-get install in the chroot failed"; }
        in_chroot apt-get clean
        echo "$wanted" >"$WINCHROOT/.packages-done"
    fi
    in_chroot update-ca-certificates >/dev/null 2>&1 || win_fail "update-ca-certificates in the chroot failed"
    # rustc links rsbegin.o/rsend.o into every i686-pc-windows-gnu program
    # and looks for them in the sysroot, where -Z build-std does not put them.
    local libdir=/usr/lib/rustlib/i686-pc-windows-gnu/lib part
    for part in rsbegin rsend; do
        [ -s "$WINCHROOT$libdir/$part.o" ] && continue
        win_log "building $part.o for i686-pc-windows-gnu"
        mkdir -p "$WINCHROOT$libdir"
        in_chroot env RUSTC_BOOTSTRAP=1 rustc --target i686-pc-windows-gnu --emit=obj -C opt-level=3 \
            -o "$libdir/$part.o" "/usr/lib/rustlib/src/rust/library/rtstartup/$part.rs"
    done
}
