//! One worker per account across hosts: a session-level advisory lock taken on the store's own
//! connection. It dies with the session: a killed process's connection closes at once, and a
//! host cut off from the network is dropped by the server's TCP keepalives within about 30
//! seconds, so no account stalls for long. Because pages are written on that same connection,
//! a holder that lost its lock can no longer write either.
//!
//! The account's request times live in `account_requests`, so the per-account rate limit
//! holds across hosts: each request is recorded as it is made, on a connection of its own
//! (the pages' reader thread makes requests while the writer thread holds the store's).

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use postgres::Client;
use sha2::{Digest, Sha256};

use super::target::PgTarget;
use crate::store::{AccountLock, RequestJournal};

/// How far back request times are kept: well past the one-minute window, for clock skew.
const KEEP: Duration = Duration::from_secs(300);

pub struct PgLock {
    client: Arc<Mutex<Client>>,
    key: i64,
    linked_account_id: String,
    target: PgTarget,
}

/// The advisory lock key of an account (per schema, so mirrors in two schemas of one
/// database never block each other).
fn key(target: &PgTarget, linked_account_id: &str) -> i64 {
    let name = format!(
        "merge-sync account {}/{linked_account_id}",
        target.schema.as_deref().unwrap_or("")
    );
    i64::from_be_bytes(
        Sha256::digest(name.as_bytes())[..8]
            .try_into()
            .expect("8 bytes"),
    )
}

/// Takes the account's lock on `client`'s session, or `None` when another session holds it.
pub fn try_acquire(
    client: &Arc<Mutex<Client>>,
    target: &PgTarget,
    linked_account_id: &str,
) -> Result<Option<PgLock>> {
    let key = key(target, linked_account_id);
    let got: bool = client
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
        .with_context(|| format!("locking account {linked_account_id} in {target}"))?
        .get(0);
    Ok(got.then(|| PgLock {
        client: client.clone(),
        key,
        linked_account_id: linked_account_id.to_string(),
        target: target.clone(),
    }))
}

impl Drop for PgLock {
    fn drop(&mut self) {
        let mut c = self.client.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = c.execute("SELECT pg_advisory_unlock($1)", &[&self.key]) {
            // The session is gone, and the lock with it.
            log::debug!("unlocking {}: {e}", self.linked_account_id);
        }
    }
}

impl AccountLock for PgLock {
    fn recent_requests(&mut self) -> Vec<SystemTime> {
        let since: DateTime<Utc> = (SystemTime::now() - KEEP).into();
        let rows = self.client.lock().unwrap_or_else(|e| e.into_inner()).query(
            "SELECT requested_at FROM account_requests
                 WHERE linked_account_id = $1 AND requested_at > $2",
            &[&self.linked_account_id, &since],
        );
        match rows {
            Ok(rows) => rows
                .iter()
                .map(|r| SystemTime::from(r.get::<_, DateTime<Utc>>(0)))
                .collect(),
            Err(e) => {
                log::warn!(
                    "{}: cannot read its recent request times ({e}); the rate limit counts this run only",
                    self.linked_account_id
                );
                Vec::new()
            }
        }
    }

    fn save_requests(&mut self, times: &[SystemTime]) -> Result<()> {
        let times: Vec<DateTime<Utc>> = times.iter().map(|t| DateTime::<Utc>::from(*t)).collect();
        let mut c = self.client.lock().unwrap_or_else(|e| e.into_inner());
        let mut tx = c.transaction()?;
        tx.execute(
            "DELETE FROM account_requests WHERE linked_account_id = $1",
            &[&self.linked_account_id],
        )?;
        tx.execute(
            "INSERT INTO account_requests (linked_account_id, requested_at)
             SELECT $1, t FROM unnest($2::timestamptz[]) AS t",
            &[&self.linked_account_id, &times],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn journal(&mut self) -> Result<RequestJournal> {
        let key = pool_key(&self.target);
        let pooled = {
            let mut idle = IDLE.lock().unwrap_or_else(|e| e.into_inner());
            idle.iter()
                .position(|(k, c)| *k == key && !c.is_closed())
                .map(|i| idle.swap_remove(i).1)
        };
        let conn = match pooled {
            Some(conn) => conn,
            None => {
                let mut conn = self.target.connect()?;
                // Request times only pace requests: a server crash may lose the last few
                // without harm, so they need not wait for a WAL flush each.
                conn.batch_execute("SET synchronous_commit = off")
                    .with_context(|| format!("preparing the request log in {}", self.target))?;
                conn
            }
        };
        let mut journal = Journal {
            conn: Some(conn),
            key,
            linked_account_id: self.linked_account_id.clone(),
        };
        Ok(Box::new(move |at: SystemTime| journal.record(at)))
    }
}

/// Request-log connections left by earlier accounts of this process: connecting and
/// authenticating once per account was a large part of a small account's pass.
static IDLE: Mutex<Vec<(String, Client)>> = Mutex::new(Vec::new());

fn pool_key(target: &PgTarget) -> String {
    format!("{target}/{:?}", target.schema)
}

/// One account's request log; its connection goes back to [`IDLE`] when the account is done.
struct Journal {
    conn: Option<Client>,
    key: String,
    linked_account_id: String,
}

impl Journal {
    fn record(&mut self, at: SystemTime) -> Result<()> {
        let at: DateTime<Utc> = at.into();
        let conn = self.conn.as_mut().expect("present until drop");
        conn.execute(
            "INSERT INTO account_requests (linked_account_id, requested_at) VALUES ($1, $2)",
            &[&self.linked_account_id, &at],
        )?;
        Ok(())
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            IDLE.lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((std::mem::take(&mut self.key), conn));
        }
    }
}
