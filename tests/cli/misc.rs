//! `demo`, `check` and `completions`.

use predicates::prelude::*;

use super::support::{add_account, start, Env, API_KEY};

/// A demo whose temporary directory lives in `tmp` (TMPDIR), so a test can see it go.
fn demo_in(env: &Env, tmp: &std::path::Path) -> std::process::Command {
    let mut c = env.process();
    c.env_remove("MERGE_API_KEY")
        .env_remove("MERGE_SYNC_DB")
        .env("TMPDIR", tmp)
        .arg("demo");
    c
}

fn entries(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect()
}

#[test]
fn demo_runs_the_whole_life_cycle() {
    let env = Env::sqlite("http://127.0.0.1:9/api");
    let tmp = env.dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let out = demo_in(&env, &tmp).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    // How far Merge's (2-second) initial sync got by the first poll depends on the machine's
    // speed; its start and its end do not.
    for want in [
        "initial sync: not polled yet",
        "initial sync: complete since",
        "webhook: due:",
        "records in 1 page\n",
        "The temporary state file is deleted",
    ] {
        assert!(stdout.contains(want), "{want:?} missing from:\n{stdout}");
    }
    assert!(!stdout.contains("1 pages"), "{stdout}");
    assert!(!stdout.contains("demo-token"), "{stdout}");
    assert!(
        !env.db().exists(),
        "the demo leaves the user's state file alone"
    );
    assert!(entries(&tmp).is_empty(), "{:?}", entries(&tmp));
}

#[test]
fn demo_with_db_keeps_its_state_file_and_never_reuses_one() {
    let env = Env::sqlite("http://127.0.0.1:9/api");
    env.cmd()
        .env_remove("MERGE_API_KEY")
        .args(["--db", "demo.db", "demo"])
        .assert()
        .success()
        .stdout(predicate::str::contains("The state file is kept"));
    env.cmd()
        .args(["--db", "demo.db", "status"])
        .assert()
        .success()
        .stdout(predicate::str::contains("demo-hooli"));
    env.cmd()
        .env_remove("MERGE_API_KEY")
        .args(["--db", "demo.db", "demo"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "the demo writes a new state file and never touches an existing one",
        ));
}

#[test]
fn demo_deletes_its_temporary_directory_on_a_closed_pipe_and_on_sigterm() {
    use std::io::{BufRead, BufReader};
    let env = Env::sqlite("http://127.0.0.1:9/api");
    let tmp = env.dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();

    // `merge-sync demo | head -1`
    let mut child = demo_in(&env, &tmp)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("merge-sync demo:"), "{first}");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(141), "{status}");
    assert!(entries(&tmp).is_empty(), "{:?}", entries(&tmp));

    // Stopped by a signal once it has started.
    let mut child = demo_in(&env, &tmp)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    reader.read_line(&mut first).unwrap();
    assert_eq!(entries(&tmp).len(), 1, "the demo's temporary directory");
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{status}");
    assert!(entries(&tmp).is_empty(), "{:?}", entries(&tmp));
}

#[test]
fn check_reports_configuration_and_connectivity_without_changing_anything() {
    let fake = start(&format!(
        r#"{{"api_key": "{API_KEY}", "accounts": [{{"id": "la1", "account_token": "tok_good_0001", "category": "hris",
            "models": [{{"model_id": "hris.Employee", "status": "DONE"}}]}}]}}"#
    ));
    let env = Env::sqlite(&fake.base_url());
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
    // The state file's bytes (SQLite adds its -wal/-shm companions even for a reader).
    let before = std::fs::read(env.db()).unwrap();
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
    assert!(
        before == std::fs::read(env.db()).unwrap(),
        "check changed the state file"
    );
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
