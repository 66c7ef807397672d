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
    undecorated_x86_exports();
}

include!("../scripts/windows/version_resource.rs");
