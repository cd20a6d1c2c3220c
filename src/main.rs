//! The `phonevault` binary: hardens the process, parses arguments and reports errors
//! as one line with a hint and a non-zero exit code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // First, before any passphrase, key or number is read: no core dumps, no swap
    // where permitted, private files (see `phonevault::harden`).
    let report = phonevault::harden::harden_process();
    if let Some(w) = report.warning(phonevault::harden::swap_active()) {
        eprintln!("{w}");
    }
    let cli = match phonevault::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => match phonevault::cli::refused_value(&e) {
            Some(f) => {
                eprintln!("error: {}", f.message);
                return ExitCode::from(f.code);
            }
            None => e.exit(),
        },
    };
    match phonevault::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("error: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}
