//! smtpbridge_com.dll's version resource, and its exports undecorated on
//! x86 (`DllGetClassObject`, not `DllGetClassObject@12`: COM and regsvr32
//! look them up by plain name).

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=../scripts/windows/version_resource.rs");
    windows_version_resource(
        "smtpbridge COM automation server: SmtpBridge.Application into the smtpbridge outbox",
        "smtpbridge_com.dll",
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
