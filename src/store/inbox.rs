//! The webhook inbox: verified webhooks stored durably until `poll` or `serve` applies them.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use rusqlite::params;
use sha2::{Digest, Sha256};

use super::Store;
use crate::time;

/// A stored webhook waiting to be applied.
#[derive(Debug, Clone)]
pub struct InboxItem {
    pub id: i64,
    pub received_at: String,
    pub body: Vec<u8>,
}

impl Store {
    /// Stores a verified webhook body. Returns `false` when the exact same body was already
    /// stored (Merge retried it), which is not an error.
    pub fn enqueue_webhook(
        &mut self,
        body: &[u8],
        event: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let hash = format!("{:x}", Sha256::digest(body));
        self.write(|tx| {
            let n = tx
                .execute(
                    "INSERT OR IGNORE INTO webhook_inbox (received_at, event, body, body_sha256)
                     VALUES (?1, ?2, ?3, ?4)",
                    params![time::format(now), event, body, hash],
                )
                .context("storing the webhook")?;
            Ok(n == 1)
        })
    }

    /// Webhooks not yet applied, oldest first.
    pub fn pending_webhooks(&self) -> Result<Vec<InboxItem>> {
        let mut stmt = self.conn.prepare(
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

    pub fn mark_webhook_applied(
        &mut self,
        id: i64,
        outcome: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "UPDATE webhook_inbox SET applied_at = ?2, outcome = ?3 WHERE id = ?1",
                params![id, time::format(now), outcome],
            )?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_duplicates_are_stored_once() {
        let mut store = Store::open_in_memory().unwrap();
        let now = Utc::now();
        assert!(store.enqueue_webhook(b"{\"a\":1}", Some("X"), now).unwrap());
        assert!(!store.enqueue_webhook(b"{\"a\":1}", Some("X"), now).unwrap());
        let pending = store.pending_webhooks().unwrap();
        assert_eq!(pending.len(), 1);
        store
            .mark_webhook_applied(pending[0].id, "applied", now)
            .unwrap();
        assert!(store.pending_webhooks().unwrap().is_empty());
    }
}
