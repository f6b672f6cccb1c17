//! The `octoctl` binary: parse arguments, run, turn a failure into a message and an exit code.

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = octoctl::Cli::parse();
    match octoctl::run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("octoctl: {failure}");
            ExitCode::from(failure.exit_code())
        }
    }
}
