//! The storage interface: the row types the engine uses and the [`Store`] trait, with one
//! backend per database (`sqlite`, `postgres`). Callers hold a `Box<dyn Store>` and never learn which
//! database is behind it.
//!
//! The store keeps no policy. Rules such as "readiness never goes back", "the high-water mark
//! only moves forward" or "stay due while a newer hint is pending" are decided in
//! `sync::detect` on rows read inside a [`Store::transaction`], and the store writes exactly
//! what it is given. So each rule exists once, whatever the backend's SQL dialect.

pub mod copy;
mod postgres;
mod sqlite;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};

use crate::secret::Secret;

pub use postgres::PgTarget;
/// The schema version this binary writes; both backends have the same number of migrations.
pub use sqlite::{lock_file, real_path, CURRENT_VERSION};

/// Errors a caller branches on; everything else is an `anyhow` chain with context.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "{place} was written by a newer merge-sync (schema version {found}); this binary \
         supports up to schema version {supported}. Upgrade merge-sync, or point --db elsewhere"
    )]
    SchemaTooNew {
        place: String,
        found: i64,
        supported: i64,
    },
    #[error("{0}")]
    BadDatabaseUrl(String),
    #[error("{target} refused the connection: {reason}")]
    PgRejected { target: String, reason: String },
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
    #[error(
        "{} is a directory; --db / MERGE_SYNC_DB names the state file itself, like {}",
        path.display(),
        path.join("merge-sync.db").display()
    )]
    IsDirectory { path: PathBuf },
    #[error(
        "the state file has schema version {found}, which no merge-sync writes: it is damaged \
         or not merge-sync's. Point --db or MERGE_SYNC_DB at the right file"
    )]
    BadSchemaVersion { found: i64 },
    #[error(
        "{target} already holds merge-sync data (table {table} has rows); copy-state only fills \
         an empty database. Point --to at a new database (or a new schema with \
         options=-csearch_path=NAME)"
    )]
    CopyTargetNotEmpty { target: String, table: String },
    #[error("invalid model id {0:?}: expected category.Model, like hris.Employee")]
    InvalidModelId(String),
}

/// Which rows of a view `export` reads.
#[derive(Debug, Clone, Default)]
pub struct ExportFilter {
    /// Only this account's records.
    pub linked_account_id: Option<String>,
    /// Also records Merge reports deleted (`remote_was_deleted`).
    pub include_deleted: bool,
}

/// One value of a view row, as the database gave it; the column's catalogue kind says how to
/// present it.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Null,
    Integer(i64),
    Real(f64),
    Bool(bool),
    /// Text, JSON text, timestamps and decimals as text.
    Text(String),
}

/// Where the state lives, as `--db` / `MERGE_SYNC_DB` names it. `Display` and `Debug` never
/// show a password.
#[derive(Clone, PartialEq, Eq)]
pub enum Location {
    /// An SQLite state file.
    Sqlite(PathBuf),
    /// A PostgreSQL database (`postgres://` or `postgresql://`).
    Postgres(Box<PgTarget>),
}

impl Location {
    /// Reads `--db`: a `postgres://` or `postgresql://` URL (completed from the `PG*`
    /// variables in `env`), else an SQLite path.
    pub fn parse(db: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Location, StoreError> {
        match db.to_str() {
            Some(url) if postgres::target::is_url(url) => PgTarget::parse(url, env)
                .map(|t| Location::Postgres(Box::new(t)))
                .map_err(|e| StoreError::BadDatabaseUrl(format!("--db / MERGE_SYNC_DB: {e}"))),
            _ => Ok(Location::Sqlite(db.to_path_buf())),
        }
    }

    /// Whether the state exists yet (a database server is assumed to).
    pub fn exists(&self) -> bool {
        match self {
            Location::Sqlite(path) => path.exists(),
            Location::Postgres(_) => true,
        }
    }

    /// The schema version this binary writes at this location.
    pub fn current_version(&self) -> i64 {
        match self {
            Location::Sqlite(_) => sqlite::CURRENT_VERSION,
            Location::Postgres(_) => postgres::schema::CURRENT_VERSION,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Sqlite(path) => write!(f, "{}", path.display()),
            Location::Postgres(target) => write!(f, "{target}"),
        }
    }
}

impl fmt::Debug for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Opens (creating and migrating if needed) the state at `location`.
pub fn open(location: &Location) -> Result<Box<dyn Store>> {
    match location {
        Location::Sqlite(path) => Ok(Box::new(sqlite::SqliteStore::open(path)?)),
        Location::Postgres(target) => Ok(Box::new(postgres::PgStore::open(target)?)),
    }
}

/// Opens existing state without creating it; `None` when there is none yet (for `status`).
pub fn open_existing(location: &Location) -> Result<Option<Box<dyn Store>>> {
    if !location.exists() {
        return Ok(None);
    }
    open(location).map(Some)
}

/// Opens existing state for reading only (`status`, `accounts list`): nothing is created or
/// written, so read access is enough. Only state from an older merge-sync is migrated first
/// (which needs write access once). `None` when there is none yet.
pub fn open_existing_read_only(location: &Location) -> Result<Option<Box<dyn Store>>> {
    match location {
        Location::Sqlite(path) if !path.exists() => Ok(None),
        Location::Sqlite(path) => Ok(Some(sqlite::SqliteStore::open_read_only(path)?)),
        // Reads need no more than a connection; an older schema is migrated as on any open.
        Location::Postgres(_) => open(location).map(Some),
    }
}

/// The schema version of existing state, read without migrating or creating anything
/// (`check` reports it before opening); `None` when there is no state yet.
pub fn peek_schema_version(location: &Location) -> Result<Option<i64>> {
    match location {
        Location::Sqlite(path) if !path.exists() => Ok(None),
        Location::Sqlite(path) => sqlite::peek_schema_version(path).map(Some),
        Location::Postgres(target) => {
            let mut client = target.connect()?;
            postgres::schema::version(&mut client)
                .with_context(|| format!("reading the schema version of {target}"))
                .map(|v| (v > 0).then_some(v))
        }
    }
}

/// An in-memory SQLite store, for tests.
pub fn open_in_memory() -> Result<Box<dyn Store>> {
    Ok(Box::new(sqlite::SqliteStore::open_in_memory()?))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountStatus {
    Active,
    Disabled,
}

impl AccountStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountStatus::Active => "active",
            AccountStatus::Disabled => "disabled",
        }
    }

    pub fn from_stored(s: &str) -> AccountStatus {
        if s == "disabled" {
            AccountStatus::Disabled
        } else {
            AccountStatus::Active
        }
    }
}

/// A linked account as stored.
#[derive(Debug, Clone)]
pub struct Account {
    pub linked_account_id: String,
    pub end_user_origin_id: Option<String>,
    pub category: String,
    pub integration_slug: Option<String>,
    pub account_token: Secret,
    pub status: AccountStatus,
    /// The models to mirror; `None` means every model sync-status reports as enabled.
    pub models: Option<Vec<String>>,
    pub initial_sync_complete: bool,
    pub initial_sync_started_at: Option<DateTime<Utc>>,
    pub initial_sync_completed_at: Option<DateTime<Utc>>,
    /// When the account is next due; `None` means now.
    pub next_poll_at: Option<DateTime<Utc>>,
    pub consecutive_failures: u32,
    pub last_error: Option<String>,
    pub last_polled_at: Option<DateTime<Utc>>,
    pub hook_error: Option<String>,
    /// When Merge's sync-status for the account was last read.
    pub last_checked_at: Option<DateTime<Utc>>,
    /// When a pass over the account last succeeded.
    pub last_success_at: Option<DateTime<Utc>>,
}

impl Account {
    /// Whether `model_id` is one this account mirrors (given Merge reports it enabled).
    pub fn wants_model(&self, model_id: &str) -> bool {
        match &self.models {
            Some(list) => list.iter().any(|m| m == model_id),
            None => true,
        }
    }

    /// Due for a scheduled poll at `now`.
    pub fn is_due(&self, now: DateTime<Utc>) -> bool {
        self.status == AccountStatus::Active && self.next_poll_at.is_none_or(|t| t <= now)
    }
}

/// What `accounts add` registers.
#[derive(Debug, Clone)]
pub struct NewAccount {
    pub linked_account_id: String,
    pub end_user_origin_id: Option<String>,
    pub category: String,
    pub integration_slug: Option<String>,
    pub account_token: Secret,
    pub models: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpsertOutcome {
    Added,
    /// The account existed: its token (and any given details) were updated, state kept.
    Relinked,
}

/// One row of `model_sync_state`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelState {
    pub model_id: String,
    pub status: Option<String>,
    pub last_sync_result: Option<String>,
    pub is_initial_sync: Option<bool>,
    pub ready: bool,
    pub merge_last_sync_start: Option<DateTime<Utc>>,
    pub merge_next_sync_start: Option<DateTime<Utc>>,
    /// Upper bound of our last completed window: everything Merge had at that instant is in.
    pub merge_last_sync_finished: Option<DateTime<Utc>>,
    /// The newest `last_sync_finished` Merge has reported for this model.
    pub reported_last_sync_finished: Option<DateTime<Utc>>,
    /// The newest finished sync a webhook announced (DONE or PARTIALLY_SYNCED).
    pub hinted_last_sync_finished: Option<DateTime<Utc>>,
    pub last_synced_at: Option<DateTime<Utc>>,
    pub last_fetched_at: Option<DateTime<Utc>>,
    /// An unfinished window: the cursor of its next page and its bounds.
    pub cursor: Option<String>,
    pub window_after: Option<DateTime<Utc>>,
    pub window_before: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    /// Pages of the unfinished window written so far (with `cursor`).
    pub cursor_page: Option<u64>,
}

/// What one sync-status pass says about a model, after the detection rules ran. Saved as
/// given: `ready` is already the planner's verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservedStatus {
    pub model_id: String,
    pub status: String,
    pub last_sync_result: Option<String>,
    pub is_initial_sync: bool,
    pub ready: bool,
    pub last_sync_start: Option<DateTime<Utc>>,
    pub next_sync_start: Option<DateTime<Utc>>,
    pub last_sync_finished: Option<DateTime<Utc>>,
}

/// One run of `poll`, `fetch` or a `serve` pass, as the run history keeps it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunRow {
    pub run_id: String,
    pub command: String,
    pub host: String,
    pub pid: u32,
    pub started_at: DateTime<Utc>,
    /// `None` while it runs, and forever for a run that was killed.
    pub finished_at: Option<DateTime<Utc>>,
    /// `ok`, `partial`, `failed` or `interrupted`; `None` until finished.
    pub outcome: Option<String>,
    pub accounts_synced: u64,
    pub accounts_failed: u64,
    pub accounts_not_due: u64,
    pub accounts_busy: u64,
    pub records_written: u64,
    pub requests: u64,
    pub rate_limited: u64,
    pub retries: u64,
    pub first_error: Option<String>,
    /// The accounts the run worked on, by linked account id.
    pub accounts: Vec<String>,
}

/// Which runs to list, newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunQuery {
    pub limit: usize,
    /// Only runs that worked on this account.
    pub account: Option<String>,
    pub command: Option<String>,
    /// Only finished runs with one of these outcomes (empty: any run).
    pub outcomes: Vec<String>,
}

/// A lifetime counter (`merge_sync_requests_total{status="200"}` is name
/// `requests`, label `200`): only ever added to, never pruned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counter {
    pub name: String,
    pub label: String,
    pub value: u64,
}

/// A stored webhook waiting to be applied.
#[derive(Debug, Clone)]
pub struct InboxItem {
    pub id: i64,
    pub received_at: String,
    pub body: Vec<u8>,
}

/// One record, ready to upsert. `data` is the record's JSON exactly as Merge sent it.
#[derive(Debug, Clone)]
pub struct RecordRow {
    pub id: String,
    pub remote_id: Option<String>,
    pub created_at: Option<String>,
    /// Normalised to the stored timestamp format, so it compares as text.
    pub modified_at: Option<String>,
    pub remote_was_deleted: bool,
    pub data: String,
}

/// Where one page of a window stands once it is written.
#[derive(Debug, Clone)]
pub struct PageProgress<'a> {
    pub window_after: Option<DateTime<Utc>>,
    pub window_before: DateTime<Utc>,
    /// The cursor of the next page; `None` when this was the window's last page.
    pub next_cursor: Option<&'a str>,
    /// What `merge_last_sync_finished` becomes with the window's last page (the planner's
    /// high-water mark; stored as given).
    pub high_water: DateTime<Utc>,
    /// Our clock when this fetch started.
    pub started_at: DateTime<Utc>,
    pub now: DateTime<Utc>,
}

/// Appends one request time to the account's shared record as the request is made.
pub type RequestJournal = Box<dyn FnMut(SystemTime) -> Result<()> + Send>;

/// A held account lock: at most one process works an account at a time. Released on drop,
/// and by the operating system or database when its holder dies, however it dies.
pub trait AccountLock: Send {
    /// When the account's recent requests were sent, as earlier holders left them, so the
    /// per-account rate limit holds across processes.
    fn recent_requests(&mut self) -> Vec<SystemTime>;
    /// Leaves the account's recent request times for the next holder.
    fn save_requests(&mut self, times: &[SystemTime]) -> Result<()>;
    /// A journal that records each request time as it is made, so a holder killed mid-pass
    /// still hands its budget on.
    fn journal(&mut self) -> Result<RequestJournal>;
}

/// The state store. Every method is one atomic step; [`Store::transaction`] groups several
/// (read, decide in `sync`, write) into one.
pub trait Store: Send {
    /// Where the store is, for messages: a path or host, port and database; never a password.
    fn describe(&self) -> String;

    /// How long a write waits for another process's lock before failing (default 30 s). The
    /// webhook receiver shortens it: Merge gives up on a delivery after 30 s.
    fn set_lock_wait(&mut self, wait: std::time::Duration) -> Result<()>;

    /// Runs `f` in one transaction, committing only if it returns `Ok`. Rows read inside see
    /// no concurrent change that [`Store::lock_account`] or the backend's locking excludes.
    fn transaction(&mut self, f: &mut dyn FnMut(&mut dyn Store) -> Result<()>) -> Result<()>;

    /// Takes the account's cross-process lock, or `None` when another holder has it.
    fn try_lock_account(&mut self, linked_account_id: &str)
        -> Result<Option<Box<dyn AccountLock>>>;

    // ---- accounts

    /// Registers an account, or relinks it (new token, given details) keeping its state.
    fn upsert_account(&mut self, new: &NewAccount, now: DateTime<Utc>) -> Result<UpsertOutcome>;
    /// Every account, ordered by id.
    fn accounts(&mut self) -> Result<Vec<Account>>;
    /// One account by its Merge linked account id.
    fn account(&mut self, linked_account_id: &str) -> Result<Option<Account>>;
    /// Like [`Store::account`]; inside a transaction, also holds the account's row until it
    /// ends, so read-decide-write steps on one account never interleave.
    fn lock_account(&mut self, linked_account_id: &str) -> Result<Option<Account>>;
    /// Finds an account by its account token (webhooks may carry only that).
    fn find_account_by_token(&mut self, token: &str) -> Result<Option<Account>>;
    fn set_account_status(
        &mut self,
        linked_account_id: &str,
        status: AccountStatus,
        now: DateTime<Utc>,
    ) -> Result<()>;
    /// Removes an account and its sync state; with `purge`, also its mirrored records.
    /// Returns how many records were deleted.
    fn remove_account(&mut self, linked_account_id: &str, purge: bool) -> Result<usize>;
    /// Records a pass that succeeded: failures reset, next poll as given (`None` = due now).
    fn record_account_success(
        &mut self,
        linked_account_id: &str,
        next_poll_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<()>;
    /// Records a failed pass: the error, one more failure, and the backoff's next poll.
    fn record_account_failure(
        &mut self,
        linked_account_id: &str,
        error: &str,
        next_poll_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<()>;
    /// Sets when the account is next due (`None` = now).
    fn set_next_poll(
        &mut self,
        linked_account_id: &str,
        next_poll_at: Option<DateTime<Utc>>,
    ) -> Result<()>;
    /// Notes when we first saw the account's initial sync running (kept once set).
    fn mark_initial_sync_started(
        &mut self,
        linked_account_id: &str,
        at: DateTime<Utc>,
    ) -> Result<()>;
    /// Sets `initial_sync_complete` (and the hook as owed) once; returns whether this call
    /// was the one that set it.
    fn mark_initial_sync_complete(
        &mut self,
        linked_account_id: &str,
        at: DateTime<Utc>,
    ) -> Result<bool>;
    /// Whether the initial-sync hook is still owed for this account.
    fn initial_sync_hook_pending(&mut self, linked_account_id: &str) -> Result<bool>;
    /// Records that the hook ran (or was not configured), with its error if it failed.
    fn set_hook_error(&mut self, linked_account_id: &str, error: Option<&str>) -> Result<()>;

    // ---- per-model sync state

    /// Every model row of one account, ordered by model id.
    fn model_states(&mut self, linked_account_id: &str) -> Result<Vec<ModelState>>;
    /// Saves what sync-status said, keeping our own progress columns.
    fn save_observed(&mut self, linked_account_id: &str, observed: &[ObservedStatus])
        -> Result<()>;
    /// Saves a webhook's news about a model: its readiness and newest announced sync.
    fn save_hint(
        &mut self,
        linked_account_id: &str,
        model_id: &str,
        hinted_last_sync_finished: Option<DateTime<Utc>>,
        ready: bool,
    ) -> Result<()>;
    /// Records an error against one model (shown in `status`); progress is kept.
    fn set_model_error(
        &mut self,
        linked_account_id: &str,
        model_id: &str,
        error: Option<&str>,
    ) -> Result<()>;
    /// Forgets an unfinished window (Merge rejected its cursor), so it restarts from page one.
    fn clear_cursor(&mut self, linked_account_id: &str, model_id: &str) -> Result<()>;

    // ---- mirrored records

    /// Writes one page in one transaction: the records, and where the window stands. The
    /// window's new bound is stored only with its last page, so a crash at any instant leaves
    /// either the old state or the new one, and a resumed run continues from the cursor saved
    /// with the last page that committed. An older copy of a record never replaces a newer one.
    fn write_page(
        &mut self,
        linked_account_id: &str,
        model_id: &str,
        rows: &[RecordRow],
        progress: &PageProgress,
    ) -> Result<usize>;
    /// How many records of `model_id` the mirror holds for an account (0 before the first page).
    fn record_count(&mut self, linked_account_id: &str, model_id: &str) -> Result<i64>;
    /// The names of every records table.
    fn record_tables(&mut self) -> Result<Vec<String>>;
    /// One mirrored record's JSON, as stored.
    fn record_data(
        &mut self,
        linked_account_id: &str,
        model_id: &str,
        id: &str,
    ) -> Result<Option<String>>;

    /// Streams the rows of `model`'s typed view, in (`linked_account_id`, `id`) order, to
    /// `row`, holding one row at a time; returns how many rows it passed. Deleted records
    /// only with `filter.include_deleted`.
    fn export_view(
        &mut self,
        model: &crate::views::ModelView,
        filter: &ExportFilter,
        row: &mut dyn FnMut(&[Cell]) -> Result<()>,
    ) -> Result<u64>;

    // ---- webhook inbox

    /// Stores a verified webhook body. Returns `false` when the exact same body was already
    /// stored (Merge retried it), which is not an error.
    fn enqueue_webhook(
        &mut self,
        body: &[u8],
        event: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<bool>;
    /// The oldest webhook not yet applied that no one else is applying. Call it inside a
    /// transaction that also marks it applied: the claim lasts until the transaction ends, so
    /// every webhook is applied exactly once however many processes share the inbox.
    fn claim_pending_webhook(&mut self) -> Result<Option<InboxItem>>;
    /// Records what applying a webhook did and which account it was about. A body that
    /// carried an account token is replaced by `redacted_body`: once applied, the token lives
    /// only with the account. The original's hash stays, so a retried delivery is still
    /// recognised as a duplicate.
    fn mark_webhook_applied(
        &mut self,
        id: i64,
        outcome: &str,
        linked_account_id: Option<&str>,
        redacted_body: Option<&[u8]>,
        now: DateTime<Utc>,
    ) -> Result<()>;
    /// Every webhook not yet applied, oldest first (for purging an account's).
    fn pending_webhooks(&mut self) -> Result<Vec<InboxItem>>;
    /// Deletes applied webhooks received before `before`; returns how many.
    fn prune_applied_webhooks(&mut self, before: DateTime<Utc>) -> Result<usize>;
    /// Deletes every applied webhook recorded against `linked_account_id` and the pending
    /// ones in `pending_ids`; returns how many.
    fn delete_account_webhooks(
        &mut self,
        linked_account_id: &str,
        pending_ids: &[i64],
    ) -> Result<usize>;
    /// Webhooks not applied yet, and when the oldest of them was received.
    fn inbox_backlog(&mut self) -> Result<(u64, Option<DateTime<Utc>>)>;

    // ---- freshness, run history and counters

    /// Notes that Merge's sync-status for the account was read at `at`.
    fn mark_checked(&mut self, linked_account_id: &str, at: DateTime<Utc>) -> Result<()>;
    /// Records a run as started (`finished_at` and `outcome` unset); a run killed before
    /// [`Store::finish_run`] stays unfinished.
    fn start_run(&mut self, run: &RunRow) -> Result<()>;
    /// Notes that the run is working on an account.
    fn add_run_account(&mut self, run_id: &str, linked_account_id: &str) -> Result<()>;
    /// Stores how the run ended: `finished_at`, `outcome`, its counts and first error.
    fn finish_run(&mut self, run: &RunRow) -> Result<()>;
    /// Runs matching `query`, newest first, each with its accounts.
    fn runs(&mut self, query: &RunQuery) -> Result<Vec<RunRow>>;
    /// Deletes runs started before `started_before`, and all but the newest `keep`.
    /// Returns how many were deleted.
    fn prune_runs(&mut self, started_before: DateTime<Utc>, keep: usize) -> Result<usize>;
    /// Adds to lifetime counters (creating them at 0).
    fn add_counters(&mut self, deltas: &[Counter]) -> Result<()>;
    /// Every lifetime counter, ordered by name and label.
    fn counters(&mut self) -> Result<Vec<Counter>>;
}

impl dyn Store + '_ {
    /// Runs `f` in one transaction and returns its result.
    pub fn in_transaction<T>(&mut self, f: impl FnOnce(&mut dyn Store) -> Result<T>) -> Result<T> {
        let mut f = Some(f);
        let mut out = None;
        self.transaction(&mut |tx| {
            let f = f.take().expect("a transaction body runs once");
            out = Some(f(tx)?);
            Ok(())
        })?;
        Ok(out.expect("a committed transaction ran its body"))
    }

    /// Finds an account by linked account id or `end_user_origin_id`, as users name them.
    pub fn find_account(&mut self, key: &str) -> Result<Option<Account>> {
        if let Some(a) = self.account(key)? {
            return Ok(Some(a));
        }
        let matches: Vec<Account> = self
            .accounts()?
            .into_iter()
            .filter(|a| a.end_user_origin_id.as_deref() == Some(key))
            .collect();
        match matches.len() {
            0 => Ok(None),
            1 => Ok(matches.into_iter().next()),
            n => anyhow::bail!(
                "{n} accounts have end_user_origin_id {key:?} (one per category?); name one by its \
                 linked account id instead"
            ),
        }
    }
}

/// The records table of a model: `hris.TimeOffBalance` → `hris_time_off_balance`.
/// Anything not shaped like `category.Model` is rejected, so a table name is never built from
/// arbitrary text.
pub fn records_table(model_id: &str) -> Result<String, StoreError> {
    let invalid = || StoreError::InvalidModelId(model_id.to_string());
    let (category, model) = model_id.split_once('.').ok_or_else(invalid)?;
    let category_ok = !category.is_empty() && category.bytes().all(|b| b.is_ascii_lowercase());
    let model_ok = !model.is_empty() && model.bytes().all(|b| b.is_ascii_alphanumeric());
    if !category_ok || !model_ok {
        return Err(invalid());
    }
    let mut table = String::with_capacity(model_id.len() + 8);
    table.push_str(category);
    table.push('_');
    let chars: Vec<char> = model.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() {
            // A new word starts at an upper-case letter after a lower-case letter or digit,
            // or at the last capital of an acronym run (`CRMAccount` → `crm_account`).
            let prev = i.checked_sub(1).map(|p| chars[p]);
            let next = chars.get(i + 1);
            let boundary = match prev {
                None => false,
                Some(p) if p.is_ascii_lowercase() || p.is_ascii_digit() => true,
                Some(p) => p.is_ascii_uppercase() && next.is_some_and(|n| n.is_ascii_lowercase()),
            };
            if boundary {
                table.push('_');
            }
            table.push(c.to_ascii_lowercase());
        } else {
            table.push(c);
        }
    }
    Ok(table)
}

#[cfg(test)]
mod contract;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_snake_case_of_the_model_id() {
        let cases = [
            ("hris.Employee", "hris_employee"),
            ("hris.TimeOffBalance", "hris_time_off_balance"),
            (
                "filestorage.FileStorageFile",
                "filestorage_file_storage_file",
            ),
            ("crm.CRMAccount", "crm_crm_account"),
            ("accounting.Invoices", "accounting_invoices"),
            ("ats.EEOC", "ats_eeoc"),
            ("hris.Employee2Group", "hris_employee2_group"),
        ];
        for (id, table) in cases {
            assert_eq!(records_table(id).unwrap(), table, "{id}");
        }
    }

    #[test]
    fn model_ids_that_are_not_category_dot_model_are_rejected() {
        for bad in [
            "",
            "hris",
            "hris.",
            ".Employee",
            "HRIS.Employee",
            "hris.Employee; DROP TABLE linked_accounts",
            "hris.Emp-loyee",
            "hris.Employee.x",
            "hr is.Employee",
            "hris.Employé",
        ] {
            assert!(records_table(bad).is_err(), "{bad:?} accepted");
        }
    }
}
