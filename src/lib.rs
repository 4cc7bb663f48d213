//! merge-sync: a local SQLite mirror of Merge.dev Common Model data.
//!
//! Dependencies point one way: `commands → sync → {merge, store}`; `report`, `webhook`,
//! `secret`, `time`, `logging` and `metrics` are leaves. Only `commands`, `main` and
//! the logger (`logging`) write to stdout and stderr.

pub mod cli;
pub mod commands;
pub mod config;
pub mod fake;
pub mod logging;
pub mod merge;
pub mod metrics;
pub mod report;
pub mod secret;
pub mod store;
pub mod sync;
#[doc(hidden)]
pub mod testing;
pub mod time;
pub mod views;
pub mod webhook;

use std::process::ExitCode;

pub use commands::run;

/// The exit code cron sees for an error that ended a command: 2 for usage and configuration
/// problems (nothing was attempted), 1 for everything else (something was attempted and failed).
pub fn exit_code_for(err: &anyhow::Error) -> ExitCode {
    for cause in err.chain() {
        if cause.downcast_ref::<config::UsageError>().is_some()
            || cause.downcast_ref::<store::StoreError>().is_some()
            || matches!(
                cause.downcast_ref::<merge::MergeError>(),
                Some(merge::MergeError::ApiKeyRejected { .. })
            )
        {
            return ExitCode::from(2);
        }
    }
    ExitCode::from(1)
}

/// Reads `.env` from the current directory, if present. Real environment variables win.
///
/// All or nothing: a file with a line that cannot be parsed loads nothing, and the warning
/// names the file and the line number only, never the line (it may hold a secret).
pub fn load_dotenv() -> Result<(), String> {
    load_dotenv_from(std::path::Path::new(".env"))
}

fn load_dotenv_from(path: &std::path::Path) -> Result<(), String> {
    let shown = path.display();
    let iter = match dotenvy::from_path_iter(path) {
        Ok(iter) => iter,
        Err(e) if e.not_found() => return Ok(()),
        Err(dotenvy::Error::Io(e)) => {
            return Err(format!("ignoring {shown}: cannot read it ({e})"))
        }
        Err(_) => return Err(format!("ignoring {shown}: cannot read it")),
    };
    let mut vars = Vec::new();
    for item in iter {
        match item {
            Ok((key, value)) => vars.push((key.trim_start_matches('\u{feff}').to_string(), value)),
            Err(dotenvy::Error::LineParse(line, _)) => {
                let at = line_number(path, &line)
                    .map(|n| format!("line {n}"))
                    .unwrap_or_else(|| "a line".into());
                return Err(format!(
                    "ignoring {shown}: {at} is not KEY=VALUE (or has an unclosed quote); \
                     nothing from the file was loaded"
                ));
            }
            // Other errors (a bad `${VAR}` substitution, unreadable bytes) may quote values.
            Err(dotenvy::Error::Io(e)) => {
                return Err(format!("ignoring {shown}: cannot read it ({e})"))
            }
            Err(_) => {
                return Err(format!(
                    "ignoring {shown}: it cannot be parsed; nothing from the file was loaded"
                ))
            }
        }
    }
    for (key, value) in vars {
        if std::env::var_os(&key).is_none() {
            std::env::set_var(key, value);
        }
    }
    Ok(())
}

/// The 1-based number of the line of `path` where `content` (a parser's copy of it) starts.
fn line_number(path: &std::path::Path, content: &str) -> Option<usize> {
    let text = std::fs::read_to_string(path).ok()?;
    let first = content.lines().next()?.trim();
    text.lines()
        .position(|l| !first.is_empty() && l.trim() == first)
        .map(|i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Regression (hardening item 4): the malformed line, secret and all, was logged, and the
    // lines before it were loaded although the warning said the file was ignored.
    #[test]
    fn a_malformed_dotenv_loads_nothing_and_names_only_the_line_number() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".env");
        std::fs::write(
            &path,
            "# comment\nMERGE_SYNC_TEST_DOTENV_BEFORE=loaded\nMERGE_WEBHOOK_SECRET=\"whsec_s3cr3t\n",
        )
        .unwrap();
        let err = load_dotenv_from(&path).unwrap_err();
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains(".env"), "{err}");
        assert!(!err.contains("whsec_s3cr3t"), "{err}");
        assert!(std::env::var_os("MERGE_SYNC_TEST_DOTENV_BEFORE").is_none());
    }

    #[test]
    fn a_good_dotenv_is_loaded_without_overriding_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".env");
        std::fs::write(&path, "MERGE_SYNC_TEST_DOTENV_GOOD=from-file\n").unwrap();
        load_dotenv_from(&path).unwrap();
        assert_eq!(
            std::env::var("MERGE_SYNC_TEST_DOTENV_GOOD").as_deref(),
            Ok("from-file")
        );
        assert!(load_dotenv_from(&dir.path().join("absent")).is_ok());
    }
}
