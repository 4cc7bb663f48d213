//! Per-(account, model) sync state: what Merge last reported, and how far our mirror got.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use rusqlite::{params, Row};

use super::Store;
use crate::time;

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
}

/// What one sync-status pass says about a model, after the detection rules ran.
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

const COLUMNS: &str = "model_id, status, last_sync_result, is_initial_sync, ready, \
    merge_last_sync_start, merge_next_sync_start, merge_last_sync_finished, \
    reported_last_sync_finished, hinted_last_sync_finished, last_synced_at, last_fetched_at, \
    cursor, window_after, window_before, last_error";

fn ts(v: Option<String>) -> Option<DateTime<Utc>> {
    v.as_deref().and_then(time::parse)
}

fn fmt(v: Option<DateTime<Utc>>) -> Option<String> {
    v.map(time::format)
}

fn from_row(r: &Row) -> rusqlite::Result<ModelState> {
    Ok(ModelState {
        model_id: r.get(0)?,
        status: r.get(1)?,
        last_sync_result: r.get(2)?,
        is_initial_sync: r.get::<_, Option<i64>>(3)?.map(|v| v != 0),
        ready: r.get::<_, i64>(4)? != 0,
        merge_last_sync_start: ts(r.get(5)?),
        merge_next_sync_start: ts(r.get(6)?),
        merge_last_sync_finished: ts(r.get(7)?),
        reported_last_sync_finished: ts(r.get(8)?),
        hinted_last_sync_finished: ts(r.get(9)?),
        last_synced_at: ts(r.get(10)?),
        last_fetched_at: ts(r.get(11)?),
        cursor: r.get(12)?,
        window_after: ts(r.get(13)?),
        window_before: ts(r.get(14)?),
        last_error: r.get(15)?,
    })
}

impl Store {
    /// Every model row of one account, ordered by model id.
    pub fn model_states(&self, linked_account_id: &str) -> Result<Vec<ModelState>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {COLUMNS} FROM model_sync_state WHERE linked_account_id = ?1 ORDER BY model_id"
        ))?;
        let rows = stmt.query_map([linked_account_id], from_row)?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .context("reading model sync state")
    }

    /// Saves what sync-status said, keeping our own progress columns. `ready` only ever goes
    /// from 0 to 1: once a model's initial sync is confirmed, a later report cannot undo it.
    pub fn save_observed(
        &mut self,
        linked_account_id: &str,
        observed: &[ObservedStatus],
    ) -> Result<()> {
        self.write(|tx| {
            let mut stmt = tx.prepare(
                "INSERT INTO model_sync_state (linked_account_id, model_id, status, last_sync_result,
                    is_initial_sync, ready, merge_last_sync_start, merge_next_sync_start,
                    reported_last_sync_finished)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT (linked_account_id, model_id) DO UPDATE SET
                    status = excluded.status,
                    last_sync_result = excluded.last_sync_result,
                    is_initial_sync = excluded.is_initial_sync,
                    ready = MAX(ready, excluded.ready),
                    merge_last_sync_start = excluded.merge_last_sync_start,
                    merge_next_sync_start = excluded.merge_next_sync_start,
                    reported_last_sync_finished = excluded.reported_last_sync_finished",
            )?;
            for o in observed {
                stmt.execute(params![
                    linked_account_id,
                    o.model_id,
                    o.status,
                    o.last_sync_result,
                    o.is_initial_sync as i64,
                    o.ready as i64,
                    fmt(o.last_sync_start),
                    fmt(o.next_sync_start),
                    fmt(o.last_sync_finished),
                ])
                .with_context(|| format!("saving sync state of {}", o.model_id))?;
            }
            Ok(())
        })
    }

    /// Records a webhook's news about a model: the finished sync it announces (kept only if
    /// newer than what we hold) and, before initial sync completes, that the model is ready.
    pub fn save_hint(
        &mut self,
        linked_account_id: &str,
        model_id: &str,
        finished: Option<DateTime<Utc>>,
        ready: bool,
    ) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO model_sync_state (linked_account_id, model_id, ready, hinted_last_sync_finished)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (linked_account_id, model_id) DO UPDATE SET
                    ready = MAX(ready, excluded.ready),
                    hinted_last_sync_finished = CASE
                        WHEN excluded.hinted_last_sync_finished IS NULL THEN hinted_last_sync_finished
                        WHEN hinted_last_sync_finished IS NULL
                          OR excluded.hinted_last_sync_finished > hinted_last_sync_finished
                        THEN excluded.hinted_last_sync_finished
                        ELSE hinted_last_sync_finished END",
                params![linked_account_id, model_id, ready as i64, fmt(finished)],
            )?;
            Ok(())
        })
    }

    /// Records an error against one model (shown in `status`); progress is kept.
    pub fn set_model_error(
        &mut self,
        linked_account_id: &str,
        model_id: &str,
        error: Option<&str>,
    ) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "UPDATE model_sync_state SET last_error = ?3
                 WHERE linked_account_id = ?1 AND model_id = ?2",
                params![linked_account_id, model_id, error],
            )?;
            Ok(())
        })
    }

    /// Forgets an unfinished window (Merge rejected its cursor), so it restarts from page one.
    pub fn clear_cursor(&mut self, linked_account_id: &str, model_id: &str) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "UPDATE model_sync_state SET cursor = NULL, window_after = NULL, window_before = NULL
                 WHERE linked_account_id = ?1 AND model_id = ?2",
                params![linked_account_id, model_id],
            )?;
            Ok(())
        })
    }
}
