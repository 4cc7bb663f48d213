//! The PostgreSQL backend: the same tables and columns as SQLite with native types, shared
//! safely by any number of processes on any number of hosts.
//!
//! Read-decide-write steps run in one transaction with the account's row held
//! (`SELECT … FOR UPDATE`), account locks are session-level advisory locks on the store's own
//! connection (see `lock`), and webhooks are claimed with `FOR UPDATE SKIP LOCKED`. Every
//! process keeps its connection for its whole run.

mod accounts;
mod inbox;
mod lock;
mod model_state;
pub(super) mod records;
mod runs;
pub mod schema;
pub mod target;
mod views;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use postgres::Client;

use super::{
    Account, AccountLock, AccountStatus, Counter, InboxItem, ModelState, NewAccount,
    ObservedStatus, PageProgress, RecordRow, RunQuery, RunRow, Store, UpsertOutcome,
};
pub use target::PgTarget;

/// A connection to a PostgreSQL store.
pub struct PgStore {
    /// Shared with the account locks taken on this session, which unlock through it.
    /// (`None` only while being dropped.)
    client: Option<Arc<Mutex<Client>>>,
    target: PgTarget,
    /// Inside [`Store::transaction`]: statements join it instead of starting their own.
    in_tx: bool,
    /// The prepared page upsert of each records table this connection has written.
    upserts: HashMap<String, postgres::Statement>,
}

impl PgStore {
    /// Connects, sets the session up and migrates.
    pub fn open(target: &PgTarget) -> Result<PgStore> {
        let mut client = target.connect()?;
        session_setup(&mut client);
        schema::migrate(&mut client, target.schema.as_deref(), &target.to_string())
            .with_context(|| format!("preparing {target}"))?;
        views::sync_views(&mut client, schema::MIGRATION_LOCK)
            .with_context(|| format!("creating the typed views in {target}"))?;
        Ok(PgStore {
            client: Some(Arc::new(Mutex::new(client))),
            target: target.clone(),
            in_tx: false,
            upserts: HashMap::new(),
        })
    }

    fn shared(&self) -> &Arc<Mutex<Client>> {
        self.client
            .as_ref()
            .expect("the connection lives until drop")
    }

    fn conn(&self) -> MutexGuard<'_, Client> {
        self.shared().lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` in a transaction of its own, or inside the open [`Store::transaction`].
    fn write<T>(&mut self, f: impl FnOnce(&mut Client) -> Result<T>) -> Result<T> {
        let place = self.target.to_string();
        let mut c = self.conn();
        if self.in_tx {
            return f(&mut c);
        }
        c.batch_execute("BEGIN")
            .with_context(|| format!("starting a write to {place}"))?;
        match f(&mut c) {
            Ok(out) => {
                c.batch_execute("COMMIT")
                    .with_context(|| format!("committing to {place}"))?;
                Ok(out)
            }
            Err(e) => {
                let _ = c.batch_execute("ROLLBACK");
                Err(e)
            }
        }
    }
}

impl Drop for PgStore {
    /// The synchronous client closes its connection by blocking on its own runtime, which
    /// panics on a thread that drives another (the webhook receiver's): close it elsewhere.
    fn drop(&mut self) {
        let client = self.client.take();
        if tokio::runtime::Handle::try_current().is_ok() {
            let _ = std::thread::spawn(move || drop(client)).join();
        }
    }
}

/// Asks the server to notice a vanished client quickly: its TCP keepalives (10 s idle, then
/// every 5 s, 3 misses) and a 30 s limit on unacknowledged data. A host cut off from the
/// network thus loses its session, and its account locks, well within a minute. Servers
/// that do not know a setting keep their default.
fn session_setup(client: &mut Client) {
    for setting in [
        // "does not exist, skipping" and the like are not worth a log line.
        "SET client_min_messages = warning",
        "SET tcp_keepalives_idle = 10",
        "SET tcp_keepalives_interval = 5",
        "SET tcp_keepalives_count = 3",
        "SET tcp_user_timeout = 30000",
    ] {
        if let Err(e) = client.batch_execute(setting) {
            log::debug!("{setting}: {e}");
        }
    }
}

impl Store for PgStore {
    fn describe(&self) -> String {
        self.target.to_string()
    }

    fn set_lock_wait(&mut self, wait: std::time::Duration) -> Result<()> {
        let place = self.target.to_string();
        self.conn()
            .batch_execute(&format!("SET lock_timeout = {}", wait.as_millis()))
            .with_context(|| format!("setting the lock wait of {place}"))
    }

    fn transaction(&mut self, f: &mut dyn FnMut(&mut dyn Store) -> Result<()>) -> Result<()> {
        if self.in_tx {
            return f(self);
        }
        let place = self.target.to_string();
        self.conn()
            .batch_execute("BEGIN")
            .with_context(|| format!("starting a write to {place}"))?;
        self.in_tx = true;
        let result = f(self);
        self.in_tx = false;
        match result {
            Ok(()) => self
                .conn()
                .batch_execute("COMMIT")
                .with_context(|| format!("committing to {place}")),
            Err(e) => {
                if let Err(rollback) = self.conn().batch_execute("ROLLBACK") {
                    log::debug!("rolling back a write to {place}: {rollback}");
                }
                Err(e)
            }
        }
    }

    fn try_lock_account(
        &mut self,
        linked_account_id: &str,
    ) -> Result<Option<Box<dyn AccountLock>>> {
        Ok(
            lock::try_acquire(self.shared(), &self.target, linked_account_id)?
                .map(|l| Box::new(l) as Box<dyn AccountLock>),
        )
    }

    fn upsert_account(&mut self, new: &NewAccount, now: DateTime<Utc>) -> Result<UpsertOutcome> {
        accounts::upsert(&mut self.conn(), new, now)
    }

    fn accounts(&mut self) -> Result<Vec<Account>> {
        accounts::all(&mut self.conn())
    }

    fn account(&mut self, linked_account_id: &str) -> Result<Option<Account>> {
        accounts::one(&mut self.conn(), linked_account_id, false)
    }

    fn lock_account(&mut self, linked_account_id: &str) -> Result<Option<Account>> {
        accounts::one(&mut self.conn(), linked_account_id, self.in_tx)
    }

    fn find_account_by_token(&mut self, token: &str) -> Result<Option<Account>> {
        accounts::by_token(&mut self.conn(), token)
    }

    fn set_account_status(
        &mut self,
        linked_account_id: &str,
        status: AccountStatus,
        now: DateTime<Utc>,
    ) -> Result<()> {
        accounts::set_status(&mut self.conn(), linked_account_id, status, now)
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
        accounts::record_success(&mut self.conn(), linked_account_id, next_poll_at, now)
    }

    fn record_account_failure(
        &mut self,
        linked_account_id: &str,
        error: &str,
        next_poll_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        accounts::record_failure(
            &mut self.conn(),
            linked_account_id,
            error,
            next_poll_at,
            now,
        )
    }

    fn set_next_poll(
        &mut self,
        linked_account_id: &str,
        next_poll_at: Option<DateTime<Utc>>,
    ) -> Result<()> {
        accounts::set_next_poll(&mut self.conn(), linked_account_id, next_poll_at)
    }

    fn mark_initial_sync_started(
        &mut self,
        linked_account_id: &str,
        at: DateTime<Utc>,
    ) -> Result<()> {
        accounts::mark_started(&mut self.conn(), linked_account_id, at)
    }

    fn mark_initial_sync_complete(
        &mut self,
        linked_account_id: &str,
        at: DateTime<Utc>,
    ) -> Result<bool> {
        accounts::mark_complete(&mut self.conn(), linked_account_id, at)
    }

    fn initial_sync_hook_pending(&mut self, linked_account_id: &str) -> Result<bool> {
        accounts::hook_pending(&mut self.conn(), linked_account_id)
    }

    fn set_hook_error(&mut self, linked_account_id: &str, error: Option<&str>) -> Result<()> {
        accounts::set_hook_error(&mut self.conn(), linked_account_id, error)
    }

    fn model_states(&mut self, linked_account_id: &str) -> Result<Vec<ModelState>> {
        model_state::all(&mut self.conn(), linked_account_id)
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
        model_state::save_hint(
            &mut self.conn(),
            linked_account_id,
            model_id,
            hinted_last_sync_finished,
            ready,
        )
    }

    fn set_model_error(
        &mut self,
        linked_account_id: &str,
        model_id: &str,
        error: Option<&str>,
    ) -> Result<()> {
        model_state::set_error(&mut self.conn(), linked_account_id, model_id, error)
    }

    fn clear_cursor(&mut self, linked_account_id: &str, model_id: &str) -> Result<()> {
        model_state::clear_cursor(&mut self.conn(), linked_account_id, model_id)
    }

    fn write_page(
        &mut self,
        linked_account_id: &str,
        model_id: &str,
        rows: &[RecordRow],
        progress: &PageProgress,
    ) -> Result<usize> {
        let table = super::records_table(model_id)?;
        let known = self.upserts.get(&table).cloned();
        let (written, prepared) = self.write(|c| {
            let upsert = match known {
                Some(s) => s,
                None => {
                    records::ensure_table(c, &table)?;
                    c.prepare(&records::upsert_sql(&table))
                        .with_context(|| format!("preparing the upsert into {table}"))?
                }
            };
            let n = records::write_page(c, &upsert, linked_account_id, model_id, rows, progress)?;
            Ok((n, upsert))
        })?;
        self.upserts.insert(table, prepared);
        Ok(written)
    }

    fn record_count(&mut self, linked_account_id: &str, model_id: &str) -> Result<i64> {
        records::count(&mut self.conn(), linked_account_id, model_id)
    }

    fn record_tables(&mut self) -> Result<Vec<String>> {
        records::tables(&mut self.conn())
    }

    fn record_data(
        &mut self,
        linked_account_id: &str,
        model_id: &str,
        id: &str,
    ) -> Result<Option<String>> {
        records::data(&mut self.conn(), linked_account_id, model_id, id)
    }

    fn export_view(
        &mut self,
        model: &crate::views::ModelView,
        filter: &super::ExportFilter,
        row: &mut dyn FnMut(&[super::Cell]) -> Result<()>,
    ) -> Result<u64> {
        views::export(&mut self.conn(), model, filter, row)
    }

    fn enqueue_webhook(
        &mut self,
        body: &[u8],
        event: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        inbox::enqueue(&mut self.conn(), body, event, now)
    }

    fn claim_pending_webhook(&mut self) -> Result<Option<InboxItem>> {
        inbox::claim_oldest(&mut self.conn())
    }

    fn mark_webhook_applied(
        &mut self,
        id: i64,
        outcome: &str,
        linked_account_id: Option<&str>,
        redacted_body: Option<&[u8]>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        inbox::mark_applied(
            &mut self.conn(),
            id,
            outcome,
            linked_account_id,
            redacted_body,
            now,
        )
    }

    fn pending_webhooks(&mut self) -> Result<Vec<InboxItem>> {
        inbox::pending(&mut self.conn())
    }

    fn prune_applied_webhooks(&mut self, before: DateTime<Utc>) -> Result<usize> {
        inbox::prune(&mut self.conn(), before)
    }

    fn delete_account_webhooks(
        &mut self,
        linked_account_id: &str,
        pending_ids: &[i64],
    ) -> Result<usize> {
        inbox::delete_account(&mut self.conn(), linked_account_id, pending_ids)
    }

    fn inbox_backlog(&mut self) -> Result<(u64, Option<DateTime<Utc>>)> {
        inbox::backlog(&mut self.conn())
    }

    fn mark_checked(&mut self, linked_account_id: &str, at: DateTime<Utc>) -> Result<()> {
        accounts::mark_checked(&mut self.conn(), linked_account_id, at)
    }

    fn start_run(&mut self, run: &RunRow) -> Result<()> {
        self.write(|c| runs::start(c, run))
    }

    fn add_run_account(&mut self, run_id: &str, linked_account_id: &str) -> Result<()> {
        runs::add_account(&mut self.conn(), run_id, linked_account_id)
    }

    fn finish_run(&mut self, run: &RunRow) -> Result<()> {
        self.write(|c| runs::finish(c, run))
    }

    fn runs(&mut self, query: &RunQuery) -> Result<Vec<RunRow>> {
        runs::list(&mut self.conn(), query)
    }

    fn prune_runs(&mut self, started_before: DateTime<Utc>, keep: usize) -> Result<usize> {
        self.write(|c| runs::prune(c, started_before, keep))
    }

    fn add_counters(&mut self, deltas: &[Counter]) -> Result<()> {
        self.write(|c| runs::add_counters(c, deltas))
    }

    fn counters(&mut self) -> Result<Vec<Counter>> {
        runs::counters(&mut self.conn())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{open, Location};

    fn location(db: &crate::testing::postgres::TestDatabase) -> Location {
        Location::parse(std::path::Path::new(db.url()), &|_| None).unwrap()
    }

    #[test]
    fn a_webhook_being_applied_elsewhere_is_skipped_not_applied_twice() {
        let db = crate::testing::postgres::database();
        let (mut one, mut two) = (open(&location(&db)).unwrap(), open(&location(&db)).unwrap());
        let now = Utc::now();
        one.enqueue_webhook(b"{\"n\":1}", None, now).unwrap();
        one.enqueue_webhook(b"{\"n\":2}", None, now).unwrap();
        one.in_transaction(|tx| {
            let first = tx.claim_pending_webhook()?.unwrap();
            assert_eq!(first.body, b"{\"n\":1}");
            // Another process, meanwhile: it gets the next one, and then nothing, at once.
            let second = two
                .in_transaction(|tx2| {
                    let item = tx2.claim_pending_webhook()?.unwrap();
                    tx2.mark_webhook_applied(item.id, "applied", None, None, now)?;
                    Ok(item)
                })
                .unwrap();
            assert_eq!(second.body, b"{\"n\":2}");
            assert!(two
                .in_transaction(|tx2| tx2.claim_pending_webhook())
                .unwrap()
                .is_none());
            tx.mark_webhook_applied(first.id, "applied", None, None, now)
        })
        .unwrap();
        assert_eq!(one.inbox_backlog().unwrap().0, 0);
    }

    #[test]
    fn an_account_lock_dies_with_its_holders_session() {
        let db = crate::testing::postgres::database();
        let (mut one, mut two) = (open(&location(&db)).unwrap(), open(&location(&db)).unwrap());
        let held = one.try_lock_account("la1").unwrap().expect("free");
        assert!(two.try_lock_account("la1").unwrap().is_none());
        // The holder's host vanishes: the server ends its session.
        db.connect()
            .batch_execute(
                "SELECT pg_terminate_backend(pid) FROM pg_locks
                 WHERE locktype = 'advisory' AND pid <> pg_backend_pid()
                   AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            )
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let taken = loop {
            if let Some(lock) = two.try_lock_account("la1").unwrap() {
                break lock;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the lock outlived its holder"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        drop(taken);
        // The dead holder cannot write any more either.
        assert!(one.accounts().is_err());
        drop(held);
    }
}
