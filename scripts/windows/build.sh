#!/usr/bin/env bash
# Builds smtpbridge for Windows: smtpbridge.dll (with its import library
# libsmtpbridge.dll.a and smtpbridge.def) and smtpbridge.exe (the command
# line), stripped, each with a version resource, for x64
# (x86_64-pc-windows-gnu) and x86 (i686-pc-windows-gnu); then one release
# folder, zip and SHA256SUMS per architecture:
#
#   target/windows/x64/smtpbridge-<version>-windows-x64/
#       smtpbridge.dll  libsmtpbridge.dll.a  smtpbridge.def  smtpbridge.exe
#       smtpbridge_mapi.dll  (the Simple MAPI provider, docs/DROPIN.md)
#       smtpbridge_com.dll   (the COM automation server SmtpBridge.Application, docs/DROPIN.md)
#       smtpbridge.com.manifest  (its assembly manifest, for registration-free COM)
#       include/smtpbridge.h  include/smtpbridge.hpp  include/smtpbridge_message.hpp
#       licenses/  (the licence texts of every crate linked in, and the Rust
#                   standard library's and MinGW-w64's)
#       SHA256SUMS
#   target/windows/x64/smtpbridge-<version>-windows-x64.zip (+ .sha256)
#   (the same under target/windows/x86/)
#
#   scripts/windows/build.sh [x64|x86]...     (default: both)
#   scripts/windows/build.sh --setup          (only make the chroot: .ci/run)
#
# Runs on a Debian 12 (or later) host as root: the toolchain lives in a
# Debian sid chroot made on first use and kept (scripts/windows/chroot.sh,
# WINCHROOT; first run about 20 minutes, later runs seconds to a minute and
# a half). The repository is bind-mounted into it; cargo's output goes to
# target/windows/cargo. Idempotent: run it again after any change.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
source "$REPO/scripts/windows/chroot.sh"

[ "$(id -u)" -eq 0 ] || win_fail "run as root (debootstrap, chroot and bind mounts need it)"
setup_only=0
if [ "${1:-}" = "--setup" ]; then setup_only=1; shift; fi
arches=("$@")
[ ${#arches[@]} -gt 0 ] || arches=(x64 x86)
for arch in "${arches[@]}"; do
    case "$arch" in x64 | x86) ;; *) win_fail "unknown architecture '$arch' (x64 or x86)" ;; esac
done

# One run at a time per chroot (the mounts and the cargo target are shared).
exec 8>"$WINCHROOT.lock"
flock 8

trap win_umount EXIT
win_setup_chroot
[ "$setup_only" -eq 0 ] || { win_log "the build chroot is ready at $WINCHROOT"; exit 0; }
win_mount "$REPO"

version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$REPO/Cargo.toml" | head -n 1)"
[ -n "$version" ] || win_fail "no version in Cargo.toml"

for arch in "${arches[@]}"; do
    case "$arch" in
        x64) triple=x86_64-pc-windows-gnu prefix=x86_64-w64-mingw32 ;;
        x86) triple=i686-pc-windows-gnu prefix=i686-w64-mingw32 ;;
    esac
    win_log "$arch: cargo build --release --workspace --target $triple -Z build-std"
    started=$SECONDS
    linker_var="CARGO_TARGET_$(echo "$triple" | tr 'a-z-' 'A-Z_')_LINKER"
    # RUSTC_BOOTSTRAP lets sid's stable rustc take -Z build-std: Debian
    # ships no prebuilt standard library for Windows, only its source.
    in_chroot env RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR="$WIN_SRC/target/windows/cargo" \
        "$linker_var=$prefix-gcc" bash -c "cd $WIN_SRC && cargo build --release --locked --quiet --workspace \
            -Z build-std=std,panic_unwind --target $triple" ||
        win_fail "$arch: the build failed"
    win_log "$arch: built in $((SECONDS - started)) s"

    built="$REPO/target/windows/cargo/$triple/release"
    name="smtpbridge-$version-windows-$arch"
    out="$REPO/target/windows/$arch"
    folder="$out/$name"
    rm -rf "$folder" "$out/$name.zip" "$out/$name.zip.sha256"
    mkdir -p "$folder/include" "$folder/licenses"
    in_chroot "$prefix-strip" -o "$WIN_SRC/target/windows/$arch/$name/smtpbridge.dll" \
        "$WIN_SRC/target/windows/cargo/$triple/release/smtpbridge.dll"
    for image in smtpbridge.exe smtpbridge_mapi.dll smtpbridge_com.dll; do
        in_chroot "$prefix-strip" -o "$WIN_SRC/target/windows/$arch/$name/$image" \
            "$WIN_SRC/target/windows/cargo/$triple/release/$image"
    done
    cp "$built/libsmtpbridge.dll.a" "$folder/"
    # The COM server as a side-by-side assembly: a program whose manifest
    # depends on smtpbridge.com creates SmtpBridge.Application from the DLL
    # in its own folder, with nothing registered (docs/DROPIN.md).
    cat >"$folder/smtpbridge.com.manifest" <<EOF
<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<assembly xmlns="urn:schemas-microsoft-com:asm.v1" manifestVersion="1.0">
  <assemblyIdentity type="win32" name="smtpbridge.com" version="${version%%-*}.0"/>
  <file name="smtpbridge_com.dll">
    <comClass clsid="{B45463DD-655F-4D18-9AD5-55B0E786CABE}" progid="SmtpBridge.Application"
              threadingModel="Both" description="SmtpBridge.Application"/>
  </file>
</assembly>
EOF
    cp "$REPO/include/smtpbridge.h" "$REPO/bindings/cpp/smtpbridge.hpp" "$REPO/bindings/cpp/smtpbridge_message.hpp" \
        "$folder/include/"

    # The .def, from the DLL's export table: what MSVC's `lib /def:smtpbridge.def
    # /machine:x64` (or x86) turns into smtpbridge.lib.
    in_chroot "$prefix-objdump" -p "$WIN_SRC/target/windows/$arch/$name/smtpbridge.dll" >"$out/objdump.txt"
    exports="$(awk '/^\[Ordinal\/Name Pointer\] Table/ {on = 1; next} on && /^\t\[/ {print $NF; next} on && !/^\t/ {on = 0}' \
        "$out/objdump.txt")"
    {
        echo "LIBRARY smtpbridge.dll"
        echo "EXPORTS"
        for symbol in $exports; do echo "    $symbol"; done
    } >"$folder/smtpbridge.def"
    # Every function of the header is exported, and nothing else.
    header_functions="$(grep -oE 'SMTPB_CALL smtpb_[a-z0-9_]+\(' "$REPO/include/smtpbridge.h" | sed 's/SMTPB_CALL //; s/($//' | sort)"
    if [ "$(echo "$exports" | sort)" != "$header_functions" ]; then
        diff <(echo "$header_functions") <(echo "$exports" | sort) >&2 || true
        win_fail "$arch: the DLL's exports differ from include/smtpbridge.h's functions (< header, > DLL)"
    fi
    # The MAPI provider exports mapi.h's names undecorated (no @N on x86:
    # the MAPI stub looks them up by plain name). (Rust exports the
    # library's smtpb_* functions from it too.)
    mapi_exports="$(in_chroot "$prefix-objdump" -p "$WIN_SRC/target/windows/$arch/$name/smtpbridge_mapi.dll" |
        awk '/^\[Ordinal\/Name Pointer\] Table/ {on = 1; next} on && /^\t\[/ {print $NF; next} on && !/^\t/ {on = 0}')"
    for symbol in MAPISendMail MAPISendMailW MAPILogon MAPILogoff MAPIResolveName MAPIFreeBuffer; do
        echo "$mapi_exports" | grep -qx "$symbol" || win_fail "$arch: smtpbridge_mapi.dll does not export $symbol"
    done
    ! echo "$mapi_exports" | grep -q '@' || win_fail "$arch: smtpbridge_mapi.dll has decorated exports: $mapi_exports"
    # The COM server exports what COM and regsvr32 look up, undecorated.
    com_exports="$(in_chroot "$prefix-objdump" -p "$WIN_SRC/target/windows/$arch/$name/smtpbridge_com.dll" |
        awk '/^\[Ordinal\/Name Pointer\] Table/ {on = 1; next} on && /^\t\[/ {print $NF; next} on && !/^\t/ {on = 0}')"
    for symbol in DllGetClassObject DllCanUnloadNow DllRegisterServer DllUnregisterServer DllInstall; do
        echo "$com_exports" | grep -qx "$symbol" || win_fail "$arch: smtpbridge_com.dll does not export $symbol"
    done
    ! echo "$com_exports" | grep -q '@' || win_fail "$arch: smtpbridge_com.dll has decorated exports: $com_exports"
    # Nothing beyond the operating system: no MinGW runtime DLL.
    for image in smtpbridge.dll smtpbridge.exe smtpbridge_mapi.dll smtpbridge_com.dll; do
        imports="$(in_chroot "$prefix-objdump" -p "$WIN_SRC/target/windows/$arch/$name/$image" |
            sed -n 's/^\tDLL Name: //p' | tr 'A-Z' 'a-z' | sort -u | tr '\n' ' ')"
        for dll in $imports; do
            case "$dll" in
                libgcc* | libwinpthread* | libstdc++* | libssp* | libatomic*)
                    win_fail "$arch: $image needs $dll, a MinGW runtime DLL (imports: $imports)" ;;
            esac
        done
        echo "$imports" >"$out/$image.imports.txt"
    done
    # The version resource, read back from the stripped images.
    for image in smtpbridge.dll smtpbridge.exe smtpbridge_mapi.dll smtpbridge_com.dll; do
        in_chroot "$prefix-windres" --input "$WIN_SRC/target/windows/$arch/$name/$image" --input-format=coff \
            --output-format=rc >"$out/$image.rc" || win_fail "$arch: no resources in $image"
        for want in "FILEVERSION ${version//./, }, 0" "\"FileVersion\", \"$version\"" "\"ProductVersion\", \"$version\"" \
            '"ProductName", "smtpbridge"' '"CompanyName",' '"FileDescription",' '"LegalCopyright",'; do
            grep -qF "$want" "$out/$image.rc" || win_fail "$arch: $image's version resource lacks $want (see $out/$image.rc)"
        done
    done

    in_chroot python3 "$WIN_SRC/scripts/windows/licenses.py" --target "$triple" \
        --out "$WIN_SRC/target/windows/$arch/$name/licenses" || win_fail "$arch: collecting the licence texts failed"

    (cd "$folder" && find . -type f ! -name SHA256SUMS -printf '%P\n' | LC_ALL=C sort | xargs -d '\n' sha256sum >SHA256SUMS)
    (cd "$out" && in_chroot bash -c "cd $WIN_SRC/target/windows/$arch && zip -q -r -X $name.zip $name" &&
        sha256sum "$name.zip" >"$name.zip.sha256")
    win_log "$arch: $(stat -c %s "$folder/smtpbridge.dll") B smtpbridge.dll, $(stat -c %s "$folder/smtpbridge.exe") B" \
        "smtpbridge.exe, $(echo "$exports" | wc -w) exports; imports: $(cat "$out/smtpbridge.dll.imports.txt")"
    win_log "$arch: $out/$name.zip"
done
