//! Regression tests for the hardening issue: each fails on the code before its fix.

use std::time::{Duration, Instant};

use chrono::TimeDelta;
use merge_sync::fake::{merge_timestamp, FakeMerge, SyncScript};
use merge_sync::webhook::sign;
use predicates::prelude::*;

use super::support::{add_account, assert_mirror_equals_truth, start, Env, API_KEY};

const SECRET: &str = "whsec_test_secret_hardening";
const ACME: &str = "la-acme";
const TOKEN: &str = "tok_acme_secret_0001";
const BETA: &str = "la-beta";
const BETA_TOKEN: &str = "tok_beta_secret_0002";

fn scenario() -> String {
    let model = r#"{"model_id": "hris.Employee", "status": "DONE", "is_initial_sync": false,
        "last_sync_result": "DONE", "last_sync_start": "-70m", "last_sync_finished": "-1h",
        "next_sync_start": "+23h", "generate": 30}"#;
    format!(
        r#"{{"api_key": "{API_KEY}", "accounts": [
          {{"id": "{ACME}", "account_token": "{TOKEN}", "category": "hris", "models": [{model}]}},
          {{"id": "{BETA}", "account_token": "{BETA_TOKEN}", "category": "hris", "models": [{model}]}}
        ]}}"#
    )
}

/// Runs a short sync on the fake that creates, updates and deletes records, and waits for it.
fn run_sync(fake: &FakeMerge) {
    fake.with_state(|s| {
        s.start_sync(
            ACME,
            "hris.Employee",
            SyncScript::new(TimeDelta::milliseconds(40)).writes(4, 3, 1),
        )
    })
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while fake.with_state(|s| s.has_pending_syncs()) {
        assert!(Instant::now() < deadline, "the fake's sync never finished");
        std::thread::sleep(Duration::from_millis(10));
    }
}

// Hardening item 1: a last_sync_finished a year ahead in sync-status became the window bound,
// and every later sync's records were skipped.
#[test]
fn a_future_dated_sync_status_never_freezes_a_model() {
    let fake = start(&scenario());
    let env = Env::with_fake(&fake);
    add_account(&env, ACME, TOKEN, "hris");
    env.cmd().arg("poll").assert().success();

    fake.with_state(|s| {
        let ahead = s.now() + TimeDelta::days(365);
        s.sync_status_mut(ACME, "hris.Employee")
            .unwrap()
            .last_sync_finished = Some(ahead);
    });
    env.cmd()
        .args(["poll", "--force"])
        .assert()
        .success()
        .stderr(predicate::str::contains("later than its own clock"));
    // The reported value is kept for display; the bound of the window is Merge's clock.
    let rows = env.status_json();
    let next_year = (chrono::Datelike::year(&chrono::Utc::now()) + 1).to_string();
    let reported = rows[0]["merge_reported_last_sync_finished"]
        .as_str()
        .unwrap();
    let bound = rows[0]["merge_last_sync_finished"].as_str().unwrap();
    assert!(reported.starts_with(&next_year), "{reported}");
    assert!(!bound.starts_with(&next_year), "{bound}");

    for _ in 0..3 {
        run_sync(&fake);
        env.cmd().args(["poll", "--force"]).assert().success();
    }
    assert_mirror_equals_truth(&env, &fake, ACME, "hris.Employee", "hris_employee");
}

// Hardening item 1, through a webhook: a signed sync_completed 40 s ahead was taken as the
// next window's bound.
#[test]
fn a_future_dated_webhook_never_freezes_a_model() {
    let fake = start(&scenario());
    let env = Env::with_fake(&fake);
    add_account(&env, ACME, TOKEN, "hris");
    env.cmd().arg("poll").assert().success();

    run_sync(&fake);
    let mut hook = fake.with_state(|s| s.sync_completed_webhook(ACME)).unwrap();
    let ahead = fake.with_state(|s| s.now()) + TimeDelta::seconds(40);
    hook["data"]["sync_status"]["hris.Employee"]["last_sync_finished"] =
        merge_timestamp(ahead).into();
    let body = serde_json::to_vec(&hook).unwrap();
    env.cmd()
        .env("MERGE_WEBHOOK_SECRET", SECRET)
        .args([
            "verify-webhook",
            "--enqueue",
            "--signature",
            &sign(SECRET, &body),
        ])
        .write_stdin(body)
        .assert()
        .code(0);
    env.cmd()
        .arg("poll")
        .assert()
        .success()
        .stderr(predicate::str::contains("later than its own clock"));

    for _ in 0..3 {
        run_sync(&fake);
        env.cmd().args(["poll", "--force"]).assert().success();
    }
    assert_mirror_equals_truth(&env, &fake, ACME, "hris.Employee", "hris_employee");
}

// Hardening item 8: a lock file another user left (here: one that cannot be opened) stopped
// the whole poll, and nothing reached last_error.
#[test]
fn a_lock_that_cannot_be_taken_fails_only_its_account() {
    let fake = start(&scenario());
    let env = Env::sqlite(&fake.base_url());
    add_account(&env, ACME, TOKEN, "hris");
    add_account(&env, BETA, BETA_TOKEN, "hris");
    let lock = merge_sync::store::lock_file(&env.db(), ACME);
    std::fs::create_dir_all(&lock).unwrap();

    env.cmd()
        .args(["poll", "--jobs", "1"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(ACME));
    assert_mirror_equals_truth(&env, &fake, BETA, "hris.Employee", "hris_employee");
    let error = env.text(&format!(
        "SELECT last_error FROM linked_accounts WHERE linked_account_id = '{ACME}'"
    ));
    let error = error.expect("the lock failure is recorded against the account");
    assert!(error.contains("lock"), "{error}");
}

// Hardening item 5: account tokens stayed in the inbox after the webhook was applied, and
// after `accounts remove --purge`.
#[test]
fn linked_webhooks_lose_their_token_once_applied_and_go_with_purge() {
    let env = Env::new("http://127.0.0.1:9/api");
    let body = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/webhooks/linked.json"
    ))
    .unwrap();
    let token = "tok_fixture_linked_0496d4c2_not_a_real_token";
    assert!(String::from_utf8_lossy(&body).contains(token));
    env.create_state();
    env.cmd()
        .env("MERGE_WEBHOOK_SECRET", SECRET)
        .args([
            "verify-webhook",
            "--enqueue",
            "--signature",
            &sign(SECRET, &body),
        ])
        .write_stdin(body)
        .assert()
        .code(0);
    env.cmd().arg("poll").assert().code(1);
    let stored = env.text("SELECT body FROM webhook_inbox").unwrap();
    assert!(!stored.contains(token));
    env.cmd()
        .args([
            "accounts",
            "remove",
            "0496d4c2-42e6-4072-80b3-7b69bfdc76fd",
            "--purge",
        ])
        .assert()
        .success();
    assert_eq!(env.count("SELECT COUNT(*) FROM webhook_inbox"), 0);
}

// Hardening item 4: a malformed .env line was logged with its secret, and the lines before
// it were loaded although the warning said the file was ignored.
#[test]
fn a_malformed_dotenv_is_named_by_line_and_loads_nothing() {
    let env = Env::sqlite("http://127.0.0.1:9/api");
    std::fs::write(
        env.dir.path().join(".env"),
        "MERGE_SYNC_DB=from-dotenv.db\nMERGE_WEBHOOK_SECRET=\"whsec_leaked_0123\n",
    )
    .unwrap();
    add_account(&env, ACME, TOKEN, "hris");
    let out = env.cmd().args(["accounts", "list"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(".env") && stderr.contains("line 2"),
        "{stderr}"
    );
    assert!(!stderr.contains("whsec_leaked"), "{stderr}");
    assert!(!env.dir.path().join("from-dotenv.db").exists());
    assert!(env.db().exists());
}

// Hardening item 12: blank account ids and `--models ",,,"` were accepted.
#[test]
fn blank_account_ids_and_model_lists_are_usage_errors() {
    let env = Env::sqlite("http://127.0.0.1:9/api");
    for extra in [
        &["--linked-account-id", "  "][..],
        &["--linked-account-id", "la1", "--models", ",,,"][..],
    ] {
        env.cmd()
            .args([
                "accounts",
                "add",
                "--account-token",
                TOKEN,
                "--category",
                "hris",
            ])
            .args(extra)
            .assert()
            .code(2);
    }
    assert!(!env.db().exists(), "nothing was written");
}
