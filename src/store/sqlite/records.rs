//! Mirrored records: one table per model, written a page at a time with the fetch's cursor.

use anyhow::{Context, Result};
use rusqlite::{params, Connection, OptionalExtension};

use crate::store::{records_table, PageProgress, RecordRow};
use crate::time;

pub(super) fn ensure_table(c: &Connection, table: &str) -> Result<()> {
    c.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS \"{table}\" (
            linked_account_id  TEXT NOT NULL,
            id                 TEXT NOT NULL,
            remote_id          TEXT,
            created_at         TEXT,
            modified_at        TEXT,
            remote_was_deleted INTEGER NOT NULL DEFAULT 0,
            data               TEXT NOT NULL,
            fetched_at         TEXT NOT NULL,
            PRIMARY KEY (linked_account_id, id)
        )"
    ))
    .with_context(|| format!("creating table {table}"))
}

/// Writes one page's records and the window's progress; the caller wraps it in a transaction.
/// The shape of a timestamp in the stored format (`time::format`). A `modified_at` of any
/// other shape (written by an older merge-sync) compares as text against nothing in
/// particular, so it never stops a newer copy from landing.
const STORED_TIME_GLOB: &str =
    "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9][0-9][0-9][0-9]Z";

pub fn write_page(
    c: &Connection,
    table: &str,
    linked_account_id: &str,
    model_id: &str,
    rows: &[RecordRow],
    progress: &PageProgress,
) -> Result<usize> {
    let fetched_at = time::format(progress.now);
    ensure_table(c, table)?;
    let mut written = 0;
    {
        // An older copy never replaces a newer one: pages of overlapping windows and late
        // retries arrive out of order. (A property of the mirror's rows, not a sync policy.)
        let mut stmt = c.prepare_cached(&format!(
            "INSERT INTO \"{table}\" (linked_account_id, id, remote_id, created_at,
                modified_at, remote_was_deleted, data, fetched_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (linked_account_id, id) DO UPDATE SET
                remote_id = excluded.remote_id, created_at = excluded.created_at,
                modified_at = excluded.modified_at,
                remote_was_deleted = excluded.remote_was_deleted,
                data = excluded.data, fetched_at = excluded.fetched_at
             WHERE excluded.modified_at IS NULL OR \"{table}\".modified_at IS NULL
                OR \"{table}\".modified_at NOT GLOB '{STORED_TIME_GLOB}'
                OR excluded.modified_at >= \"{table}\".modified_at"
        ))?;
        for r in rows {
            written += stmt
                .execute(params![
                    linked_account_id,
                    r.id,
                    r.remote_id,
                    r.created_at,
                    r.modified_at,
                    r.remote_was_deleted as i64,
                    r.data,
                    fetched_at
                ])
                .with_context(|| format!("writing {model_id} record {}", r.id))?;
        }
    }
    match progress.next_cursor {
        Some(cursor) => c.execute(
            "UPDATE model_sync_state SET cursor = ?3, window_after = ?4, window_before = ?5,
                cursor_page = COALESCE(cursor_page, 0) + 1
             WHERE linked_account_id = ?1 AND model_id = ?2",
            params![
                linked_account_id,
                model_id,
                cursor,
                progress.window_after.map(time::format),
                time::format(progress.window_before)
            ],
        )?,
        None => c.execute(
            "UPDATE model_sync_state SET cursor = NULL, window_after = NULL,
                window_before = NULL, cursor_page = NULL, last_error = NULL,
                merge_last_sync_finished = ?3,
                last_synced_at = ?4, last_fetched_at = ?5
             WHERE linked_account_id = ?1 AND model_id = ?2",
            params![
                linked_account_id,
                model_id,
                time::format(progress.high_water),
                time::format(progress.started_at),
                fetched_at
            ],
        )?,
    };
    Ok(written)
}

pub fn count(c: &Connection, linked_account_id: &str, model_id: &str) -> Result<i64> {
    let Ok(table) = records_table(model_id) else {
        return Ok(0);
    };
    let exists = c
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [&table],
            |_| Ok(()),
        )
        .optional()?
        .is_some();
    if !exists {
        return Ok(0);
    }
    c.query_row(
        &format!("SELECT COUNT(*) FROM \"{table}\" WHERE linked_account_id = ?1"),
        [linked_account_id],
        |r| r.get(0),
    )
    .with_context(|| format!("counting records in {table}"))
}

pub fn data(
    c: &Connection,
    linked_account_id: &str,
    model_id: &str,
    id: &str,
) -> Result<Option<String>> {
    if count(c, linked_account_id, model_id)? == 0 {
        return Ok(None);
    }
    let table = records_table(model_id)?;
    c.query_row(
        &format!("SELECT data FROM \"{table}\" WHERE linked_account_id = ?1 AND id = ?2"),
        [linked_account_id, id],
        |r| r.get(0),
    )
    .optional()
    .with_context(|| format!("reading a record from {table}"))
}

pub fn tables(c: &Connection) -> Result<Vec<String>> {
    let mut stmt = c.prepare(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT IN
           ('linked_accounts', 'model_sync_state', 'webhook_inbox', 'sqlite_sequence',
            'view_catalogue', 'runs', 'run_accounts', 'counters')",
    )?;
    let rows = stmt.query_map([], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<Vec<String>>>()?)
}
