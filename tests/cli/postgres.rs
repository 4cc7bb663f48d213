//! `--db postgres://…`: bad URLs and unreachable servers, named by host, port and database,
//! never with the password.

use predicates::prelude::*;

use crate::support::*;

const PASSWORD: &str = "pw-never-shown-7f3a";

#[test]
fn a_malformed_postgres_url_is_a_usage_error_that_does_not_echo_it() {
    let env = Env::new("http://127.0.0.1:9/api");
    for url in [
        format!("postgres://app:{PASSWORD}@db.example:notaport/mirror"),
        format!("postgresql://app:{PASSWORD}@db.example/mirror?sslmode=sometimes"),
        format!("postgres://app:{PASSWORD}@db.example/mirror?options=-csearch_path%3DNo-Good"),
    ] {
        let out = env.cmd().args(["--db", &url, "status"]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{url}: {stderr}");
        assert!(stderr.contains("--db"), "{stderr}");
        assert!(!stderr.contains(PASSWORD), "{stderr}");
    }
}

#[test]
fn an_unreachable_server_is_named_by_host_port_and_database() {
    // Nothing listens on loopback port 1.
    let env = Env::new("http://127.0.0.1:9/api");
    let url = format!("postgres://app:{PASSWORD}@127.0.0.1:1/mirror");
    for args in [vec!["status"], vec!["poll"], vec!["check"]] {
        let out = env
            .cmd()
            .env("MERGE_SYNC_DB", &url)
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success(), "{args:?}");
        assert!(
            stderr.contains("127.0.0.1:1") && stderr.contains("\"mirror\""),
            "{args:?}: {stderr}"
        );
        assert!(
            !stderr.contains(PASSWORD) && !stdout.contains(PASSWORD),
            "{stdout}{stderr}"
        );
    }
}

#[test]
fn the_password_can_come_from_pgpassword_and_is_never_shown() {
    let env = Env::new("http://127.0.0.1:9/api");
    env.cmd()
        .env("MERGE_SYNC_DB", "postgres://app@127.0.0.1:1/mirror")
        .env("PGPASSWORD", PASSWORD)
        .arg("status")
        .assert()
        .failure()
        .stderr(
            predicate::str::contains("127.0.0.1:1").and(predicate::str::contains(PASSWORD).not()),
        );
}

#[test]
fn a_wrong_password_or_missing_database_is_a_configuration_error_naming_it() {
    let server = merge_sync::testing::postgres::server();
    let env = Env::postgres("http://127.0.0.1:9/api");
    let port = server.port().to_string();
    let wrong = format!(
        "postgres://postgres:{PASSWORD}@127.0.0.1:{port}/{}",
        env.pg().name()
    );
    let missing = server.url("no_such_database");
    for (url, want) in [
        (wrong.as_str(), "password"),
        (missing.as_str(), "no_such_database"),
    ] {
        for args in [vec!["status"], vec!["poll"]] {
            let out = env
                .cmd()
                .env("MERGE_SYNC_DB", url)
                .args(&args)
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
            assert!(
                stderr.contains(&format!("127.0.0.1:{port}")) && stderr.contains(want),
                "{stderr}"
            );
            assert!(
                !stderr.contains(PASSWORD) && !stderr.contains(server.password()),
                "{stderr}"
            );
        }
    }
}

#[test]
fn a_database_from_a_newer_merge_sync_is_refused_naming_both_versions() {
    let env = Env::postgres("http://127.0.0.1:9/api");
    env.create_state();
    env.execute("INSERT INTO merge_sync_migrations (version) VALUES (99)");
    env.cmd().arg("status").assert().code(2).stderr(
        predicate::str::contains("schema version 99").and(predicate::str::contains(format!(
            "up to schema version {}",
            merge_sync::store::CURRENT_VERSION
        ))),
    );
}

// Regression: `status`, `poll` and `health` on an empty database (a URL naming the wrong
// database) created every table and reported success, or "healthy".
#[test]
fn an_empty_database_is_refused_and_left_empty() {
    let env = Env::postgres("http://127.0.0.1:9/api");
    for args in [
        vec!["status"],
        vec!["poll"],
        vec!["health"],
        vec!["accounts", "list"],
    ] {
        env.cmd().args(&args).assert().code(2).stderr(
            predicate::str::contains("holds no merge-sync tables")
                .and(predicate::str::contains(env.pg().name()))
                .and(predicate::str::contains("accounts add")),
        );
    }
    let tables = env
        .text("SELECT count(*)::text FROM information_schema.tables WHERE table_schema = 'public'");
    assert_eq!(tables.as_deref(), Some("0"));
}

#[test]
fn tables_can_live_in_a_schema_of_their_own() {
    let env = Env::postgres("http://127.0.0.1:9/api");
    let url = format!("{}?options=-csearch_path%3Dmerge_mirror", env.pg().url());
    env.cmd()
        .env("MERGE_SYNC_DB", &url)
        .args(
            accounts_add()
                .token("tok_schema_0001")
                .category("hris")
                .id("la-s"),
        )
        .assert()
        .success();
    let schema = env.text(
        "SELECT table_schema::text FROM information_schema.tables WHERE table_name = 'linked_accounts'",
    );
    assert_eq!(schema.as_deref(), Some("merge_mirror"));
    env.cmd()
        .env("MERGE_SYNC_DB", &url)
        .args(["accounts", "list"])
        .assert()
        .success()
        .stdout(predicate::str::contains("la-s"));
}

#[test]
fn a_server_that_drops_the_connection_mid_fetch_loses_nothing_and_the_next_run_resumes() {
    const ACME: &str = "la-acme";
    const TOKEN: &str = "tok_acme_secret_0001";
    let fake = start(&format!(
        r#"{{"api_key": "{API_KEY}", "accounts": [
          {{"id": "{ACME}", "account_token": "{TOKEN}", "category": "hris", "models": [
            {{"model_id": "hris.Employee", "status": "DONE", "is_initial_sync": false,
              "last_sync_result": "DONE", "last_sync_start": "-70m", "last_sync_finished": "-1h",
              "next_sync_start": "+23h", "generate": 2000}}]}}]}}"#
    ));
    let env = Env::postgres(&fake.base_url());
    add_account(&env, ACME, TOKEN, "hris");
    fake.with_state(|s| s.set_latency(std::time::Duration::from_millis(30)));
    let child = env
        .process()
        .args(["fetch", "--account", ACME])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_until(
        "a few pages are committed",
        std::time::Duration::from_secs(60),
        || env.count_or_zero("SELECT COUNT(*) FROM hris_employee") >= 300,
    );
    // The server ends every merge-sync session, as a restart or failover would.
    env.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE application_name = 'merge-sync' AND pid <> pg_backend_pid()
           AND datname = current_database()",
    );
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(env.pg().name()), "{stderr}");
    let kept = env.count("SELECT COUNT(*) FROM hris_employee");
    assert!((300..2000).contains(&kept), "{kept} records kept");
    assert!(
        env.text("SELECT cursor FROM model_sync_state WHERE model_id = 'hris.Employee'")
            .is_some(),
        "the cursor of the last committed page is saved"
    );
    fake.clear_requests();
    fake.with_state(|s| s.set_latency(std::time::Duration::ZERO));
    env.cmd()
        .args(["fetch", "--account", ACME])
        .assert()
        .success();
    let pages = requests_for(&fake, TOKEN)
        .iter()
        .filter(|r| r.path.ends_with("/employees"))
        .count();
    assert!(
        pages < 20,
        "resumed at the cursor, not from page one ({pages} pages)"
    );
    assert_mirror_equals_truth(&env, &fake, ACME, "hris.Employee", "hris_employee");
}
