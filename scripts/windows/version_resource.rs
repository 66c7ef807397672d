// The Windows version resource of smtpbridge.dll, smtpbridge.exe and the
// drop-in DLLs, included by build.rs, cli/build.rs, com/build.rs and
// mapi/build.rs (`include!`), so all carry the same version, product and
// company strings.
//
// Only for Windows targets built with MinGW (`*-pc-windows-gnu`): an .rc
// file is generated from CARGO_PKG_VERSION, compiled to a COFF object by
// MinGW's windres (`<arch>-w64-mingw32-windres`, or the WINDRES
// environment variable) and handed to the linker, which puts it in the
// image's .rsrc section. Installers compare FileVersion to decide whether
// to replace a file. Other targets: nothing happens.

/// Adds the version resource to the image being linked, if the target is
/// Windows. `description` is the FileDescription, `file_name` the
/// OriginalFilename; `link_arg_kind` is "cdylib" or "bins".
fn windows_version_resource(description: &str, file_name: &str, link_arg_kind: &str) {
    println!("cargo:rerun-if-env-changed=WINDRES");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("windows") {
        return;
    }
    if std::env::var("CARGO_CFG_TARGET_ENV").as_deref() != Ok("gnu") {
        println!("cargo:warning=no version resource: only *-pc-windows-gnu builds (MinGW windres) add one");
        return;
    }
    // The library's version, also for the command line (a package of its
    // own): build.rs passes it on as `links` metadata (DEP_SMTPBRIDGE_VERSION).
    println!("cargo:rerun-if-env-changed=DEP_SMTPBRIDGE_VERSION");
    let version =
        std::env::var("DEP_SMTPBRIDGE_VERSION").or_else(|_| std::env::var("CARGO_PKG_VERSION")).expect("set by cargo");
    let mut numbers = version.split(|c: char| !c.is_ascii_digit()).map(|p| p.parse::<u16>().unwrap_or(0));
    let (major, minor, patch) = (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0), numbers.next().unwrap_or(0));
    let rc = format!(
        r#"1 VERSIONINFO
FILEVERSION {major},{minor},{patch},0
PRODUCTVERSION {major},{minor},{patch},0
FILEFLAGSMASK 0x3F
FILEFLAGS 0
FILEOS 0x40004
FILETYPE {file_type}
FILESUBTYPE 0
BEGIN
  BLOCK "StringFileInfo"
  BEGIN
    BLOCK "040904B0"
    BEGIN
      VALUE "CompanyName", "The smtpbridge authors"
      VALUE "FileDescription", "{description}"
      VALUE "FileVersion", "{version}"
      VALUE "InternalName", "{file_name}"
      VALUE "LegalCopyright", "Copyright (c) The smtpbridge authors. Licensed under MIT OR Apache-2.0."
      VALUE "OriginalFilename", "{file_name}"
      VALUE "ProductName", "smtpbridge"
      VALUE "ProductVersion", "{version}"
    END
  END
  BLOCK "VarFileInfo"
  BEGIN
    VALUE "Translation", 0x0409, 1200
  END
END
"#,
        file_type = if file_name.ends_with(".dll") { 2 } else { 1 },
    );
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo"));
    let rc_path = out_dir.join("version.rc");
    let object = out_dir.join("version_resource.o");
    std::fs::write(&rc_path, rc).expect("write version.rc");
    let windres = std::env::var("WINDRES").unwrap_or_else(|_| {
        let arch = std::env::var("CARGO_CFG_TARGET_ARCH").expect("set by cargo");
        let prefix = if arch == "x86" { "i686" } else { arch.as_str() };
        format!("{prefix}-w64-mingw32-windres")
    });
    let status = std::process::Command::new(&windres)
        .arg("--input")
        .arg(&rc_path)
        .arg("--output")
        .arg(&object)
        .args(["--output-format=coff", "--codepage=65001"])
        .status()
        .unwrap_or_else(|e| panic!("{windres} (MinGW's resource compiler) could not run: {e}; set WINDRES"));
    assert!(status.success(), "{windres} failed on {}", rc_path.display());
    println!("cargo:rustc-link-arg-{link_arg_kind}={}", object.display());
}

/// Exports under their plain names on x86 Windows (`MAPISendMail`, not
/// `MAPISendMail@20`): the drop-ins' stdcall exports are looked up by name
/// (by the MAPI stub, COM and regsvr32). Other targets: nothing happens.
#[allow(dead_code)] // used by the drop-ins' build scripts only
fn undecorated_x86_exports() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("windows")
        && std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("x86")
        && std::env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("gnu")
    {
        println!("cargo:rustc-cdylib-link-arg=-Wl,--kill-at");
    }
}
