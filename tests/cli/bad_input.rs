//! Bad input: each gets a clear message, the right exit code, and loses nothing.

use predicates::prelude::*;

use super::support::{accounts_add, add_account, Env};

#[test]
fn missing_api_key_is_a_configuration_error() {
    let env = Env::sqlite("http://127.0.0.1:9/api");
    env.cmd()
        .env_remove("MERGE_API_KEY")
        .args(accounts_add().token("tok_abcdefgh1234").category("hris"))
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("MERGE_API_KEY is not set")
                .and(predicate::str::contains("`merge-sync demo`")),
        );
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
    let env = Env::sqlite("http://127.0.0.1:9/api");
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
    let env = Env::sqlite("http://127.0.0.1:9/api");
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
    let env = Env::sqlite("http://127.0.0.1:9/api");
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
    let env = Env::sqlite("http://127.0.0.1:9/api");
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
    let env = Env::sqlite("http://127.0.0.1:9/api");
    env.cmd()
        .args(accounts_add().token("tok_abcdefgh1234").category("hris"))
        .assert()
        .code(1)
        .stderr(
            predicate::str::contains("cannot reach Merge at http://127.0.0.1:9 ")
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
    let env = Env::sqlite("http://127.0.0.1:9/api");
    for _ in 0..5 {
        let _ = std::fs::remove_file(env.db());
        let children: Vec<_> = (0..4)
            .map(|i| {
                env.process()
                    .args(
                        accounts_add()
                            .token("tok_abcdefgh1234")
                            .category("hris")
                            .id(&format!("la{i}")),
                    )
                    .stdout(std::process::Stdio::null())
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
        assert_eq!(env.count("SELECT COUNT(*) FROM linked_accounts"), 4);
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

/// The first-hour mistake: a typo in `--db` (or cron in another directory) used to create a
/// new, empty state file and exit 0 having synced nothing.
#[test]
fn a_missing_state_file_is_refused_by_every_command_but_accounts_add() {
    let env = Env::new("http://127.0.0.1:9/api");
    let typo = env.dir.path().join("merge-synk.db");
    let body = br#"{"hook": {"event": "Employee.synced"}, "data": {}}"#;
    let signature = merge_sync::webhook::sign("whsec_test_0001", body);
    for args in [
        vec!["poll"],
        vec!["fetch", "--account", "la1"],
        vec!["status"],
        vec!["status", "--json"],
        vec!["accounts", "list"],
        vec!["accounts", "list", "--json"],
        vec!["accounts", "disable", "la1"],
        vec!["accounts", "enable", "la1"],
        vec!["accounts", "remove", "la1"],
        vec!["check"],
        vec!["export", "--model", "hris.Employee"],
        vec!["serve", "--listen", "127.0.0.1:0"],
        vec!["verify-webhook", "--enqueue", "--signature", &signature],
    ] {
        env.cmd()
            .env("MERGE_WEBHOOK_SECRET", "whsec_test_0001")
            .args(["--db", "merge-synk.db"])
            .args(&args)
            .write_stdin(body.to_vec())
            .assert()
            .code(2)
            .stderr(
                predicate::str::contains(format!("state file {} does not exist", typo.display()))
                    .and(predicate::str::contains("merge-sync accounts add")),
            );
        assert!(!typo.exists(), "{args:?} created {}", typo.display());
    }
    // The command that creates one.
    env.cmd()
        .args(["--db", "merge-synk.db"])
        .args(
            accounts_add()
                .token("tok_abcdefgh1234")
                .category("hris")
                .id("la1"),
        )
        .assert()
        .success();
    assert!(typo.exists());
}

#[test]
#[cfg(unix)]
fn an_empty_state_file_is_refused_until_accounts_add_makes_it_a_private_one() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::sqlite("http://127.0.0.1:9/api");
    std::fs::write(env.db(), b"").unwrap();
    std::fs::set_permissions(env.db(), std::fs::Permissions::from_mode(0o644)).unwrap();
    for args in [vec!["status"], vec!["poll"]] {
        env.cmd()
            .args(&args)
            .assert()
            .code(2)
            .stderr(predicate::str::contains("is empty (0 bytes)"));
    }
    assert_eq!(std::fs::metadata(env.db()).unwrap().len(), 0);
    add_account(&env, "la1", "tok_abcdefgh1234", "hris");
    let mode = std::fs::metadata(env.db()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the file holds account tokens");
    env.cmd().arg("status").assert().success();
}

/// Regression: a directory as `--db` exited 1 with SQLite's "Error code 14".
#[test]
fn a_directory_as_the_state_file_is_a_usage_error() {
    let env = Env::new("http://127.0.0.1:9/api");
    let add: Vec<String> = accounts_add()
        .token("tok_abcdefgh1234")
        .category("hris")
        .id("la1")
        .into_iter()
        .collect();
    for args in [vec!["poll".to_string()], vec!["status".to_string()], add] {
        env.cmd()
            .args(["--db", "."])
            .args(&args)
            .assert()
            .code(2)
            .stderr(
                predicate::str::contains("is a directory")
                    .and(predicate::str::contains("merge-sync.db")),
            );
    }
}

#[test]
fn unknown_model_ids_exit_2_suggesting_the_closest() {
    let env = Env::sqlite("http://127.0.0.1:9/api");
    env.cmd()
        .args(
            accounts_add()
                .token("tok_abcdefgh1234")
                .category("hris")
                .id("la1")
                .models("hris.Employee,hris.Locaton"),
        )
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "unknown model \"hris.Locaton\": merge-sync's catalogue has no such Common Model; \
             did you mean hris.Location?",
        ));
    assert!(!env.db().exists(), "a refused add writes nothing");
    add_account(&env, "la1", "tok_abcdefgh1234", "hris");
    env.cmd()
        .args(["fetch", "--account", "la1", "--model", "hris.Employe"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("did you mean hris.Employee?"));
    for args in [
        vec!["schema", "hris.Employe"],
        vec!["export", "--model", "hris.employee"],
    ] {
        env.cmd()
            .args(&args)
            .assert()
            .code(2)
            .stderr(predicate::str::contains("did you mean hris.Employee?"));
    }
    env.cmd()
        .args(["fetch", "--account", "la1", "--model", "hris.Zebra"])
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("hris models are: ")
                .and(predicate::str::contains("hris.Employee")),
        );
}

#[test]
fn fetching_a_model_the_account_does_not_have_says_so() {
    let fake = super::support::start(&format!(
        r#"{{"api_key": "{}", "accounts": [{{"id": "la1", "account_token": "tok_good_0001", "category": "hris",
            "models": [{{"model_id": "hris.Employee", "status": "DONE", "is_initial_sync": false,
                        "last_sync_result": "DONE", "last_sync_finished": "-1h", "generate": 3}},
                       {{"model_id": "hris.Team", "status": "DISABLED"}}]}}]}}"#,
        super::support::API_KEY
    ));
    let env = Env::with_fake(&fake);
    add_account(&env, "la1", "tok_good_0001", "hris");
    // Another category's model: refused before asking Merge.
    env.cmd()
        .args(["fetch", "--account", "la1", "--model", "ats.Candidate"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "model \"ats.Candidate\" is not a hris model (it belongs to ats)",
        ));
    assert!(fake.requests().is_empty());
    // A hris model Merge does not report for this account, or reports disabled.
    env.cmd()
        .args(["fetch", "--account", "la1", "--model", "hris.Location"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "nothing fetched for hris.Location: Merge's sync-status does not list it for this account",
        ));
    env.cmd()
        .args(["fetch", "--account", "la1", "--model", "hris.Team"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "hris.Team: Merge reports it DISABLED",
        ));
    // A model left out with --models when the account was added.
    env.cmd()
        .args(
            accounts_add()
                .token("tok_good_0001")
                .category("hris")
                .id("la1")
                .models("hris.Team"),
        )
        .assert()
        .success();
    env.cmd()
        .args(["fetch", "--account", "la1", "--model", "hris.Employee"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "account la1 does not mirror hris.Employee: it was added with --models hris.Team",
        ));
}

#[test]
fn a_404_on_the_first_request_points_at_the_url_or_the_category() {
    let fake = super::support::start(&format!(
        r#"{{"api_key": "{}", "accounts": [{{"id": "la1", "account_token": "tok_good_0001", "category": "hris",
            "models": []}}]}}"#,
        super::support::API_KEY
    ));
    // The base URL without /api.
    let base = fake.base_url();
    let env = Env::sqlite(base.strip_suffix("/api").unwrap());
    env.cmd()
        .args(accounts_add().token("tok_good_0001").category("hris"))
        .assert()
        .code(1)
        .stderr(
            predicate::str::contains("HTTP 404 on /hris/v1/account-details").and(
                predicate::str::contains("check that the API URL ends in /api"),
            ),
        );
    // An HRIS token added as ATS.
    let env = Env::sqlite(&fake.base_url());
    env.cmd()
        .args(accounts_add().token("tok_good_0001").category("ats"))
        .assert()
        .code(1)
        .stderr(
            predicate::str::contains("HTTP 404 on /ats/v1/account-details").and(
                predicate::str::contains("the account token's category is ats"),
            ),
        );
    assert!(!env.db().exists());
}

#[test]
fn help_describes_account_groups_global_flags_and_names_each_commands_environment() {
    let env = Env::new("http://127.0.0.1:9/api");
    let help = |args: &[&str]| {
        let out = env.cmd().args(args).arg("--help").output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    let disable = help(&["accounts", "disable"]);
    assert!(
        disable.contains("<ACCOUNT>")
            && disable.contains("linked account id, or your end_user_origin_id"),
        "{disable}"
    );
    // A command's own options come first; the global ones under their own heading.
    let poll = help(&["poll"]);
    let own = poll.find("--jobs").unwrap();
    let global = poll.find("Global options:").unwrap();
    assert!(
        own < global && global < poll.find("--db <DB>").unwrap(),
        "{poll}"
    );
    for (args, wanted, not) in [
        (vec!["poll"], "MERGE_API_KEY", "MERGE_WEBHOOK_SECRET"),
        (vec!["fetch"], "MERGE_API_KEY", "MERGE_WEBHOOK_SECRET"),
        (vec!["serve"], "MERGE_WEBHOOK_SECRET", "GATEWAY_INTERFACE"),
        (
            vec!["verify-webhook"],
            "HTTP_X_MERGE_WEBHOOK_SIGNATURE",
            "MERGE_API_KEY",
        ),
        (vec!["status"], "MERGE_SYNC_DB", "MERGE_API_KEY"),
        (
            vec!["accounts", "add"],
            "MERGE_API_KEY",
            "MERGE_WEBHOOK_SECRET",
        ),
        (vec!["check"], "MERGE_WEBHOOK_SECRET", "GATEWAY_INTERFACE"),
    ] {
        let text = help(&args);
        let env_part = &text[text
            .find("Environment (or ./.env):")
            .unwrap_or_else(|| panic!("{args:?}: {text}"))..];
        assert!(env_part.contains(wanted), "{args:?}: {env_part}");
        assert!(!env_part.contains(not), "{args:?}: {env_part}");
    }
}
