# Sourced by scripts/windows/test.sh for each architecture, after the COM
# section has unregistered smtpbridge_com.dll ($arch, $prefix, $cflags,
# $version, $bin, $bin_in, $system, $plain_port, wine_run, check_mail):
# registration-free COM (ABI.md §19). In a folder of its own:
# tests/windows/regfree.c built as regfree.exe with an application manifest
# (regfree.exe.manifest) that depends on the assembly smtpbridge.com, and
# the release folder's smtpbridge.com.manifest and smtpbridge_com.dll. With
# the CLSID and the ProgID registered nowhere (checked, and the same program
# without a manifest finds no SmtpBridge.Application), regfree.exe creates
# it through the manifest and sends a mail (with a data_dir of its own),
# which arrives.
regfree="$bin/regfree" regfree_in="$bin_in/regfree"
rm -rf "$regfree"
mkdir -p "$regfree"
in_chroot bash -c "cd $WIN_SRC && set -x &&
    $prefix-gcc $cflags -static-libgcc tests/windows/regfree.c -lole32 -loleaut32 -luuid -o $regfree_in/regfree.exe" ||
    win_fail "$arch: building tests/windows/regfree.c failed"
cp "$regfree/regfree.exe" "$regfree/unregistered.exe"
cp "$REPO/target/windows/$arch/smtpbridge-$version-windows-$arch/"{smtpbridge_com.dll,smtpbridge.com.manifest} "$regfree/"
cat >"$regfree/regfree.exe.manifest" <<EOF
<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<assembly xmlns="urn:schemas-microsoft-com:asm.v1" manifestVersion="1.0">
  <assemblyIdentity type="win32" name="smtpbridge.regfree.test" version="1.0.0.0"/>
  <dependency>
    <dependentAssembly>
      <assemblyIdentity type="win32" name="smtpbridge.com" version="${version%%-*}.0"/>
    </dependentAssembly>
  </dependency>
</assembly>
EOF
for key in 'HKCR\CLSID\{B45463DD-655F-4D18-9AD5-55B0E786CABE}' 'HKCR\SmtpBridge.Application'; do
    ! in_chroot env "${WINE_ENV[@]}" wine "$system\\reg.exe" query "$key" >/dev/null 2>&1 ||
        win_fail "$arch: $key is registered: registration-free COM cannot be told apart"
done
wine_run "$regfree_in/unregistered.exe" absent
regfree_dir="C:\\users\\root\\AppData\\Local\\smtpbridge-regfree-$arch"
rm -rf "$DRIVE_C/users/root/AppData/Local/smtpbridge-regfree-$arch"
for setting in "SMTPServer 127.0.0.1" "SMTPServerPort $plain_port" "SMTPAuthentication None" \
    "SMTPSenderEmail office@firm.example"; do
    # shellcheck disable=SC2086
    wine_run "$bin_in/smtpbridge.exe" --data-dir "$regfree_dir" --json config set $setting >/dev/null
done
wine_run reg add 'HKCU\Software\smtpbridge' /v DataDir /d "$regfree_dir" /f
wine_run "$regfree_in/regfree.exe" send "$arch"
check_mail plain --subject "COM registration-free ($arch)" --count 1 --rcpt hans@example.com \
    --from office@firm.example --body "Sent through a manifest, with nothing registered."
