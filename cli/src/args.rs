//! The command tree. Each subcommand is one variant; adding a command is a
//! variant here and a function in `run`.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// Exit status of a usage error (sysexits EX_USAGE), so that it never
/// reads as one of the library's result codes.
pub const EXIT_USAGE: u8 = 64;

/// The exit codes, for `--help` and docs/CLI.md.
pub const EXIT_CODES: &str = "\
Exit codes (the library's result codes):
  0 OK               1 INVALID_ARGUMENT  2 CONFIG       3 CREDENTIALS
  4 CONNECT          5 TLS               6 AUTH         7 REJECTED
  8 TRANSIENT        9 MESSAGE          10 NOT_FOUND   11 LIMIT
 12 BLOCKED         13 IO               14 TIMEOUT     15 STATE
 16 BUSY (a host program holds the data directory)     99 INTERNAL
 64 usage error (bad command line)
send and merge exit with the code of the first failed message; merge exits 8
when mail is left deferred (it stays in the outbox and is retried); waits that
run out of --timeout exit 14 (the mail stays queued).

The master secret of the credential store is read from SMTPBRIDGE_SECRET
(never from an argument); without it the data directory's key file is used.";

/// What `--version` prints after the name: the library's version and the C
/// ABI version it implements, e.g. `1.2.0 (C ABI 1.1)`.
static VERSION_LINE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!("{} (C ABI {}.{})", smtpbridge::VERSION, smtpbridge::ABI_VERSION, smtpbridge::ABI_MINOR)
});

#[derive(Parser, Debug)]
#[command(
    name = "smtpbridge",
    version = VERSION_LINE.as_str(),
    about = "Test SMTP settings, send mail, watch and control the outbox, store credentials.",
    after_help = EXIT_CODES
)]
pub struct Cli {
    /// The data directory (configuration, credentials, outbox). Default:
    /// $SMTPBRIDGE_DATA_DIR, else the per-user data folder
    /// (~/.local/share/smtpbridge, %APPDATA%\smtpbridge\data,
    /// ~/Library/Application Support/smtpbridge).
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Print the library's JSON on stdout (and errors as JSON on stderr), for scripts.
    #[arg(long, global = true)]
    pub json: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Read and change the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Connect, EHLO, TLS and AUTH with a profile, then QUIT; sends no mail.
    Test {
        /// The profile (default: the one a message without `from` would use).
        #[arg(long)]
        profile: Option<String>,
        /// Whose credentials to log in with (default: the shared credential).
        #[arg(long)]
        user: Option<String>,
    },
    /// Send one message now (or queue it with --queue).
    Send(Box<SendArgs>),
    /// Print the MIME (.eml) a message would be sent as (after profile
    /// choice, test mode and DKIM); sends and records nothing.
    Render(Box<RenderArgs>),
    /// Mail merge: one message per CSV row from a template message.
    Merge(MergeArgs),
    /// Watch and control the outbox.
    #[command(subcommand)]
    Outbox(OutboxCommand),
    /// The status of a message.
    Status {
        /// The message id.
        id: String,
    },
    /// The redacted SMTP dialogue of a message's attempts (SMTPTranscript).
    Transcript {
        /// The message id.
        id: String,
    },
    /// Sign a user in with OAuth2 (SMTPOAuth2Provider): the library keeps
    /// the refresh token and renews access tokens from then on.
    Login {
        /// The host's user id (omit for the shared credential).
        user: Option<String>,
        /// Authorization code with PKCE: open the printed address in a browser on this machine.
        #[arg(long, conflicts_with = "device")]
        browser: bool,
        /// Device code: enter the printed code at the printed address on any device.
        #[arg(long)]
        device: bool,
        /// The profile whose OAuth2 settings to use (default: as for a test).
        #[arg(long)]
        profile: Option<String>,
        /// Seconds to wait for the sign-in.
        #[arg(long, default_value_t = 600)]
        timeout: u32,
    },
    /// Find working settings for a mail server: tries 465 (SSL), 587 (TLS)
    /// and 25 (TLS, then plain); sends no mail.
    Probe {
        /// The server's host name or IP address.
        host: String,
    },
    /// Store, remove or show a user's credentials.
    #[command(subcommand)]
    Credentials(CredentialsCommand),
    /// Windows: register smtpbridge_mapi.dll as a Simple MAPI mail client
    /// (HKLM\Software\Clients\Mail\smtpbridge: DLLPath, DLLPathEx).
    RegisterMapi(RegisterMapiArgs),
    /// Deliver the outbox in the background: run it until stopped, install
    /// it as a systemd unit or a Windows service, or show its state.
    #[command(subcommand)]
    Service(ServiceCommand),
}

#[derive(Subcommand, Debug)]
pub enum ServiceCommand {
    /// Deliver the outbox until stopped (SIGTERM or SIGINT; on Windows a
    /// stop from the service control manager, or Ctrl+C in a console).
    Run {
        /// Where to write the service log (`-` = stderr). Default:
        /// service.log in the data directory.
        #[arg(long, value_name = "FILE")]
        log: Option<PathBuf>,
    },
    /// Register the service: a systemd unit on Linux (enabled and started
    /// when systemd runs), a Windows service started with Windows.
    Install {
        /// A systemd user unit (~/.config/systemd/user) instead of a system one.
        #[arg(long)]
        user: bool,
        /// Write the unit into DIR and register nothing (Linux).
        #[arg(long, value_name = "DIR")]
        unit_dir: Option<PathBuf>,
    },
    /// Stop the service and remove its registration.
    Uninstall {
        /// The systemd user unit instead of the system one.
        #[arg(long)]
        user: bool,
        /// Remove the unit from DIR and unregister nothing (Linux).
        #[arg(long, value_name = "DIR")]
        unit_dir: Option<PathBuf>,
    },
    /// Who delivers (the lease holder), the queue by state, the last failure
    /// and, on Windows, the service's state.
    Status,
}

#[derive(Args, Debug)]
pub struct RegisterMapiArgs {
    /// Remove the registration (and the default mail client, if it is smtpbridge).
    #[arg(long)]
    pub unregister: bool,
    /// Also make smtpbridge the default mail client.
    #[arg(long)]
    pub default: bool,
    /// Under HKEY_CURRENT_USER instead of HKEY_LOCAL_MACHINE (no administrator
    /// rights needed; Windows' MAPI stub honours it, not every stub does).
    #[arg(long)]
    pub user: bool,
    /// The provider DLL (default: smtpbridge_mapi.dll beside this program).
    #[arg(long, value_name = "PATH")]
    pub dll: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Apply a host's `Key=Value` lines (all or nothing), or replace the whole
    /// configuration with a JSON export (a file starting with `{`). `-` = stdin.
    Import { file: PathBuf },
    /// Print the whole configuration as JSON (no secrets).
    Export,
    /// Set a key (`Name.Key` for profile Name). SMTPPassword is never an
    /// argument: it is read from a prompt, or from stdin when piped.
    Set {
        key: String,
        /// The value (left out for a secret key: prompted for).
        #[arg(conflicts_with = "default")]
        value: Option<String>,
        /// Restore the key's default.
        #[arg(long)]
        default: bool,
    },
    /// Print a key's effective value (defaults included).
    Get { key: String },
}

#[derive(Args, Debug)]
pub struct SendArgs {
    #[command(flatten)]
    pub message: MessageArgs,
    /// Queue the message in the outbox and wait for its delivery (with retries)
    /// instead of one attempt now.
    #[arg(long)]
    pub queue: bool,
    /// With --queue: seconds to wait for the outcome (0 = return once queued).
    #[arg(long, default_value_t = 120)]
    pub timeout: u32,
}

#[derive(Args, Debug)]
pub struct RenderArgs {
    #[command(flatten)]
    pub message: MessageArgs,
    /// Write the .eml to FILE instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// A message given on the command line (send, render).
#[derive(Args, Debug)]
pub struct MessageArgs {
    /// Sender address (default: the profile's SMTPSenderEmail).
    #[arg(long)]
    pub from: Option<String>,
    /// Recipient (repeat for more; one value may list several, separated by ; or ,).
    #[arg(long, required_unless_present_any = ["cc", "bcc"])]
    pub to: Vec<String>,
    /// Copy recipient (repeat for more).
    #[arg(long)]
    pub cc: Vec<String>,
    /// Blind copy recipient (repeat for more).
    #[arg(long)]
    pub bcc: Vec<String>,
    /// The subject line.
    #[arg(long, default_value = "")]
    pub subject: String,
    /// Plain-text body from FILE (`-` = stdin).
    #[arg(long, value_name = "FILE", required_unless_present = "html")]
    pub text: Option<PathBuf>,
    /// HTML body from FILE (`-` = stdin).
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Attach FILE (repeat for more).
    #[arg(long, value_name = "FILE")]
    pub attach: Vec<PathBuf>,
    /// Send with this profile (default: chosen by the sender).
    #[arg(long)]
    pub profile: Option<String>,
    /// Send with this user's credentials.
    #[arg(long)]
    pub user: Option<String>,
    /// The host's reference, kept in the status.
    #[arg(long)]
    pub reference: Option<String>,
}

#[derive(Args, Debug)]
pub struct MergeArgs {
    /// The template message JSON: subject/html/text may hold {{Field}}.
    pub template: PathBuf,
    /// Recipients: a header row, one row each. Columns `email` (required),
    /// `name`, `cc`, `reference` and `attachments` (paths separated by `;`)
    /// are the recipient's; every other column is a field.
    pub recipients: PathBuf,
    /// Seconds to wait for delivery (0 = return once queued).
    #[arg(long, default_value_t = 600)]
    pub timeout: u32,
}

#[derive(Subcommand, Debug)]
pub enum OutboxCommand {
    /// The messages, newest last, optionally in one state.
    List {
        /// queued, sending, sent, deferred, failed or cancelled.
        #[arg(long)]
        state: Option<String>,
    },
    /// Counts per state, paused profiles, send limits.
    Stats,
    /// Page through the history, newest first (for outboxes of any size).
    Query {
        /// Only these states (repeatable): queued, sending, sent, deferred, failed, cancelled.
        #[arg(long)]
        state: Vec<String>,
        #[arg(long)]
        batch_id: Option<String>,
        #[arg(long)]
        reference: Option<String>,
        #[arg(long)]
        reference_prefix: Option<String>,
        #[arg(long)]
        profile: Option<String>,
        /// Created at or after this time (RFC 3339 UTC).
        #[arg(long)]
        since: Option<String>,
        /// Created before this time (RFC 3339 UTC).
        #[arg(long)]
        until: Option<String>,
        /// Statuses a page (1-1000).
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Follow next_cursor to the end instead of printing one page.
        #[arg(long)]
        all: bool,
        /// The next_cursor of the page before.
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Delete final statuses created before a time (RFC 3339 UTC).
    Purge {
        before: String,
        /// Only these states (repeatable): sent, cancelled, failed (default: all three).
        #[arg(long)]
        state: Vec<String>,
    },
    /// Requeue a failed message, or send a deferred one now.
    Retry {
        id: String,
        /// Seconds to wait for its delivery (0 = leave it queued for the host).
        #[arg(long, default_value_t = 0)]
        wait: u32,
    },
    /// Cancel a queued or deferred message.
    Cancel { id: String },
    /// Deliver what is queued and wait until nothing is queued or sending.
    Flush {
        #[arg(long, default_value_t = 600)]
        timeout: u32,
    },
    /// Hold delivery for a profile (default: all); persisted.
    Pause { profile: Option<String> },
    /// Resume delivery for a profile (default: all). Resuming all also
    /// delivers what is due now, waiting until nothing is queued or sending.
    Resume {
        profile: Option<String>,
        /// Seconds to deliver for, after resuming all.
        #[arg(long, default_value_t = 600)]
        timeout: u32,
    },
}

#[derive(Subcommand, Debug)]
pub enum CredentialsCommand {
    /// Store a password for USER (omitted: the shared credential). The password
    /// is read from a prompt, or from the first line of stdin when piped.
    Set {
        user: Option<String>,
        /// The login name (default: USER).
        #[arg(long)]
        username: Option<String>,
    },
    /// Forget USER's credential (omitted: the shared credential).
    Remove { user: Option<String> },
    /// Show USER's credential with its secret masked.
    Show { user: Option<String> },
}
