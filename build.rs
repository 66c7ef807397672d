//! Generates include/smtpbridge.h from src/ffi with cbindgen.
//!
//! The header is committed; the test command fails when the committed
//! header differs from a fresh generation. It is written only when its
//! content changes, so builds do not loop.

use std::path::Path;

fn main() {
    let crate_dir = std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo");
    println!("cargo:rerun-if-changed=src/ffi");
    println!("cargo:rerun-if-changed=src/lib.rs");
    println!("cargo:rerun-if-changed=cbindgen.toml");
    println!("cargo:rerun-if-changed=build.rs");

    // The SONAME hosts link against: the ABI version, not the crate's.
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libsmtpbridge.so.1");
    }
    println!("cargo:rerun-if-changed=scripts/windows/version_resource.rs");
    // For the command line's build script (DEP_SMTPBRIDGE_VERSION): its
    // version resource carries the library's version.
    println!("cargo:version={}", env!("CARGO_PKG_VERSION"));
    windows_version_resource("smtpbridge: sends mail by SMTP for desktop programs (C ABI)", "smtpbridge.dll", "cdylib");

    let version = env!("CARGO_PKG_VERSION");
    let mut parts = version.split(|c: char| !c.is_ascii_digit()).map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor, patch) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    let after_includes = format!(
        r#"
/* The calling convention of every export and callback. */
#ifndef SMTPB_CALL
#  if defined(_WIN32)
#    define SMTPB_CALL __cdecl
#  else
#    define SMTPB_CALL
#  endif
#endif

/* The library version this header was generated for; smtpb_version()
 * returns the loaded library's. */
#define SMTPB_VERSION "{version}"
#define SMTPB_VERSION_MAJOR {major}
#define SMTPB_VERSION_MINOR {minor}
#define SMTPB_VERSION_PATCH {patch}
#define SMTPB_VERSION_NUMBER ({major} * 1000000 + {minor} * 1000 + {patch})
"#
    );
    let config = cbindgen::Config::from_file(Path::new(&crate_dir).join("cbindgen.toml")).expect("cbindgen.toml");
    let config = cbindgen::Config { after_includes: Some(after_includes), ..config };
    let bindings = cbindgen::Builder::new()
        .with_crate(&crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen could not generate the header");
    let mut raw = Vec::new();
    bindings.write(&mut raw);
    let header = with_calling_convention(&String::from_utf8(raw).expect("UTF-8 header"));
    // A `pub const` anywhere in the crate lands in the header: only the
    // C ABI's own names may.
    for line in header.lines() {
        if let Some(name) = line.strip_prefix("#define ").and_then(|rest| rest.split_whitespace().next()) {
            assert!(
                name.starts_with("SMTPB_") || name == "SMTPBRIDGE_H",
                "{name} would leak into include/smtpbridge.h: make it pub(crate), or add it to cbindgen.toml's exclude"
            );
        }
    }

    let path = Path::new(&crate_dir).join("include").join("smtpbridge.h");
    if std::fs::read_to_string(&path).ok().as_deref() != Some(header.as_str()) {
        std::fs::create_dir_all(path.parent().expect("include/")).expect("create include/");
        std::fs::write(&path, header).expect("write include/smtpbridge.h");
    }
}

include!("scripts/windows/version_resource.rs");

/// Marks every exported function and callback type with SMTPB_CALL, which
/// cbindgen has no option for: `T smtpb_f(` becomes `T SMTPB_CALL smtpb_f(`
/// and `(*smtpb_fn)` becomes `(SMTPB_CALL *smtpb_fn)`.
fn with_calling_convention(header: &str) -> String {
    header
        .lines()
        .map(|line| {
            if let Some(at) = line.find("(*smtpb_") {
                return format!("{}(SMTPB_CALL *{}", &line[..at], &line[at + 2..]);
            }
            let is_declaration = !line.starts_with([' ', '/', '#', '*', '}']) && !line.starts_with("typedef");
            let Some(paren) = line.find('(').filter(|_| is_declaration) else { return line.to_string() };
            let name_at = line[..paren].rfind([' ', '*']).map_or(0, |i| i + 1);
            if line[name_at..paren].starts_with("smtpb_") {
                format!("{}SMTPB_CALL {}", &line[..name_at], &line[name_at..])
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}
