//! Running unattended: log formats, the summary line, interrupts, run history, health and
//! metrics.

use std::time::{Duration, Instant};

use super::support::{add_account, start, Env, API_KEY};

const ACME: &str = "la-acme";
const ACME_TOKEN: &str = "tok_acme_secret_0001";
const GLOBEX: &str = "la-globex";
const GLOBEX_TOKEN: &str = "tok_globex_secret_0002";

/// Two HRIS accounts whose initial sync finished an hour ago (daily cadence).
fn two_accounts(employees: usize) -> String {
    format!(
        r#"{{
        "api_key": "{API_KEY}",
        "accounts": [
          {{"id": "{ACME}", "account_token": "{ACME_TOKEN}", "category": "hris",
            "models": [
              {{"model_id": "hris.Employee", "status": "DONE", "is_initial_sync": false, "last_sync_result": "DONE",
                "last_sync_start": "-70m", "last_sync_finished": "-1h", "next_sync_start": "+23h",
                "generate": {employees}}},
              {{"model_id": "hris.Team", "status": "DONE", "is_initial_sync": false, "last_sync_result": "DONE",
                "last_sync_start": "-70m", "last_sync_finished": "-1h", "next_sync_start": "+23h", "generate": 4}}
            ]}},
          {{"id": "{GLOBEX}", "account_token": "{GLOBEX_TOKEN}", "category": "hris",
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

fn stderr_lines(out: &std::process::Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

fn json_lines(out: &std::process::Output) -> Vec<serde_json::Value> {
    stderr_lines(out)
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l)
                .unwrap_or_else(|e| panic!("not one JSON object per line ({e}): {l}"));
            assert!(
                v["ts"].as_str().is_some_and(|t| t.ends_with('Z')),
                "no UTC ts: {l}"
            );
            assert!(v["level"].is_string(), "no level: {l}");
            assert!(v["msg"].is_string(), "no msg: {l}");
            v
        })
        .collect()
}

#[test]
fn every_json_log_line_of_a_failing_poll_parses_and_names_its_account_and_run() {
    let (fake, env) = setup(20);
    fake.with_state(|s| s.revoke_token(ACME)).unwrap();
    // The flag after the subcommand.
    let out = env
        .cmd()
        .args(["poll", "-v", "--log-format", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let lines = json_lines(&out);
    let failure = lines
        .iter()
        .find(|v| v["level"] == "error" && v["account"] == ACME)
        .unwrap_or_else(|| panic!("no error line for {ACME}: {lines:?}"));
    let run_id = failure["run_id"].as_str().expect("run_id on the line");
    assert!(
        lines.iter().all(|v| v["run_id"] == run_id),
        "one run id per run: {lines:?}"
    );
    let summary = lines.last().unwrap();
    assert!(
        summary["msg"]
            .as_str()
            .unwrap()
            .starts_with("poll finished: 1 accounts synced, 1 failed"),
        "{summary}"
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains(ACME_TOKEN));

    // The flag before the subcommand, and the environment variable.
    let out = env
        .cmd()
        .args(["--log-format", "json", "poll", "--force", "-v"])
        .output()
        .unwrap();
    assert!(json_lines(&out).len() >= 2);
    let out = env
        .cmd()
        .env("MERGE_SYNC_LOG_FORMAT", "json")
        .args(["poll", "--force", "-v"])
        .output()
        .unwrap();
    assert!(json_lines(&out).len() >= 2);
}

#[test]
fn a_fatal_error_carries_a_timestamp_in_both_formats() {
    let env = Env::new("http://127.0.0.1:9/api");
    env.create_state();
    let out = env
        .cmd()
        .env_remove("MERGE_API_KEY")
        .args(["poll"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let lines = stderr_lines(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = &lines[0];
    let ts = line
        .strip_prefix('[')
        .and_then(|l| l.split_once(' '))
        .map(|(ts, _)| ts)
        .unwrap_or_default();
    assert!(
        chrono::DateTime::parse_from_rfc3339(ts).is_ok(),
        "no timestamp: {line}"
    );
    assert!(
        line.contains("ERROR") && line.contains("MERGE_API_KEY"),
        "{line}"
    );

    let out = env
        .cmd()
        .env_remove("MERGE_API_KEY")
        .args(["poll", "--log-format", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["level"], "error");
    assert!(lines[0]["msg"].as_str().unwrap().contains("MERGE_API_KEY"));
}

#[test]
fn a_successful_poll_is_silent_and_at_v_ends_with_one_summary_line() {
    let (_fake, env) = setup(20);
    let out = env.cmd().arg("poll").output().unwrap();
    assert!(out.status.success());
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // stderr is a pipe here, not a terminal: the summary still comes at -v.
    let out = env.cmd().args(["poll", "--force", "-v"]).output().unwrap();
    assert!(out.status.success());
    let lines = stderr_lines(&out);
    let last = lines.last().expect("a summary line");
    assert!(
        last.contains("poll finished: 2 accounts synced, 0 failed, 0 not due, 0 busy elsewhere")
            && last.contains("requests")
            && last.contains("took"),
        "{lines:?}"
    );
    assert_eq!(
        lines.iter().filter(|l| l.contains("poll finished")).count(),
        1
    );
    assert!(lines.iter().all(|l| l.starts_with("[20")), "{lines:?}");
}

/// Waits until the mirror holds at least `n` records of the table, or panics.
fn wait_for_records(env: &Env, table: &str, n: i64) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let have = rusqlite::Connection::open(env.db())
            .and_then(|c| {
                c.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| {
                    r.get::<_, i64>(0)
                })
            })
            .unwrap_or(0);
        if have >= n {
            return;
        }
        assert!(Instant::now() < deadline, "only {have} records in {table}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(unix)]
#[test]
fn sigterm_logs_one_line_saying_what_was_interrupted_and_where_it_resumes() {
    let (fake, env) = setup(3_000);
    fake.with_state(|s| s.set_latency(Duration::from_millis(30)));
    let child = env
        .process()
        .args(["poll", "--account", ACME])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_records(&env, "hris_employee", 300);
    // SAFETY: signalling our own child by its pid.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    let lines = stderr_lines(&out);
    let line = lines
        .iter()
        .find(|l| l.contains("interrupted"))
        .unwrap_or_else(|| panic!("no interrupt line: {lines:?}"));
    assert!(
        line.contains("poll") && line.contains(&format!("{ACME} hris.Employee")),
        "{line}"
    );
    assert!(line.contains("resumes"), "{line}");
}
