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
    undecorated_x86_exports();
}

include!("../scripts/windows/version_resource.rs");
