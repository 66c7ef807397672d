//! smtpbridge_mapi.dll's version resource, and its stdcall exports
//! undecorated on x86 (`MAPISendMail`, not `MAPISendMail@20`: the MAPI
//! stub looks them up by plain name).

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=../scripts/windows/version_resource.rs");
    windows_version_resource(
        "smtpbridge Simple MAPI provider: MAPISendMail into the smtpbridge outbox",
        "smtpbridge_mapi.dll",
        "cdylib",
    );
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("windows")
        && std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("x86")
        && std::env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("gnu")
    {
        println!("cargo:rustc-cdylib-link-arg=-Wl,--kill-at");
    }
}

include!("../scripts/windows/version_resource.rs");
