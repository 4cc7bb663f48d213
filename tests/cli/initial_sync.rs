//! Initial-sync detection over Merge time, with the hook and the UI fields.

use chrono::TimeDelta;
use predicates::prelude::*;

use super::support::{accounts_add, Env};

const ACCOUNT: &str = "c3d4e5f6-2222-4000-8000-000000000003";

fn fixture() -> merge_sync::fake::FakeMerge {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/scenarios/initial-sync.json"
    );
    merge_sync::fake::FakeMerge::start(merge_sync::fake::Scenario::from_file(path).unwrap())
        .unwrap()
}

fn accounts_json(env: &Env) -> serde_json::Value {
    let out = env
        .cmd()
        .args(["accounts", "list", "--json"])
        .env("MERGE_API_KEY", "test-api-key")
        .output()
        .unwrap();
    serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()[0].clone()
}

#[test]
fn initial_sync_is_detected_model_by_model_and_the_hook_runs_once() {
    let fake = fixture();
    let env = Env::with_fake(&fake);
    let hook =
        "echo \"$MERGE_LINKED_ACCOUNT_ID $MERGE_END_USER_ORIGIN_ID $MERGE_CATEGORY\" >> hook.log";
    let poll = |force: bool| {
        let mut c = env.cmd();
        c.env("MERGE_API_KEY", "test-api-key")
            .args(["--on-initial-sync-complete", hook, "poll"]);
        if force {
            c.arg("--force");
        }
        c.assert().success();
    };
    env.cmd()
        .env("MERGE_API_KEY", "test-api-key")
        .args(accounts_add().token("tok-initial-0001").category("hris"))
        .assert()
        .success();

    poll(false);
    let a = accounts_json(&env);
    assert_eq!(a["initial_sync_complete"], false);
    assert_eq!(
        (a["models_ready"].as_u64(), a["models_enabled"].as_u64()),
        (Some(0), Some(3)),
        "DISABLED does not count"
    );
    assert!(a["initial_sync_started_at"].is_string());
    let next = merge_sync::time::parse(a["next_poll_at"].as_str().unwrap()).unwrap();
    assert!(
        (9..=10).contains(&(next - chrono::Utc::now()).num_minutes()),
        "every 10 minutes during the initial sync"
    );
    env.cmd()
        .arg("status")
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "initial sync: 0 of 3 models ready, running for",
        ));

    // Teams finish first and are fetched at once, before the account is complete.
    fake.advance(TimeDelta::minutes(2));
    poll(true);
    let a = accounts_json(&env);
    assert_eq!(a["models_ready"], 1);
    assert_eq!(a["initial_sync_complete"], false);
    assert_eq!(env.count("SELECT COUNT(*) FROM hris_team"), 10);
    assert_eq!(env.count("SELECT COUNT(*) FROM hris_employee"), 0);
    assert!(!env.dir.path().join("hook.log").exists());

    fake.advance(TimeDelta::minutes(9));
    poll(true);
    let a = accounts_json(&env);
    assert_eq!(a["initial_sync_complete"], true);
    assert!(a["initial_sync_completed_at"].is_string());
    assert_eq!(env.count("SELECT COUNT(*) FROM hris_employee"), 120);
    let log = std::fs::read_to_string(env.dir.path().join("hook.log")).unwrap();
    assert_eq!(log, format!("{ACCOUNT} org-initech hris\n"));

    poll(true);
    let log = std::fs::read_to_string(env.dir.path().join("hook.log")).unwrap();
    assert_eq!(log.lines().count(), 1, "the hook runs once per account");
}

#[test]
fn a_failing_hook_is_shown_and_does_not_undo_the_state() {
    let fake = fixture();
    fake.advance(TimeDelta::minutes(11));
    let env = Env::with_fake(&fake);
    env.cmd()
        .env("MERGE_API_KEY", "test-api-key")
        .args(accounts_add().token("tok-initial-0001").category("hris"))
        .assert()
        .success();
    env.cmd()
        .env("MERGE_API_KEY", "test-api-key")
        .env("MERGE_SYNC_ON_INITIAL_SYNC_COMPLETE", "exit 3")
        .arg("poll")
        .assert()
        .success()
        .stderr(predicate::str::contains("hook exited"));
    assert_eq!(accounts_json(&env)["initial_sync_complete"], true);
    env.cmd()
        .arg("status")
        .assert()
        .success()
        .stdout(predicate::str::contains("hook: initial-sync hook exited"));
}

#[test]
fn the_hook_runs_even_when_the_pass_that_completed_the_initial_sync_fails() {
    let fake = fixture();
    fake.advance(TimeDelta::minutes(11));
    fake.with_state(|s| s.inject_fault(merge_sync::fake::Fault::status("/employees", 500)));
    let env = Env::with_fake(&fake);
    env.cmd()
        .env("MERGE_API_KEY", "test-api-key")
        .args(accounts_add().token("tok-initial-0001").category("hris"))
        .assert()
        .success();
    env.cmd()
        .env("MERGE_API_KEY", "test-api-key")
        .env(
            "MERGE_SYNC_ON_INITIAL_SYNC_COMPLETE",
            "echo ran >> hook.log",
        )
        .arg("poll")
        .assert()
        .code(1);
    assert_eq!(
        std::fs::read_to_string(env.dir.path().join("hook.log")).unwrap(),
        "ran\n"
    );
}
