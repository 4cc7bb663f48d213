//! `copy-state`: an SQLite state file with accounts mid-window moves into PostgreSQL, and
//! `poll` there continues incrementally from the saved cursors and bounds.

use std::collections::BTreeMap;

use merge_sync::fake::{FakeMerge, Fault, SyncScript};
use merge_sync::testing::postgres as pg;
use predicates::prelude::*;

use crate::support::*;

const ACME: &str = "la-acme";
const ACME_TOKEN: &str = "tok_acme_secret_0001";
const GLOBEX: &str = "la-globex";
const GLOBEX_TOKEN: &str = "tok_globex_secret_0002";

fn scenario() -> String {
    format!(
        r#"{{
        "api_key": "{API_KEY}",
        "accounts": [
          {{"id": "{ACME}", "account_token": "{ACME_TOKEN}", "category": "hris",
            "models": [
              {{"model_id": "hris.Employee", "status": "DONE", "is_initial_sync": false, "last_sync_result": "DONE",
                "last_sync_start": "-70m", "last_sync_finished": "-1h", "next_sync_start": "+23h",
                "generate": 1000, "generate_deleted": 3}},
              {{"model_id": "hris.Team", "status": "DONE", "is_initial_sync": false, "last_sync_result": "DONE",
                "last_sync_start": "-70m", "last_sync_finished": "-1h", "next_sync_start": "+23h", "generate": 4}}
            ]}},
          {{"id": "{GLOBEX}", "account_token": "{GLOBEX_TOKEN}", "category": "hris",
            "models": [
              {{"model_id": "hris.Employee", "status": "DONE", "is_initial_sync": false, "last_sync_result": "DONE",
                "last_sync_start": "-70m", "last_sync_finished": "-1h", "next_sync_start": "+23h", "generate": 250}}
            ]}}
        ]}}"#
    )
}

/// One model's records in the PostgreSQL mirror: id → (remote_was_deleted, data).
fn pg_mirror(
    db: &pg::TestDatabase,
    table: &str,
    account: &str,
) -> BTreeMap<String, (bool, serde_json::Value)> {
    db.connect()
        .query(
            &format!(
                "SELECT id, remote_was_deleted, data::text FROM {table} WHERE linked_account_id = $1"
            ),
            &[&account],
        )
        .unwrap()
        .into_iter()
        .map(|r| {
            let data: String = r.get(2);
            (
                r.get(0),
                (r.get(1), serde_json::from_str(&data).unwrap()),
            )
        })
        .collect()
}

fn assert_pg_mirror_equals_truth(
    db: &pg::TestDatabase,
    fake: &FakeMerge,
    account: &str,
    model: &str,
    table: &str,
) {
    let truth = fake.with_state(|s| s.records(account, model));
    let got = pg_mirror(db, table, account);
    assert_eq!(got.len(), truth.len(), "{account} {model}: record count");
    for t in truth {
        let id = t["id"].as_str().unwrap();
        let (deleted, data) = got
            .get(id)
            .unwrap_or_else(|| panic!("{account} {model} record {id} missing"));
        assert_eq!(*deleted, t["remote_was_deleted"].as_bool().unwrap_or(false));
        assert_eq!(data, &t, "{account} {model} record {id} differs");
    }
}

#[test]
fn a_state_file_mid_window_moves_to_postgres_and_poll_continues_incrementally() {
    let fake = start(&scenario());
    let env = Env::sqlite(&fake.base_url());
    add_account(&env, ACME, ACME_TOKEN, "hris");
    add_account(&env, GLOBEX, GLOBEX_TOKEN, "hris");
    // GLOBEX completes its window; ACME's employees stop after three pages (page 4 keeps
    // failing), leaving a saved cursor: mid-window.
    env.cmd()
        .args(["poll", "--account", GLOBEX])
        .assert()
        .success();
    fake.with_state(|s| s.inject_fault(Fault::status("/employees", 503).skip(3).times(10)));
    env.cmd().args(["poll", "--account", ACME]).assert().code(1);
    fake.with_state(|s| s.clear_faults());
    let sqlite = env.sqlite_conn();
    let cursor: String = sqlite
        .query_row(
            "SELECT cursor FROM model_sync_state
             WHERE linked_account_id = ?1 AND model_id = 'hris.Employee'",
            [ACME],
            |r| r.get(0),
        )
        .expect("ACME's employees are mid-window");
    let globex_bound: String = sqlite
        .query_row(
            "SELECT merge_last_sync_finished FROM model_sync_state
             WHERE linked_account_id = ?1 AND model_id = 'hris.Employee'",
            [GLOBEX],
            |r| r.get(0),
        )
        .unwrap();
    let held = env.count("SELECT COUNT(*) FROM hris_employee");
    assert_eq!(held, 300 + 250);
    drop(sqlite);

    // Merge runs a new sync for GLOBEX: the next poll should fetch only what changed.
    fake.with_state(|s| {
        s.start_sync(
            GLOBEX,
            "hris.Employee",
            SyncScript::new(chrono::TimeDelta::milliseconds(200)).writes(4, 3, 1),
        )
    })
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));

    let db = pg::database();
    env.cmd()
        .args(["copy-state", "--to", db.url()])
        .assert()
        .success()
        .stdout(
            predicate::str::contains("linked_accounts")
                .and(predicate::str::contains("hris_employee"))
                .and(predicate::str::contains(held.to_string()))
                .and(predicate::str::contains(pg::server().password()).not()),
        );
    let mut c = db.connect();
    let copied: i64 = c
        .query_one("SELECT count(*) FROM hris_employee", &[])
        .unwrap()
        .get(0);
    assert_eq!(copied, held, "every record moved");
    let (pg_cursor, token): (Option<String>, String) = {
        let r = c
            .query_one(
                "SELECT m.cursor, a.account_token FROM model_sync_state m
                 JOIN linked_accounts a USING (linked_account_id)
                 WHERE linked_account_id = $1 AND model_id = 'hris.Employee'",
                &[&ACME],
            )
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!(pg_cursor.as_deref(), Some(cursor.as_str()));
    assert_eq!(
        token, ACME_TOKEN,
        "the account token moved with its account"
    );

    // The target is no longer empty: a second copy is refused and changes nothing.
    env.cmd()
        .args(["copy-state", "--to", db.url()])
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("already holds merge-sync data")
                .and(predicate::str::contains(pg::server().password()).not()),
        );

    fake.clear_requests();
    env.cmd()
        .env("MERGE_SYNC_DB", db.url())
        .args(["poll", "--force"])
        .assert()
        .success();
    let acme_lists: Vec<_> = requests_for(&fake, ACME_TOKEN)
        .into_iter()
        .filter(|r| r.path.ends_with("/employees"))
        .collect();
    assert_eq!(
        acme_lists.first().and_then(|r| r.param("cursor")),
        Some(cursor.as_str()),
        "ACME resumed at the cursor saved in the file, not at page 1"
    );
    assert_eq!(acme_lists.len(), 7, "only the 7 pages not yet fetched");
    let globex_lists: Vec<_> = requests_for(&fake, GLOBEX_TOKEN)
        .into_iter()
        .filter(|r| r.path.ends_with("/employees"))
        .collect();
    assert!(!globex_lists.is_empty());
    let after = merge_sync::time::parse(globex_lists[0].param("modified_after").unwrap()).unwrap();
    assert_eq!(
        after,
        merge_sync::time::parse(&globex_bound).unwrap() - chrono::TimeDelta::seconds(1),
        "GLOBEX's window starts at the bound the file had reached"
    );
    assert_eq!(globex_lists.len(), 1, "only what changed is fetched");

    assert_pg_mirror_equals_truth(&db, &fake, ACME, "hris.Employee", "hris_employee");
    assert_pg_mirror_equals_truth(&db, &fake, ACME, "hris.Team", "hris_team");
    assert_pg_mirror_equals_truth(&db, &fake, GLOBEX, "hris.Employee", "hris_employee");
}

#[test]
fn copy_state_needs_a_state_file_and_a_postgres_url() {
    let env = Env::sqlite("http://127.0.0.1:9/api");
    let db = pg::database();
    // No state file yet: nothing to copy.
    env.cmd()
        .args(["copy-state", "--to", db.url()])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("does not exist"));
    env.create_state();
    env.cmd()
        .args(["copy-state", "--to", "/tmp/other.db"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--to must be a PostgreSQL URL"));
    env.cmd()
        .env("MERGE_SYNC_DB", db.url())
        .args(["copy-state", "--to", db.url()])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("copies an SQLite state file"));
}
