//! The state file: one SQLite database holding accounts, per-model sync state, the mirrored
//! records and the webhook inbox.
//!
//! Every connection runs in WAL mode with `synchronous=NORMAL` and a busy timeout, so a
//! reader (`status`) never blocks a writer and overlapping processes wait instead of failing.
//! Every write transaction starts `IMMEDIATE`: in WAL mode a deferred transaction that later
//! tries to write can fail at once with `SQLITE_BUSY` instead of waiting.

mod accounts;
mod inbox;
mod model_state;
mod records;
mod schema;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use rusqlite::{Connection, OpenFlags, TransactionBehavior};

pub use accounts::{Account, AccountStatus, NewAccount, UpsertOutcome};
pub use inbox::InboxItem;
pub use model_state::{ModelState, ObservedStatus};
pub use records::{records_table, PageProgress, RecordRow};
pub use schema::CURRENT_VERSION;

/// Errors a caller branches on; everything else is an `anyhow` chain with context.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the state file was written by a newer merge-sync (schema version {found}); this binary \
         supports up to schema version {supported}. Upgrade merge-sync, or point --db at another file"
    )]
    SchemaTooNew { found: i64, supported: i64 },
    #[error(
        "{path} is not a merge-sync state file (not an SQLite database, or damaged). Point \
         --db or MERGE_SYNC_DB at the right file, or move this one away (restore it from a \
         backup if it was yours)"
    )]
    NotSqlite { path: PathBuf },
    #[error(
        "cannot create state file {}: its directory does not exist (check --db / MERGE_SYNC_DB)",
        path.display()
    )]
    MissingDirectory { path: PathBuf },
    #[error("invalid model id {0:?}: expected category.Model, like hris.Employee")]
    InvalidModelId(String),
}

/// An open state file.
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Opens (creating with mode 0600 if needed) and migrates the state file.
    pub fn open(path: &Path) -> Result<Store> {
        create_private(path)?;
        let mut conn = Connection::open(path)
            .with_context(|| format!("opening state file {}", path.display()))?;
        configure(&conn, path)?;
        schema::migrate(&mut conn)
            .with_context(|| format!("preparing state file {}", path.display()))?;
        Ok(Store {
            conn,
            path: path.to_path_buf(),
        })
    }

    /// Opens an existing state file without creating or migrating it (for `status`).
    /// Returns `None` when the file does not exist yet.
    pub fn open_existing(path: &Path) -> Result<Option<Store>> {
        if !path.exists() {
            return Ok(None);
        }
        Store::open(path).map(Some)
    }

    /// An in-memory store, for tests.
    pub fn open_in_memory() -> Result<Store> {
        let mut conn = Connection::open_in_memory()?;
        conn.execute_batch("PRAGMA foreign_keys = ON")?;
        schema::migrate(&mut conn)?;
        Ok(Store {
            conn,
            path: PathBuf::from(":memory:"),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` in an IMMEDIATE transaction, committing only if it succeeds.
    fn write<T>(&mut self, f: impl FnOnce(&rusqlite::Transaction) -> Result<T>) -> Result<T> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .with_context(|| format!("starting a write to {}", self.path.display()))?;
        let out = f(&tx)?;
        tx.commit()
            .with_context(|| format!("committing to {}", self.path.display()))?;
        Ok(out)
    }
}

/// Creates the file with mode 0600 before SQLite touches it: SQLite would create it with the
/// umask's mode, readable by everyone, and it holds account tokens.
fn create_private(path: &Path) -> Result<()> {
    if path.exists() {
        return Ok(());
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            return Err(StoreError::MissingDirectory {
                path: path.to_path_buf(),
            }
            .into());
        }
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    match opts.open(path) {
        Ok(_) => Ok(()),
        // Another process created it first: fine.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e).with_context(|| format!("creating state file {}", path.display())),
    }
}

fn configure(conn: &Connection, path: &Path) -> Result<()> {
    conn.busy_timeout(Duration::from_secs(30))?;
    // The first statement that reads the file tells whether it is SQLite at all.
    let mode: String = match journal_mode_wal(conn) {
        Ok(m) => m,
        Err(rusqlite::Error::SqliteFailure(e, _))
            if matches!(
                e.code,
                rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt
            ) =>
        {
            return Err(StoreError::NotSqlite {
                path: path.to_path_buf(),
            }
            .into())
        }
        Err(e) => return Err(e).with_context(|| format!("opening state file {}", path.display())),
    };
    if !mode.eq_ignore_ascii_case("wal") {
        log::warn!("state file {} is not in WAL mode ({mode})", path.display());
    }
    // A checkpoint every ~40 MB of WAL instead of SQLite's 4 MB: checkpoints (copying pages
    // back and fsyncing) were ~60% of a large initial fetch. Durability is unchanged: a commit
    // in WAL mode with synchronous=NORMAL is as safe whatever the checkpoint interval; only
    // the WAL file grows larger between checkpoints.
    conn.execute_batch(
        "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA wal_autocheckpoint = 10000;",
    )
    .with_context(|| format!("configuring state file {}", path.display()))?;
    Ok(())
}

/// Switches to WAL. Changing the journal mode does not wait on the busy handler, so when
/// another process is creating the same file at this instant, try again for a while.
fn journal_mode_wal(conn: &Connection) -> rusqlite::Result<String> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        match conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0)) {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(20 + fastrand::u64(0..30)));
            }
            other => return other,
        }
    }
}

/// Opens a read-only connection without migrating, for callers that must not write.
pub fn open_read_only(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("opening state file {}", path.display()))?;
    conn.busy_timeout(Duration::from_secs(30))?;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_the_state_file_private_and_in_wal_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let store = Store::open(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let mode: String = store
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[test]
    fn refuses_a_file_that_is_not_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        std::fs::write(
            &path,
            b"this is a text file, not a database, and it is long enough",
        )
        .unwrap();
        let err = Store::open(&path).unwrap_err();
        assert!(
            format!("{err:#}").contains("not a merge-sync state file"),
            "{err:#}"
        );
        // Nothing was written over it.
        assert!(std::fs::read(&path)
            .unwrap()
            .starts_with(b"this is a text file"));
    }

    #[test]
    fn refuses_a_newer_state_file_naming_both_versions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.pragma_update(None, "user_version", 99).unwrap();
        }
        let err = Store::open(&path).unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains("99") && msg.contains(&CURRENT_VERSION.to_string()),
            "{msg}"
        );
    }
}
