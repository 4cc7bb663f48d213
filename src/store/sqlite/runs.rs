//! Run history and lifetime counters.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use rusqlite::{params, params_from_iter, Connection, Row};

use crate::store::{Counter, RunQuery, RunRow};
use crate::time;

const COLUMNS: &str = "run_id, command, host, pid, started_at, finished_at, outcome, \
    accounts_synced, accounts_failed, accounts_not_due, accounts_busy, records_written, \
    requests, rate_limited, retries, first_error";

fn count(r: &Row, i: usize) -> rusqlite::Result<u64> {
    Ok(r.get::<_, i64>(i)?.max(0) as u64)
}

fn from_row(r: &Row) -> rusqlite::Result<RunRow> {
    let ts = |v: Option<String>| v.as_deref().and_then(time::parse);
    Ok(RunRow {
        run_id: r.get(0)?,
        command: r.get(1)?,
        host: r.get(2)?,
        pid: r.get::<_, i64>(3)?.max(0) as u32,
        started_at: ts(r.get(4)?).unwrap_or_default(),
        finished_at: ts(r.get(5)?),
        outcome: r.get(6)?,
        accounts_synced: count(r, 7)?,
        accounts_failed: count(r, 8)?,
        accounts_not_due: count(r, 9)?,
        accounts_busy: count(r, 10)?,
        records_written: count(r, 11)?,
        requests: count(r, 12)?,
        rate_limited: count(r, 13)?,
        retries: count(r, 14)?,
        first_error: r.get(15)?,
        accounts: Vec::new(),
    })
}

pub fn start(c: &Connection, run: &RunRow) -> Result<()> {
    c.execute(
        "INSERT INTO runs (run_id, command, host, pid, started_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            run.run_id,
            run.command,
            run.host,
            run.pid as i64,
            time::format(run.started_at)
        ],
    )
    .context("recording the start of a run")?;
    for a in &run.accounts {
        add_account(c, &run.run_id, a)?;
    }
    Ok(())
}

pub fn add_account(c: &Connection, run_id: &str, linked_account_id: &str) -> Result<()> {
    c.execute(
        "INSERT OR IGNORE INTO run_accounts (run_id, linked_account_id) VALUES (?1, ?2)",
        params![run_id, linked_account_id],
    )
    .context("recording a run's account")?;
    Ok(())
}

pub fn finish(c: &Connection, run: &RunRow) -> Result<()> {
    c.execute(
        "UPDATE runs SET finished_at = ?2, outcome = ?3, accounts_synced = ?4,
            accounts_failed = ?5, accounts_not_due = ?6, accounts_busy = ?7,
            records_written = ?8, requests = ?9, rate_limited = ?10, retries = ?11,
            first_error = ?12
         WHERE run_id = ?1",
        params![
            run.run_id,
            run.finished_at.map(time::format),
            run.outcome,
            run.accounts_synced as i64,
            run.accounts_failed as i64,
            run.accounts_not_due as i64,
            run.accounts_busy as i64,
            run.records_written as i64,
            run.requests as i64,
            run.rate_limited as i64,
            run.retries as i64,
            run.first_error,
        ],
    )
    .context("recording the end of a run")?;
    for a in &run.accounts {
        add_account(c, &run.run_id, a)?;
    }
    Ok(())
}

pub fn list(c: &Connection, query: &RunQuery) -> Result<Vec<RunRow>> {
    let mut sql = format!("SELECT {COLUMNS} FROM runs WHERE 1 = 1");
    let mut args: Vec<String> = Vec::new();
    if let Some(a) = &query.account {
        args.push(a.clone());
        sql.push_str(&format!(
            " AND run_id IN (SELECT run_id FROM run_accounts WHERE linked_account_id = ?{})",
            args.len()
        ));
    }
    if let Some(cmd) = &query.command {
        args.push(cmd.clone());
        sql.push_str(&format!(" AND command = ?{}", args.len()));
    }
    if !query.outcomes.is_empty() {
        let mut marks = Vec::new();
        for o in &query.outcomes {
            args.push(o.clone());
            marks.push(format!("?{}", args.len()));
        }
        sql.push_str(&format!(" AND outcome IN ({})", marks.join(", ")));
    }
    sql.push_str(&format!(
        " ORDER BY started_at DESC, rowid DESC LIMIT {}",
        query.limit.min(i64::MAX as usize)
    ));
    let mut runs = {
        let mut stmt = c.prepare(&sql)?;
        let rows = stmt.query_map(params_from_iter(args.iter()), from_row)?;
        rows.collect::<rusqlite::Result<Vec<_>>>()
            .context("reading the run history")?
    };
    let mut stmt = c.prepare_cached(
        "SELECT linked_account_id FROM run_accounts WHERE run_id = ?1 ORDER BY linked_account_id",
    )?;
    for run in &mut runs {
        run.accounts = stmt
            .query_map([&run.run_id], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<String>>>()?;
    }
    Ok(runs)
}

pub fn prune(c: &Connection, started_before: DateTime<Utc>, keep: usize) -> Result<usize> {
    let old = c.execute(
        "DELETE FROM runs WHERE started_at < ?1",
        [time::format(started_before)],
    )?;
    let over = c.execute(
        "DELETE FROM runs WHERE run_id NOT IN
            (SELECT run_id FROM runs ORDER BY started_at DESC, rowid DESC LIMIT ?1)",
        [keep.min(i64::MAX as usize) as i64],
    )?;
    Ok(old + over)
}

pub fn add_counters(c: &Connection, deltas: &[Counter]) -> Result<()> {
    let mut stmt = c.prepare_cached(
        "INSERT INTO counters (name, label, value) VALUES (?1, ?2, ?3)
         ON CONFLICT (name, label) DO UPDATE SET value = value + excluded.value",
    )?;
    for d in deltas {
        stmt.execute(params![
            d.name,
            d.label,
            d.value.min(i64::MAX as u64) as i64
        ])
        .with_context(|| format!("adding to counter {}", d.name))?;
    }
    Ok(())
}

pub fn counters(c: &Connection) -> Result<Vec<Counter>> {
    let mut stmt = c.prepare("SELECT name, label, value FROM counters ORDER BY name, label")?;
    let rows = stmt.query_map([], |r| {
        Ok(Counter {
            name: r.get(0)?,
            label: r.get(1)?,
            value: r.get::<_, i64>(2)?.max(0) as u64,
        })
    })?;
    rows.collect::<rusqlite::Result<Vec<_>>>()
        .context("reading counters")
}
