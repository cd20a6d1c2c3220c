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
    let cli = phonevault::cli::Cli::parse();
    match phonevault::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("error: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}
