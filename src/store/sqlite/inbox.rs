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

pub fn mark_applied(c: &Connection, id: i64, outcome: &str, now: DateTime<Utc>) -> Result<()> {
    c.execute(
        "UPDATE webhook_inbox SET applied_at = ?2, outcome = ?3 WHERE id = ?1",
        params![id, time::format(now), outcome],
    )?;
    Ok(())
}
