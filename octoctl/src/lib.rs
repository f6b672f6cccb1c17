//! `octoctl`: the admin CLI of Octo. It talks to `octod` over its admin Unix socket
//! (`/admin/v1/…`, the API's wire types) and prints tables for people or JSON for scripts.
//!
//! Exit codes (also in `--help`): 0 ok; 1 the operation failed; 2 usage error (clap); 3 not
//! found; 4 permission refused (EACCES on connect or 403); 5 octod not reachable.

pub mod assets;
pub mod backup;
pub mod cli;
pub mod client;
pub mod commands;
pub mod duration;
pub mod llm_key;
pub mod table;

pub use cli::Cli;

/// Why a command did not succeed; each kind has its exit code.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Failure {
    #[error("{0}")]
    Failed(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("{0}")]
    Denied(String),
    #[error("{0}")]
    Unreachable(String),
}

impl Failure {
    /// The process exit code scripts rely on.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Failed(_) => 1,
            Self::NotFound(_) => 3,
            Self::Denied(_) => 4,
            Self::Unreachable(_) => 5,
        }
    }
}

/// Runs a parsed command line to completion.
pub fn run(cli: &Cli) -> Result<(), Failure> {
    if let cli::Command::GenerateAssets { dir } = &cli.command {
        return assets::generate(dir).map_err(|e| Failure::Failed(format!("{e:#}")));
    }
    // A file of the host, not a call to octod: octod cannot write /etc (nor should it).
    if let cli::Command::Llm(cli::LlmCommand::SetKey {
        credentials_dir,
        provider,
    }) = &cli.command
    {
        return llm_key::set_key(credentials_dir, provider.as_deref());
    }
    // A file read end to end, not a call to octod.
    if let cli::Command::Backup(cli::BackupCommand::Verify { file }) = &cli.command {
        return backup::verify(file, cli.json);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Failed(format!("starting the async runtime: {e}")))?;
    runtime.block_on(commands::run(cli))
}
