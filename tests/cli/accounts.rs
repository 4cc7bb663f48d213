//! `accounts add|list|disable|enable|remove` and `status` before any poll.

use predicates::prelude::*;

use super::support::{accounts_add, start, Env, API_KEY};

fn scenario() -> String {
    format!(
        r#"{{
        "api_key": "{API_KEY}",
        "accounts": [
          {{"id": "la-acme", "account_token": "tok_acme_secret_0001", "public_token": "pub_acme_0001",
            "category": "hris", "end_user_origin_id": "org-acme", "integration": "BambooHR",
            "integration_slug": "bamboohr",
            "models": [{{"model_id": "hris.Employee", "status": "SYNCING", "is_initial_sync": true}}]}}
        ]}}"#
    )
}

#[test]
fn add_with_a_token_fills_in_the_details_from_merge() {
    let fake = start(&scenario());
    let env = Env::with_fake(&fake);
    env.cmd()
        .args(
            accounts_add()
                .token("tok_acme_secret_0001")
                .category("hris"),
        )
        .assert()
        .success()
        .stdout(predicate::str::contains("added: la-acme").and(predicate::str::contains("0001")))
        .stdout(predicate::str::contains("tok_acme_secret").not());
    let out = env
        .cmd()
        .args(["accounts", "list", "--json"])
        .output()
        .unwrap();
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list[0]["linked_account_id"], "la-acme");
    assert_eq!(list[0]["end_user_origin_id"], "org-acme");
    assert_eq!(list[0]["integration_slug"], "bamboohr");
    assert_eq!(list[0]["initial_sync_complete"], false);
    assert_eq!(list[0]["account_token"], "••••0001");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("tok_acme_secret"));
    // The account-details call carried the token, not the public one.
    assert!(fake
        .requests()
        .iter()
        .any(|r| r.path.ends_with("/account-details")
            && r.account_token.as_deref() == Some("tok_acme_secret_0001")));
}

#[test]
fn add_with_a_public_token_exchanges_it() {
    let fake = start(&scenario());
    let env = Env::with_fake(&fake);
    env.cmd()
        .args(
            accounts_add()
                .public_token("pub_acme_0001")
                .category("hris"),
        )
        .assert()
        .success()
        .stdout(predicate::str::contains("added: la-acme"));
    let token = env
        .text("SELECT account_token FROM linked_accounts WHERE linked_account_id = 'la-acme'")
        .unwrap();
    assert_eq!(token, "tok_acme_secret_0001");
    // An unknown public token fails, names no secret and writes nothing new.
    env.cmd()
        .args(
            accounts_add()
                .public_token("pub_nope_9999")
                .category("hris"),
        )
        .assert()
        .code(1)
        .stderr(predicate::str::contains("pub_nope_9999").not());
}

#[test]
fn explicit_flags_skip_the_details_call_and_re_adding_relinks() {
    let fake = start(&scenario());
    let env = Env::with_fake(&fake);
    env.cmd()
        .args(
            accounts_add()
                .token("tok_old_token_1111")
                .category("hris")
                .id("la-acme")
                .origin("org-acme")
                .models("hris.Employee"),
        )
        .assert()
        .success();
    assert!(
        fake.requests().is_empty(),
        "explicit flags make no call to Merge"
    );
    env.cmd()
        .args(
            accounts_add()
                .token("tok_acme_secret_0001")
                .category("hris")
                .id("la-acme"),
        )
        .assert()
        .success()
        .stdout(predicate::str::contains("relinked"));
    assert_eq!(env.count("SELECT COUNT(*) FROM linked_accounts"), 1);
    let row = env.row("SELECT account_token, end_user_origin_id, models FROM linked_accounts");
    let text = |v: &serde_json::Value| v.as_str().unwrap().to_string();
    let (token, origin, models) = (text(&row[0]), text(&row[1]), text(&row[2]));
    assert_eq!(token, "tok_acme_secret_0001");
    assert_eq!(origin, "org-acme", "relink keeps what it is not given");
    assert_eq!(models, r#"["hris.Employee"]"#);
}

#[test]
fn a_rejected_token_fails_clearly_and_writes_nothing() {
    let fake = start(&scenario());
    let env = Env::sqlite(&fake.base_url());
    env.cmd()
        .args(accounts_add().token("tok_revoked_4242").category("hris"))
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "account token rejected — relink or update the token",
        ))
        .stderr(predicate::str::contains("tok_revoked").not());
    assert!(!env.db().exists());
}

#[test]
fn malformed_json_from_merge_is_a_clear_error() {
    let fake = start(&scenario());
    fake.with_state(|s| s.inject_fault(merge_sync::fake::Fault::malformed_json("account-details")));
    let env = Env::sqlite(&fake.base_url());
    env.cmd()
        .args(
            accounts_add()
                .token("tok_acme_secret_0001")
                .category("hris"),
        )
        .assert()
        .code(1)
        .stderr(
            predicate::str::contains("unexpected response from Merge")
                .and(predicate::str::contains("malformed JSON")),
        );
    assert!(!env.db().exists());
}

#[test]
fn status_shows_accounts_before_any_poll() {
    let env = Env::new("http://127.0.0.1:9/api");
    env.cmd()
        .args(
            accounts_add()
                .token("tok_acme_secret_0001")
                .category("hris")
                .id("la-acme")
                .origin("org-acme"),
        )
        .assert()
        .success();
    let rows = env.status_json();
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    for field in [
        "linked_account_id",
        "end_user_origin_id",
        "category",
        "initial_sync_complete",
        "model_id",
        "status",
        "last_sync_result",
        "ready",
        "merge_last_sync_finished",
        "last_synced_at",
        "last_fetched_at",
        "records",
        "next_poll_at",
        "last_error",
    ] {
        assert!(
            row.get(field).is_some(),
            "status --json lacks {field}: {row}"
        );
    }
    assert_eq!(row["linked_account_id"], "la-acme");
    assert_eq!(row["model_id"], serde_json::Value::Null);
    assert_eq!(row["records"], 0);
    env.cmd()
        .arg("status")
        .assert()
        .success()
        .stdout(predicate::str::contains("la-acme").and(predicate::str::contains("not polled yet")))
        .stdout(predicate::str::contains("tok_acme").not());
}

#[test]
fn disable_enable_and_remove() {
    let env = Env::new("http://127.0.0.1:9/api");
    env.cmd()
        .args(
            accounts_add()
                .token("tok_acme_secret_0001")
                .category("hris")
                .id("la-acme")
                .origin("org-acme"),
        )
        .assert()
        .success();
    env.cmd()
        .args(["accounts", "disable", "org-acme"])
        .assert()
        .success();
    assert_eq!(
        env.count("SELECT COUNT(*) FROM linked_accounts WHERE status = 'disabled'"),
        1
    );
    // A disabled account is not polled: no request reaches the (closed) API.
    env.cmd().arg("poll").assert().success();
    env.cmd()
        .args(["accounts", "enable", "la-acme"])
        .assert()
        .success();
    assert_eq!(
        env.count("SELECT COUNT(*) FROM linked_accounts WHERE status = 'active'"),
        1
    );
    env.cmd()
        .args(["accounts", "remove", "la-acme"])
        .assert()
        .success()
        .stdout(predicate::str::contains("kept"));
    assert_eq!(env.count("SELECT COUNT(*) FROM linked_accounts"), 0);
}
