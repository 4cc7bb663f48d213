//! The webhook inbox: verified webhooks stored durably until `poll` or `serve` applies them.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};

use crate::store::InboxItem;
use crate::time;

pub fn enqueue(
    c: &Connection,
    body: &[u8],
    event: Option<&str>,
    now: DateTime<Utc>,
) -> Result<bool> {
    let hash = format!("{:x}", Sha256::digest(body));
    let n = c
        .execute(
            "INSERT OR IGNORE INTO webhook_inbox (received_at, event, body, body_sha256)
             VALUES (?1, ?2, ?3, ?4)",
            params![time::format(now), event, body, hash],
        )
        .context("storing the webhook")?;
    Ok(n == 1)
}

pub fn oldest_pending(c: &Connection) -> Result<Option<InboxItem>> {
    c.query_row(
        "SELECT id, received_at, body FROM webhook_inbox WHERE applied_at IS NULL
         ORDER BY id LIMIT 1",
        [],
        |r| {
            Ok(InboxItem {
                id: r.get(0)?,
                received_at: r.get(1)?,
                body: r.get(2)?,
            })
        },
    )
    .optional()
    .context("reading the webhook inbox")
}

pub fn mark_applied(
    c: &Connection,
    id: i64,
    outcome: &str,
    linked_account_id: Option<&str>,
    redacted_body: Option<&[u8]>,
    now: DateTime<Utc>,
) -> Result<()> {
    c.execute(
        "UPDATE webhook_inbox SET applied_at = ?2, outcome = ?3, linked_account_id = ?4,
            body = COALESCE(?5, body)
         WHERE id = ?1",
        params![
            id,
            time::format(now),
            outcome,
            linked_account_id,
            redacted_body
        ],
    )?;
    Ok(())
}

pub fn pending(c: &Connection) -> Result<Vec<InboxItem>> {
    let mut stmt = c.prepare(
        "SELECT id, received_at, body FROM webhook_inbox WHERE applied_at IS NULL ORDER BY id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(InboxItem {
            id: r.get(0)?,
            received_at: r.get(1)?,
            body: r.get(2)?,
        })
    })?;
    rows.collect::<rusqlite::Result<Vec<_>>>()
        .context("reading the webhook inbox")
}

pub fn prune(c: &Connection, before: DateTime<Utc>) -> Result<usize> {
    c.execute(
        "DELETE FROM webhook_inbox WHERE applied_at IS NOT NULL AND received_at < ?1",
        [time::format(before)],
    )
    .context("pruning the webhook inbox")
}

pub fn delete_account(
    c: &Connection,
    linked_account_id: &str,
    pending_ids: &[i64],
) -> Result<usize> {
    let mut n = c.execute(
        "DELETE FROM webhook_inbox WHERE linked_account_id = ?1",
        [linked_account_id],
    )?;
    for id in pending_ids {
        n += c.execute(
            "DELETE FROM webhook_inbox WHERE id = ?1 AND applied_at IS NULL",
            [id],
        )?;
    }
    Ok(n)
}

pub fn backlog(c: &Connection) -> Result<(u64, Option<DateTime<Utc>>)> {
    let (n, oldest): (i64, Option<String>) = c
        .query_row(
            "SELECT COUNT(*), MIN(received_at) FROM webhook_inbox WHERE applied_at IS NULL",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .context("reading the webhook inbox")?;
    Ok((n.max(0) as u64, oldest.as_deref().and_then(time::parse)))
}
