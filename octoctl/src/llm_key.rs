//! `octoctl llm set-key`: writes the LLM provider's API key as octod's systemd credential,
//! `<credentials dir>/llm-key` (octod.service: `LoadCredential=octo:/etc/octo/credentials`).
//! The key is read from standard input, or typed on the terminal without echo; it is never an
//! argument (every user of the host reads arguments in `/proc`), never printed, and the file
//! is written mode 0600 through a temporary file, so it is never readable by others, not even
//! half-written.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

use crate::Failure;

/// The credential's file name; octod reads it as `llm-key` or `octo_llm-key`.
pub const FILE: &str = "llm-key";

/// Reads the key and writes it into `dir`.
///
/// # Errors
/// An empty key, a key with control characters, or the file that cannot be written.
pub fn set_key(dir: &Path, provider: Option<&str>) -> Result<(), Failure> {
    let file = file_name(provider);
    let stdin = std::io::stdin();
    let key = if stdin.is_terminal() {
        prompt_without_echo(&stdin)?
    } else {
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .map_err(|e| Failure::Failed(format!("reading the key from standard input: {e}")))?;
        line
    };
    let key = check(&key)?;
    write(dir, &file, key)?;
    eprintln!(
        "octoctl: the provider's key is in {} (mode 0600); restart octod to use it: systemctl restart octod",
        dir.join(&file).display()
    );
    Ok(())
}

/// The key without its line ending; refused when empty or when it holds a control character
/// (it becomes an HTTP header value).
fn check(raw: &str) -> Result<&str, Failure> {
    let key = raw.trim_end_matches(['\r', '\n']).trim();
    if key.is_empty() {
        return Err(Failure::Failed("no key given (an empty line)".to_owned()));
    }
    if key.chars().any(char::is_control) {
        return Err(Failure::Failed(
            "the key holds a control character; give it on one line".to_owned(),
        ));
    }
    Ok(key)
}

/// `llm-key` for the default provider, `llm-key-<id>` for another.
pub fn file_name(provider: Option<&str>) -> String {
    match provider {
        Some(id) => format!("{FILE}-{id}"),
        None => FILE.to_owned(),
    }
}

fn write(dir: &Path, file: &str, key: &str) -> Result<(), Failure> {
    let failed = |what: &str, e: std::io::Error| Failure::Failed(format!("{what}: {e}"));
    if !dir.is_dir() {
        std::fs::create_dir_all(dir)
            .map_err(|e| failed(&format!("creating {}", dir.display()), e))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| failed(&format!("setting the mode of {}", dir.display()), e))?;
    }
    let path = dir.join(file);
    let partial = dir.join(format!(".{file}.partial"));
    let _ = std::fs::remove_file(&partial);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&partial)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::PermissionDenied => Failure::Denied(format!(
                "writing {}: permission denied (run as root)",
                path.display()
            )),
            _ => failed(&format!("creating {}", partial.display()), e),
        })?;
    file.write_all(format!("{key}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| failed(&format!("writing {}", partial.display()), e))?;
    std::fs::rename(&partial, &path)
        .map_err(|e| failed(&format!("replacing {}", path.display()), e))?;
    Ok(())
}

/// Asks on standard error and reads one line from the terminal with echo off (restored
/// afterwards, also when reading fails).
fn prompt_without_echo(stdin: &std::io::Stdin) -> Result<String, Failure> {
    use nix::sys::termios::{self, LocalFlags, SetArg};
    let saved = termios::tcgetattr(stdin)
        .map_err(|e| Failure::Failed(format!("reading the terminal's settings: {e}")))?;
    let mut quiet = saved.clone();
    quiet.local_flags.remove(LocalFlags::ECHO);
    quiet.local_flags.insert(LocalFlags::ECHONL);
    eprint!("LLM provider API key (not shown): ");
    let _ = std::io::stderr().flush();
    termios::tcsetattr(stdin, SetArg::TCSAFLUSH, &quiet)
        .map_err(|e| Failure::Failed(format!("turning the terminal's echo off: {e}")))?;
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    let _ = termios::tcsetattr(stdin, SetArg::TCSAFLUSH, &saved);
    read.map_err(|e| Failure::Failed(format!("reading the key: {e}")))?;
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_one_line() {
        assert_eq!(check("sk-abc\n").ok(), Some("sk-abc"));
        assert_eq!(check("sk-abc\r\n").ok(), Some("sk-abc"));
        assert!(check("\n").is_err());
        assert!(check("sk\tabc\n").is_err());
    }

    #[test]
    fn the_file_is_the_key_and_only_its_owner_reads_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let creds = dir.path().join("credentials");
        write(&creds, FILE, "sk-first").expect("written");
        write(&creds, FILE, "sk-second").expect("replaced");
        let path = creds.join(FILE);
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "sk-second\n");
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let dir_mode = std::fs::metadata(&creds)
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        assert!(!creds.join(format!(".{FILE}.partial")).exists());
        // Another provider's key is a file of its own.
        let other = file_name(Some("anthropic"));
        assert_eq!(other, "llm-key-anthropic");
        write(&creds, &other, "sk-other").expect("written");
        assert_eq!(
            std::fs::read_to_string(creds.join(&other)).expect("read"),
            "sk-other\n"
        );
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "sk-second\n");
    }
}
