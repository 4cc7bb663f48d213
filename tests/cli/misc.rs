//! `demo`, `check` and `completions`.

use predicates::prelude::*;

use super::support::{add_account, start, Env, API_KEY};

#[test]
fn demo_runs_the_whole_life_cycle() {
    let env = Env::new("http://127.0.0.1:9/api");
    env.cmd()
        .env_remove("MERGE_API_KEY")
        .arg("demo")
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "initial sync: 0 of 2 models ready",
        ))
        .stdout(predicate::str::contains("initial sync: complete since"))
        .stdout(predicate::str::contains("webhook: due:"))
        .stdout(predicate::str::contains("demo-token").not());
    assert!(
        !env.db().exists(),
        "the demo leaves the user's state file alone"
    );
}

#[test]
fn check_reports_configuration_and_connectivity_without_changing_anything() {
    let fake = start(&format!(
        r#"{{"api_key": "{API_KEY}", "accounts": [{{"id": "la1", "account_token": "tok_good_0001", "category": "hris",
            "models": [{{"model_id": "hris.Employee", "status": "DONE"}}]}}]}}"#
    ));
    let env = Env::with_fake(&fake);
    env.cmd()
        .arg("check")
        .assert()
        .code(2)
        .stdout(predicate::str::contains("state file:     MISSING"))
        .stderr(predicate::str::contains("does not exist"));
    assert!(!env.db().exists());
    // With no account, nothing about Merge can be tested: check says so and does not pass.
    env.create_state();
    env.cmd()
        .arg("check")
        .assert()
        .code(1)
        .stdout(predicate::str::contains(
            "not tested:     webhook signatures: MERGE_WEBHOOK_SECRET is not set",
        ))
        .stdout(predicate::str::contains(
            "not tested:     the API key and URL: no active linked account",
        ))
        .stdout(predicate::str::contains("check:          FAILED"));
    add_account(&env, "la1", "tok_good_0001", "hris");
    env.cmd()
        .env("MERGE_WEBHOOK_SECRET", "whsec_check_0001")
        .arg("check")
        .assert()
        .success()
        .stdout(predicate::str::contains("account la1: reachable, 1 models"))
        .stdout(predicate::str::contains("not tested").not())
        .stdout(predicate::str::contains("check:          OK"))
        .stdout(predicate::str::contains("whsec_check_0001").not());
    add_account(&env, "la2", "tok_bad_0002", "hris");
    add_account(&env, "la2", "tok_bad_0002", "hris");
    env.cmd()
        .arg("check")
        .assert()
        .code(1)
        .stdout(predicate::str::contains("account la1: reachable, 1 models"))
        .stdout(predicate::str::contains(
            "account la2: FAILED: account token rejected",
        ))
        .stdout(predicate::str::contains("check:          FAILED"))
        .stdout(predicate::str::contains(API_KEY).not());
    assert_eq!(
        env.count("SELECT COUNT(*) FROM model_sync_state"),
        0,
        "check writes no sync state"
    );
}

#[test]
fn completions_are_printed_for_each_shell() {
    let env = Env::new("http://127.0.0.1:9/api");
    for shell in ["bash", "zsh", "fish"] {
        env.cmd()
            .args(["completions", shell])
            .assert()
            .success()
            .stdout(predicate::str::contains("merge-sync"));
    }
}
