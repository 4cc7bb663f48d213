//! Several `poll` processes ("hosts") sharing one PostgreSQL database: every account synced
//! exactly once, the per-account rate limit held by all together, nothing lost when one of
//! them is killed mid-pass.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use chrono::Utc;
use merge_sync::fake::{FakeMerge, RecordedRequest};
use merge_sync::secret::Secret;
use merge_sync::store::{Location, NewAccount};
use merge_sync::testing::postgres as pg;

use crate::support::*;

const ACCOUNTS: usize = 200;
/// Each account needs exactly this many requests: sync-status, two pages of employees (101
/// records), one of teams.
const REQUESTS_PER_ACCOUNT: usize = 4;

fn token(i: usize) -> String {
    format!("tok-{i:04}")
}

fn account(i: usize) -> String {
    format!("la-{i:04}")
}

fn scenario(latency_ms: u64) -> String {
    let accounts: Vec<String> = (0..ACCOUNTS)
        .map(|i| {
            format!(
                r#"{{"id": "{}", "account_token": "{}", "category": "hris", "models": [
                  {{"model_id": "hris.Employee", "status": "DONE", "is_initial_sync": false,
                    "last_sync_result": "DONE", "last_sync_start": "-70m", "last_sync_finished": "-1h",
                    "next_sync_start": "+23h", "generate": 101, "generate_deleted": 2}},
                  {{"model_id": "hris.Team", "status": "DONE", "is_initial_sync": false,
                    "last_sync_result": "DONE", "last_sync_start": "-70m", "last_sync_finished": "-1h",
                    "next_sync_start": "+23h", "generate": 2}}]}}"#,
                account(i),
                token(i)
            )
        })
        .collect();
    format!(
        r#"{{"api_key": "{API_KEY}", "latency_ms": {latency_ms}, "accounts": [{}]}}"#,
        accounts.join(",")
    )
}

/// A fake with [`ACCOUNTS`] due accounts, all registered in a new PostgreSQL database.
fn setup(latency_ms: u64) -> (FakeMerge, Env, pg::TestDatabase) {
    let fake = start(&scenario(latency_ms));
    let env = Env::sqlite(&fake.base_url());
    let db = pg::database();
    let location = Location::parse(Path::new(db.url()), &|_| None).unwrap();
    let mut store = merge_sync::store::open(&location).unwrap();
    for i in 0..ACCOUNTS {
        store
            .upsert_account(
                &NewAccount {
                    linked_account_id: account(i),
                    end_user_origin_id: None,
                    category: "hris".into(),
                    integration_slug: None,
                    account_token: Secret::new(token(i)),
                    models: None,
                },
                Utc::now(),
            )
            .unwrap();
    }
    (fake, env, db)
}

fn spawn_poll(env: &Env, db: &pg::TestDatabase, rate_limit: u32) -> Child {
    env.process()
        .env("MERGE_SYNC_DB", db.url())
        .args([
            "poll",
            "--jobs",
            "4",
            "--rate-limit",
            &rate_limit.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn finish(child: Child) -> (Option<i32>, String) {
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Requests per account token, in arrival order.
fn by_account(fake: &FakeMerge) -> HashMap<String, Vec<RecordedRequest>> {
    let mut map: HashMap<String, Vec<RecordedRequest>> = HashMap::new();
    for r in fake.requests() {
        if let Some(t) = r.account_token.clone() {
            map.entry(t).or_default().push(r);
        }
    }
    for list in map.values_mut() {
        list.sort_by_key(|r| r.at);
    }
    map
}

/// The most requests of one account in any 60-second window.
fn busiest_minute(requests: &[RecordedRequest]) -> usize {
    let mut most = 0;
    for (i, first) in requests.iter().enumerate() {
        let n = requests[i..]
            .iter()
            .take_while(|r| r.at.duration_since(first.at) < Duration::from_secs(60))
            .count();
        most = most.max(n);
    }
    most
}

/// Every account's records in PostgreSQL equal the fake's, field for field.
fn assert_mirror_equals_truth(fake: &FakeMerge, db: &pg::TestDatabase) {
    let mut c = db.connect();
    for (model, table) in [
        ("hris.Employee", "hris_employee"),
        ("hris.Team", "hris_team"),
    ] {
        let mut got: HashMap<String, BTreeMap<String, (bool, serde_json::Value)>> = HashMap::new();
        for r in c
            .query(
                &format!(
                    "SELECT linked_account_id, id, remote_was_deleted, data::text FROM {table}"
                ),
                &[],
            )
            .unwrap()
        {
            let data: String = r.get(3);
            got.entry(r.get(0))
                .or_default()
                .insert(r.get(1), (r.get(2), serde_json::from_str(&data).unwrap()));
        }
        for i in 0..ACCOUNTS {
            let truth = fake.with_state(|s| s.records(&account(i), model));
            let mine = got.remove(&account(i)).unwrap_or_default();
            assert_eq!(mine.len(), truth.len(), "{} {model}: records", account(i));
            for t in truth {
                let id = t["id"].as_str().unwrap();
                let (deleted, data) = &mine[id];
                assert_eq!(*deleted, t["remote_was_deleted"].as_bool().unwrap_or(false));
                assert_eq!(data, &t, "{} {model} {id}", account(i));
            }
        }
        assert!(
            got.is_empty(),
            "records of unknown accounts: {:?}",
            got.keys()
        );
    }
}

#[test]
fn three_polls_on_one_database_sync_every_account_exactly_once() {
    let (fake, env, db) = setup(5);
    let rate_limit = REQUESTS_PER_ACCOUNT as u32;
    let polls: Vec<Child> = (0..3).map(|_| spawn_poll(&env, &db, rate_limit)).collect();
    for (code, stderr) in polls.into_iter().map(finish) {
        assert_eq!(code, Some(0), "{stderr}");
    }
    let requests = by_account(&fake);
    assert_eq!(requests.len(), ACCOUNTS, "every account was synced");
    for (token, list) in &requests {
        // Exactly once: one sync-status, each page once. A second process on the account,
        // at the same time or after, would repeat some of them.
        let status = list
            .iter()
            .filter(|r| r.path.ends_with("/sync-status"))
            .count();
        assert_eq!(status, 1, "{token}: sync-status asked {status} times");
        let mut pages: Vec<(String, Option<String>)> = list
            .iter()
            .filter(|r| !r.path.ends_with("/sync-status"))
            .map(|r| (r.path.clone(), r.param("cursor").map(str::to_string)))
            .collect();
        let n = pages.len();
        pages.sort();
        pages.dedup();
        assert_eq!(pages.len(), n, "{token}: a page was fetched twice");
        assert_eq!(list.len(), REQUESTS_PER_ACCOUNT, "{token}: {list:?}");
        assert!(busiest_minute(list) <= rate_limit as usize, "{token}");
    }
    let state: i64 = db
        .connect()
        .query_one(
            "SELECT count(*) FROM model_sync_state WHERE cursor IS NULL
               AND merge_last_sync_finished IS NOT NULL",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(state, 2 * ACCOUNTS as i64, "every window completed");
    assert_mirror_equals_truth(&fake, &db);
}

#[test]
fn a_poll_killed_mid_pass_loses_nothing_and_its_accounts_are_finished_by_the_next_tick() {
    let (fake, env, db) = setup(20);
    let rate_limit = 100;
    let mut polls: Vec<Child> = (0..3).map(|_| spawn_poll(&env, &db, rate_limit)).collect();
    wait_until(
        "the three polls are well into the pass",
        Duration::from_secs(120),
        || fake.requests().len() >= ACCOUNTS * REQUESTS_PER_ACCOUNT / 4,
    );
    let mut killed = polls.remove(0);
    killed.kill().unwrap();
    killed.wait().unwrap();
    for (code, stderr) in polls.into_iter().map(finish) {
        assert_eq!(code, Some(0), "{stderr}");
    }
    // The next cron tick: the killed process's locks died with its connection, so the
    // accounts it held are not stalled; each resumes from its last committed page.
    let (code, stderr) = finish(spawn_poll(&env, &db, rate_limit));
    assert_eq!(code, Some(0), "{stderr}");
    let unfinished: i64 = db
        .connect()
        .query_one(
            "SELECT count(*) FROM model_sync_state WHERE cursor IS NOT NULL
               OR merge_last_sync_finished IS NULL",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(unfinished, 0, "every window completed");
    let requests = by_account(&fake);
    assert_eq!(requests.len(), ACCOUNTS);
    for (token, list) in &requests {
        assert!(busiest_minute(list) <= rate_limit as usize, "{token}");
    }
    assert_mirror_equals_truth(&fake, &db);
}
