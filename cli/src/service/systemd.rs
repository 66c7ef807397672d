//! `service install|uninstall` on Linux: a systemd unit that runs
//! `smtpbridge service run --data-dir DIR`, restarted on failure, with the
//! file system read-only but for the data directory.

use serde_json::json;
use smtpbridge::Code;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{this_program, utf8, NAME};
use crate::outcome::{io_failure, Failure, Outcome};

/// Where systemd itself reads system units written by an administrator.
const SYSTEM_UNITS: &str = "/etc/systemd/system";

fn unit_name() -> String {
    format!("{NAME}.service")
}

/// The folder the unit goes in: `--unit-dir`, else the system's or (with
/// `--user`) the user's unit folder.
fn unit_folder(user: bool, unit_dir: Option<PathBuf>) -> Outcome<PathBuf> {
    if let Some(dir) = unit_dir {
        return std::path::absolute(&dir).map_err(|e| io_failure("cannot resolve", &dir, &e));
    }
    if !user {
        return Ok(PathBuf::from(SYSTEM_UNITS));
    }
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".config")))
        .ok_or_else(|| Failure::new(Code::InvalidArgument, "--user: neither XDG_CONFIG_HOME nor HOME is set"))?;
    Ok(config.join("systemd").join("user"))
}

/// `text` as one word of a unit file: quoted, with systemd's specifier
/// (`%`) and, where `variables`, environment (`$`) expansion escaped.
/// Control characters cannot be written at all.
fn quoted(text: &str, variables: bool, what: &str) -> Outcome<String> {
    if text.chars().any(char::is_control) {
        return Err(Failure::new(
            Code::InvalidArgument,
            format!("{what} {}: a control character cannot be written into a systemd unit", text.escape_debug()),
        ));
    }
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '\\' | '"' => {
                out.push('\\');
                out.push(c);
            }
            '%' => out.push_str("%%"),
            '$' if variables => out.push_str("$$"),
            _ => out.push(c),
        }
    }
    out.push('"');
    Ok(out)
}

/// The unit's text. A system unit runs as the owner of the data directory
/// (root when root owns it), sandboxed; a user unit runs as the user.
pub fn unit_text(program: &Path, dir: &Path, user: bool, owner: Option<(u32, u32)>) -> Outcome<String> {
    let exec = format!(
        "{} service run --data-dir {}",
        quoted(utf8(program)?, true, "the program path")?,
        quoted(utf8(dir)?, true, "the data directory")?
    );
    let mut text = format!(
        "# Written by `smtpbridge service install`; `smtpbridge service uninstall` removes it.\n\
         [Unit]\n\
         Description=smtpbridge: delivers the outbox of {}\n\
         After=network-online.target\n\
         Wants=network-online.target\n\
         \n\
         [Service]\n\
         Type=exec\n\
         ExecStart={exec}\n\
         Restart=on-failure\n\
         RestartSec=5s\n\
         # Deliveries under way end within SMTPShutdownGraceMs after SIGTERM.\n\
         TimeoutStopSec=90s\n\
         NoNewPrivileges=yes\n",
        utf8(dir)?.replace('%', "%%")
    );
    if !user {
        if let Some((uid, gid)) = owner.filter(|(uid, _)| *uid != 0) {
            text.push_str(&format!("User={uid}\nGroup={gid}\n"));
        }
        text.push_str(&format!(
            "ProtectSystem=strict\n\
             ProtectHome=read-only\n\
             ReadWritePaths={}\n\
             PrivateTmp=yes\n\
             PrivateDevices=yes\n\
             ProtectKernelTunables=yes\n\
             ProtectKernelModules=yes\n\
             ProtectControlGroups=yes\n\
             RestrictSUIDSGID=yes\n\
             LockPersonality=yes\n\
             RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6\n",
            quoted(utf8(dir)?, false, "the data directory")?
        ));
    }
    let target = if user { "default.target" } else { "multi-user.target" };
    text.push_str(&format!("\n[Install]\nWantedBy={target}\n"));
    Ok(text)
}

/// Whether this machine runs systemd as its service manager.
fn systemd_runs() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

fn systemctl_line(user: bool, args: &[&str]) -> String {
    let scope = if user { " --user" } else { "" };
    format!("systemctl{scope} {}", args.join(" "))
}

fn systemctl(user: bool, args: &[&str]) -> Outcome {
    let mut command = Command::new("systemctl");
    if user {
        command.arg("--user");
    }
    let done = command.args(args).output().map_err(|e| Failure::new(Code::Io, format!("cannot run systemctl: {e}")))?;
    if !done.status.success() {
        return Err(Failure::new(
            Code::Io,
            format!(
                "`{}` failed ({}): {}",
                systemctl_line(user, args),
                done.status,
                String::from_utf8_lossy(&done.stderr).trim()
            ),
        ));
    }
    Ok(())
}

/// What registers or unregisters the unit, and whether this command runs
/// it: only for the real unit folder on a machine that runs systemd.
fn registration(user: bool, unit_dir: bool, steps: &[&[&str]]) -> (Vec<String>, bool) {
    let lines = steps.iter().map(|args| systemctl_line(user, args)).collect();
    (lines, !unit_dir && systemd_runs())
}

fn report(json: bool, unit: &Path, done: &str, commands: &[String], ran: bool) {
    if json {
        crate::output::json_value(&json!({"unit": unit, "registered": ran, "commands": commands}));
    } else if ran {
        println!("{done} {} and ran: {}", unit.display(), commands.join("; "));
    } else {
        println!("{done} {}; to finish, run: {}", unit.display(), commands.join(" && "));
    }
}

pub fn install(dir: &Path, user: bool, unit_dir: Option<PathBuf>, json: bool) -> Outcome {
    use std::os::unix::fs::MetadataExt;
    let given_folder = unit_dir.is_some();
    let folder = unit_folder(user, unit_dir)?;
    // A data directory that does not exist yet is made by this command,
    // owned by whoever runs it.
    let owner = std::fs::metadata(dir).map(|m| (m.uid(), m.gid())).ok();
    let text = unit_text(&this_program()?, dir, user, owner)?;
    // ReadWritePaths must name a folder that exists when the unit starts.
    std::fs::create_dir_all(dir).map_err(|e| io_failure("cannot create", dir, &e))?;
    std::fs::create_dir_all(&folder).map_err(|e| io_failure("cannot create", &folder, &e))?;
    let unit = folder.join(unit_name());
    std::fs::write(&unit, text).map_err(|e| io_failure("cannot write", &unit, &e))?;
    let name = unit_name();
    let (commands, run) = registration(user, given_folder, &[&["daemon-reload"], &["enable", "--now", &name]]);
    if run {
        systemctl(user, &["daemon-reload"])?;
        systemctl(user, &["enable", "--now", &name])?;
    }
    report(json, &unit, "wrote", &commands, run);
    Ok(())
}

pub fn uninstall(user: bool, unit_dir: Option<PathBuf>, json: bool) -> Outcome {
    let given_folder = unit_dir.is_some();
    let unit = unit_folder(user, unit_dir)?.join(unit_name());
    if !unit.exists() {
        return Err(Failure::new(Code::NotFound, format!("{}: no such unit (nothing to uninstall)", unit.display())));
    }
    let name = unit_name();
    let (commands, run) = registration(user, given_folder, &[&["disable", "--now", &name], &["daemon-reload"]]);
    if run {
        systemctl(user, &["disable", "--now", &name])?;
    }
    std::fs::remove_file(&unit).map_err(|e| io_failure("cannot remove", &unit, &e))?;
    if run {
        systemctl(user, &["daemon-reload"])?;
    }
    report(json, &unit, "removed", &commands, run);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok<T>(outcome: Outcome<T>) -> T {
        outcome.unwrap_or_else(|failure| panic!("{}", failure.message))
    }

    #[test]
    fn specifiers_variables_and_quotes_are_escaped() {
        assert_eq!(ok(quoted(r#"/srv/50% "a"\b$HOME"#, true, "x")), r#""/srv/50%% \"a\"\\b$$HOME""#);
        assert_eq!(ok(quoted("/srv/$x", false, "x")), r#""/srv/$x""#);
        let refused = quoted("/srv/a\nb", true, "the data directory").err().unwrap();
        assert_eq!(refused.code, Code::InvalidArgument);
        assert!(refused.message.contains("the data directory /srv/a\\nb"), "{}", refused.message);
    }

    #[test]
    fn a_system_unit_runs_as_the_data_directory_owner_and_a_user_unit_is_not_sandboxed_by_root_options() {
        let system = ok(unit_text(Path::new("/usr/bin/smtpbridge"), Path::new("/srv/mail"), false, Some((1000, 100))));
        assert!(system.contains("ExecStart=\"/usr/bin/smtpbridge\" service run --data-dir \"/srv/mail\"\n"));
        assert!(system.contains("User=1000\nGroup=100\n") && system.contains("ReadWritePaths=\"/srv/mail\"\n"));
        assert!(system.ends_with("WantedBy=multi-user.target\n"));
        let root = ok(unit_text(Path::new("/usr/bin/smtpbridge"), Path::new("/srv/mail"), false, Some((0, 0))));
        assert!(!root.contains("User="));
        let user = ok(unit_text(Path::new("/usr/bin/smtpbridge"), Path::new("/srv/mail"), true, Some((1000, 100))));
        assert!(!user.contains("User=") && !user.contains("ProtectSystem") && user.contains("NoNewPrivileges=yes"));
        assert!(user.ends_with("WantedBy=default.target\n"));
    }
}
