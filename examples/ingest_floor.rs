//! The ingest *floor* of the benchmark (README, Benchmark): what SQLite alone needs to store the rows merge-sync stores.
//!
//! 1. (untimed) downloads every page of one list endpoint from a (fake) Merge, exactly as a
//!    sync would ask for it (`page_size=100`, `include_deleted_data=true`, cursor pagination),
//!    and parses each record into the row merge-sync writes: id, remote_id, created_at,
//!    modified_at, remote_was_deleted, the record's JSON text;
//! 2. (timed) opens a new SQLite file with the same durability settings as merge-sync (WAL,
//!    `synchronous=NORMAL`), creates a table of the same shape and primary key, and inserts
//!    the rows in one transaction per page of 100, then closes the file (which checkpoints
//!    the WAL, as merge-sync's exit does).
//!
//! Everything else is SQLite's default (page size, cache, `wal_autocheckpoint` unless
//! `--wal-autocheckpoint` is given). Prints `key=value` lines on stdout: `rows`, `pages`,
//! `download_s`, `floor_s`.
//!
//! ```sh
//! cargo run --release --example ingest_floor -- --url http://127.0.0.1:4000/api \
//!     --api-key KEY --account-token TOKEN --category hris --path employees \
//!     --linked-account-id ID --db /tmp/floor.db
//! ```
//!
//! With `--postgres URL` the timed part writes into that (empty) PostgreSQL database instead:
//! a table of the PostgreSQL backend's shape (`jsonb` data, `timestamptz`, `boolean`), one
//! transaction per page of 100, each page one `INSERT … SELECT FROM unnest(…) ON CONFLICT`,
//! the statement shape the backend uses. Timestamps are parsed before the clock starts.
//!
//! Part of `bench/run.sh`; never run by `cargo test`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Parser;
use rusqlite::{params, Connection};
use serde::Deserialize;
use serde_json::value::RawValue;

#[derive(Parser)]
struct Args {
    /// API base URL including `/api`.
    #[arg(long)]
    url: String,
    #[arg(long)]
    api_key: String,
    #[arg(long)]
    account_token: String,
    #[arg(long, default_value = "hris")]
    category: String,
    /// List endpoint path under `{category}/v1/`.
    #[arg(long, default_value = "employees")]
    path: String,
    #[arg(long)]
    linked_account_id: String,
    /// SQLite file to create (must not exist).
    #[arg(long, required_unless_present = "postgres")]
    db: Option<PathBuf>,
    /// Write into this empty PostgreSQL database instead of an SQLite file.
    #[arg(long)]
    postgres: Option<String>,
    /// `PRAGMA wal_autocheckpoint` (pages). Default: SQLite's own default (1000). Not a
    /// durability setting; set it to what merge-sync uses for a like-for-like floor.
    #[arg(long)]
    wal_autocheckpoint: Option<i64>,
}

#[derive(Deserialize)]
struct PageIn<'a> {
    next: Option<String>,
    #[serde(borrow)]
    results: Vec<&'a RawValue>,
}

#[derive(Deserialize)]
struct Head {
    id: Option<String>,
    remote_id: Option<String>,
    created_at: Option<String>,
    modified_at: Option<String>,
    remote_was_deleted: Option<bool>,
}

struct Row {
    id: String,
    remote_id: Option<String>,
    created_at: Option<String>,
    modified_at: Option<String>,
    remote_was_deleted: bool,
    data: String,
}

/// Merge's timestamps in merge-sync's stored form (UTC, six fractional digits).
fn normalize(s: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(s) {
        Ok(t) => t
            .with_timezone(&chrono::Utc)
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        Err(_) => s.to_string(),
    }
}

fn download(args: &Args) -> Result<Vec<Vec<Row>>> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let url = format!(
        "{}/{}/v1/{}",
        args.url.trim_end_matches('/'),
        args.category,
        args.path
    );
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut req = agent
            .get(&url)
            .header("Authorization", &format!("Bearer {}", args.api_key))
            .header("X-Account-Token", &args.account_token)
            .query("page_size", "100")
            .query("include_deleted_data", "true");
        if let Some(c) = &cursor {
            req = req.query("cursor", c);
        }
        let mut resp = req.call().context("GET list page")?;
        if resp.status() != 200 {
            bail!("GET {url}: HTTP {}", resp.status());
        }
        let body = resp
            .body_mut()
            .with_config()
            .limit(64 * 1024 * 1024)
            .read_to_string()?;
        let page: PageIn = serde_json::from_str(&body).context("parsing a page")?;
        let mut rows = Vec::with_capacity(page.results.len());
        for raw in &page.results {
            let head: Head = serde_json::from_str(raw.get())?;
            rows.push(Row {
                id: head.id.context("record without id")?,
                remote_id: head.remote_id,
                created_at: head.created_at.as_deref().map(normalize),
                modified_at: head.modified_at.as_deref().map(normalize),
                remote_was_deleted: head.remote_was_deleted.unwrap_or(false),
                data: raw.get().to_string(),
            });
        }
        pages.push(rows);
        match page.next {
            Some(next) if Some(&next) != cursor.as_ref() => cursor = Some(next),
            Some(_) => bail!("the server returned the same cursor twice"),
            None => break,
        }
    }
    Ok(pages)
}

fn write(args: &Args, pages: &[Vec<Row>]) -> Result<()> {
    let mut conn = Connection::open(args.db.as_ref().context("--db")?)?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        bail!("journal_mode is {mode}, not WAL");
    }
    if let Some(n) = args.wal_autocheckpoint {
        conn.pragma_update(None, "wal_autocheckpoint", n)?;
    }
    conn.execute_batch(
        "PRAGMA synchronous = NORMAL;
         CREATE TABLE IF NOT EXISTS hris_employee (
            linked_account_id  TEXT NOT NULL,
            id                 TEXT NOT NULL,
            remote_id          TEXT,
            created_at         TEXT,
            modified_at        TEXT,
            remote_was_deleted INTEGER NOT NULL DEFAULT 0,
            data               TEXT NOT NULL,
            fetched_at         TEXT NOT NULL,
            PRIMARY KEY (linked_account_id, id)
        )",
    )?;
    for rows in pages {
        let fetched_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO hris_employee (linked_account_id, id, remote_id, created_at,
                    modified_at, remote_was_deleted, data, fetched_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            for r in rows {
                stmt.execute(params![
                    args.linked_account_id,
                    r.id,
                    r.remote_id,
                    r.created_at,
                    r.modified_at,
                    r.remote_was_deleted as i64,
                    r.data,
                    fetched_at
                ])?;
            }
        }
        tx.commit()?;
    }
    conn.close().map_err(|(_, e)| e)?;
    Ok(())
}

/// One page's columns, as the PostgreSQL backend binds them (timestamps already parsed).
struct PgPage {
    ids: Vec<String>,
    remote_ids: Vec<Option<String>>,
    created: Vec<Option<chrono::DateTime<chrono::Utc>>>,
    modified: Vec<Option<chrono::DateTime<chrono::Utc>>>,
    deleted: Vec<bool>,
    data: Vec<String>,
}

fn pg_pages(pages: &[Vec<Row>]) -> Vec<PgPage> {
    let ts = |v: &Option<String>| {
        v.as_deref()
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.with_timezone(&chrono::Utc))
    };
    pages
        .iter()
        .map(|rows| PgPage {
            ids: rows.iter().map(|r| r.id.clone()).collect(),
            remote_ids: rows.iter().map(|r| r.remote_id.clone()).collect(),
            created: rows.iter().map(|r| ts(&r.created_at)).collect(),
            modified: rows.iter().map(|r| ts(&r.modified_at)).collect(),
            deleted: rows.iter().map(|r| r.remote_was_deleted).collect(),
            data: rows.iter().map(|r| r.data.clone()).collect(),
        })
        .collect()
}

/// Times connecting and writing every page, one transaction and one statement per page.
fn write_postgres(url: &str, account: &str, pages: &[PgPage]) -> Result<f64> {
    let t = Instant::now();
    let mut c = postgres::Client::connect(url, postgres::NoTls).context("connecting")?;
    c.batch_execute(
        "CREATE TABLE hris_employee (
            linked_account_id  text NOT NULL,
            id                 text NOT NULL,
            remote_id          text,
            created_at         timestamptz,
            modified_at        timestamptz,
            remote_was_deleted boolean NOT NULL DEFAULT false,
            data               jsonb NOT NULL,
            fetched_at         timestamptz NOT NULL,
            PRIMARY KEY (linked_account_id, id)
        )",
    )?;
    let upsert = c.prepare(
        "INSERT INTO hris_employee AS t (linked_account_id, id, remote_id, created_at,
            modified_at, remote_was_deleted, data, fetched_at)
         SELECT $1, r.id, r.remote_id, r.created_at, r.modified_at, r.deleted, r.data::jsonb, $2
         FROM unnest($3::text[], $4::text[], $5::timestamptz[], $6::timestamptz[], $7::bool[],
                     $8::text[]) AS r(id, remote_id, created_at, modified_at, deleted, data)
         ON CONFLICT (linked_account_id, id) DO UPDATE SET
            remote_id = excluded.remote_id, created_at = excluded.created_at,
            modified_at = excluded.modified_at,
            remote_was_deleted = excluded.remote_was_deleted,
            data = excluded.data, fetched_at = excluded.fetched_at
         WHERE excluded.modified_at IS NULL OR t.modified_at IS NULL
            OR excluded.modified_at >= t.modified_at",
    )?;
    for p in pages {
        let now = chrono::Utc::now();
        let mut tx = c.transaction()?;
        tx.execute(
            &upsert,
            &[
                &account,
                &now,
                &p.ids,
                &p.remote_ids,
                &p.created,
                &p.modified,
                &p.deleted,
                &p.data,
            ],
        )?;
        tx.commit()?;
    }
    c.close()?;
    Ok(t.elapsed().as_secs_f64())
}

fn main() -> Result<()> {
    let args = Args::parse();
    if let Some(db) = args.db.as_ref().filter(|db| db.exists()) {
        bail!("{} exists; the floor writes a new file", db.display());
    }
    let t0 = Instant::now();
    let pages = download(&args)?;
    let download_s = t0.elapsed().as_secs_f64();
    let rows: usize = pages.iter().map(Vec::len).sum();

    let floor_s = match &args.postgres {
        Some(url) => write_postgres(url, &args.linked_account_id, &pg_pages(&pages))?,
        None => {
            let t1 = Instant::now();
            write(&args, &pages)?;
            t1.elapsed().as_secs_f64()
        }
    };

    println!("rows={rows}");
    println!("pages={}", pages.len());
    println!("download_s={download_s:.3}");
    println!("floor_s={floor_s:.3}");
    Ok(())
}
