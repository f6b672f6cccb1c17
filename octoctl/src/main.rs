//! `octoctl`: the admin CLI of Octo.

use clap::Parser;

/// Administer an Octo host.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    anyhow::bail!("octoctl: no commands yet; the admin socket comes with the CLI issue")
}
