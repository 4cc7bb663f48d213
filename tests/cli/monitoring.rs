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

    // A command line that does not parse is a fatal error too.
    let out = env.cmd().args(["poll", "--bogus"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let lines = stderr_lines(&out);
    assert!(
        lines.iter().all(|l| l.starts_with("[20")) && lines[0].contains("--bogus"),
        "{lines:?}"
    );
    let out = env
        .cmd()
        .args(["poll", "--log-format", "json", "--bogus"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 1);
    assert!(lines[0]["msg"].as_str().unwrap().contains("--bogus"));
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
        let have = env.count_or_zero(&format!("SELECT COUNT(*) FROM {table}"));
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

    // The history says interrupted; status says where the next run picks up.
    assert_eq!(
        runs_json(&env, &["--limit", "1"])[0]["state"],
        "interrupted"
    );
    let rows = env.status_json();
    let employee = rows
        .iter()
        .find(|r| r["linked_account_id"] == ACME && r["model_id"] == "hris.Employee")
        .unwrap();
    assert_eq!(employee["fetch_state"], "interrupted", "{employee}");
    let page = employee["resume_page"].as_u64().unwrap();
    assert!(page > 1, "{employee}");
    let out = env
        .cmd()
        .args(["fetch", "--account", ACME, "-v"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "{ACME} hris.Employee: resuming an interrupted fetch at page {page}"
        )),
        "{stderr}"
    );
}

fn runs_json(env: &Env, args: &[&str]) -> Vec<serde_json::Value> {
    let out = env
        .cmd()
        .arg("runs")
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn runs_lists_ok_partial_and_killed_runs_newest_first() {
    let (fake, env) = setup(20);
    env.cmd().arg("poll").assert().success();
    fake.with_state(|s| s.revoke_token(GLOBEX)).unwrap();
    env.cmd().args(["poll", "--force"]).assert().code(1);

    let runs = runs_json(&env, &[]);
    assert_eq!(runs.len(), 2, "{runs:?}");
    let (partial, ok) = (&runs[0], &runs[1]);
    assert_eq!(ok["state"], "ok");
    assert_eq!(ok["command"], "poll");
    assert_eq!(ok["accounts_synced"], 2);
    assert_eq!(ok["records_written"], 20 + 4 + 12);
    assert!(ok["requests"].as_u64().unwrap() >= 5);
    assert!(ok["finished_at"].is_string() && ok["host"].is_string());
    assert_eq!(partial["state"], "partial");
    assert_eq!(
        (
            partial["accounts_synced"].as_u64(),
            partial["accounts_failed"].as_u64()
        ),
        (Some(1), Some(1))
    );
    let first_error = partial["first_error"].as_str().unwrap();
    assert!(
        first_error.starts_with(GLOBEX) && first_error.contains("token rejected"),
        "{first_error}"
    );
    assert!(!first_error.contains(GLOBEX_TOKEN));

    // A fetch killed with SIGKILL is unfinished, never a success. Merge answers slowly, so
    // the fetch is still running while we look.
    fake.with_state(|s| s.set_latency(Duration::from_secs(3)));
    let mut child = env
        .process()
        .args(["fetch", "--full", "--account", ACME])
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while runs_json(&env, &["--limit", "1"])[0]["command"] != "fetch" {
        assert!(Instant::now() < deadline, "the fetch never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(runs_json(&env, &["--limit", "1"])[0]["state"], "running");
    child.kill().unwrap();
    child.wait().unwrap();
    let killed = &runs_json(&env, &["--limit", "1"])[0];
    assert_eq!(killed["state"], "unfinished", "{killed}");
    assert!(killed["finished_at"].is_null());

    // Filtered by account (by origin id or linked account id), and as a table.
    let acme_runs = runs_json(&env, &["--account", ACME]);
    assert_eq!(acme_runs.len(), 3);
    let globex_runs = runs_json(&env, &["--account", GLOBEX]);
    assert_eq!(globex_runs.len(), 2);
    let table = env.cmd().arg("runs").output().unwrap();
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.contains("unfinished") && table.contains("partial"),
        "{table}"
    );
    env.cmd()
        .args(["runs", "--account", "nobody"])
        .assert()
        .code(2);
}

#[test]
fn run_history_is_pruned_to_its_configured_size() {
    let (_fake, env) = setup(5);
    for _ in 0..4 {
        env.cmd()
            .env("MERGE_SYNC_RUN_HISTORY_MAX", "2")
            .args(["poll", "--force"])
            .assert()
            .success();
    }
    assert_eq!(runs_json(&env, &["--limit", "100"]).len(), 2);
    env.cmd()
        .env("MERGE_SYNC_RUN_HISTORY_DAYS", "zero")
        .arg("poll")
        .assert()
        .code(2);
}

fn health(env: &Env, args: &[&str]) -> (Option<i32>, String) {
    let out = env.cmd().arg("health").args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn health_exit_codes_for_healthy_stale_failing_and_disabled_accounts() {
    let (fake, env) = setup(20);
    // No poll yet: not healthy.
    let (code, out) = health(&env, &[]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("no successful `merge-sync poll`"), "{out}");

    env.cmd().arg("poll").assert().success();
    let (code, out) = health(&env, &[]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.starts_with("healthy: 2 active accounts"), "{out}");

    // Merge finishes a newer sync of ACME's employees that we fail to fetch: a lag.
    fake.with_state(|s| {
        let now = s.now();
        let st = s.sync_status_mut(ACME, "hris.Employee").unwrap();
        st.last_sync_start = Some(now - chrono::Duration::minutes(5));
        st.last_sync_finished = Some(now);
        s.inject_fault(merge_sync::fake::Fault::status("/employees", 500));
    });
    env.cmd().args(["poll", "--force"]).assert().code(1);
    // Within the default allowance (daily cadence), not past a 30-minute one.
    assert_eq!(health(&env, &[]).0, Some(0));
    let (code, out) = health(&env, &["--max-lag", "30m"]);
    assert_eq!(code, Some(1), "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "one line per problem: {out}");
    assert!(
        lines[0].starts_with(&format!("{ACME} hris.Employee: the mirror is 1h")),
        "{out}"
    );
    let (_, json) = health(&env, &["--max-lag", "30m", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["healthy"], false);
    assert_eq!(v["problems"][0]["kind"], "lag");
    assert_eq!(v["problems"][0]["model_id"], "hris.Employee");

    // A rejected token is a problem at once.
    fake.with_state(|s| {
        s.clear_faults();
        s.revoke_token(GLOBEX)
    })
    .unwrap();
    env.cmd().args(["poll", "--force"]).assert().code(1);
    let (code, out) = health(&env, &[]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains(GLOBEX) && out.contains("relink"), "{out}");
    assert!(!out.contains(GLOBEX_TOKEN));

    // A disabled account is never a problem.
    env.cmd()
        .args(["accounts", "disable", GLOBEX])
        .assert()
        .success();
    let (code, out) = health(&env, &[]);
    assert_eq!(code, Some(0), "{out}");

    // Usage errors exit 2.
    assert_eq!(health(&env, &["--max-lag", "soon"]).0, Some(2));
    // (No state file at all.)
    let empty = Env::sqlite("http://127.0.0.1:9/api");
    assert_eq!(health(&empty, &[]).0, Some(2));
}

#[test]
fn poll_writes_a_metrics_file_a_prometheus_parser_reads_and_replaces_it_whole() {
    let (fake, env) = setup(20);
    let dir = env.dir.path().join("textfile");
    std::fs::create_dir(&dir).unwrap();
    let path = dir.join("merge_sync.prom");
    let path_arg = path.to_str().unwrap();
    env.cmd()
        .args(["poll", "--metrics-file", path_arg])
        .assert()
        .success();
    let parse = || {
        let text = std::fs::read_to_string(&path).unwrap();
        let scrape =
            prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
        (text, scrape)
    };
    let (text, scrape) = parse();
    for name in [
        "merge_sync_last_success_timestamp_seconds",
        "merge_sync_lag_seconds",
        "merge_sync_records",
        "merge_sync_account_consecutive_failures",
        "merge_sync_requests_total",
        "merge_sync_records_written_total",
        "merge_sync_run_duration_seconds",
    ] {
        assert!(scrape.docs.contains_key(name), "no {name}:\n{text}");
    }
    let value = |scrape: &prometheus_parse::Scrape, metric: &str, labels: &[(&str, &str)]| {
        let s = scrape
            .samples
            .iter()
            .find(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .unwrap_or_else(|| panic!("no {metric} {labels:?} in\n{text}"));
        match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) => v,
            ref other => panic!("{metric} is {other:?}"),
        }
    };
    let acme = [("linked_account_id", ACME), ("model", "hris.Employee")];
    assert_eq!(value(&scrape, "merge_sync_records", &acme), 20.0);
    assert_eq!(value(&scrape, "merge_sync_lag_seconds", &acme), 0.0);
    assert!(value(&scrape, "merge_sync_last_success_timestamp_seconds", &acme) > 1.0e9);
    assert_eq!(
        value(&scrape, "merge_sync_records_written_total", &[]),
        36.0
    );
    let ok_requests = value(&scrape, "merge_sync_requests_total", &[("status", "200")]);
    assert!(ok_requests >= 5.0);

    // The next run replaces the file: counters carry on, failures show.
    fake.with_state(|s| s.revoke_token(GLOBEX)).unwrap();
    env.cmd()
        .args(["poll", "--force", "--metrics-file", path_arg])
        .assert()
        .code(1);
    let (_, scrape) = parse();
    assert_eq!(
        value(
            &scrape,
            "merge_sync_account_consecutive_failures",
            &[("linked_account_id", GLOBEX)]
        ),
        1.0
    );
    assert!(value(&scrape, "merge_sync_requests_total", &[("status", "401")]) >= 1.0);
    assert!(value(&scrape, "merge_sync_requests_total", &[("status", "200")]) > ok_requests);
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names,
        ["merge_sync.prom"],
        "no temporary file is left behind"
    );

    // A path in a directory that does not exist is refused before anything runs.
    env.cmd()
        .args(["poll", "--metrics-file", "/nonexistent-dir/m.prom"])
        .assert()
        .code(2);
}
