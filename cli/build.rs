//! The Windows version resource of smtpbridge.exe (nothing on other targets).

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=../scripts/windows/version_resource.rs");
    windows_version_resource(
        "smtpbridge command line: test settings, send, manage the outbox",
        "smtpbridge.exe",
        "bins",
    );
}

include!("../scripts/windows/version_resource.rs");
