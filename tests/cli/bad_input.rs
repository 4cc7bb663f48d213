//! Bad input: each gets a clear message, the right exit code, and loses nothing.

use predicates::prelude::*;

use super::support::{accounts_add, Env};

#[test]
fn missing_api_key_is_a_configuration_error() {
    let env = Env::new("http://127.0.0.1:9/api");
    env.cmd()
        .env_remove("MERGE_API_KEY")
        .args(accounts_add().token("tok_abcdefgh1234").category("hris"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("MERGE_API_KEY is not set"));
    assert!(
        !env.db().exists(),
        "nothing is created when a command fails"
    );
    env.cmd()
        .env_remove("MERGE_API_KEY")
        .arg("poll")
        .assert()
        .code(2);
}

#[test]
fn api_key_can_come_from_a_dotenv_file_but_the_environment_wins() {
    let env = Env::new("http://127.0.0.1:9/api");
    std::fs::write(
        env.dir.path().join(".env"),
        "MERGE_SYNC_DB=from-dotenv.db\n",
    )
    .unwrap();
    env.cmd()
        .env_remove("MERGE_API_KEY")
        .env_remove("MERGE_SYNC_DB")
        .args(
            accounts_add()
                .token("tok_abcdefgh1234")
                .category("hris")
                .id("la1"),
        )
        .assert()
        .success();
    assert!(env.dir.path().join("from-dotenv.db").exists());
    env.cmd()
        .env("MERGE_SYNC_DB", "from-env.db")
        .args(
            accounts_add()
                .token("tok_abcdefgh1234")
                .category("hris")
                .id("la1"),
        )
        .assert()
        .success();
    assert!(env.dir.path().join("from-env.db").exists());
}

#[test]
fn unknown_category_is_a_usage_error() {
    let env = Env::new("http://127.0.0.1:9/api");
    env.cmd()
        .args(accounts_add().token("tok_abcdefgh1234").category("payroll"))
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("unknown category \"payroll\"")
                .and(predicate::str::contains("hris")),
        );
    assert!(!env.db().exists());
}

#[test]
fn invalid_model_id_is_rejected_before_anything_happens() {
    let env = Env::new("http://127.0.0.1:9/api");
    for bad in ["hris.Employee;DROP", "Employee", "hris.employee-x"] {
        env.cmd()
            .args(
                accounts_add()
                    .token("tok_abcdefgh1234")
                    .category("hris")
                    .id("la1")
                    .models(bad),
            )
            .assert()
            .code(2)
            .stderr(predicate::str::contains("invalid model id"));
    }
    env.cmd()
        .args(
            accounts_add()
                .token("tok_abcdefgh1234")
                .category("hris")
                .id("la1")
                .models("ats.Candidate"),
        )
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not a hris model"));
    assert!(!env.db().exists());
}

#[test]
fn a_state_file_that_is_not_sqlite_is_refused_and_left_alone() {
    let env = Env::new("http://127.0.0.1:9/api");
    let junk = b"name,token\nacme,tok_1\n".repeat(100);
    std::fs::write(env.db(), &junk).unwrap();
    for args in [vec!["status"], vec!["poll"], vec!["accounts", "list"]] {
        env.cmd()
            .args(&args)
            .assert()
            .code(2)
            .stderr(predicate::str::contains("not a merge-sync state file"));
    }
    assert_eq!(std::fs::read(env.db()).unwrap(), junk);
}

#[test]
fn a_state_file_from_a_newer_version_is_refused_naming_both_versions() {
    let env = Env::new("http://127.0.0.1:9/api");
    {
        let conn = rusqlite::Connection::open(env.db()).unwrap();
        conn.pragma_update(None, "user_version", 999).unwrap();
    }
    env.cmd().arg("status").assert().code(2).stderr(
        predicate::str::contains("schema version 999").and(predicate::str::contains(format!(
            "up to schema version {}",
            merge_sync::store::CURRENT_VERSION
        ))),
    );
}

#[test]
fn an_unreachable_api_url_fails_the_command_with_a_hint() {
    // Port 9 (discard) is closed on loopback: the connection is refused at once.
    let env = Env::new("http://127.0.0.1:9/api");
    env.cmd()
        .args(accounts_add().token("tok_abcdefgh1234").category("hris"))
        .assert()
        .code(1)
        .stderr(
            predicate::str::contains("cannot reach Merge")
                .and(predicate::str::contains("MERGE_API_URL")),
        );
    assert!(!env.db().exists());
}

#[test]
fn unknown_account_names_are_usage_errors() {
    let env = Env::new("http://127.0.0.1:9/api");
    env.cmd()
        .args(
            accounts_add()
                .token("tok_abcdefgh1234")
                .category("hris")
                .id("la1"),
        )
        .assert()
        .success();
    env.cmd()
        .args(["fetch", "--account", "nobody"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no linked account \"nobody\""));
    env.cmd()
        .args(["accounts", "disable", "nobody"])
        .assert()
        .code(2);
    env.cmd()
        .args(["poll", "--account", "nobody"])
        .assert()
        .code(2);
}

#[test]
fn help_documents_the_exit_codes() {
    let env = Env::new("http://127.0.0.1:9/api");
    env.cmd().arg("--help").assert().success().stdout(
        predicate::str::contains("Exit codes")
            .and(predicate::str::contains("usage or configuration error")),
    );
    env.cmd().arg("frobnicate").assert().code(2);
}

#[test]
fn a_rejected_api_key_is_a_configuration_error_not_an_account_failure() {
    let fake = super::support::start(&format!(
        r#"{{"api_key": "{}", "accounts": [{{"id": "la1", "account_token": "tok_good_0001", "category": "hris",
            "models": [{{"model_id": "hris.Employee", "status": "DONE"}}]}}]}}"#,
        super::support::API_KEY
    ));
    let env = Env::with_fake(&fake);
    super::support::add_account(&env, "la1", "tok_good_0001", "hris");
    env.cmd()
        .env("MERGE_API_KEY", "sk_wrong_key_9999")
        .arg("poll")
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("API key rejected")
                .and(predicate::str::contains("sk_wrong_key_9999").not()),
        );
    assert_eq!(
        env.count("SELECT consecutive_failures FROM linked_accounts"),
        0,
        "the account is not blamed"
    );
}

#[test]
fn a_public_token_never_reaches_the_logs() {
    let fake = super::support::start(&format!(
        r#"{{"api_key": "{}", "accounts": [{{"id": "la1", "account_token": "tok_good_0001", "public_token": "pub_secret_5555",
            "category": "hris", "models": []}}]}}"#,
        super::support::API_KEY
    ));
    fake.with_state(|s| {
        s.inject_fault(merge_sync::fake::Fault::status("account-token", 503).times(1))
    });
    let env = Env::with_fake(&fake);
    env.cmd()
        .args(["-vv"])
        .args(
            accounts_add()
                .public_token("pub_secret_5555")
                .category("hris"),
        )
        .assert()
        .success()
        .stderr(
            predicate::str::contains("503").and(predicate::str::contains("pub_secret_5555").not()),
        );
}

#[test]
fn a_state_file_in_a_missing_directory_is_a_usage_error() {
    let env = Env::new("http://127.0.0.1:9/api");
    env.cmd()
        .args(["--db", "no/such/dir/state.db"])
        .args(
            accounts_add()
                .token("tok_abcdefgh1234")
                .category("hris")
                .id("la1"),
        )
        .assert()
        .code(2)
        .stderr(predicate::str::contains("directory does not exist"));
}

#[test]
fn parallel_first_runs_on_a_new_state_file_all_succeed() {
    let env = Env::new("http://127.0.0.1:9/api");
    for _ in 0..5 {
        let _ = std::fs::remove_file(env.db());
        let children: Vec<_> = (0..4)
            .map(|_| {
                env.process()
                    .arg("poll")
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for c in children {
            let out = c.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

#[test]
fn even_trace_logging_never_shows_a_secret() {
    let fake = super::support::start(&format!(
        r#"{{"api_key": "{}", "accounts": [{{"id": "la1", "account_token": "tok_secret_token_0001", "category": "hris",
            "models": [{{"model_id": "hris.Employee", "status": "DONE", "is_initial_sync": false, "last_sync_result": "DONE",
              "last_sync_finished": "-1h", "generate": 3}}]}}]}}"#,
        super::support::API_KEY
    ));
    let env = Env::with_fake(&fake);
    let add: Vec<String> = ["-vv".to_string()]
        .into_iter()
        .chain(
            accounts_add()
                .token("tok_secret_token_0001")
                .category("hris"),
        )
        .collect();
    for args in [add, vec!["poll".to_string()]] {
        let out = env
            .cmd()
            .env("RUST_LOG", "trace")
            .args(&args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !all.contains("tok_secret_token_0001"),
            "token leaked: {args:?}"
        );
        assert!(
            !all.contains(super::support::API_KEY),
            "API key leaked: {args:?}"
        );
        // Also the hex-dump form ureq uses at trace level.
        assert!(!all.contains("746f 6b5f"), "token bytes leaked: {args:?}");
    }
}
