//! The webhook inbox, shared by every `serve` and `poll` on every host: a webhook is claimed
//! with `FOR UPDATE SKIP LOCKED` inside the transaction that applies it, so each is applied
//! exactly once and a dead claimant's webhook goes back to the queue with its transaction.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use postgres::Client;
use sha2::{Digest, Sha256};

use crate::store::InboxItem;
use crate::time;

pub fn enqueue(
    c: &mut Client,
    body: &[u8],
    event: Option<&str>,
    now: DateTime<Utc>,
) -> Result<bool> {
    let hash = format!("{:x}", Sha256::digest(body));
    let n = c
        .execute(
            "INSERT INTO webhook_inbox (received_at, event, body, body_sha256)
             VALUES ($1, $2, $3, $4) ON CONFLICT (body_sha256) DO NOTHING",
            &[&now, &event, &body, &hash],
        )
        .context("storing the webhook")?;
    Ok(n == 1)
}

pub fn claim_oldest(c: &mut Client) -> Result<Option<InboxItem>> {
    let row = c
        .query_opt(
            "SELECT id, received_at, body FROM webhook_inbox WHERE applied_at IS NULL
             ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED",
            &[],
        )
        .context("reading the webhook inbox")?;
    Ok(row.map(|r| InboxItem {
        id: r.get(0),
        received_at: time::format(r.get(1)),
        body: r.get(2),
    }))
}

pub fn mark_applied(
    c: &mut Client,
    id: i64,
    outcome: &str,
    linked_account_id: Option<&str>,
    redacted_body: Option<&[u8]>,
    now: DateTime<Utc>,
) -> Result<()> {
    c.execute(
        "UPDATE webhook_inbox SET applied_at = $2, outcome = $3, linked_account_id = $4,
            body = COALESCE($5, body)
         WHERE id = $1",
        &[&id, &now, &outcome, &linked_account_id, &redacted_body],
    )?;
    Ok(())
}

pub fn pending(c: &mut Client) -> Result<Vec<InboxItem>> {
    let rows = c
        .query(
            "SELECT id, received_at, body FROM webhook_inbox WHERE applied_at IS NULL ORDER BY id",
            &[],
        )
        .context("reading the webhook inbox")?;
    Ok(rows
        .iter()
        .map(|r| InboxItem {
            id: r.get(0),
            received_at: time::format(r.get(1)),
            body: r.get(2),
        })
        .collect())
}

pub fn prune(c: &mut Client, before: DateTime<Utc>) -> Result<usize> {
    Ok(c.execute(
        "DELETE FROM webhook_inbox WHERE applied_at IS NOT NULL AND received_at < $1",
        &[&before],
    )
    .context("pruning the webhook inbox")? as usize)
}

pub fn delete_account(
    c: &mut Client,
    linked_account_id: &str,
    pending_ids: &[i64],
) -> Result<usize> {
    let n = c.execute(
        "DELETE FROM webhook_inbox WHERE linked_account_id = $1
            OR (applied_at IS NULL AND id = ANY($2))",
        &[&linked_account_id, &pending_ids],
    )?;
    Ok(n as usize)
}

pub fn backlog(c: &mut Client) -> Result<(u64, Option<DateTime<Utc>>)> {
    let r = c
        .query_one(
            "SELECT count(*), min(received_at) FROM webhook_inbox WHERE applied_at IS NULL",
            &[],
        )
        .context("reading the webhook inbox")?;
    Ok((r.get::<_, i64>(0).max(0) as u64, r.get(1)))
}
