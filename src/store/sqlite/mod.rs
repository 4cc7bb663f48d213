//! The SQLite backend: one state file holding accounts, per-model sync state, the mirrored
//! records and the webhook inbox; account locks are OS file locks beside it.
//!
//! Every connection runs in WAL mode with `synchronous=NORMAL` and a busy timeout, so a
//! reader (`status`) never blocks a writer and overlapping processes wait instead of failing.
//! Every write transaction starts `IMMEDIATE`: in WAL mode a deferred transaction that later
//! tries to write can fail at once with `SQLITE_BUSY` instead of waiting. Because an
//! immediate transaction holds the file's write lock, a [`Store::transaction`] here sees no
//! concurrent writer at all.

mod accounts;
mod inbox;
mod lock;
mod model_state;
mod records;
mod runs;
mod schema;
mod views;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use super::{
    Account, AccountLock, AccountStatus, Cell, Counter, ExportFilter, InboxItem, ModelState,
    NewAccount, ObservedStatus, PageProgress, RecordRow, RunQuery, RunRow, Store, StoreError,
    UpsertOutcome,
};

pub use lock::lock_file;
pub use schema::CURRENT_VERSION;

use crate::views::ModelView;

/// An open state file.
pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
    /// Inside [`Store::transaction`]: writes join it instead of starting their own.
    in_tx: bool,
}

impl SqliteStore {
    /// Opens (creating with mode 0600 if needed) and migrates the state file.
    pub fn open(path: &Path) -> Result<SqliteStore> {
        create_private(path)?;
        let mut conn = Connection::open(real_path(path))
            .with_context(|| format!("opening state file {}", path.display()))?;
        configure(&conn, path)?;
        schema::migrate(&mut conn)
            .with_context(|| format!("preparing state file {}", path.display()))?;
        Ok(SqliteStore {
            conn,
            path: path.to_path_buf(),
            in_tx: false,
        })
    }

    /// Opens an existing state file read-only, without migrating it; a file from an older
    /// merge-sync is migrated first through [`SqliteStore::open`].
    pub fn open_read_only(path: &Path) -> Result<Box<dyn Store>> {
        let conn = Connection::open_with_flags(real_path(path), OpenFlags::SQLITE_OPEN_READ_ONLY)
            .with_context(|| format!("opening state file {}", path.display()))?;
        conn.busy_timeout(Duration::from_secs(30))?;
        let found: i64 = match conn.query_row("PRAGMA user_version", [], |r| r.get(0)) {
            Ok(v) => v,
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
            Err(e) => {
                return Err(e).with_context(|| format!("reading state file {}", path.display()))
            }
        };
        match found {
            v if v < 0 => Err(StoreError::BadSchemaVersion { found: v }.into()),
            v if v > CURRENT_VERSION => Err(StoreError::SchemaTooNew {
                place: format!("state file {}", path.display()),
                found: v,
                supported: CURRENT_VERSION,
            }
            .into()),
            v if v < CURRENT_VERSION => {
                drop(conn);
                Ok(Box::new(SqliteStore::open(path)?))
            }
            _ => Ok(Box::new(SqliteStore {
                conn,
                path: path.to_path_buf(),
                in_tx: false,
            })),
        }
    }

    /// An in-memory store, for tests.
    pub fn open_in_memory() -> Result<SqliteStore> {
        let mut conn = Connection::open_in_memory()?;
        conn.execute_batch("PRAGMA foreign_keys = ON")?;
        schema::migrate(&mut conn)?;
        Ok(SqliteStore {
            conn,
            path: PathBuf::from(":memory:"),
            in_tx: false,
        })
    }

    /// Runs `f` in an IMMEDIATE transaction, committing only if it succeeds; inside
    /// [`Store::transaction`], as part of that one.
    fn write<T>(&mut self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        if self.in_tx {
            return f(&self.conn);
        }
        let tx = rusqlite::Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)
            .with_context(|| format!("starting a write to {}", self.path.display()))?;
        let out = f(&tx)?;
        tx.commit()
            .with_context(|| format!("committing to {}", self.path.display()))?;
        Ok(out)
    }
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

/// Creates the file with mode 0600 before SQLite touches it: SQLite would create it with the
/// umask's mode, readable by everyone, and it holds account tokens. Created where it really
/// lands: a `--db` that is a dangling symlink creates its target.
fn create_private(given: &Path) -> Result<()> {
    let real = real_path(given);
    let path = real.as_path();
    if path.is_dir() {
        return Err(StoreError::IsDirectory {
            path: given.to_path_buf(),
        }
        .into());
    }
    if let Ok(meta) = std::fs::metadata(path) {
        // An empty file (from `touch`, or a run killed before SQLite wrote its first page)
        // becomes a database on first write, keeping whatever mode it had: make it private
        // first, as if we had created it.
        if meta.len() == 0 {
            make_private(path)?;
        }
        return Ok(());
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if !dir.exists() {
            return Err(StoreError::MissingDirectory {
                path: given.to_path_buf(),
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

fn make_private(path: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("making state file {} private", path.display()))?;
    }
    Ok(())
}

/// The file `path` really names: symlinks followed (also a dangling one, to where it points),
/// `.` and `..` resolved, made absolute. For a file that does not exist yet, its directory is
/// resolved and the name kept. Everything keyed on the state file (its creation, the
/// per-account lock directory) goes through this, so two spellings of one file agree.
pub fn real_path(path: &Path) -> PathBuf {
    let mut p = path.to_path_buf();
    // Follow a chain of links by hand: `canonicalize` fails on a dangling one.
    for _ in 0..40 {
        let is_link = std::fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_symlink());
        if !is_link {
            break;
        }
        match std::fs::read_link(&p) {
            Ok(target) => {
                p = match p.parent() {
                    Some(dir) => dir.join(target),
                    None => target,
                }
            }
            Err(_) => break,
        }
    }
    if let Ok(real) = p.canonicalize() {
        return real;
    }
    let dir = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    match (dir.canonicalize(), p.file_name()) {
        (Ok(dir), Some(name)) => dir.join(name),
        _ => p,
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

/// The schema version of an existing file, read through a read-only connection that
/// neither migrates nor creates anything.
pub fn peek_schema_version(path: &Path) -> Result<i64> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .with_context(|| format!("opening state file {}", path.display()))?;
    conn.busy_timeout(Duration::from_secs(30))?;
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
        .with_context(|| format!("reading the schema version of {}", path.display()))
}

impl Store for SqliteStore {
    fn describe(&self) -> String {
        format!("state file {}", self.path.display())
    }

    fn set_lock_wait(&mut self, wait: Duration) -> Result<()> {
        self.conn
            .busy_timeout(wait)
            .with_context(|| format!("setting the lock wait of {}", self.path.display()))
    }

    fn transaction(&mut self, f: &mut dyn FnMut(&mut dyn Store) -> Result<()>) -> Result<()> {
        if self.in_tx {
            return f(self);
        }
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .with_context(|| format!("starting a write to {}", self.path.display()))?;
        self.in_tx = true;
        let result = f(self);
        self.in_tx = false;
        match result {
            Ok(()) => self
                .conn
                .execute_batch("COMMIT")
                .with_context(|| format!("committing to {}", self.path.display())),
            Err(e) => {
                if let Err(rollback) = self.conn.execute_batch("ROLLBACK") {
                    log::warn!(
                        "rolling back a write to {}: {rollback}",
                        self.path.display()
                    );
                }
                Err(e)
            }
        }
    }

    fn try_lock_account(
        &mut self,
        linked_account_id: &str,
    ) -> Result<Option<Box<dyn AccountLock>>> {
        Ok(lock::FileLock::try_acquire(&self.path, linked_account_id)?
            .map(|l| Box::new(l) as Box<dyn AccountLock>))
    }

    fn upsert_account(&mut self, new: &NewAccount, now: DateTime<Utc>) -> Result<UpsertOutcome> {
        self.write(|c| accounts::upsert(c, new, now))
    }

    fn accounts(&mut self) -> Result<Vec<Account>> {
        accounts::all(&self.conn)
    }

    fn account(&mut self, linked_account_id: &str) -> Result<Option<Account>> {
        accounts::one(&self.conn, linked_account_id)
    }

    fn lock_account(&mut self, linked_account_id: &str) -> Result<Option<Account>> {
        // An immediate transaction already excludes every other writer.
        accounts::one(&self.conn, linked_account_id)
    }

    fn find_account_by_token(&mut self, token: &str) -> Result<Option<Account>> {
        accounts::by_token(&self.conn, token)
    }

    fn set_account_status(
        &mut self,
        linked_account_id: &str,
        status: AccountStatus,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.write(|c| accounts::set_status(c, linked_account_id, status, now))
    }

    fn remove_account(&mut self, linked_account_id: &str, purge: bool) -> Result<usize> {
        self.write(|c| accounts::remove(c, linked_account_id, purge))
    }

    fn record_account_success(
        &mut self,
        linked_account_id: &str,
        next_poll_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.write(|c| accounts::record_success(c, linked_account_id, next_poll_at, now))
    }

    fn record_account_failure(
        &mut self,
        linked_account_id: &str,
        error: &str,
        next_poll_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.write(|c| accounts::record_failure(c, linked_account_id, error, next_poll_at, now))
    }

    fn set_next_poll(
        &mut self,
        linked_account_id: &str,
        next_poll_at: Option<DateTime<Utc>>,
    ) -> Result<()> {
        self.write(|c| accounts::set_next_poll(c, linked_account_id, next_poll_at))
    }

    fn mark_initial_sync_started(
        &mut self,
        linked_account_id: &str,
        at: DateTime<Utc>,
    ) -> Result<()> {
        self.write(|c| accounts::mark_started(c, linked_account_id, at))
    }

    fn mark_initial_sync_complete(
        &mut self,
        linked_account_id: &str,
        at: DateTime<Utc>,
    ) -> Result<bool> {
        self.write(|c| accounts::mark_complete(c, linked_account_id, at))
    }

    fn initial_sync_hook_pending(&mut self, linked_account_id: &str) -> Result<bool> {
        accounts::hook_pending(&self.conn, linked_account_id)
    }

    fn set_hook_error(&mut self, linked_account_id: &str, error: Option<&str>) -> Result<()> {
        self.write(|c| accounts::set_hook_error(c, linked_account_id, error))
    }

    fn model_states(&mut self, linked_account_id: &str) -> Result<Vec<ModelState>> {
        model_state::all(&self.conn, linked_account_id)
    }

    fn save_observed(
        &mut self,
        linked_account_id: &str,
        observed: &[ObservedStatus],
    ) -> Result<()> {
        self.write(|c| model_state::save_observed(c, linked_account_id, observed))
    }

    fn save_hint(
        &mut self,
        linked_account_id: &str,
        model_id: &str,
        hinted_last_sync_finished: Option<DateTime<Utc>>,
        ready: bool,
    ) -> Result<()> {
        self.write(|c| {
            model_state::save_hint(
                c,
                linked_account_id,
                model_id,
                hinted_last_sync_finished,
                ready,
            )
        })
    }

    fn set_model_error(
        &mut self,
        linked_account_id: &str,
        model_id: &str,
        error: Option<&str>,
    ) -> Result<()> {
        self.write(|c| model_state::set_error(c, linked_account_id, model_id, error))
    }

    fn clear_cursor(&mut self, linked_account_id: &str, model_id: &str) -> Result<()> {
        self.write(|c| model_state::clear_cursor(c, linked_account_id, model_id))
    }

    fn write_page(
        &mut self,
        linked_account_id: &str,
        model_id: &str,
        rows: &[RecordRow],
        progress: &PageProgress,
    ) -> Result<usize> {
        let table = super::records_table(model_id)?;
        self.write(|c| records::write_page(c, &table, linked_account_id, model_id, rows, progress))
    }

    fn record_count(&mut self, linked_account_id: &str, model_id: &str) -> Result<i64> {
        records::count(&self.conn, linked_account_id, model_id)
    }

    fn record_tables(&mut self) -> Result<Vec<String>> {
        records::tables(&self.conn)
    }

    fn record_data(
        &mut self,
        linked_account_id: &str,
        model_id: &str,
        id: &str,
    ) -> Result<Option<String>> {
        records::data(&self.conn, linked_account_id, model_id, id)
    }

    fn export_view(
        &mut self,
        model: &ModelView,
        filter: &ExportFilter,
        row: &mut dyn FnMut(&[Cell]) -> Result<()>,
    ) -> Result<u64> {
        views::export(&self.conn, model, filter, row)
    }

    fn enqueue_webhook(
        &mut self,
        body: &[u8],
        event: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        self.write(|c| inbox::enqueue(c, body, event, now))
    }

    fn claim_pending_webhook(&mut self) -> Result<Option<InboxItem>> {
        // Inside a transaction, the file's write lock is the claim.
        inbox::oldest_pending(&self.conn)
    }

    fn mark_webhook_applied(
        &mut self,
        id: i64,
        outcome: &str,
        linked_account_id: Option<&str>,
        redacted_body: Option<&[u8]>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.write(|c| inbox::mark_applied(c, id, outcome, linked_account_id, redacted_body, now))
    }

    fn pending_webhooks(&mut self) -> Result<Vec<InboxItem>> {
        inbox::pending(&self.conn)
    }

    fn prune_applied_webhooks(&mut self, before: DateTime<Utc>) -> Result<usize> {
        self.write(|c| inbox::prune(c, before))
    }

    fn delete_account_webhooks(
        &mut self,
        linked_account_id: &str,
        pending_ids: &[i64],
    ) -> Result<usize> {
        self.write(|c| inbox::delete_account(c, linked_account_id, pending_ids))
    }

    fn inbox_backlog(&mut self) -> Result<(u64, Option<DateTime<Utc>>)> {
        inbox::backlog(&self.conn)
    }

    fn mark_checked(&mut self, linked_account_id: &str, at: DateTime<Utc>) -> Result<()> {
        self.write(|c| accounts::mark_checked(c, linked_account_id, at))
    }

    fn start_run(&mut self, run: &RunRow) -> Result<()> {
        self.write(|c| runs::start(c, run))
    }

    fn add_run_account(&mut self, run_id: &str, linked_account_id: &str) -> Result<()> {
        self.write(|c| runs::add_account(c, run_id, linked_account_id))
    }

    fn finish_run(&mut self, run: &RunRow) -> Result<()> {
        self.write(|c| runs::finish(c, run))
    }

    fn runs(&mut self, query: &RunQuery) -> Result<Vec<RunRow>> {
        runs::list(&self.conn, query)
    }

    fn prune_runs(&mut self, started_before: DateTime<Utc>, keep: usize) -> Result<usize> {
        self.write(|c| runs::prune(c, started_before, keep))
    }

    fn add_counters(&mut self, deltas: &[Counter]) -> Result<()> {
        self.write(|c| runs::add_counters(c, deltas))
    }

    fn counters(&mut self) -> Result<Vec<Counter>> {
        runs::counters(&self.conn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_the_state_file_private_and_in_wal_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let store = SqliteStore::open(&path).unwrap();
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

    // Regression (hardening item 6): through a dangling symlink the file was created 0644.
    #[cfg(unix)]
    #[test]
    fn a_dangling_symlink_creates_its_target_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("real.db");
        let link = dir.path().join("link.db");
        std::os::unix::fs::symlink("real.db", &link).unwrap();
        SqliteStore::open(&link).unwrap();
        let mode = std::fs::metadata(&target).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(real_path(&link), target.canonicalize().unwrap());
    }

    #[test]
    fn real_path_of_a_new_file_resolves_its_directory() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        let spelled = sub.join("..").join("sub").join("new.db");
        assert_eq!(
            real_path(&spelled),
            sub.canonicalize().unwrap().join("new.db")
        );
    }

    // Regression (hardening item 12): `status` opened the file for writing and migrated it.
    #[test]
    fn a_state_file_opened_read_only_refuses_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        drop(SqliteStore::open(&path).unwrap());
        let mut store = SqliteStore::open_read_only(&path).unwrap();
        assert!(store.accounts().unwrap().is_empty());
        assert!(store
            .enqueue_webhook(b"{}", None, chrono::Utc::now())
            .is_err());
        // A negative version is refused by name, not skipped past.
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", -3)
            .unwrap();
        let err = SqliteStore::open_read_only(&path).err().unwrap();
        assert!(format!("{err:#}").contains("-3"), "{err:#}");
    }

    // Regression (hardening item 2): a modified_at stored in another shape compared as text
    // above every real time and blocked every later version of the record.
    #[test]
    fn a_stored_modified_at_in_another_shape_never_blocks_a_newer_copy() {
        let mut store = SqliteStore::open_in_memory().unwrap();
        let now = chrono::Utc::now();
        store
            .upsert_account(
                &NewAccount {
                    linked_account_id: "a1".into(),
                    end_user_origin_id: None,
                    category: "hris".into(),
                    integration_slug: None,
                    account_token: crate::secret::Secret::new("t"),
                    models: None,
                },
                now,
            )
            .unwrap();
        let page = |modified: &str, data: &str| RecordRow {
            id: "e1".into(),
            remote_id: None,
            created_at: None,
            modified_at: Some(modified.into()),
            remote_was_deleted: false,
            data: data.into(),
        };
        let progress = PageProgress {
            window_after: None,
            window_before: now,
            next_cursor: None,
            high_water: now,
            started_at: now,
            now,
        };
        store
            .write_page(
                "a1",
                "hris.Employee",
                &[page("zzz not a time", "odd")],
                &progress,
            )
            .unwrap();
        store
            .write_page(
                "a1",
                "hris.Employee",
                &[page("2026-03-01T10:00:00.000000Z", "real")],
                &progress,
            )
            .unwrap();
        assert_eq!(
            store
                .record_data("a1", "hris.Employee", "e1")
                .unwrap()
                .as_deref(),
            Some("real")
        );
    }

    #[test]
    #[cfg(unix)]
    fn an_empty_file_becomes_a_private_state_file() {
        use crate::store::Store;
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        std::fs::write(&path, b"").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut store = SqliteStore::open(&path).unwrap();
        assert!(store.accounts().unwrap().is_empty());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn refuses_a_directory_naming_the_file_it_wanted() {
        let dir = tempfile::tempdir().unwrap();
        let err = SqliteStore::open(dir.path()).unwrap_err();
        assert!(
            matches!(
                err.downcast_ref::<StoreError>(),
                Some(StoreError::IsDirectory { .. })
            ),
            "{err:#}"
        );
        assert!(format!("{err:#}").contains("merge-sync.db"), "{err:#}");
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
        let err = SqliteStore::open(&path).unwrap_err();
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
        let err = SqliteStore::open(&path).unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains("99") && msg.contains(&CURRENT_VERSION.to_string()),
            "{msg}"
        );
    }
}
