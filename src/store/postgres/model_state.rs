//! Per-(account, model) sync state: what Merge last reported, and how far our mirror got.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use postgres::{Client, Row};

use crate::store::{ModelState, ObservedStatus};

const COLUMNS: &str = "model_id, status, last_sync_result, is_initial_sync, ready, \
    merge_last_sync_start, merge_next_sync_start, merge_last_sync_finished, \
    reported_last_sync_finished, hinted_last_sync_finished, last_synced_at, last_fetched_at, \
    cursor, window_after, window_before, last_error, cursor_page";

fn from_row(r: &Row) -> ModelState {
    ModelState {
        model_id: r.get(0),
        status: r.get(1),
        last_sync_result: r.get(2),
        is_initial_sync: r.get(3),
        ready: r.get(4),
        merge_last_sync_start: r.get(5),
        merge_next_sync_start: r.get(6),
        merge_last_sync_finished: r.get(7),
        reported_last_sync_finished: r.get(8),
        hinted_last_sync_finished: r.get(9),
        last_synced_at: r.get(10),
        last_fetched_at: r.get(11),
        cursor: r.get(12),
        window_after: r.get(13),
        window_before: r.get(14),
        last_error: r.get(15),
        cursor_page: r.get::<_, Option<i64>>(16).map(|p| p.max(0) as u64),
    }
}

pub fn all(c: &mut Client, linked_account_id: &str) -> Result<Vec<ModelState>> {
    let rows = c
        .query(
            &format!(
                "SELECT {COLUMNS} FROM model_sync_state WHERE linked_account_id = $1 ORDER BY model_id"
            ),
            &[&linked_account_id],
        )
        .context("reading model sync state")?;
    Ok(rows.iter().map(from_row).collect())
}

pub fn save_observed(
    c: &mut Client,
    linked_account_id: &str,
    observed: &[ObservedStatus],
) -> Result<()> {
    let stmt = c.prepare(
        "INSERT INTO model_sync_state (linked_account_id, model_id, status, last_sync_result,
            is_initial_sync, ready, merge_last_sync_start, merge_next_sync_start,
            reported_last_sync_finished)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
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
        c.execute(
            &stmt,
            &[
                &linked_account_id,
                &o.model_id,
                &o.status,
                &o.last_sync_result,
                &o.is_initial_sync,
                &o.ready,
                &o.last_sync_start,
                &o.next_sync_start,
                &o.last_sync_finished,
            ],
        )
        .with_context(|| format!("saving sync state of {}", o.model_id))?;
    }
    Ok(())
}

pub fn save_hint(
    c: &mut Client,
    linked_account_id: &str,
    model_id: &str,
    hinted: Option<DateTime<Utc>>,
    ready: bool,
) -> Result<()> {
    c.execute(
        "INSERT INTO model_sync_state (linked_account_id, model_id, ready, hinted_last_sync_finished)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (linked_account_id, model_id) DO UPDATE SET
            ready = excluded.ready,
            hinted_last_sync_finished = excluded.hinted_last_sync_finished",
        &[&linked_account_id, &model_id, &ready, &hinted],
    )
    .with_context(|| format!("saving a webhook's news about {model_id}"))?;
    Ok(())
}

pub fn set_error(
    c: &mut Client,
    linked_account_id: &str,
    model_id: &str,
    error: Option<&str>,
) -> Result<()> {
    c.execute(
        "UPDATE model_sync_state SET last_error = $3
         WHERE linked_account_id = $1 AND model_id = $2",
        &[&linked_account_id, &model_id, &error],
    )?;
    Ok(())
}

pub fn clear_cursor(c: &mut Client, linked_account_id: &str, model_id: &str) -> Result<()> {
    c.execute(
        "UPDATE model_sync_state SET cursor = NULL, window_after = NULL, window_before = NULL,
            cursor_page = NULL
         WHERE linked_account_id = $1 AND model_id = $2",
        &[&linked_account_id, &model_id],
    )?;
    Ok(())
}
