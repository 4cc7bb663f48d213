//! merge-sync: a local SQLite mirror of Merge.dev Common Model data.
//!
//! Dependencies point one way: `commands → sync → {merge, store}`; `report`, `webhook`,
//! `secret`, `time` and `logging` are leaves. Only `commands`, `main` and
//! the logger (`logging`) write to stdout and stderr.

pub mod cli;
pub mod commands;
pub mod config;
pub mod fake;
pub mod logging;
pub mod merge;
pub mod report;
pub mod secret;
pub mod store;
pub mod sync;
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
pub fn load_dotenv() -> Result<(), String> {
    match dotenvy::from_path(".env") {
        Ok(()) => Ok(()),
        Err(dotenvy::Error::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("ignoring .env: {e}")),
    }
}
