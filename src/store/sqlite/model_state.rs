//! Per-(account, model) sync state: what Merge last reported, and how far our mirror got.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, Row};

use crate::store::{ModelState, ObservedStatus};
use crate::time;

const COLUMNS: &str = "model_id, status, last_sync_result, is_initial_sync, ready, \
    merge_last_sync_start, merge_next_sync_start, merge_last_sync_finished, \
    reported_last_sync_finished, hinted_last_sync_finished, last_synced_at, last_fetched_at, \
    cursor, window_after, window_before, last_error, cursor_page";

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
        cursor_page: r.get::<_, Option<i64>>(16)?.map(|p| p.max(0) as u64),
    })
}

pub fn all(c: &Connection, linked_account_id: &str) -> Result<Vec<ModelState>> {
    let mut stmt = c.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM model_sync_state WHERE linked_account_id = ?1 ORDER BY model_id"
    ))?;
    let rows = stmt.query_map([linked_account_id], from_row)?;
    rows.collect::<rusqlite::Result<Vec<_>>>()
        .context("reading model sync state")
}

pub fn save_observed(
    c: &Connection,
    linked_account_id: &str,
    observed: &[ObservedStatus],
) -> Result<()> {
    let mut stmt = c.prepare_cached(
        "INSERT INTO model_sync_state (linked_account_id, model_id, status, last_sync_result,
            is_initial_sync, ready, merge_last_sync_start, merge_next_sync_start,
            reported_last_sync_finished)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
         ON CONFLICT (linked_account_id, model_id) DO UPDATE SET
            status = excluded.status,
            last_sync_result = excluded.last_sync_result,
            is_initial_sync = excluded.is_initial_sync,
            ready = excluded.ready,
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
}

pub fn save_hint(
    c: &Connection,
    linked_account_id: &str,
    model_id: &str,
    hinted: Option<DateTime<Utc>>,
    ready: bool,
) -> Result<()> {
    c.execute(
        "INSERT INTO model_sync_state (linked_account_id, model_id, ready, hinted_last_sync_finished)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (linked_account_id, model_id) DO UPDATE SET
            ready = excluded.ready,
            hinted_last_sync_finished = excluded.hinted_last_sync_finished",
        params![linked_account_id, model_id, ready as i64, fmt(hinted)],
    )
    .with_context(|| format!("saving a webhook's news about {model_id}"))?;
    Ok(())
}

pub fn set_error(
    c: &Connection,
    linked_account_id: &str,
    model_id: &str,
    error: Option<&str>,
) -> Result<()> {
    c.execute(
        "UPDATE model_sync_state SET last_error = ?3
         WHERE linked_account_id = ?1 AND model_id = ?2",
        params![linked_account_id, model_id, error],
    )?;
    Ok(())
}

pub fn clear_cursor(c: &Connection, linked_account_id: &str, model_id: &str) -> Result<()> {
    c.execute(
        "UPDATE model_sync_state SET cursor = NULL, window_after = NULL, window_before = NULL,
            cursor_page = NULL
         WHERE linked_account_id = ?1 AND model_id = ?2",
        params![linked_account_id, model_id],
    )?;
    Ok(())
}
