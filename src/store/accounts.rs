//! Linked accounts: registration, relinking, enable/disable, scheduling columns.

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension, Row};

use super::Store;
use crate::secret::Secret;
use crate::time;

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

const COLUMNS: &str = "linked_account_id, end_user_origin_id, category, integration_slug, \
    account_token, status, models, initial_sync_complete, initial_sync_started_at, \
    initial_sync_completed_at, next_poll_at, consecutive_failures, last_error, last_polled_at, \
    hook_error";

fn ts(v: Option<String>) -> Option<DateTime<Utc>> {
    v.as_deref().and_then(time::parse)
}

fn from_row(r: &Row) -> rusqlite::Result<Account> {
    let status: String = r.get(5)?;
    let models: Option<String> = r.get(6)?;
    Ok(Account {
        linked_account_id: r.get(0)?,
        end_user_origin_id: r.get(1)?,
        category: r.get(2)?,
        integration_slug: r.get(3)?,
        account_token: Secret::new(r.get::<_, String>(4)?),
        status: if status == "disabled" {
            AccountStatus::Disabled
        } else {
            AccountStatus::Active
        },
        models: models.and_then(|m| serde_json::from_str(&m).ok()),
        initial_sync_complete: r.get::<_, i64>(7)? != 0,
        initial_sync_started_at: ts(r.get(8)?),
        initial_sync_completed_at: ts(r.get(9)?),
        next_poll_at: ts(r.get(10)?),
        consecutive_failures: r.get::<_, i64>(11)?.max(0) as u32,
        last_error: r.get(12)?,
        last_polled_at: ts(r.get(13)?),
        hook_error: r.get(14)?,
    })
}

impl Store {
    /// Registers an account, or relinks it (new token, given details) keeping its state.
    pub fn upsert_account(
        &mut self,
        new: &NewAccount,
        now: DateTime<Utc>,
    ) -> Result<UpsertOutcome> {
        let models = new
            .models
            .as_ref()
            .map(|m| serde_json::to_string(m).expect("a list of strings serialises"));
        let now = time::format(now);
        self.write(|tx| {
            let exists: bool = tx
                .query_row(
                    "SELECT 1 FROM linked_accounts WHERE linked_account_id = ?1",
                    [&new.linked_account_id],
                    |_| Ok(true),
                )
                .optional()?
                .unwrap_or(false);
            if exists {
                tx.execute(
                    "UPDATE linked_accounts SET account_token = ?2,
                        end_user_origin_id = COALESCE(?3, end_user_origin_id),
                        integration_slug = COALESCE(?4, integration_slug),
                        models = COALESCE(?5, models),
                        category = ?6,
                        -- a relinked account is worth a look now, and its old failures are moot
                        next_poll_at = NULL, consecutive_failures = 0, last_error = NULL,
                        updated_at = ?7
                     WHERE linked_account_id = ?1",
                    params![
                        new.linked_account_id,
                        new.account_token.expose(),
                        new.end_user_origin_id,
                        new.integration_slug,
                        models,
                        new.category,
                        now
                    ],
                )
                .context("updating the linked account")?;
                Ok(UpsertOutcome::Relinked)
            } else {
                tx.execute(
                    "INSERT INTO linked_accounts (linked_account_id, end_user_origin_id, category,
                        integration_slug, account_token, models, created_at, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
                    params![
                        new.linked_account_id,
                        new.end_user_origin_id,
                        new.category,
                        new.integration_slug,
                        new.account_token.expose(),
                        models,
                        now
                    ],
                )
                .context("inserting the linked account")?;
                Ok(UpsertOutcome::Added)
            }
        })
    }

    /// Every account, ordered by id.
    pub fn accounts(&self) -> Result<Vec<Account>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {COLUMNS} FROM linked_accounts ORDER BY linked_account_id"
        ))?;
        let rows = stmt.query_map([], from_row)?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .context("reading linked accounts")
    }

    /// One account by its Merge linked account id.
    pub fn account(&self, linked_account_id: &str) -> Result<Option<Account>> {
        self.conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM linked_accounts WHERE linked_account_id = ?1"),
                [linked_account_id],
                from_row,
            )
            .optional()
            .context("reading a linked account")
    }

    /// Finds an account by linked account id or `end_user_origin_id`, as users name them.
    pub fn find_account(&self, key: &str) -> Result<Option<Account>> {
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
            n => bail!(
                "{n} accounts have end_user_origin_id {key:?} (one per category?); name one by its \
                 linked account id instead"
            ),
        }
    }

    /// Finds an account by its account token (webhooks may carry only that).
    pub fn find_account_by_token(&self, token: &str) -> Result<Option<Account>> {
        self.conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM linked_accounts WHERE account_token = ?1"),
                [token],
                from_row,
            )
            .optional()
            .context("looking an account up by token")
    }

    pub fn set_account_status(
        &mut self,
        linked_account_id: &str,
        status: AccountStatus,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let now = time::format(now);
        self.write(|tx| {
            tx.execute(
                "UPDATE linked_accounts SET status = ?2, updated_at = ?3,
                    next_poll_at = CASE WHEN ?2 = 'active' THEN NULL ELSE next_poll_at END
                 WHERE linked_account_id = ?1",
                params![linked_account_id, status.as_str(), now],
            )?;
            Ok(())
        })
    }

    /// Removes an account and its sync state; with `purge`, also its mirrored records.
    pub fn remove_account(&mut self, linked_account_id: &str, purge: bool) -> Result<usize> {
        let tables = if purge {
            self.record_tables()?
        } else {
            Vec::new()
        };
        self.write(|tx| {
            let mut purged = 0;
            for table in &tables {
                purged += tx.execute(
                    &format!("DELETE FROM \"{table}\" WHERE linked_account_id = ?1"),
                    [linked_account_id],
                )?;
            }
            tx.execute(
                "DELETE FROM model_sync_state WHERE linked_account_id = ?1",
                [linked_account_id],
            )?;
            tx.execute(
                "DELETE FROM linked_accounts WHERE linked_account_id = ?1",
                [linked_account_id],
            )?;
            Ok(purged)
        })
    }

    /// Records a pass over the account that succeeded: failures reset, next poll scheduled.
    pub fn record_account_success(
        &mut self,
        linked_account_id: &str,
        next_poll_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                // A webhook that arrived during the pass announced a sync this pass did not
                // fetch: stay due rather than wait for the schedule.
                "UPDATE linked_accounts SET consecutive_failures = 0, last_error = NULL,
                    next_poll_at = CASE WHEN EXISTS (
                        SELECT 1 FROM model_sync_state m
                        WHERE m.linked_account_id = ?1 AND m.ready = 1
                          AND m.status IS NOT NULL AND m.status <> 'DISABLED'
                          AND m.hinted_last_sync_finished IS NOT NULL
                          AND (m.merge_last_sync_finished IS NULL
                               OR m.hinted_last_sync_finished > m.merge_last_sync_finished))
                      THEN NULL ELSE ?2 END,
                    last_polled_at = ?3, updated_at = ?3
                 WHERE linked_account_id = ?1",
                params![
                    linked_account_id,
                    time::format(next_poll_at),
                    time::format(now)
                ],
            )?;
            Ok(())
        })
    }

    /// Records a failed pass: the error, one more failure, and the backoff's next poll.
    pub fn record_account_failure(
        &mut self,
        linked_account_id: &str,
        error: &str,
        next_poll_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "UPDATE linked_accounts SET consecutive_failures = consecutive_failures + 1,
                    last_error = ?2, next_poll_at = ?3, last_polled_at = ?4, updated_at = ?4
                 WHERE linked_account_id = ?1",
                params![
                    linked_account_id,
                    error,
                    time::format(next_poll_at),
                    time::format(now)
                ],
            )?;
            Ok(())
        })
    }

    /// Makes an account due now (a webhook said there is new data).
    pub fn make_due(&mut self, linked_account_id: &str) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "UPDATE linked_accounts SET next_poll_at = NULL WHERE linked_account_id = ?1
                   AND consecutive_failures = 0",
                [linked_account_id],
            )?;
            Ok(())
        })
    }

    /// Notes when we first saw the account's initial sync running.
    pub fn mark_initial_sync_started(
        &mut self,
        linked_account_id: &str,
        at: DateTime<Utc>,
    ) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "UPDATE linked_accounts SET initial_sync_started_at = ?2
                 WHERE linked_account_id = ?1 AND initial_sync_started_at IS NULL",
                params![linked_account_id, time::format(at)],
            )?;
            Ok(())
        })
    }

    /// Sets `initial_sync_complete` once; returns whether this call was the one that set it.
    pub fn mark_initial_sync_complete(
        &mut self,
        linked_account_id: &str,
        at: DateTime<Utc>,
    ) -> Result<bool> {
        self.write(|tx| {
            let changed = tx.execute(
                "UPDATE linked_accounts SET initial_sync_complete = 1, initial_sync_completed_at = ?2,
                    initial_sync_started_at = COALESCE(initial_sync_started_at, ?2),
                    initial_sync_hook_pending = 1
                 WHERE linked_account_id = ?1 AND initial_sync_complete = 0",
                params![linked_account_id, time::format(at)],
            )?;
            Ok(changed == 1)
        })
    }

    /// Whether the initial-sync hook is still owed for this account (set together with
    /// `initial_sync_complete`, so a crash before the hook ran does not lose it).
    pub fn initial_sync_hook_pending(&self, linked_account_id: &str) -> Result<bool> {
        Ok(self
            .conn
            .query_row(
                "SELECT initial_sync_hook_pending FROM linked_accounts WHERE linked_account_id = ?1",
                [linked_account_id],
                |r| r.get::<_, i64>(0),
            )
            .optional()?
            .unwrap_or(0)
            != 0)
    }

    /// Records that the hook ran (or was not configured), with its error if it failed.
    pub fn set_hook_error(&mut self, linked_account_id: &str, error: Option<&str>) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "UPDATE linked_accounts SET hook_error = ?2, initial_sync_hook_pending = 0
                 WHERE linked_account_id = ?1",
                params![linked_account_id, error],
            )?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(id: &str, token: &str) -> NewAccount {
        NewAccount {
            linked_account_id: id.into(),
            end_user_origin_id: Some(format!("org-{id}")),
            category: "hris".into(),
            integration_slug: Some("bamboohr".into()),
            account_token: Secret::new(token),
            models: None,
        }
    }

    #[test]
    fn adding_an_existing_account_relinks_it_and_keeps_state() {
        let mut store = Store::open_in_memory().unwrap();
        let now = Utc::now();
        assert_eq!(
            store
                .upsert_account(&new("a1", "tok-old-1234"), now)
                .unwrap(),
            UpsertOutcome::Added
        );
        store.mark_initial_sync_complete("a1", now).unwrap();
        assert_eq!(
            store
                .upsert_account(&new("a1", "tok-new-5678"), now)
                .unwrap(),
            UpsertOutcome::Relinked
        );
        let a = store.account("a1").unwrap().unwrap();
        assert_eq!(a.account_token.expose(), "tok-new-5678");
        assert!(a.initial_sync_complete);
        assert_eq!(store.accounts().unwrap().len(), 1);
    }

    #[test]
    fn finds_accounts_by_id_origin_or_token() {
        let mut store = Store::open_in_memory().unwrap();
        store
            .upsert_account(&new("a1", "tok-aaaa-1111"), Utc::now())
            .unwrap();
        assert!(store.find_account("a1").unwrap().is_some());
        assert!(store.find_account("org-a1").unwrap().is_some());
        assert!(store.find_account("nobody").unwrap().is_none());
        assert!(store
            .find_account_by_token("tok-aaaa-1111")
            .unwrap()
            .is_some());
    }

    #[test]
    fn initial_sync_completion_is_recorded_once() {
        let mut store = Store::open_in_memory().unwrap();
        store
            .upsert_account(&new("a1", "tok-aaaa-1111"), Utc::now())
            .unwrap();
        assert!(store.mark_initial_sync_complete("a1", Utc::now()).unwrap());
        assert!(!store.mark_initial_sync_complete("a1", Utc::now()).unwrap());
    }
}
