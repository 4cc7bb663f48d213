//! The typed views in SQLite: (re)created after the numbered migrations whenever the view
//! catalogue changes, and read row by row for `export`.

use anyhow::{Context, Result};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use super::records::ensure_table;
use crate::store::{Cell, ExportFilter};
use crate::views::ddl::{self, Dialect};
use crate::views::{catalogue, ModelView};

/// Brings the views up to the catalogue this binary carries. The catalogue's hash is stored
/// with them, so an upgrade that learns new fields replaces every view once, and an
/// unchanged catalogue costs one read. Every model's records table is created with its view,
/// so a view of a model not fetched yet is empty rather than an error.
pub fn sync_views(conn: &mut Connection) -> Result<()> {
    let hash = ddl::catalogue_hash(catalogue(), Dialect::Sqlite);
    if stored_hash(conn)?.as_deref() == Some(hash.as_str()) {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // Another process may have done it while we waited for the write lock.
    if stored_hash(&tx)?.as_deref() == Some(hash.as_str()) {
        return Ok(());
    }
    let old: Vec<String> = {
        let mut stmt = tx.prepare("SELECT name FROM sqlite_master WHERE type = 'view'")?;
        let names = stmt.query_map([], |r| r.get(0))?;
        names.collect::<rusqlite::Result<_>>()?
    };
    for view in old {
        tx.execute_batch(&ddl::drop_view(&view))
            .with_context(|| format!("dropping view {view}"))?;
    }
    for model in &catalogue().models {
        ensure_table(&tx, &model.table)?;
        tx.execute_batch(&ddl::create_view(model, Dialect::Sqlite))
            .with_context(|| format!("creating view {}", model.view))?;
    }
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS view_catalogue (hash TEXT NOT NULL); DELETE FROM view_catalogue;",
    )?;
    tx.execute("INSERT INTO view_catalogue (hash) VALUES (?1)", [&hash])?;
    tx.commit().context("committing the typed views")?;
    Ok(())
}

fn stored_hash(conn: &Connection) -> Result<Option<String>> {
    let exists = conn
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'view_catalogue'",
            [],
            |_| Ok(()),
        )
        .optional()?
        .is_some();
    if !exists {
        return Ok(None);
    }
    Ok(conn
        .query_row("SELECT hash FROM view_catalogue", [], |r| r.get(0))
        .optional()?)
}

/// Streams the view's rows, in (`linked_account_id`, `id`) order, to `row`; one row is held
/// at a time. Returns how many rows were passed.
pub fn export(
    conn: &Connection,
    model: &ModelView,
    filter: &ExportFilter,
    row: &mut dyn FnMut(&[Cell]) -> Result<()>,
) -> Result<u64> {
    let sql = format!(
        "SELECT * FROM \"{view}\" WHERE (?1 IS NULL OR linked_account_id = ?1)
           AND (?2 OR remote_was_deleted = 0)
         ORDER BY linked_account_id, id",
        view = model.view
    );
    let mut stmt = conn
        .prepare(&sql)
        .with_context(|| format!("reading view {}", model.view))?;
    let width = stmt.column_count();
    let mut rows = stmt.query(rusqlite::params![
        filter.linked_account_id,
        filter.include_deleted
    ])?;
    let mut cells: Vec<Cell> = Vec::with_capacity(width);
    let mut n = 0;
    while let Some(r) = rows
        .next()
        .with_context(|| format!("reading view {}", model.view))?
    {
        cells.clear();
        for i in 0..width {
            cells.push(match r.get_ref(i)? {
                ValueRef::Null => Cell::Null,
                ValueRef::Integer(v) => Cell::Integer(v),
                ValueRef::Real(v) => Cell::Real(v),
                ValueRef::Text(t) | ValueRef::Blob(t) => {
                    Cell::Text(String::from_utf8_lossy(t).into_owned())
                }
            });
        }
        row(&cells)?;
        n += 1;
    }
    Ok(n)
}
