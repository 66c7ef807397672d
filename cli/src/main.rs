//! `smtpbridge`: the administrator's command line over the library's safe
//! Rust API ([`smtpbridge::Client`]). It tests settings, sends, watches and
//! controls the outbox and stores credentials in a data directory, which it
//! opens shared (beside hosts and the service that opened it shared; a host
//! that holds it exclusively makes every command exit 16, BUSY).
//!
//! Layout: `args` (the command tree, clap derive), `run` (one function per
//! command), `output` (human and `--json` printing), `merge` (CSV to merge
//! recipients, with the progress bar), `register` (the Simple MAPI provider's
//! registration on Windows), `service` (the background delivery service:
//! run, install as a systemd unit or Windows service, status). Exit codes are the library's result
//! codes (see [`args::EXIT_CODES`]).

mod args;
mod merge;
mod outcome;
mod output;
mod register;
mod run;
mod service;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match args::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout with 0; usage errors must not
            // reuse a result code (2 is SMTPB_ERR_CONFIG).
            let code = if e.use_stderr() { args::EXIT_USAGE } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let json = cli.json;
    match run::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            output::failure(&failure, json);
            ExitCode::from(failure.exit_code())
        }
    }
}
