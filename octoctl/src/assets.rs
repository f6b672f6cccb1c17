//! `octoctl generate-assets DIR`: shell completions (bash, zsh, fish) and man pages, generated
//! from the clap definitions, for the packages.

use std::path::Path;

use anyhow::Context as _;
use clap::CommandFactory as _;
use clap_complete::Shell;

/// Writes `DIR/completions/{octoctl.bash,_octoctl,octoctl.fish}` and `DIR/man/octoctl*.1`.
pub fn generate(dir: &Path) -> anyhow::Result<()> {
    let completions = dir.join("completions");
    let man = dir.join("man");
    for d in [&completions, &man] {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let mut command = crate::Cli::command();
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut command, "octoctl", &completions).with_context(
            || format!("writing {shell} completions into {}", completions.display()),
        )?;
    }
    clap_mangen::generate_to(crate::Cli::command(), &man)
        .with_context(|| format!("writing man pages into {}", man.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completions_and_a_man_page_per_subcommand_are_written() {
        let dir = tempfile::tempdir().expect("temp dir");
        generate(dir.path()).expect("generate");
        for file in [
            "completions/octoctl.bash",
            "completions/_octoctl",
            "completions/octoctl.fish",
            "man/octoctl.1",
            "man/octoctl-status.1",
            "man/octoctl-session.1",
            "man/octoctl-invite-codes.1",
            "man/octoctl-container.1",
        ] {
            let text = std::fs::read_to_string(dir.path().join(file))
                .unwrap_or_else(|e| panic!("{file}: {e}"));
            assert!(text.contains("octoctl"), "{file} does not name octoctl");
        }
        let bash =
            std::fs::read_to_string(dir.path().join("completions/octoctl.bash")).expect("bash");
        assert!(bash.contains("invite-codes") && bash.contains("refresh"));
        let man = std::fs::read_to_string(dir.path().join("man/octoctl.1")).expect("man");
        assert!(
            man.contains("Exit codes"),
            "the man page lacks the exit codes"
        );
        assert!(
            !man.contains("generate-assets"),
            "the hidden command is documented"
        );
    }
}
