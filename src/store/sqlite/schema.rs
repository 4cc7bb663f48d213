//! The schema: ordered, append-only migrations tracked with `PRAGMA user_version`.
//!
//! Never edit a migration that has shipped; add a new one. Each runs in its own transaction
//! together with the `user_version` bump, so a crash mid-upgrade leaves the previous version.

use anyhow::{Context, Result};
use rusqlite::Connection;

use crate::store::StoreError;

/// Migration N (1-based) brings the schema from version N-1 to N.
const MIGRATIONS: &[&str] = &[
    // 1: accounts and per-model sync state.
    r#"
    CREATE TABLE linked_accounts (
        linked_account_id         TEXT PRIMARY KEY,
        end_user_origin_id        TEXT,
        category                  TEXT NOT NULL,
        integration_slug          TEXT,
        account_token             TEXT NOT NULL,
        status                    TEXT NOT NULL DEFAULT 'active'
                                  CHECK (status IN ('active', 'disabled')),
        models                    TEXT,            -- JSON array of mirrored model ids; NULL = all
        initial_sync_complete     INTEGER NOT NULL DEFAULT 0,
        initial_sync_started_at   TEXT,
        initial_sync_completed_at TEXT,
        next_poll_at              TEXT,            -- NULL = due now
        consecutive_failures      INTEGER NOT NULL DEFAULT 0,
        last_error                TEXT,
        last_polled_at            TEXT,
        hook_error                TEXT,
        initial_sync_hook_pending INTEGER NOT NULL DEFAULT 0, -- set with completion, cleared once the hook ran
        created_at                TEXT NOT NULL,
        updated_at                TEXT NOT NULL
    );
    CREATE INDEX linked_accounts_origin ON linked_accounts (end_user_origin_id);

    CREATE TABLE model_sync_state (
        linked_account_id        TEXT NOT NULL
                                 REFERENCES linked_accounts (linked_account_id) ON DELETE CASCADE,
        model_id                 TEXT NOT NULL,
        status                   TEXT,
        last_sync_result         TEXT,
        is_initial_sync          INTEGER,
        ready                    INTEGER NOT NULL DEFAULT 0,
        merge_last_sync_start    TEXT,
        merge_next_sync_start    TEXT,
        merge_last_sync_finished TEXT,   -- upper bound of our last completed window
        reported_last_sync_finished TEXT, -- newest last_sync_finished Merge has reported
        hinted_last_sync_finished TEXT,  -- newest DONE/PARTIALLY_SYNCED from a webhook
        last_synced_at           TEXT,
        last_fetched_at          TEXT,
        cursor                   TEXT,   -- next page of an unfinished window
        window_after             TEXT,   -- bounds of that unfinished window
        window_before            TEXT,
        last_error               TEXT,
        PRIMARY KEY (linked_account_id, model_id)
    );
    "#,
    // 2: the durable webhook inbox.
    r#"
    CREATE TABLE webhook_inbox (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        received_at  TEXT NOT NULL,
        event        TEXT,
        body         BLOB NOT NULL,
        body_sha256  TEXT NOT NULL UNIQUE,
        applied_at   TEXT,
        outcome      TEXT
    );
    CREATE INDEX webhook_inbox_pending ON webhook_inbox (applied_at, id);
    "#,
    // 3: which account an applied webhook was about, so `accounts remove --purge` can drop it.
    r#"
    ALTER TABLE webhook_inbox ADD COLUMN linked_account_id TEXT;
    CREATE INDEX webhook_inbox_account ON webhook_inbox (linked_account_id);
    "#,
    // 4: run history, lifetime counters, freshness columns.
    r#"
    ALTER TABLE linked_accounts ADD COLUMN last_checked_at TEXT; -- Merge's sync-status last read
    ALTER TABLE linked_accounts ADD COLUMN last_success_at TEXT; -- last pass that succeeded
    ALTER TABLE model_sync_state ADD COLUMN cursor_page INTEGER;  -- pages of the unfinished window written

    CREATE TABLE runs (
        run_id           TEXT PRIMARY KEY,
        command          TEXT NOT NULL,
        host             TEXT NOT NULL,
        pid              INTEGER NOT NULL,
        started_at       TEXT NOT NULL,
        finished_at      TEXT,            -- NULL: still running, or killed
        outcome          TEXT,            -- ok, partial, failed, interrupted; NULL until finished
        accounts_synced  INTEGER NOT NULL DEFAULT 0,
        accounts_failed  INTEGER NOT NULL DEFAULT 0,
        accounts_not_due INTEGER NOT NULL DEFAULT 0,
        accounts_busy    INTEGER NOT NULL DEFAULT 0,
        records_written  INTEGER NOT NULL DEFAULT 0,
        requests         INTEGER NOT NULL DEFAULT 0,
        rate_limited     INTEGER NOT NULL DEFAULT 0,
        retries          INTEGER NOT NULL DEFAULT 0,
        first_error      TEXT
    );
    CREATE INDEX runs_started ON runs (started_at);
    CREATE TABLE run_accounts (
        run_id            TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
        linked_account_id TEXT NOT NULL,
        PRIMARY KEY (run_id, linked_account_id)
    );
    CREATE INDEX run_accounts_account ON run_accounts (linked_account_id);

    CREATE TABLE counters (
        name  TEXT NOT NULL,
        label TEXT NOT NULL DEFAULT '',
        value INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (name, label)
    );
    "#,
];

/// The schema version this binary writes.
pub const CURRENT_VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings `conn` up to [`CURRENT_VERSION`]; refuses a file written by a newer merge-sync.
pub fn migrate(conn: &mut Connection) -> Result<()> {
    let found: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .context("reading the schema version")?;
    if found < 0 {
        // `skip(found as usize)` would skip every migration and fail later with "no such table".
        return Err(StoreError::BadSchemaVersion { found }.into());
    }
    if found > CURRENT_VERSION {
        return Err(StoreError::SchemaTooNew {
            place: "the state file".into(),
            found,
            supported: CURRENT_VERSION,
        }
        .into());
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let version = index as i64 + 1;
        // IMMEDIATE takes the write lock first; re-reading the version under it means two
        // processes opening a new file at once apply each migration exactly once.
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let now: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if now >= version {
            continue;
        }
        tx.execute_batch(sql)
            .with_context(|| format!("applying schema migration {version}"))?;
        tx.pragma_update(None, "user_version", version)?;
        tx.commit()
            .with_context(|| format!("committing schema migration {version}"))?;
    }
    super::views::sync_views(conn).context("creating the typed views")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns(conn: &Connection, table: &str) -> Vec<String> {
        let mut stmt = conn
            .prepare(&format!("SELECT name FROM pragma_table_info('{table}')"))
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    }

    #[test]
    fn migrates_an_empty_database_to_the_current_version() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, CURRENT_VERSION);
        let accounts = columns(&conn, "linked_accounts");
        for c in [
            "linked_account_id",
            "end_user_origin_id",
            "category",
            "integration_slug",
            "account_token",
            "status",
            "initial_sync_complete",
            "initial_sync_completed_at",
        ] {
            assert!(accounts.contains(&c.to_string()), "missing {c}");
        }
        let state = columns(&conn, "model_sync_state");
        for c in [
            "linked_account_id",
            "model_id",
            "status",
            "last_sync_result",
            "is_initial_sync",
            "ready",
            "merge_last_sync_start",
            "merge_next_sync_start",
            "merge_last_sync_finished",
            "last_synced_at",
            "last_fetched_at",
            "cursor",
            "last_error",
        ] {
            assert!(state.contains(&c.to_string()), "missing {c}");
        }
        assert!(columns(&conn, "webhook_inbox").contains(&"body_sha256".to_string()));
    }

    #[test]
    fn migrating_twice_is_a_no_op() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        migrate(&mut conn).unwrap();
    }

    #[test]
    fn each_migration_applies_on_top_of_the_previous_one() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        migrate(&mut conn).unwrap();
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, CURRENT_VERSION);
    }

    #[test]
    fn refuses_a_database_from_a_newer_version() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", CURRENT_VERSION + 1)
            .unwrap();
        let err = migrate(&mut conn).unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains(&format!("version {}", CURRENT_VERSION + 1)),
            "{msg}"
        );
        assert!(msg.contains(&format!("version {CURRENT_VERSION}")), "{msg}");
    }
}
