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

#[cfg(test)]
mod tests {
    use super::*;

    fn view_columns(conn: &Connection, view: &str) -> Vec<String> {
        let stmt = conn.prepare(&format!("SELECT * FROM \"{view}\"")).unwrap();
        stmt.column_names().iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn an_upgrade_with_a_new_catalogue_replaces_every_view() {
        let mut conn = Connection::open_in_memory().unwrap();
        super::super::schema::migrate(&mut conn).unwrap();
        let employee = catalogue().find("hris.Employee").unwrap();
        assert_eq!(
            view_columns(&conn, "hris_employee_view").len(),
            employee.columns.len()
        );
        // What an older merge-sync left: a narrower view, a view of a model it no longer
        // has, and its own catalogue hash.
        conn.execute_batch(
            "DROP VIEW hris_employee_view;
             CREATE VIEW hris_employee_view AS SELECT id FROM hris_employee;
             CREATE VIEW hris_gone_view AS SELECT 1 AS x;
             UPDATE view_catalogue SET hash = 'older';",
        )
        .unwrap();
        sync_views(&mut conn).unwrap();
        let names: Vec<String> = employee.columns.iter().map(|c| c.name.clone()).collect();
        assert_eq!(view_columns(&conn, "hris_employee_view"), names);
        let gone: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE name = 'hris_gone_view'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(gone, 0);
        let views: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'view'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(views as usize, catalogue().models.len());
    }

    #[test]
    fn an_unchanged_catalogue_needs_no_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        super::super::schema::migrate(&mut Connection::open(&path).unwrap()).unwrap();
        let mut read_only =
            Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        sync_views(&mut read_only).unwrap();
    }
}
