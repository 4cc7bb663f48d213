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
