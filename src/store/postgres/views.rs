//! The typed views in PostgreSQL: (re)created when the view catalogue changes, under the
//! migration lock, and read row by row for `export`.
//!
//! Unlike an SQLite state file, the schema may hold the application's own views: only the
//! views merge-sync made (recorded in `view_catalogue`) and the catalogue's names are dropped.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use postgres::fallible_iterator::FallibleIterator;
use postgres::Client;

use super::records::ensure_table;
use crate::store::{Cell, ExportFilter};
use crate::views::ddl::{self, Dialect};
use crate::views::{catalogue, Kind, ModelView};

fn stored_hash(c: &mut impl postgres::GenericClient) -> Result<Option<String>> {
    let exists: bool = c
        .query_one("SELECT to_regclass('view_catalogue') IS NOT NULL", &[])?
        .get(0);
    if !exists {
        return Ok(None);
    }
    Ok(c.query_opt("SELECT hash FROM view_catalogue", &[])?
        .map(|r| r.get(0)))
}

/// Brings the views up to the catalogue this binary carries (see the SQLite twin). Every
/// model's records table is created with its view.
pub fn sync_views(client: &mut Client, lock_key: i64) -> Result<()> {
    let hash = ddl::catalogue_hash(catalogue(), Dialect::Postgres);
    if stored_hash(client)?.as_deref() == Some(hash.as_str()) {
        return Ok(());
    }
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&lock_key])?;
    if stored_hash(&mut tx)?.as_deref() == Some(hash.as_str()) {
        return Ok(());
    }
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS view_catalogue (hash text NOT NULL, views text[] NOT NULL)",
    )?;
    let mut old: Vec<String> = tx
        .query_opt("SELECT views FROM view_catalogue", &[])?
        .map(|r| r.get(0))
        .unwrap_or_default();
    old.extend(catalogue().models.iter().map(|m| m.view.clone()));
    for view in old {
        tx.batch_execute(&ddl::drop_view(&view))
            .with_context(|| format!("dropping view {view}"))?;
    }
    tx.batch_execute(ddl::POSTGRES_HELPERS)
        .context("creating the views' helper functions")?;
    let mut made = Vec::new();
    for model in &catalogue().models {
        ensure_table(&mut tx, &model.table)?;
        tx.batch_execute(&ddl::create_view(model, Dialect::Postgres))
            .with_context(|| format!("creating view {}", model.view))?;
        made.push(model.view.clone());
    }
    tx.execute("DELETE FROM view_catalogue", &[])?;
    tx.execute(
        "INSERT INTO view_catalogue (hash, views) VALUES ($1, $2)",
        &[&hash, &made],
    )?;
    tx.commit().context("committing the typed views")?;
    Ok(())
}

/// Streams the view's rows, in (`linked_account_id`, `id`) order, to `row`; the server sends
/// them as they are read, one row held at a time. Returns how many rows were passed.
pub fn export(
    c: &mut Client,
    model: &ModelView,
    filter: &ExportFilter,
    row: &mut dyn FnMut(&[Cell]) -> Result<()>,
) -> Result<u64> {
    // Numbers and JSON come as text (exact decimals, JSON as written); the rest natively.
    let columns: Vec<String> = model
        .columns
        .iter()
        .map(|col| {
            let name = format!("\"{}\"", col.name.replace('"', "\"\""));
            match col.kind {
                Kind::Number | Kind::Json | Kind::IdList => format!("{name}::text"),
                _ => name,
            }
        })
        .collect();
    let sql = format!(
        "SELECT {} FROM \"{view}\" WHERE ($1::text IS NULL OR linked_account_id = $1)
           AND ($2 OR NOT remote_was_deleted)
         ORDER BY linked_account_id, id",
        columns.join(", "),
        view = model.view
    );
    let params: [&(dyn postgres::types::ToSql + Sync); 2] =
        [&filter.linked_account_id, &filter.include_deleted];
    let mut rows = c
        .query_raw(&sql, params)
        .with_context(|| format!("reading view {}", model.view))?;
    let mut cells: Vec<Cell> = Vec::with_capacity(model.columns.len());
    let mut n = 0;
    while let Some(r) = rows
        .next()
        .with_context(|| format!("reading view {}", model.view))?
    {
        cells.clear();
        for (i, col) in model.columns.iter().enumerate() {
            let cell = match col.kind {
                Kind::Integer => r.get::<_, Option<i64>>(i).map(Cell::Integer),
                Kind::Boolean => r.get::<_, Option<bool>>(i).map(Cell::Bool),
                Kind::Timestamp => r
                    .get::<_, Option<DateTime<Utc>>>(i)
                    .map(|t| Cell::Text(crate::time::format(t))),
                _ => r.get::<_, Option<String>>(i).map(Cell::Text),
            };
            cells.push(cell.unwrap_or(Cell::Null));
        }
        row(&cells)?;
        n += 1;
    }
    Ok(n)
}
