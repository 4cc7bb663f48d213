//! Linked accounts: registration, relinking, enable/disable, scheduling columns.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use postgres::types::Json;
use postgres::{Client, Row};

use crate::secret::Secret;
use crate::store::{Account, AccountStatus, NewAccount, UpsertOutcome};

const COLUMNS: &str = "linked_account_id, end_user_origin_id, category, integration_slug, \
    account_token, status, models, initial_sync_complete, initial_sync_started_at, \
    initial_sync_completed_at, next_poll_at, consecutive_failures, last_error, last_polled_at, \
    hook_error, last_checked_at, last_success_at";

fn from_row(r: &Row) -> Account {
    let status: String = r.get(5);
    let models: Option<Json<Vec<String>>> = r.get(6);
    Account {
        linked_account_id: r.get(0),
        end_user_origin_id: r.get(1),
        category: r.get(2),
        integration_slug: r.get(3),
        account_token: Secret::new(r.get::<_, String>(4)),
        status: AccountStatus::from_stored(&status),
        models: models.map(|Json(m)| m),
        initial_sync_complete: r.get(7),
        initial_sync_started_at: r.get(8),
        initial_sync_completed_at: r.get(9),
        next_poll_at: r.get(10),
        consecutive_failures: r.get::<_, i64>(11).max(0) as u32,
        last_error: r.get(12),
        last_polled_at: r.get(13),
        hook_error: r.get(14),
        last_checked_at: r.get(15),
        last_success_at: r.get(16),
    }
}

pub fn upsert(c: &mut Client, new: &NewAccount, now: DateTime<Utc>) -> Result<UpsertOutcome> {
    let models = new.models.as_ref().map(Json);
    // `xmax = 0` only on a row this statement inserted.
    let row = c
        .query_one(
            "INSERT INTO linked_accounts AS a (linked_account_id, end_user_origin_id, category,
                integration_slug, account_token, models, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
             ON CONFLICT (linked_account_id) DO UPDATE SET
                account_token = excluded.account_token,
                end_user_origin_id = COALESCE(excluded.end_user_origin_id, a.end_user_origin_id),
                integration_slug = COALESCE(excluded.integration_slug, a.integration_slug),
                models = COALESCE(excluded.models, a.models),
                category = excluded.category,
                -- a relinked account is worth a look now, and its old failures are moot
                next_poll_at = NULL, consecutive_failures = 0, last_error = NULL,
                updated_at = excluded.updated_at
             RETURNING (xmax = 0)",
            &[
                &new.linked_account_id,
                &new.end_user_origin_id,
                &new.category,
                &new.integration_slug,
                &new.account_token.expose(),
                &models,
                &now,
            ],
        )
        .context("saving the linked account")?;
    Ok(if row.get::<_, bool>(0) {
        UpsertOutcome::Added
    } else {
        UpsertOutcome::Relinked
    })
}

pub fn all(c: &mut Client) -> Result<Vec<Account>> {
    let rows = c
        .query(
            &format!("SELECT {COLUMNS} FROM linked_accounts ORDER BY linked_account_id"),
            &[],
        )
        .context("reading linked accounts")?;
    Ok(rows.iter().map(from_row).collect())
}

pub fn one(c: &mut Client, linked_account_id: &str, for_update: bool) -> Result<Option<Account>> {
    let lock = if for_update { " FOR UPDATE" } else { "" };
    let row = c
        .query_opt(
            &format!("SELECT {COLUMNS} FROM linked_accounts WHERE linked_account_id = $1{lock}"),
            &[&linked_account_id],
        )
        .context("reading a linked account")?;
    Ok(row.as_ref().map(from_row))
}

pub fn by_token(c: &mut Client, token: &str) -> Result<Option<Account>> {
    let row = c
        .query_opt(
            &format!("SELECT {COLUMNS} FROM linked_accounts WHERE account_token = $1"),
            &[&token],
        )
        .context("looking an account up by token")?;
    Ok(row.as_ref().map(from_row))
}

pub fn set_status(
    c: &mut Client,
    linked_account_id: &str,
    status: AccountStatus,
    now: DateTime<Utc>,
) -> Result<()> {
    c.execute(
        "UPDATE linked_accounts SET status = $2, updated_at = $3,
            next_poll_at = CASE WHEN $2 = 'active' THEN NULL ELSE next_poll_at END
         WHERE linked_account_id = $1",
        &[&linked_account_id, &status.as_str(), &now],
    )?;
    Ok(())
}

pub fn remove(c: &mut Client, linked_account_id: &str, purge: bool) -> Result<usize> {
    let mut purged = 0;
    if purge {
        for table in super::records::tables(c)? {
            purged += c.execute(
                &format!("DELETE FROM \"{table}\" WHERE linked_account_id = $1"),
                &[&linked_account_id],
            )? as usize;
        }
    }
    c.execute(
        "DELETE FROM model_sync_state WHERE linked_account_id = $1",
        &[&linked_account_id],
    )?;
    c.execute(
        "DELETE FROM account_requests WHERE linked_account_id = $1",
        &[&linked_account_id],
    )?;
    c.execute(
        "DELETE FROM linked_accounts WHERE linked_account_id = $1",
        &[&linked_account_id],
    )?;
    Ok(purged)
}

pub fn record_success(
    c: &mut Client,
    linked_account_id: &str,
    next_poll_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<()> {
    c.execute(
        "UPDATE linked_accounts SET consecutive_failures = 0, last_error = NULL,
            next_poll_at = $2, last_polled_at = $3, last_success_at = $3, updated_at = $3
         WHERE linked_account_id = $1",
        &[&linked_account_id, &next_poll_at, &now],
    )?;
    Ok(())
}

pub fn record_failure(
    c: &mut Client,
    linked_account_id: &str,
    error: &str,
    next_poll_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<()> {
    c.execute(
        "UPDATE linked_accounts SET consecutive_failures = consecutive_failures + 1,
            last_error = $2, next_poll_at = $3, last_polled_at = $4, updated_at = $4
         WHERE linked_account_id = $1",
        &[&linked_account_id, &error, &next_poll_at, &now],
    )?;
    Ok(())
}

pub fn set_next_poll(
    c: &mut Client,
    linked_account_id: &str,
    next_poll_at: Option<DateTime<Utc>>,
) -> Result<()> {
    c.execute(
        "UPDATE linked_accounts SET next_poll_at = $2 WHERE linked_account_id = $1",
        &[&linked_account_id, &next_poll_at],
    )?;
    Ok(())
}

pub fn mark_started(c: &mut Client, linked_account_id: &str, at: DateTime<Utc>) -> Result<()> {
    c.execute(
        "UPDATE linked_accounts SET initial_sync_started_at = $2
         WHERE linked_account_id = $1 AND initial_sync_started_at IS NULL",
        &[&linked_account_id, &at],
    )?;
    Ok(())
}

pub fn mark_complete(c: &mut Client, linked_account_id: &str, at: DateTime<Utc>) -> Result<bool> {
    let changed = c.execute(
        "UPDATE linked_accounts SET initial_sync_complete = true, initial_sync_completed_at = $2,
            initial_sync_started_at = COALESCE(initial_sync_started_at, $2),
            initial_sync_hook_pending = true
         WHERE linked_account_id = $1 AND NOT initial_sync_complete",
        &[&linked_account_id, &at],
    )?;
    Ok(changed == 1)
}

pub fn hook_pending(c: &mut Client, linked_account_id: &str) -> Result<bool> {
    Ok(c.query_opt(
        "SELECT initial_sync_hook_pending FROM linked_accounts WHERE linked_account_id = $1",
        &[&linked_account_id],
    )?
    .is_some_and(|r| r.get::<_, bool>(0)))
}

pub fn set_hook_error(c: &mut Client, linked_account_id: &str, error: Option<&str>) -> Result<()> {
    c.execute(
        "UPDATE linked_accounts SET hook_error = $2, initial_sync_hook_pending = false
         WHERE linked_account_id = $1",
        &[&linked_account_id, &error],
    )?;
    Ok(())
}

pub fn mark_checked(c: &mut Client, linked_account_id: &str, at: DateTime<Utc>) -> Result<()> {
    c.execute(
        "UPDATE linked_accounts SET last_checked_at = $2 WHERE linked_account_id = $1",
        &[&linked_account_id, &at],
    )?;
    Ok(())
}
