//! Run history and lifetime counters (the SQLite twin's semantics; `seq` orders runs that
//! started in the same instant, as SQLite's rowid does).

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use postgres::types::ToSql;
use postgres::{Client, Row};

use crate::store::{Counter, RunQuery, RunRow};

const COLUMNS: &str = "run_id, command, host, pid, started_at, finished_at, outcome, \
    accounts_synced, accounts_failed, accounts_not_due, accounts_busy, records_written, \
    requests, rate_limited, retries, first_error";

fn count(r: &Row, i: usize) -> u64 {
    r.get::<_, i64>(i).max(0) as u64
}

fn from_row(r: &Row) -> RunRow {
    RunRow {
        run_id: r.get(0),
        command: r.get(1),
        host: r.get(2),
        pid: r.get::<_, i64>(3).max(0) as u32,
        started_at: r.get(4),
        finished_at: r.get(5),
        outcome: r.get(6),
        accounts_synced: count(r, 7),
        accounts_failed: count(r, 8),
        accounts_not_due: count(r, 9),
        accounts_busy: count(r, 10),
        records_written: count(r, 11),
        requests: count(r, 12),
        rate_limited: count(r, 13),
        retries: count(r, 14),
        first_error: r.get(15),
        accounts: Vec::new(),
    }
}

fn int(v: u64) -> i64 {
    v.min(i64::MAX as u64) as i64
}

pub fn start(c: &mut Client, run: &RunRow) -> Result<()> {
    c.execute(
        "INSERT INTO runs (run_id, command, host, pid, started_at) VALUES ($1, $2, $3, $4, $5)",
        &[
            &run.run_id,
            &run.command,
            &run.host,
            &(run.pid as i64),
            &run.started_at,
        ],
    )
    .context("recording the start of a run")?;
    for a in &run.accounts {
        add_account(c, &run.run_id, a)?;
    }
    Ok(())
}

pub fn add_account(c: &mut Client, run_id: &str, linked_account_id: &str) -> Result<()> {
    c.execute(
        "INSERT INTO run_accounts (run_id, linked_account_id) VALUES ($1, $2)
         ON CONFLICT DO NOTHING",
        &[&run_id, &linked_account_id],
    )
    .context("recording a run's account")?;
    Ok(())
}

pub fn finish(c: &mut Client, run: &RunRow) -> Result<()> {
    c.execute(
        "UPDATE runs SET finished_at = $2, outcome = $3, accounts_synced = $4,
            accounts_failed = $5, accounts_not_due = $6, accounts_busy = $7,
            records_written = $8, requests = $9, rate_limited = $10, retries = $11,
            first_error = $12
         WHERE run_id = $1",
        &[
            &run.run_id,
            &run.finished_at,
            &run.outcome,
            &int(run.accounts_synced),
            &int(run.accounts_failed),
            &int(run.accounts_not_due),
            &int(run.accounts_busy),
            &int(run.records_written),
            &int(run.requests),
            &int(run.rate_limited),
            &int(run.retries),
            &run.first_error,
        ],
    )
    .context("recording the end of a run")?;
    for a in &run.accounts {
        add_account(c, &run.run_id, a)?;
    }
    Ok(())
}

pub fn list(c: &mut Client, query: &RunQuery) -> Result<Vec<RunRow>> {
    let mut sql = format!("SELECT {COLUMNS} FROM runs WHERE true");
    let mut args: Vec<Box<dyn ToSql + Sync>> = Vec::new();
    if let Some(a) = &query.account {
        args.push(Box::new(a.clone()));
        sql.push_str(&format!(
            " AND run_id IN (SELECT run_id FROM run_accounts WHERE linked_account_id = ${})",
            args.len()
        ));
    }
    if let Some(cmd) = &query.command {
        args.push(Box::new(cmd.clone()));
        sql.push_str(&format!(" AND command = ${}", args.len()));
    }
    if !query.outcomes.is_empty() {
        args.push(Box::new(query.outcomes.clone()));
        sql.push_str(&format!(" AND outcome = ANY(${})", args.len()));
    }
    sql.push_str(&format!(
        " ORDER BY started_at DESC, seq DESC LIMIT {}",
        query.limit.min(i64::MAX as usize)
    ));
    let params: Vec<&(dyn ToSql + Sync)> = args.iter().map(|a| a.as_ref()).collect();
    let mut runs: Vec<RunRow> = c
        .query(&sql, &params)
        .context("reading the run history")?
        .iter()
        .map(from_row)
        .collect();
    for run in &mut runs {
        run.accounts = c
            .query(
                "SELECT linked_account_id FROM run_accounts WHERE run_id = $1
                 ORDER BY linked_account_id",
                &[&run.run_id],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect();
    }
    Ok(runs)
}

pub fn prune(c: &mut Client, started_before: DateTime<Utc>, keep: usize) -> Result<usize> {
    let old = c.execute("DELETE FROM runs WHERE started_at < $1", &[&started_before])?;
    let over = c.execute(
        "DELETE FROM runs WHERE run_id NOT IN
            (SELECT run_id FROM runs ORDER BY started_at DESC, seq DESC LIMIT $1)",
        &[&(keep.min(i64::MAX as usize) as i64)],
    )?;
    Ok((old + over) as usize)
}

pub fn add_counters(c: &mut Client, deltas: &[Counter]) -> Result<()> {
    for d in deltas {
        c.execute(
            "INSERT INTO counters AS k (name, label, value) VALUES ($1, $2, $3)
             ON CONFLICT (name, label) DO UPDATE SET value = k.value + excluded.value",
            &[&d.name, &d.label, &int(d.value)],
        )
        .with_context(|| format!("adding to counter {}", d.name))?;
    }
    Ok(())
}

pub fn counters(c: &mut Client) -> Result<Vec<Counter>> {
    Ok(c.query(
        "SELECT name, label, value FROM counters ORDER BY name, label",
        &[],
    )
    .context("reading counters")?
    .iter()
    .map(|r| Counter {
        name: r.get(0),
        label: r.get(1),
        value: r.get::<_, i64>(2).max(0) as u64,
    })
    .collect())
}
