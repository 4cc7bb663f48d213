//! Linked accounts: registration, relinking, enable/disable, scheduling columns.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::secret::Secret;
use crate::store::{Account, AccountStatus, NewAccount, UpsertOutcome};
use crate::time;

const COLUMNS: &str = "linked_account_id, end_user_origin_id, category, integration_slug, \
    account_token, status, models, initial_sync_complete, initial_sync_started_at, \
    initial_sync_completed_at, next_poll_at, consecutive_failures, last_error, last_polled_at, \
    hook_error, last_checked_at, last_success_at";

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
        status: AccountStatus::from_stored(&status),
        models: models.and_then(|m| serde_json::from_str(&m).ok()),
        initial_sync_complete: r.get::<_, i64>(7)? != 0,
        initial_sync_started_at: ts(r.get(8)?),
        initial_sync_completed_at: ts(r.get(9)?),
        next_poll_at: ts(r.get(10)?),
        consecutive_failures: r.get::<_, i64>(11)?.max(0) as u32,
        last_error: r.get(12)?,
        last_polled_at: ts(r.get(13)?),
        hook_error: r.get(14)?,
        last_checked_at: ts(r.get(15)?),
        last_success_at: ts(r.get(16)?),
    })
}

pub fn upsert(c: &Connection, new: &NewAccount, now: DateTime<Utc>) -> Result<UpsertOutcome> {
    let models = new
        .models
        .as_ref()
        .map(|m| serde_json::to_string(m).expect("a list of strings serialises"));
    let now = time::format(now);
    let exists: bool = c
        .query_row(
            "SELECT 1 FROM linked_accounts WHERE linked_account_id = ?1",
            [&new.linked_account_id],
            |_| Ok(true),
        )
        .optional()?
        .unwrap_or(false);
    if exists {
        c.execute(
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
        c.execute(
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
}

pub fn all(c: &Connection) -> Result<Vec<Account>> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM linked_accounts ORDER BY linked_account_id"
    ))?;
    let rows = stmt.query_map([], from_row)?;
    rows.collect::<rusqlite::Result<Vec<_>>>()
        .context("reading linked accounts")
}

pub fn one(c: &Connection, linked_account_id: &str) -> Result<Option<Account>> {
    c.query_row(
        &format!("SELECT {COLUMNS} FROM linked_accounts WHERE linked_account_id = ?1"),
        [linked_account_id],
        from_row,
    )
    .optional()
    .context("reading a linked account")
}

pub fn by_token(c: &Connection, token: &str) -> Result<Option<Account>> {
    c.query_row(
        &format!("SELECT {COLUMNS} FROM linked_accounts WHERE account_token = ?1"),
        [token],
        from_row,
    )
    .optional()
    .context("looking an account up by token")
}

pub fn set_status(
    c: &Connection,
    linked_account_id: &str,
    status: AccountStatus,
    now: DateTime<Utc>,
) -> Result<()> {
    c.execute(
        "UPDATE linked_accounts SET status = ?2, updated_at = ?3,
            next_poll_at = CASE WHEN ?2 = 'active' THEN NULL ELSE next_poll_at END
         WHERE linked_account_id = ?1",
        params![linked_account_id, status.as_str(), time::format(now)],
    )?;
    Ok(())
}

pub fn remove(c: &Connection, linked_account_id: &str, purge: bool) -> Result<usize> {
    let mut purged = 0;
    if purge {
        for table in super::records::tables(c)? {
            purged += c.execute(
                &format!("DELETE FROM \"{table}\" WHERE linked_account_id = ?1"),
                [linked_account_id],
            )?;
        }
    }
    c.execute(
        "DELETE FROM model_sync_state WHERE linked_account_id = ?1",
        [linked_account_id],
    )?;
    c.execute(
        "DELETE FROM linked_accounts WHERE linked_account_id = ?1",
        [linked_account_id],
    )?;
    Ok(purged)
}

pub fn record_success(
    c: &Connection,
    linked_account_id: &str,
    next_poll_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<()> {
    c.execute(
        "UPDATE linked_accounts SET consecutive_failures = 0, last_error = NULL,
            next_poll_at = ?2, last_polled_at = ?3, last_success_at = ?3, updated_at = ?3
         WHERE linked_account_id = ?1",
        params![
            linked_account_id,
            next_poll_at.map(time::format),
            time::format(now)
        ],
    )?;
    Ok(())
}

pub fn record_failure(
    c: &Connection,
    linked_account_id: &str,
    error: &str,
    next_poll_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<()> {
    c.execute(
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
}

pub fn set_next_poll(
    c: &Connection,
    linked_account_id: &str,
    next_poll_at: Option<DateTime<Utc>>,
) -> Result<()> {
    c.execute(
        "UPDATE linked_accounts SET next_poll_at = ?2 WHERE linked_account_id = ?1",
        params![linked_account_id, next_poll_at.map(time::format)],
    )?;
    Ok(())
}

pub fn mark_started(c: &Connection, linked_account_id: &str, at: DateTime<Utc>) -> Result<()> {
    c.execute(
        "UPDATE linked_accounts SET initial_sync_started_at = ?2
         WHERE linked_account_id = ?1 AND initial_sync_started_at IS NULL",
        params![linked_account_id, time::format(at)],
    )?;
    Ok(())
}

pub fn mark_complete(c: &Connection, linked_account_id: &str, at: DateTime<Utc>) -> Result<bool> {
    let changed = c.execute(
        "UPDATE linked_accounts SET initial_sync_complete = 1, initial_sync_completed_at = ?2,
            initial_sync_started_at = COALESCE(initial_sync_started_at, ?2),
            initial_sync_hook_pending = 1
         WHERE linked_account_id = ?1 AND initial_sync_complete = 0",
        params![linked_account_id, time::format(at)],
    )?;
    Ok(changed == 1)
}

pub fn hook_pending(c: &Connection, linked_account_id: &str) -> Result<bool> {
    Ok(c.query_row(
        "SELECT initial_sync_hook_pending FROM linked_accounts WHERE linked_account_id = ?1",
        [linked_account_id],
        |r| r.get::<_, i64>(0),
    )
    .optional()?
    .unwrap_or(0)
        != 0)
}

pub fn set_hook_error(c: &Connection, linked_account_id: &str, error: Option<&str>) -> Result<()> {
    c.execute(
        "UPDATE linked_accounts SET hook_error = ?2, initial_sync_hook_pending = 0
         WHERE linked_account_id = ?1",
        params![linked_account_id, error],
    )?;
    Ok(())
}

pub fn mark_checked(c: &Connection, linked_account_id: &str, at: DateTime<Utc>) -> Result<()> {
    c.execute(
        "UPDATE linked_accounts SET last_checked_at = ?2 WHERE linked_account_id = ?1",
        params![linked_account_id, time::format(at)],
    )?;
    Ok(())
}
