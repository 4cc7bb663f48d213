//! Mirrored records: one table per model (`jsonb` data), a page written by one batched
//! statement (`INSERT … SELECT FROM unnest(…) ON CONFLICT`) in the transaction that also
//! stores the window's cursor.

use std::collections::HashMap;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use postgres::Client;
use sha2::{Digest, Sha256};

use crate::store::{records_table, PageProgress, RecordRow};
use crate::time;

/// Creates the model's table once. Concurrent `CREATE TABLE IF NOT EXISTS` of one name can
/// fail in PostgreSQL, so creators queue on a transaction-level advisory lock per table.
pub fn ensure_table(c: &mut impl postgres::GenericClient, table: &str) -> Result<()> {
    let key = i64::from_be_bytes(
        Sha256::digest(format!("merge-sync table {table}").as_bytes())[..8]
            .try_into()
            .expect("8 bytes"),
    );
    c.execute("SELECT pg_advisory_xact_lock($1)", &[&key])?;
    c.batch_execute(&format!(
        "CREATE TABLE IF NOT EXISTS \"{table}\" (
            linked_account_id  text NOT NULL,
            id                 text NOT NULL,
            remote_id          text,
            created_at         timestamptz,
            modified_at        timestamptz,
            remote_was_deleted boolean NOT NULL DEFAULT false,
            data               jsonb NOT NULL,
            fetched_at         timestamptz NOT NULL,
            PRIMARY KEY (linked_account_id, id)
        )"
    ))
    .with_context(|| format!("creating table {table}"))
}

/// The statement that upserts a page into `table`. An older copy never replaces a newer one:
/// pages of overlapping windows and late retries arrive out of order.
pub fn upsert_sql(table: &str) -> String {
    format!(
        "INSERT INTO \"{table}\" AS t (linked_account_id, id, remote_id, created_at, modified_at,
            remote_was_deleted, data, fetched_at)
         SELECT $1, r.id, r.remote_id, r.created_at, r.modified_at, r.deleted, r.data::jsonb, $2
         FROM unnest($3::text[], $4::text[], $5::timestamptz[], $6::timestamptz[], $7::bool[],
                     $8::text[]) AS r(id, remote_id, created_at, modified_at, deleted, data)
         ON CONFLICT (linked_account_id, id) DO UPDATE SET
            remote_id = excluded.remote_id, created_at = excluded.created_at,
            modified_at = excluded.modified_at,
            remote_was_deleted = excluded.remote_was_deleted,
            data = excluded.data, fetched_at = excluded.fetched_at
         WHERE excluded.modified_at IS NULL OR t.modified_at IS NULL
            OR excluded.modified_at >= t.modified_at"
    )
}

/// One statement cannot touch a row twice, so a record repeated within a page is kept once:
/// the copy a row-by-row upsert would have left.
fn dedup(rows: &[RecordRow]) -> Vec<&RecordRow> {
    let mut at: HashMap<&str, usize> = HashMap::with_capacity(rows.len());
    let mut out: Vec<&RecordRow> = Vec::with_capacity(rows.len());
    for r in rows {
        match at.get(r.id.as_str()) {
            None => {
                at.insert(&r.id, out.len());
                out.push(r);
            }
            Some(&i) => {
                let old = out[i];
                let newer = match (&r.modified_at, &old.modified_at) {
                    (Some(new), Some(old)) => time::parse(new) >= time::parse(old),
                    _ => true,
                };
                if newer {
                    out[i] = r;
                }
            }
        }
    }
    out
}

/// Writes one page's records and the window's progress; the caller wraps it in a transaction.
pub fn write_page(
    c: &mut Client,
    upsert: &postgres::Statement,
    linked_account_id: &str,
    model_id: &str,
    rows: &[RecordRow],
    progress: &PageProgress,
) -> Result<usize> {
    let rows = dedup(rows);
    let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
    let remote_ids: Vec<Option<&str>> = rows.iter().map(|r| r.remote_id.as_deref()).collect();
    let ts = |v: &Option<String>| -> Option<DateTime<Utc>> { v.as_deref().and_then(time::parse) };
    let created: Vec<Option<DateTime<Utc>>> = rows.iter().map(|r| ts(&r.created_at)).collect();
    let modified: Vec<Option<DateTime<Utc>>> = rows.iter().map(|r| ts(&r.modified_at)).collect();
    let deleted: Vec<bool> = rows.iter().map(|r| r.remote_was_deleted).collect();
    let data: Vec<&str> = rows.iter().map(|r| r.data.as_str()).collect();
    let written = c
        .execute(
            upsert,
            &[
                &linked_account_id,
                &progress.now,
                &ids,
                &remote_ids,
                &created,
                &modified,
                &deleted,
                &data,
            ],
        )
        .with_context(|| format!("writing a page of {model_id} records"))?;
    match progress.next_cursor {
        Some(cursor) => c.execute(
            "UPDATE model_sync_state SET cursor = $3, window_after = $4, window_before = $5,
                cursor_page = COALESCE(cursor_page, 0) + 1
             WHERE linked_account_id = $1 AND model_id = $2",
            &[
                &linked_account_id,
                &model_id,
                &cursor,
                &progress.window_after,
                &progress.window_before,
            ],
        )?,
        None => c.execute(
            "UPDATE model_sync_state SET cursor = NULL, window_after = NULL,
                window_before = NULL, cursor_page = NULL, last_error = NULL,
                merge_last_sync_finished = $3,
                last_synced_at = $4, last_fetched_at = $5
             WHERE linked_account_id = $1 AND model_id = $2",
            &[
                &linked_account_id,
                &model_id,
                &progress.high_water,
                &progress.started_at,
                &progress.now,
            ],
        )?,
    };
    Ok(written as usize)
}

fn exists(c: &mut Client, table: &str) -> Result<bool> {
    Ok(
        c.query_one("SELECT to_regclass(quote_ident($1)) IS NOT NULL", &[&table])?
            .get(0),
    )
}

pub fn count(c: &mut Client, linked_account_id: &str, model_id: &str) -> Result<i64> {
    let Ok(table) = records_table(model_id) else {
        return Ok(0);
    };
    if !exists(c, &table)? {
        return Ok(0);
    }
    Ok(c.query_one(
        &format!("SELECT count(*) FROM \"{table}\" WHERE linked_account_id = $1"),
        &[&linked_account_id],
    )
    .with_context(|| format!("counting records in {table}"))?
    .get(0))
}

pub fn data(
    c: &mut Client,
    linked_account_id: &str,
    model_id: &str,
    id: &str,
) -> Result<Option<String>> {
    let table = records_table(model_id)?;
    if !exists(c, &table)? {
        return Ok(None);
    }
    Ok(c.query_opt(
        &format!("SELECT data::text FROM \"{table}\" WHERE linked_account_id = $1 AND id = $2"),
        &[&linked_account_id, &id],
    )
    .with_context(|| format!("reading a record from {table}"))?
    .map(|r| r.get(0)))
}

/// The records tables: the base tables of our schema shaped like one.
pub fn tables(c: &mut Client) -> Result<Vec<String>> {
    let rows = c.query(
        "SELECT c.table_name::text FROM information_schema.columns c
         JOIN information_schema.tables t
           ON t.table_schema = c.table_schema AND t.table_name = c.table_name
         WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'
           AND c.column_name IN ('remote_was_deleted', 'fetched_at', 'data')
         GROUP BY c.table_name HAVING count(*) = 3 ORDER BY 1",
        &[],
    )?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}
