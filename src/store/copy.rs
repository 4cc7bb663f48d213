//! Moving up: copies an SQLite state file, table by table and row by row, into an empty
//! PostgreSQL database, so `poll` there continues where the file left off.
//!
//! The copy is generic over tables: every table of the state file that has a PostgreSQL twin
//! of the same name (accounts, sync state with its cursors, the webhook inbox, each model's
//! records, and whatever later migrations add) is copied column by column, converted to the
//! twin's native type. Records tables are created in PostgreSQL as the backend would. The
//! whole copy is one PostgreSQL transaction, read from one SQLite snapshot: killed at any
//! instant, it leaves the target empty and can simply be run again. Rows stream through in
//! batches, so memory stays flat however big the file is.

use std::path::Path;

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Utc};
use postgres::types::ToSql;
use rusqlite::types::ValueRef;

use super::postgres::{records as pg_records, PgStore, PgTarget};
use super::sqlite::{real_path, SqliteStore};
use super::StoreError;
use crate::time;

/// Rows per `INSERT … SELECT FROM unnest(…)`: large enough to amortise round trips, small
/// enough that a batch of big records stays a few megabytes.
const BATCH_ROWS: usize = 500;

/// Tables each backend keeps for itself (schema versions, typed-view bookkeeping): never copied.
const BACKEND_OWN: &[&str] = &["view_catalogue", "merge_sync_migrations"];

/// How many rows of one table were copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopiedTable {
    pub table: String,
    pub rows: u64,
}

/// Copies the state file at `source` into the empty database at `target`. `progress` hears
/// each table's name and running row count after every batch. Returns the tables in copy
/// order with their row counts.
pub fn sqlite_to_postgres(
    source: &Path,
    target: &PgTarget,
    progress: &mut dyn FnMut(&str, u64),
) -> Result<Vec<CopiedTable>> {
    // Both sides at the current schema first: an older file is migrated as any command would,
    // and the target gets its tables (and typed views) from the backend itself.
    drop(SqliteStore::open(source)?);
    drop(PgStore::open(target)?);

    let mut sqlite = rusqlite::Connection::open_with_flags(
        real_path(source),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .with_context(|| format!("opening state file {}", source.display()))?;
    sqlite.busy_timeout(std::time::Duration::from_secs(30))?;
    // One snapshot of the whole file, even if a cron run is still writing to it.
    let snapshot = sqlite.transaction()?;

    let mut pg = target.connect()?;
    let mut tx = pg
        .transaction()
        .with_context(|| format!("starting the copy into {target}"))?;

    let tables = source_tables(&snapshot)?;
    let mut copied = Vec::with_capacity(tables.len());
    let mut plans = Vec::with_capacity(tables.len());
    for table in &tables {
        if !pg_table_exists(&mut tx, table)? {
            if is_records_table(&snapshot, table)? {
                pg_records::ensure_table(&mut tx, table)?;
            } else if count_rows(&snapshot, table)? == 0 {
                continue;
            } else {
                bail!(
                    "table {table} of the state file has no counterpart in {target}; this \
                     merge-sync cannot copy it (is the state file from a newer merge-sync?)"
                );
            }
        }
        plans.push(plan_table(&snapshot, &mut tx, table)?);
    }
    let plans = referenced_first(&mut tx, plans)?;
    // Refuse before writing anything: copy-state fills an empty database, never merges.
    for plan in &plans {
        lock_and_check_empty(&mut tx, &plan.table, target)?;
    }
    for existing in pg_records_tables(&mut tx)? {
        if !plans.iter().any(|p| p.table == existing) {
            lock_and_check_empty(&mut tx, &existing, target)?;
        }
    }

    for plan in &plans {
        let rows = copy_table(&snapshot, &mut tx, plan, progress)
            .with_context(|| format!("copying table {}", plan.table))?;
        reset_identity(&mut tx, plan)?;
        copied.push(CopiedTable {
            table: plan.table.clone(),
            rows,
        });
    }
    tx.commit()
        .with_context(|| format!("committing the copy into {target}"))?;
    Ok(copied)
}

/// The state file's tables: accounts first, then the remaining plain tables, then records
/// tables (the copy then moves tables referred to by foreign keys first).
fn source_tables(c: &rusqlite::Connection) -> Result<Vec<String>> {
    let mut stmt = c.prepare(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'
         ORDER BY name",
    )?;
    let names: Vec<String> = stmt
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut ordered = Vec::with_capacity(names.len());
    let mut plain = Vec::new();
    let mut records = Vec::new();
    for name in names {
        if BACKEND_OWN.contains(&name.as_str()) {
            continue;
        }
        if name == "linked_accounts" {
            ordered.push(name);
        } else if is_records_table(c, &name)? {
            records.push(name);
        } else {
            plain.push(name);
        }
    }
    ordered.extend(plain);
    ordered.extend(records);
    Ok(ordered)
}

/// Orders the tables so that each comes after the tables its foreign keys refer to (in the
/// target's schema), keeping the given order otherwise.
fn referenced_first(
    tx: &mut postgres::Transaction,
    mut plans: Vec<TablePlan>,
) -> Result<Vec<TablePlan>> {
    let edges: Vec<(String, String)> = tx
        .query(
            "SELECT child.relname::text, parent.relname::text
             FROM pg_constraint c
             JOIN pg_class child ON child.oid = c.conrelid
             JOIN pg_class parent ON parent.oid = c.confrelid
             JOIN pg_namespace n ON n.oid = child.relnamespace
             WHERE c.contype = 'f' AND n.nspname = current_schema()",
            &[],
        )?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let mut ordered: Vec<TablePlan> = Vec::with_capacity(plans.len());
    while !plans.is_empty() {
        let ready = plans.iter().position(|p| {
            edges.iter().all(|(child, parent)| {
                child != &p.table || parent == &p.table || !plans.iter().any(|q| &q.table == parent)
            })
        });
        // A cycle cannot be ordered; the inserts then fail with the constraint named.
        ordered.push(plans.remove(ready.unwrap_or(0)));
    }
    Ok(ordered)
}

/// Shaped like a model's records table (the same test the PostgreSQL backend uses).
fn is_records_table(c: &rusqlite::Connection, table: &str) -> Result<bool> {
    let n: i64 = c.query_row(
        "SELECT count(*) FROM pragma_table_info(?1)
         WHERE name IN ('remote_was_deleted', 'fetched_at', 'data')",
        [table],
        |r| r.get(0),
    )?;
    Ok(n == 3 && table != "webhook_inbox")
}

fn count_rows(c: &rusqlite::Connection, table: &str) -> Result<i64> {
    Ok(
        c.query_row(&format!("SELECT count(*) FROM \"{table}\""), [], |r| {
            r.get(0)
        })?,
    )
}

/// The records tables already in the target (the backend's test: the three record columns).
fn pg_records_tables(tx: &mut postgres::Transaction) -> Result<Vec<String>> {
    let rows = tx.query(
        "SELECT c.table_name::text FROM information_schema.columns c
         JOIN information_schema.tables t
           ON t.table_schema = c.table_schema AND t.table_name = c.table_name
         WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'
           AND c.column_name IN ('remote_was_deleted', 'fetched_at', 'data')
         GROUP BY c.table_name HAVING count(*) = 3",
        &[],
    )?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

fn pg_table_exists(tx: &mut postgres::Transaction, table: &str) -> Result<bool> {
    Ok(tx
        .query_one(
            "SELECT count(*) > 0 FROM information_schema.tables
             WHERE table_schema = current_schema() AND table_name = $1
               AND table_type = 'BASE TABLE'",
            &[&table],
        )?
        .get(0))
}

/// Holds `table` against concurrent writers until the copy commits (a second copy-state
/// waits, then finds rows and refuses) and refuses it if it has rows already.
fn lock_and_check_empty(
    tx: &mut postgres::Transaction,
    table: &str,
    target: &PgTarget,
) -> Result<()> {
    tx.batch_execute(&format!("LOCK TABLE \"{table}\" IN EXCLUSIVE MODE"))
        .with_context(|| format!("locking table {table} in {target}"))?;
    let has_rows: bool = tx
        .query_one(&format!("SELECT EXISTS (SELECT 1 FROM \"{table}\")"), &[])?
        .get(0);
    if has_rows {
        return Err(StoreError::CopyTargetNotEmpty {
            target: target.to_string(),
            table: table.to_string(),
        }
        .into());
    }
    Ok(())
}

/// How one column travels: the PostgreSQL type it lands in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Json,
    Bool,
    Int,
    Float,
    Time,
    Bytes,
}

impl Kind {
    fn from_udt(udt: &str) -> Option<Kind> {
        Some(match udt {
            "text" | "varchar" | "bpchar" => Kind::Text,
            "jsonb" | "json" => Kind::Json,
            "bool" => Kind::Bool,
            "int2" | "int4" | "int8" => Kind::Int,
            "float4" | "float8" | "numeric" => Kind::Float,
            "timestamptz" | "timestamp" => Kind::Time,
            "bytea" => Kind::Bytes,
            _ => return None,
        })
    }

    /// The array type the values are sent as.
    fn array(self) -> &'static str {
        match self {
            Kind::Text | Kind::Json => "text[]",
            Kind::Bool => "bool[]",
            Kind::Int => "int8[]",
            Kind::Float => "float8[]",
            Kind::Time => "timestamptz[]",
            Kind::Bytes => "bytea[]",
        }
    }
}

struct Column {
    name: String,
    kind: Kind,
    /// The PostgreSQL type, for the cast from the sent array's element type.
    pg_type: String,
    identity: bool,
}

struct TablePlan {
    table: String,
    columns: Vec<Column>,
    insert: String,
}

/// Matches the state file's columns with the PostgreSQL twin's. A column the twin lacks is
/// refused (its data would be lost); one only the twin has keeps its default.
fn plan_table(
    sqlite: &rusqlite::Connection,
    tx: &mut postgres::Transaction,
    table: &str,
) -> Result<TablePlan> {
    let mut stmt = sqlite.prepare("SELECT name FROM pragma_table_info(?1) ORDER BY cid")?;
    let source_columns: Vec<String> = stmt
        .query_map([table], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let pg_columns = tx.query(
        "SELECT column_name::text, udt_name::text, format_type(a.atttypid, a.atttypmod),
                is_identity = 'YES' OR coalesce(column_default, '') LIKE 'nextval(%'
         FROM information_schema.columns c
         JOIN pg_attribute a
           ON a.attrelid = (quote_ident(c.table_schema) || '.' || quote_ident(c.table_name))::regclass
          AND a.attname = c.column_name
         WHERE c.table_schema = current_schema() AND c.table_name = $1",
        &[&table],
    )?;
    let mut columns = Vec::with_capacity(source_columns.len());
    for name in source_columns {
        let Some(row) = pg_columns.iter().find(|r| r.get::<_, String>(0) == name) else {
            bail!(
                "column {table}.{name} of the state file has no counterpart in PostgreSQL; this \
                 merge-sync cannot copy it"
            );
        };
        let udt: String = row.get(1);
        let kind = Kind::from_udt(&udt).with_context(|| {
            format!("column {table}.{name} has PostgreSQL type {udt}, which copy-state cannot fill")
        })?;
        columns.push(Column {
            name,
            kind,
            pg_type: row.get(2),
            identity: row.get(3),
        });
    }
    let names: Vec<String> = columns.iter().map(|c| format!("\"{}\"", c.name)).collect();
    let casts: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| format!("u.c{i}::{}", c.pg_type))
        .collect();
    let arrays: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| format!("${}::{}", i + 1, c.kind.array()))
        .collect();
    let aliases: Vec<String> = (0..columns.len()).map(|i| format!("c{i}")).collect();
    let insert = format!(
        "INSERT INTO \"{table}\" ({}) OVERRIDING SYSTEM VALUE SELECT {} FROM unnest({}) AS u({})",
        names.join(", "),
        casts.join(", "),
        arrays.join(", "),
        aliases.join(", ")
    );
    Ok(TablePlan {
        table: table.to_string(),
        columns,
        insert,
    })
}

/// One column's values of a batch, typed for the driver.
enum Values {
    Text(Vec<Option<String>>),
    Bool(Vec<Option<bool>>),
    Int(Vec<Option<i64>>),
    Float(Vec<Option<f64>>),
    Time(Vec<Option<DateTime<Utc>>>),
    Bytes(Vec<Option<Vec<u8>>>),
}

impl Values {
    fn new(kind: Kind) -> Values {
        let n = BATCH_ROWS;
        match kind {
            Kind::Text | Kind::Json => Values::Text(Vec::with_capacity(n)),
            Kind::Bool => Values::Bool(Vec::with_capacity(n)),
            Kind::Int => Values::Int(Vec::with_capacity(n)),
            Kind::Float => Values::Float(Vec::with_capacity(n)),
            Kind::Time => Values::Time(Vec::with_capacity(n)),
            Kind::Bytes => Values::Bytes(Vec::with_capacity(n)),
        }
    }

    fn clear(&mut self) {
        match self {
            Values::Text(v) => v.clear(),
            Values::Bool(v) => v.clear(),
            Values::Int(v) => v.clear(),
            Values::Float(v) => v.clear(),
            Values::Time(v) => v.clear(),
            Values::Bytes(v) => v.clear(),
        }
    }

    fn as_param(&self) -> &(dyn ToSql + Sync) {
        match self {
            Values::Text(v) => v,
            Values::Bool(v) => v,
            Values::Int(v) => v,
            Values::Float(v) => v,
            Values::Time(v) => v,
            Values::Bytes(v) => v,
        }
    }

    /// Appends one SQLite value, converted; `Err` says what did not fit.
    fn push(&mut self, value: ValueRef<'_>) -> Result<(), String> {
        let text = |v: ValueRef<'_>| -> Result<Option<String>, String> {
            Ok(match v {
                ValueRef::Null => None,
                ValueRef::Integer(i) => Some(i.to_string()),
                ValueRef::Real(f) => Some(f.to_string()),
                ValueRef::Text(t) | ValueRef::Blob(t) => {
                    Some(String::from_utf8(t.to_vec()).map_err(|_| "text that is not UTF-8")?)
                }
            })
        };
        match self {
            Values::Text(v) => v.push(text(value)?),
            Values::Bool(v) => v.push(match value {
                ValueRef::Null => None,
                ValueRef::Integer(i) => Some(i != 0),
                other => match text(other)?.as_deref() {
                    Some("true" | "t" | "1") => Some(true),
                    Some("false" | "f" | "0") => Some(false),
                    Some(s) => return Err(format!("{s:?} is not a boolean")),
                    None => None,
                },
            }),
            Values::Int(v) => v.push(match value {
                ValueRef::Null => None,
                ValueRef::Integer(i) => Some(i),
                other => {
                    let s = text(other)?.unwrap_or_default();
                    Some(s.parse().map_err(|_| format!("{s:?} is not an integer"))?)
                }
            }),
            Values::Float(v) => v.push(match value {
                ValueRef::Null => None,
                ValueRef::Integer(i) => Some(i as f64),
                ValueRef::Real(f) => Some(f),
                other => {
                    let s = text(other)?.unwrap_or_default();
                    Some(s.parse().map_err(|_| format!("{s:?} is not a number"))?)
                }
            }),
            // The same reading the backend gives a record's timestamps when it writes a page:
            // what does not parse as a time is stored as NULL (the JSON keeps the original).
            Values::Time(v) => v.push(text(value)?.as_deref().and_then(time::parse)),
            Values::Bytes(v) => v.push(match value {
                ValueRef::Null => None,
                ValueRef::Blob(b) | ValueRef::Text(b) => Some(b.to_vec()),
                other => text(other)?.map(String::into_bytes),
            }),
        }
        Ok(())
    }
}

/// Streams one table's rows into its twin, [`BATCH_ROWS`] at a time; returns how many.
fn copy_table(
    sqlite: &rusqlite::Connection,
    tx: &mut postgres::Transaction,
    plan: &TablePlan,
    progress: &mut dyn FnMut(&str, u64),
) -> Result<u64> {
    let select = format!(
        "SELECT {} FROM \"{}\"",
        plan.columns
            .iter()
            .map(|c| format!("\"{}\"", c.name))
            .collect::<Vec<_>>()
            .join(", "),
        plan.table
    );
    let mut stmt = sqlite.prepare(&select)?;
    let insert = tx.prepare(&plan.insert)?;
    let mut batch: Vec<Values> = plan.columns.iter().map(|c| Values::new(c.kind)).collect();
    let mut in_batch = 0usize;
    let mut total = 0u64;
    let flush = |tx: &mut postgres::Transaction, batch: &mut Vec<Values>| -> Result<()> {
        let params: Vec<&(dyn ToSql + Sync)> = batch.iter().map(Values::as_param).collect();
        tx.execute(&insert, &params)?;
        batch.iter_mut().for_each(Values::clear);
        Ok(())
    };
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        for (i, column) in plan.columns.iter().enumerate() {
            batch[i].push(row.get_ref(i)?).map_err(|what| {
                anyhow::anyhow!(
                    "row {} of {}: column {} holds {what}",
                    total + 1,
                    plan.table,
                    column.name
                )
            })?;
        }
        in_batch += 1;
        total += 1;
        if in_batch == BATCH_ROWS {
            flush(tx, &mut batch)?;
            in_batch = 0;
            progress(&plan.table, total);
        }
    }
    if in_batch > 0 {
        flush(tx, &mut batch)?;
    }
    progress(&plan.table, total);
    Ok(total)
}

/// Moves identity sequences past the copied ids, so rows inserted later get new ones.
fn reset_identity(tx: &mut postgres::Transaction, plan: &TablePlan) -> Result<()> {
    for column in plan.columns.iter().filter(|c| c.identity) {
        tx.execute(
            &format!(
                "SELECT setval(pg_get_serial_sequence(quote_ident($1), $2),
                               coalesce(max(\"{}\"), 1), max(\"{}\") IS NOT NULL)
                 FROM \"{}\"",
                column.name, column.name, plan.table
            ),
            &[&plan.table, &column.name],
        )
        .with_context(|| format!("advancing the id sequence of {}", plan.table))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use crate::store::{self, Location, NewAccount, ObservedStatus, PageProgress, RecordRow};
    use crate::testing::postgres as pg;

    fn at(s: &str) -> DateTime<Utc> {
        time::parse(s).unwrap()
    }

    fn record(id: &str, modified: &str, deleted: bool) -> RecordRow {
        RecordRow {
            id: id.into(),
            remote_id: Some(format!("r-{id}")),
            created_at: Some("2024-01-01T00:00:00Z".into()),
            modified_at: Some(modified.into()),
            remote_was_deleted: deleted,
            data: format!(r#"{{"id": "{id}", "name": "n {id}", "nested": {{"a": [1, 2]}}}}"#),
        }
    }

    /// A state file with two accounts, one mid-window (saved cursor), records (one deleted),
    /// and an inbox with an applied and a pending webhook.
    fn sample_state(path: &Path) {
        let mut s = store::open(&Location::Sqlite(path.to_path_buf())).unwrap();
        let now = at("2025-03-01T12:00:00.123Z");
        for (id, models) in [
            ("la-1", Some(vec!["hris.Employee".to_string()])),
            ("la-2", None),
        ] {
            s.upsert_account(
                &NewAccount {
                    linked_account_id: id.into(),
                    end_user_origin_id: Some(format!("org-{id}")),
                    category: "hris".into(),
                    integration_slug: Some("bamboohr".into()),
                    account_token: Secret::new(format!("tok-{id}")),
                    models,
                },
                now,
            )
            .unwrap();
        }
        s.mark_initial_sync_started("la-1", now).unwrap();
        s.mark_initial_sync_complete("la-1", now).unwrap();
        s.record_account_failure("la-2", "boom", at("2025-03-01T12:05:00Z"), now)
            .unwrap();
        s.save_observed(
            "la-1",
            &[ObservedStatus {
                model_id: "hris.Employee".into(),
                status: "DONE".into(),
                last_sync_result: Some("DONE".into()),
                is_initial_sync: false,
                ready: true,
                last_sync_start: Some(at("2025-03-01T10:00:00Z")),
                next_sync_start: Some(at("2025-03-02T10:00:00Z")),
                last_sync_finished: Some(at("2025-03-01T11:00:00Z")),
            }],
        )
        .unwrap();
        let progress = PageProgress {
            window_after: None,
            window_before: at("2025-03-01T11:00:00Z"),
            next_cursor: Some("cursor-page-2"),
            high_water: at("2025-03-01T11:00:00Z"),
            started_at: now,
            now,
        };
        let rows = vec![
            record("e1", "2025-02-01T00:00:00Z", false),
            record("e2", "2025-02-02T00:00:00.5Z", true),
        ];
        s.write_page("la-1", "hris.Employee", &rows, &progress)
            .unwrap();
        s.enqueue_webhook(b"{\"hook\": 1}", Some("LinkedAccount.sync_completed"), now)
            .unwrap();
        s.enqueue_webhook(b"{\"hook\": 2}", None, now).unwrap();
        let first = s.pending_webhooks().unwrap()[0].id;
        s.mark_webhook_applied(first, "applied", Some("la-1"), None, now)
            .unwrap();
    }

    fn target(db: &pg::TestDatabase) -> PgTarget {
        match Location::parse(Path::new(db.url()), &|_| None).unwrap() {
            Location::Postgres(t) => *t,
            Location::Sqlite(_) => unreachable!("a postgres:// URL"),
        }
    }

    #[test]
    fn every_table_moves_column_for_column_and_ids_continue_after_the_copied_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        sample_state(&path);
        let db = pg::database();
        let mut seen = Vec::new();
        let copied = sqlite_to_postgres(&path, &target(&db), &mut |t, n| {
            seen.push((t.to_string(), n))
        })
        .unwrap();
        let rows = |t: &str| copied.iter().find(|c| c.table == t).map(|c| c.rows);
        assert_eq!(
            copied[0].table, "linked_accounts",
            "accounts first: others refer to them"
        );
        assert_eq!(rows("linked_accounts"), Some(2));
        assert_eq!(rows("model_sync_state"), Some(1));
        assert_eq!(rows("webhook_inbox"), Some(2));
        assert_eq!(rows("hris_employee"), Some(2));
        assert!(seen.contains(&("hris_employee".to_string(), 2)));

        let mut from = store::open(&Location::Sqlite(path.clone())).unwrap();
        let mut to = store::open(&Location::Postgres(Box::new(target(&db)))).unwrap();
        let show = |s: &mut Box<dyn store::Store>| {
            s.accounts()
                .unwrap()
                .into_iter()
                .map(|a| (a.account_token.expose().to_string(), format!("{a:?}")))
                .collect::<Vec<_>>()
        };
        assert_eq!(show(&mut to), show(&mut from));
        for account in ["la-1", "la-2"] {
            assert_eq!(
                to.model_states(account).unwrap(),
                from.model_states(account).unwrap()
            );
            assert_eq!(
                to.initial_sync_hook_pending(account).unwrap(),
                from.initial_sync_hook_pending(account).unwrap()
            );
        }
        assert_eq!(
            to.model_states("la-1").unwrap()[0].cursor.as_deref(),
            Some("cursor-page-2")
        );
        for id in ["e1", "e2"] {
            let data = |s: &mut Box<dyn store::Store>| {
                let text = s.record_data("la-1", "hris.Employee", id).unwrap().unwrap();
                serde_json::from_str::<serde_json::Value>(&text).unwrap()
            };
            assert_eq!(data(&mut to), data(&mut from));
        }
        let mut c = db.connect();
        let deleted: Vec<(String, bool, Option<DateTime<Utc>>)> = c
            .query(
                "SELECT id, remote_was_deleted, modified_at FROM hris_employee ORDER BY id",
                &[],
            )
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        assert_eq!(
            deleted,
            vec![
                ("e1".into(), false, Some(at("2025-02-01T00:00:00Z"))),
                ("e2".into(), true, Some(at("2025-02-02T00:00:00.5Z"))),
            ]
        );
        let pending = |s: &mut Box<dyn store::Store>| {
            s.pending_webhooks()
                .unwrap()
                .into_iter()
                .map(|w| (w.id, w.body))
                .collect::<Vec<_>>()
        };
        assert_eq!(pending(&mut to), pending(&mut from));
        // A retried delivery of a copied webhook is still recognised as a duplicate, and a
        // new one gets an id after the copied ones.
        let now = Utc::now();
        assert!(!to.enqueue_webhook(b"{\"hook\": 2}", None, now).unwrap());
        assert!(to.enqueue_webhook(b"{\"hook\": 3}", None, now).unwrap());
        let ids: Vec<i64> = to
            .pending_webhooks()
            .unwrap()
            .iter()
            .map(|w| w.id)
            .collect();
        assert_eq!(ids.len(), 2);
        assert!(ids[1] > ids[0], "{ids:?}");
    }

    #[test]
    fn a_target_with_merge_sync_data_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        sample_state(&path);
        let db = pg::database();
        sqlite_to_postgres(&path, &target(&db), &mut |_, _| {}).unwrap();
        let err = sqlite_to_postgres(&path, &target(&db), &mut |_, _| {}).unwrap_err();
        assert!(
            matches!(
                err.downcast_ref::<StoreError>(),
                Some(StoreError::CopyTargetNotEmpty { .. })
            ),
            "{err:#}"
        );
        let n: i64 = db
            .connect()
            .query_one("SELECT count(*) FROM linked_accounts", &[])
            .unwrap()
            .get(0);
        assert_eq!(n, 2, "nothing was added twice");
    }

    #[test]
    fn a_failed_copy_leaves_the_target_empty_so_it_can_run_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        sample_state(&path);
        // A record whose JSON PostgreSQL refuses makes the copy fail after accounts went in.
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute(
                "UPDATE hris_employee SET data = 'not json' WHERE id = 'e2'",
                [],
            )
            .unwrap();
        let db = pg::database();
        let err = sqlite_to_postgres(&path, &target(&db), &mut |_, _| {}).unwrap_err();
        assert!(format!("{err:#}").contains("hris_employee"), "{err:#}");
        let n: i64 = db
            .connect()
            .query_one("SELECT count(*) FROM linked_accounts", &[])
            .unwrap()
            .get(0);
        assert_eq!(n, 0, "one transaction: nothing of the failed copy is kept");
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute("UPDATE hris_employee SET data = '{}' WHERE id = 'e2'", [])
            .unwrap();
        sqlite_to_postgres(&path, &target(&db), &mut |_, _| {}).unwrap();
    }
}
