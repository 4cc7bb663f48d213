//! `poll` and `fetch` against the fake Merge: detection, windows, crash safety, errors,
//! scheduling and one writer per account.

use std::time::Duration;

use merge_sync::fake::{Fault, SyncScript};
use predicates::prelude::*;

use super::support::{
    add_account, assert_mirror_equals_truth, requests_for, start, wait_until, Env, API_KEY,
};

const ACME: &str = "la-acme";
const ACME_TOKEN: &str = "tok_acme_secret_0001";
const GLOBEX: &str = "la-globex";
const GLOBEX_TOKEN: &str = "tok_globex_secret_0002";

/// Two HRIS accounts whose initial sync finished an hour ago (daily cadence).
fn two_accounts(employees: usize) -> String {
    format!(
        r#"{{
        "api_key": "{API_KEY}",
        "sync_status_max_page_size": 2,
        "accounts": [
          {{"id": "{ACME}", "account_token": "{ACME_TOKEN}", "category": "hris", "end_user_origin_id": "org-acme",
            "models": [
              {{"model_id": "hris.Employee", "status": "DONE", "is_initial_sync": false, "last_sync_result": "DONE",
                "last_sync_start": "-70m", "last_sync_finished": "-1h", "next_sync_start": "+23h",
                "generate": {employees}, "generate_deleted": 3}},
              {{"model_id": "hris.Team", "status": "DONE", "is_initial_sync": false, "last_sync_result": "DONE",
                "last_sync_start": "-70m", "last_sync_finished": "-1h", "next_sync_start": "+23h", "generate": 4}},
              {{"model_id": "hris.TimeOffBalance", "status": "DONE", "is_initial_sync": false, "last_sync_result": "DONE",
                "last_sync_start": "-70m", "last_sync_finished": "-1h", "next_sync_start": "+23h", "generate": 7}},
              {{"model_id": "hris.BankInfo", "status": "DISABLED", "is_initial_sync": true}}
            ]}},
          {{"id": "{GLOBEX}", "account_token": "{GLOBEX_TOKEN}", "category": "hris", "end_user_origin_id": "org-globex",
            "models": [
              {{"model_id": "hris.Employee", "status": "DONE", "is_initial_sync": false, "last_sync_result": "DONE",
                "last_sync_start": "-70m", "last_sync_finished": "-1h", "next_sync_start": "+23h", "generate": 12}}
            ]}}
        ]}}"#
    )
}

fn setup(employees: usize) -> (merge_sync::fake::FakeMerge, Env) {
    let fake = start(&two_accounts(employees));
    let env = Env::with_fake(&fake);
    add_account(&env, ACME, ACME_TOKEN, "hris");
    add_account(&env, GLOBEX, GLOBEX_TOKEN, "hris");
    (fake, env)
}

fn row<'a>(rows: &'a [serde_json::Value], account: &str, model: &str) -> &'a serde_json::Value {
    rows.iter()
        .find(|r| r["linked_account_id"] == account && r["model_id"] == model)
        .unwrap_or_else(|| panic!("no status row for {account} {model}"))
}

#[test]
fn first_poll_mirrors_every_enabled_model_over_many_pages() {
    let (fake, env) = setup(2_500);
    env.cmd()
        .arg("poll")
        .assert()
        .success()
        .stdout("")
        .stderr("");
    assert_mirror_equals_truth(&env, &fake, ACME, "hris.Employee", "hris_employee");
    assert_mirror_equals_truth(
        &env,
        &fake,
        ACME,
        "hris.TimeOffBalance",
        "hris_time_off_balance",
    );
    assert_mirror_equals_truth(&env, &fake, GLOBEX, "hris.Employee", "hris_employee");
    assert_eq!(
        env.count("SELECT COUNT(*) FROM hris_employee WHERE remote_was_deleted = TRUE"),
        3,
        "deletes are kept, flagged"
    );
    // DISABLED models are skipped and get no records (their table exists, empty, for the
    // typed view).
    assert_eq!(env.count("SELECT COUNT(*) FROM hris_bank_info"), 0);
    // Every list call asked for the documented window and paging parameters.
    let lists: Vec<_> = requests_for(&fake, ACME_TOKEN)
        .into_iter()
        .filter(|r| r.path.ends_with("/employees"))
        .collect();
    assert_eq!(lists.len(), 25, "2,500 records in pages of 100");
    let finished = fake.with_state(|s| {
        s.sync_status(ACME, "hris.Employee")
            .unwrap()
            .last_sync_finished
            .unwrap()
    });
    for r in &lists {
        assert_eq!(r.param("page_size"), Some("100"));
        assert_eq!(r.param("include_deleted_data"), Some("true"));
        let before = merge_sync::time::parse(r.param("modified_before").unwrap()).unwrap();
        assert_eq!(
            before, finished,
            "modified_before is Merge's last_sync_finished"
        );
        assert_eq!(
            r.param("modified_after"),
            None,
            "the first window has no lower bound"
        );
    }
    let rows = env.status_json();
    let emp = row(&rows, ACME, "hris.Employee");
    assert_eq!(emp["records"], 2_500);
    assert_eq!(emp["ready"], true);
    assert_eq!(emp["initial_sync_complete"], true);
    assert!(emp["last_fetched_at"].is_string() && emp["last_synced_at"].is_string());
    assert_eq!(
        merge_sync::time::parse(emp["merge_last_sync_finished"].as_str().unwrap()).unwrap(),
        finished
    );
    // Sync-status came in pages of 2, and all of them were read.
    assert!(rows
        .iter()
        .any(|r| r["linked_account_id"] == ACME && r["model_id"] == "hris.TimeOffBalance"));
}

#[test]
fn a_second_poll_before_the_account_is_due_makes_no_request() {
    let (fake, env) = setup(10);
    env.cmd().arg("poll").assert().success();
    fake.clear_requests();
    env.cmd().arg("poll").assert().success();
    assert!(
        fake.requests().is_empty(),
        "not-due accounts make no request: {:?}",
        fake.requests().len()
    );
    // Daily cadence → next poll in 30 minutes.
    let rows = env.status_json();
    let next = merge_sync::time::parse(
        row(&rows, ACME, "hris.Employee")["next_poll_at"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let minutes = (next - chrono::Utc::now()).num_minutes();
    assert!(
        (28..=30).contains(&minutes),
        "next poll in {minutes} minutes"
    );
    // --force ignores the schedule.
    env.cmd().args(["poll", "--force"]).assert().success();
    assert!(!fake.requests().is_empty());
}

#[test]
fn incremental_windows_are_contiguous_on_merges_clock_and_catch_changes_and_deletes() {
    let (fake, env) = setup(50);
    env.cmd().arg("poll").assert().success();
    let b1 = fake.with_state(|s| {
        s.sync_status(ACME, "hris.Employee")
            .unwrap()
            .last_sync_finished
            .unwrap()
    });
    // Merge runs a sync that creates, updates and deletes records.
    fake.with_state(|s| {
        s.start_sync(
            ACME,
            "hris.Employee",
            SyncScript::new(chrono::TimeDelta::milliseconds(300)).writes(5, 4, 2),
        )
    })
    .unwrap();
    std::thread::sleep(Duration::from_millis(400));
    fake.clear_requests();
    env.cmd().args(["poll", "--force"]).assert().success();
    let b2 = fake.with_state(|s| {
        s.sync_status(ACME, "hris.Employee")
            .unwrap()
            .last_sync_finished
            .unwrap()
    });
    assert!(b2 > b1);
    let lists: Vec<_> = requests_for(&fake, ACME_TOKEN)
        .into_iter()
        .filter(|r| r.path.ends_with("/employees"))
        .collect();
    assert!(!lists.is_empty());
    let after = merge_sync::time::parse(lists[0].param("modified_after").unwrap()).unwrap();
    assert_eq!(
        after,
        b1 - chrono::TimeDelta::seconds(1),
        "the window starts at the previous bound minus the overlap"
    );
    assert_eq!(
        merge_sync::time::parse(lists[0].param("modified_before").unwrap()).unwrap(),
        b2
    );
    assert!(lists.len() < 3, "only what changed is fetched");
    assert_mirror_equals_truth(&env, &fake, ACME, "hris.Employee", "hris_employee");
    assert_eq!(env.count("SELECT COUNT(*) FROM hris_employee WHERE linked_account_id = 'la-acme' AND remote_was_deleted = TRUE"), 5);
}

/// Records Merge writes while our fetch of the previous sync is running must not be
/// lost (a window starting at our own clock would skip them).
#[test]
fn a_sync_that_writes_while_our_fetch_runs_loses_nothing() {
    let (fake, env) = setup(600);
    // Each request takes 40 ms, so our fetch of the first sync takes a while; meanwhile
    // Merge's next sync starts and writes records.
    fake.with_state(|s| {
        s.set_latency(Duration::from_millis(40));
        s.start_sync(
            ACME,
            "hris.Employee",
            SyncScript::new(chrono::TimeDelta::milliseconds(600)).writes(20, 30, 5),
        )
    })
    .unwrap();
    env.cmd()
        .args(["poll", "--account", ACME])
        .assert()
        .success();
    // The first poll fetched up to the first sync's bound; the running sync's writes come next.
    wait_until(
        "Merge's second sync finished",
        Duration::from_secs(60),
        || fake.with_state(|s| s.sync_status(ACME, "hris.Employee").unwrap().status != "SYNCING"),
    );
    fake.with_state(|s| s.set_latency(Duration::ZERO));
    env.cmd()
        .args(["poll", "--force", "--account", ACME])
        .assert()
        .success();
    assert_mirror_equals_truth(&env, &fake, ACME, "hris.Employee", "hris_employee");
}

#[test]
fn a_record_modified_exactly_at_last_sync_finished_is_not_lost() {
    // Both timestamps resolve against the same scenario start: they are equal to the
    // microsecond. The fake's modified_before is strict, as Merge's may be.
    let fake = start(&format!(
        r#"{{"api_key": "{API_KEY}", "accounts": [
          {{"id": "{ACME}", "account_token": "{ACME_TOKEN}", "category": "hris", "models": [
            {{"model_id": "hris.Employee", "status": "DONE", "is_initial_sync": false, "last_sync_result": "DONE",
              "last_sync_start": "-70m", "last_sync_finished": "-1h", "next_sync_start": "+23h", "generate": 5,
              "records": [{{"id": "edge-1", "first_name": "Edge", "modified_at": "-1h", "created_at": "-2h"}}]}}
          ]}}]}}"#
    ));
    let env = Env::with_fake(&fake);
    add_account(&env, ACME, ACME_TOKEN, "hris");
    let edge = fake.with_state(|s| s.record(ACME, "hris.Employee", "edge-1").unwrap());
    let b1 = fake.with_state(|s| {
        s.sync_status(ACME, "hris.Employee")
            .unwrap()
            .last_sync_finished
            .unwrap()
    });
    assert_eq!(
        merge_sync::time::parse(edge["modified_at"].as_str().unwrap()).unwrap(),
        b1
    );
    env.cmd().arg("poll").assert().success();
    // Merge's next sync finishes; the next window starts 1 s before b1 and includes it.
    fake.with_state(|s| {
        s.start_sync(
            ACME,
            "hris.Employee",
            SyncScript::new(chrono::TimeDelta::milliseconds(50)).writes(1, 0, 0),
        )
    })
    .unwrap();
    std::thread::sleep(Duration::from_millis(120));
    env.cmd().args(["poll", "--force"]).assert().success();
    assert_mirror_equals_truth(&env, &fake, ACME, "hris.Employee", "hris_employee");
}

#[test]
fn a_fetch_interrupted_by_server_failures_resumes_from_its_cursor() {
    let (fake, env) = setup(1_000);
    // Page 4 of employees fails more times than the client retries.
    fake.with_state(|s| s.inject_fault(Fault::status("/employees", 503).skip(3).times(10)));
    env.cmd()
        .args(["poll", "--account", ACME])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("503"));
    assert_eq!(
        env.count("SELECT COUNT(*) FROM hris_employee"),
        300,
        "three committed pages are kept"
    );
    let cursor = env.text("SELECT cursor FROM model_sync_state WHERE model_id = 'hris.Employee'");
    assert!(cursor.is_some(), "the cursor of the failed page is saved");
    let rows = env.status_json();
    assert!(row(&rows, ACME, "hris.Employee")["last_error"]
        .as_str()
        .unwrap()
        .contains("503"));
    fake.with_state(|s| s.clear_faults());
    fake.clear_requests();
    env.cmd()
        .args(["poll", "--force", "--account", ACME])
        .assert()
        .success();
    let first = requests_for(&fake, ACME_TOKEN)
        .into_iter()
        .find(|r| r.path.ends_with("/employees"))
        .unwrap();
    assert_eq!(
        first.param("cursor"),
        cursor.as_deref(),
        "resumed at the saved cursor, not page 1"
    );
    assert_mirror_equals_truth(&env, &fake, ACME, "hris.Employee", "hris_employee");
    assert_eq!(
        row(&env.status_json(), ACME, "hris.Employee")["last_error"],
        serde_json::Value::Null
    );
}

#[test]
fn a_rejected_saved_cursor_restarts_the_window() {
    let (fake, env) = setup(500);
    fake.with_state(|s| s.inject_fault(Fault::status("/employees", 500).skip(2).times(10)));
    env.cmd().args(["poll", "--account", ACME]).assert().code(1);
    fake.with_state(|s| {
        s.clear_faults();
        // The saved cursor has expired.
        s.inject_fault(
            Fault::status_body("/employees", 400, r#"{"detail": "Invalid cursor"}"#).times(1),
        );
    });
    env.cmd()
        .args(["poll", "--force", "--account", ACME])
        .assert()
        .success();
    assert_mirror_equals_truth(&env, &fake, ACME, "hris.Employee", "hris_employee");
}

#[test]
fn a_killed_fetch_resumes_and_the_mirror_equals_merge() {
    let (fake, env) = setup(3_000);
    fake.with_state(|s| s.set_latency(Duration::from_millis(30)));
    let mut child = env
        .process()
        .args(["fetch", "--account", ACME])
        .spawn()
        .unwrap();
    // Let it commit a few pages, then kill it without warning.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let n = env.count_or_zero("SELECT COUNT(*) FROM hris_employee");
        if n >= 500 || std::time::Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let partial = env.count("SELECT COUNT(*) FROM hris_employee");
    assert!(
        partial > 0 && partial < 3_000,
        "killed mid-fetch ({partial} records)"
    );
    // The killed run's requests are on record for the next run's rate limit.
    {
        let mut store = env.store();
        let mut lock = store.try_lock_account(ACME).unwrap().unwrap();
        let (recorded, sent) = (
            lock.recent_requests().len(),
            requests_for(&fake, ACME_TOKEN).len(),
        );
        assert!(recorded >= sent, "{recorded} recorded, {sent} received");
    }
    fake.with_state(|s| s.set_latency(Duration::ZERO));
    env.cmd()
        .args(["fetch", "--account", ACME])
        .assert()
        .success();
    assert_mirror_equals_truth(&env, &fake, ACME, "hris.Employee", "hris_employee");
    env.cmd().args(["poll", "--force"]).assert().success();
    assert_mirror_equals_truth(
        &env,
        &fake,
        ACME,
        "hris.TimeOffBalance",
        "hris_time_off_balance",
    );
}

#[test]
fn a_revoked_token_fails_only_its_account_and_backs_off() {
    let (fake, env) = setup(20);
    fake.with_state(|s| s.revoke_token(ACME)).unwrap();
    env.cmd()
        .arg("poll")
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "account token rejected — relink or update the token",
        ))
        .stderr(predicate::str::contains(ACME_TOKEN).not());
    assert_mirror_equals_truth(&env, &fake, GLOBEX, "hris.Employee", "hris_employee");
    env.cmd()
        .arg("status")
        .assert()
        .success()
        .stdout(predicate::str::contains("account token rejected"));
    // Not retried until its backoff ends.
    fake.clear_requests();
    env.cmd().arg("poll").assert().success();
    assert!(
        requests_for(&fake, ACME_TOKEN).is_empty(),
        "the failing account is in backoff"
    );
    let next = env
        .text(&format!(
            "SELECT next_poll_at FROM linked_accounts WHERE linked_account_id = '{ACME}'"
        ))
        .unwrap();
    let wait = merge_sync::time::parse(&next).unwrap() - chrono::Utc::now();
    assert!(
        wait > chrono::TimeDelta::seconds(30) && wait <= chrono::TimeDelta::minutes(1),
        "backoff {wait}"
    );
    // Relinking with a good token makes it due again and clears the error.
    fake.with_state(|s| s.set_account_token(ACME, "tok_acme_new_0003"))
        .unwrap();
    add_account(&env, ACME, "tok_acme_new_0003", "hris");
    env.cmd().arg("poll").assert().success();
    assert_mirror_equals_truth(&env, &fake, ACME, "hris.Employee", "hris_employee");
}

#[test]
fn two_polls_at_once_never_sync_the_same_account_twice() {
    let (fake, env) = setup(800);
    fake.with_state(|s| s.set_latency(Duration::from_millis(15)));
    let spawn = || {
        env.process()
            .args(["poll", "--jobs", "1"])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    assert!(b.status.success(), "{}", String::from_utf8_lossy(&b.stderr));
    for token in [ACME_TOKEN, GLOBEX_TOKEN] {
        let pages = requests_for(&fake, token)
            .iter()
            .filter(|r| r.path.ends_with("/sync-status"))
            .count();
        assert_eq!(
            pages,
            if token == ACME_TOKEN { 2 } else { 1 },
            "sync-status is read to its last page"
        );
        // Each pass starts with sync-status' first page: each account was visited by exactly
        // one of the two runs.
        let passes = requests_for(&fake, token)
            .iter()
            .filter(|r| r.path.ends_with("/sync-status") && r.param("cursor").is_none())
            .count();
        assert_eq!(passes, 1, "account visited twice");
    }
    assert_mirror_equals_truth(&env, &fake, ACME, "hris.Employee", "hris_employee");
    assert_mirror_equals_truth(&env, &fake, GLOBEX, "hris.Employee", "hris_employee");
}

#[test]
fn a_poll_that_finds_every_account_taken_exits_zero_with_one_warning() {
    let (_fake, env) = setup(5);
    let mut store = env.store();
    let _a = store.try_lock_account(ACME).unwrap().unwrap();
    let _b = store.try_lock_account(GLOBEX).unwrap().unwrap();
    let out = env.cmd().arg("poll").output().unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("another merge-sync"), "{stderr}");
    env.cmd()
        .args(["fetch", "--account", ACME])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("another merge-sync is syncing"));
}

#[test]
fn full_fetch_rereads_everything_up_to_the_latest_finished_sync() {
    let (fake, env) = setup(120);
    env.cmd().arg("poll").assert().success();
    env.execute("DELETE FROM hris_employee WHERE linked_account_id = 'la-acme'");
    fake.clear_requests();
    env.cmd()
        .args(["fetch", "--account", ACME, "--model", "hris.Employee"])
        .assert()
        .success();
    assert_eq!(
        env.count("SELECT COUNT(*) FROM hris_employee WHERE linked_account_id = 'la-acme'"),
        0,
        "nothing new without --full"
    );
    env.cmd()
        .args([
            "fetch",
            "--account",
            ACME,
            "--model",
            "hris.Employee",
            "--full",
        ])
        .assert()
        .success();
    assert_mirror_equals_truth(&env, &fake, ACME, "hris.Employee", "hris_employee");
    assert!(requests_for(&fake, ACME_TOKEN)
        .iter()
        .filter(|r| r.path.ends_with("/employees"))
        .all(|r| r.param("modified_after").is_none()));
    assert!(
        !requests_for(&fake, ACME_TOKEN)
            .iter()
            .any(|r| r.path.ends_with("/teams")),
        "--model limits the fetch"
    );
}

#[test]
fn failed_syncs_are_skipped_and_shown() {
    let (fake, env) = setup(5);
    env.cmd().arg("poll").assert().success();
    fake.with_state(|s| {
        s.start_sync(
            ACME,
            "hris.Employee",
            SyncScript::new(chrono::TimeDelta::milliseconds(20))
                .writes(3, 0, 0)
                .result("FAILED"),
        )
    })
    .unwrap();
    std::thread::sleep(Duration::from_millis(60));
    env.cmd().args(["poll", "--force"]).assert().success();
    let rows = env.status_json();
    assert_eq!(row(&rows, ACME, "hris.Employee")["status"], "FAILED");
    assert_eq!(
        env.count("SELECT COUNT(*) FROM hris_employee WHERE linked_account_id = 'la-acme'"),
        5
    );
    env.cmd()
        .arg("status")
        .assert()
        .success()
        .stdout(predicate::str::contains("FAILED"));
}

#[test]
fn transient_garbage_from_merge_is_retried_and_rate_limits_are_honoured() {
    let (fake, env) = setup(250);
    fake.with_state(|s| {
        s.inject_fault(Fault::malformed_json("/employees").nth(2));
        s.inject_fault(Fault::html("/employees", 502).nth(3));
        s.inject_fault(Fault::rate_limit("/teams", 1).times(1));
    });
    let started = std::time::Instant::now();
    env.cmd()
        .args(["poll", "--account", ACME])
        .assert()
        .success();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After was honoured"
    );
    assert_mirror_equals_truth(&env, &fake, ACME, "hris.Employee", "hris_employee");
    assert_mirror_equals_truth(&env, &fake, ACME, "hris.Team", "hris_team");
}

#[test]
fn request_times_are_left_for_the_next_process_so_the_rate_limit_spans_runs() {
    let (fake, env) = setup(250);
    // Stored to the millisecond: allow the truncation.
    let before = std::time::SystemTime::now() - Duration::from_millis(1);
    env.cmd()
        .args(["fetch", "--account", ACME])
        .assert()
        .success();
    let after = std::time::SystemTime::now();
    let made = requests_for(&fake, ACME_TOKEN).len();
    let mut store = env.store();
    let mut lock = store.try_lock_account(ACME).unwrap().unwrap();
    let times = lock.recent_requests();
    assert_eq!(times.len(), made, "every request of the run is handed over");
    // The times of this run's requests, not stale or made-up ones (compared with the run
    // itself, never with a wall-clock limit).
    assert!(
        times.iter().all(|t| before <= *t && *t <= after),
        "{times:?} not within the run"
    );
}
