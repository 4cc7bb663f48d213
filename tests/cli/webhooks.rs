//! `verify-webhook`, the inbox, applying webhooks in `poll`, and `serve` over loopback HTTP.

use std::io::{BufRead, BufReader, Read, Write};
use std::time::Duration;

use merge_sync::fake::SyncScript;
use merge_sync::webhook::sign;
use predicates::prelude::*;

use super::support::{
    add_account, assert_mirror_equals_truth, requests_for, start, wait_until, Env, API_KEY,
};

const SECRET: &str = "whsec_test_secret_for_cli";
const ACME: &str = "la-acme";
const TOKEN: &str = "tok_acme_secret_0001";

fn scenario() -> String {
    format!(
        r#"{{"api_key": "{API_KEY}", "accounts": [
          {{"id": "{ACME}", "account_token": "{TOKEN}", "category": "hris", "end_user_origin_id": "org-acme",
            "models": [
              {{"model_id": "hris.Employee", "status": "DONE", "is_initial_sync": false, "last_sync_result": "DONE",
                "last_sync_start": "-70m", "last_sync_finished": "-1h", "next_sync_start": "+23h", "generate": 30}}
            ]}}]}}"#
    )
}

fn verify(
    env: &Env,
    body: &[u8],
    signature: Option<&str>,
    extra: &[&str],
) -> assert_cmd::assert::Assert {
    let mut c = env.cmd();
    c.env("MERGE_WEBHOOK_SECRET", SECRET)
        .arg("verify-webhook")
        .args(extra)
        .write_stdin(body.to_vec());
    if let Some(s) = signature {
        c.args(["--signature", s]);
    }
    c.assert()
}

/// Runs a new sync on the fake and returns Merge's `LinkedAccount.sync_completed` for it.
fn new_sync(fake: &merge_sync::fake::FakeMerge) -> Vec<u8> {
    fake.with_state(|s| {
        s.start_sync(
            ACME,
            "hris.Employee",
            SyncScript::new(chrono::TimeDelta::milliseconds(30)).writes(4, 2, 1),
        )
    })
    .unwrap();
    std::thread::sleep(Duration::from_millis(80));
    let hook = fake.with_state(|s| s.sync_completed_webhook(ACME)).unwrap();
    serde_json::to_vec(&hook).unwrap()
}

#[test]
fn verify_webhook_exit_codes() {
    let env = Env::new("http://127.0.0.1:9/api");
    let body =
        "{\"hook\": {\"event\": \"Employee.synced\"}, \"data\": {\"name\": \"Zoë\"}}\n".as_bytes();
    let good = sign(SECRET, body);
    verify(&env, body, Some(&good), &[])
        .code(0)
        .stdout("valid\n");
    verify(&env, body, Some(good.trim_end_matches('=')), &[]).code(0);
    let mut tampered = body.to_vec();
    tampered[10] ^= 1;
    let out = verify(&env, &tampered, Some(&good), &[]).code(1);
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).to_string();
    assert_eq!(stderr.lines().count(), 1, "said once: {stderr}");
    assert!(stderr.contains("webhook signature invalid"), "{stderr}");
    verify(&env, body, Some(&sign("wrong-secret", body)), &[]).code(1);
    verify(&env, body, None, &[])
        .code(1)
        .stderr(predicate::str::contains("missing"));
    verify(&env, body, Some(""), &[]).code(1);
    // From a CGI environment variable, and with a previous secret during a rotation.
    env.cmd()
        .env("MERGE_WEBHOOK_SECRET", "new-secret")
        .env("MERGE_WEBHOOK_SECRET_PREVIOUS", SECRET)
        .env("HTTP_X_MERGE_WEBHOOK_SIGNATURE", &good)
        .arg("verify-webhook")
        .write_stdin(body.to_vec())
        .assert()
        .code(0);
    env.cmd()
        .arg("verify-webhook")
        .write_stdin(body.to_vec())
        .args(["--signature", &good])
        .assert()
        .code(2);
    // From a file.
    let file = env.dir.path().join("body.json");
    std::fs::write(&file, body).unwrap();
    verify(
        &env,
        b"",
        Some(&good),
        &["--body-file", file.to_str().unwrap()],
    )
    .code(0);
}

#[test]
fn verify_webhook_answers_cgi_requests() {
    let env = Env::new("http://127.0.0.1:9/api");
    let body = b"{\"hook\": {\"event\": \"X\"}}";
    let cgi = |sig: &str, secret: Option<&str>| {
        let mut c = env.cmd();
        c.env("GATEWAY_INTERFACE", "CGI/1.1")
            .env("HTTP_X_MERGE_WEBHOOK_SIGNATURE", sig)
            .arg("verify-webhook")
            .write_stdin(body.to_vec());
        if let Some(s) = secret {
            c.env("MERGE_WEBHOOK_SECRET", s);
        }
        c.assert()
    };
    cgi(&sign(SECRET, body), Some(SECRET)).code(0).stdout(
        predicate::str::starts_with("Status: 200 OK\r\n")
            .and(predicate::str::ends_with("{\"received\":true}")),
    );
    cgi("forged", Some(SECRET)).code(1).stdout(
        predicate::str::starts_with("Status: 401")
            .and(predicate::str::contains("Invalid signature")),
    );
    cgi("", Some(SECRET))
        .code(1)
        .stdout(predicate::str::contains("Missing signature"));
    cgi("x", None)
        .code(2)
        .stdout(predicate::str::contains("Server configuration error"));
}

#[test]
fn an_enqueued_webhook_makes_its_model_due_and_duplicates_cost_nothing() {
    let fake = start(&scenario());
    let env = Env::with_fake(&fake);
    add_account(&env, ACME, TOKEN, "hris");
    env.cmd().arg("poll").assert().success();

    let body = new_sync(&fake);
    // Merge's sync-status lags behind its webhook: only the webhook knows the new sync.
    let stale = fake.with_state(|s| s.sync_status(ACME, "hris.Employee").unwrap().clone());
    let sig = sign(SECRET, &body);
    verify(&env, &body, Some(&sig), &["--enqueue"]).code(0);
    verify(&env, &body, Some(&sig), &["--enqueue"]).code(0);
    assert_eq!(
        env.count("SELECT COUNT(*) FROM webhook_inbox"),
        1,
        "exact duplicates are stored once"
    );
    // ... and counted for merge_sync_webhooks_received_total.
    let counted = |label: &str| {
        env.count(&format!(
            "SELECT COALESCE(SUM(value), 0) FROM counters WHERE name = 'webhooks' AND label = '{label}'"
        ))
    };
    assert_eq!((counted("accepted"), counted("duplicate")), (1, 1));

    fake.clear_requests();
    env.cmd().arg("poll").assert().success();
    let lists: Vec<_> = requests_for(&fake, TOKEN)
        .into_iter()
        .filter(|r| r.path.ends_with("/employees"))
        .collect();
    assert!(
        !lists.is_empty(),
        "the webhook made the account due although its schedule said later"
    );
    let finished = stale.last_sync_finished.unwrap();
    assert_eq!(
        merge_sync::time::parse(lists[0].param("modified_before").unwrap()).unwrap(),
        finished
    );
    assert_mirror_equals_truth(&env, &fake, ACME, "hris.Employee", "hris_employee");
    assert_eq!(
        env.count("SELECT COUNT(*) FROM webhook_inbox WHERE applied_at IS NOT NULL"),
        1
    );

    // The same news again (Merge retried with a different body) or older news: no fetch.
    let mut again: serde_json::Value = serde_json::from_slice(&body).unwrap();
    again["hook"]["target"] = "https://example.com/retry".into();
    let again = serde_json::to_vec(&again).unwrap();
    verify(&env, &again, Some(&sign(SECRET, &again)), &["--enqueue"]).code(0);
    fake.clear_requests();
    env.cmd().arg("poll").assert().success();
    assert!(
        requests_for(&fake, TOKEN).is_empty(),
        "a duplicate delivery causes no fetch"
    );

    // A late delivery of an older sync (out of order): no fetch either.
    let mut older: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let old_finish = merge_sync::fake::merge_timestamp(finished - chrono::TimeDelta::hours(3));
    older["data"]["sync_status"]["hris.Employee"]["last_sync_finished"] = old_finish.into();
    let older = serde_json::to_vec(&older).unwrap();
    verify(&env, &older, Some(&sign(SECRET, &older)), &["--enqueue"]).code(0);
    env.cmd().arg("poll").assert().success();
    assert!(
        requests_for(&fake, TOKEN).is_empty(),
        "an out-of-order delivery causes no fetch"
    );
    let outcome = env
        .text("SELECT outcome FROM webhook_inbox ORDER BY id DESC LIMIT 1")
        .unwrap();
    assert!(outcome.starts_with("nothing new"), "{outcome}");
}

#[test]
fn forged_and_unknown_account_webhooks_change_nothing() {
    let fake = start(&scenario());
    let env = Env::with_fake(&fake);
    add_account(&env, ACME, TOKEN, "hris");
    env.cmd().arg("poll").assert().success();
    let body = new_sync(&fake);
    verify(
        &env,
        &body,
        Some(&sign("not-the-secret", &body)),
        &["--enqueue"],
    )
    .code(1);
    assert_eq!(env.count("SELECT COUNT(*) FROM webhook_inbox"), 0);

    let mut other: serde_json::Value = serde_json::from_slice(&body).unwrap();
    other["linked_account"]["id"] = "la-stranger".into();
    other["linked_account"]["end_user_origin_id"] = "org-stranger".into();
    let other = serde_json::to_vec(&other).unwrap();
    verify(&env, &other, Some(&sign(SECRET, &other)), &["--enqueue"]).code(0);
    fake.clear_requests();
    env.cmd()
        .arg("poll")
        .assert()
        .success()
        .stderr(predicate::str::contains("unknown account"));
    assert!(fake.requests().is_empty());
    let outcome = env.text("SELECT outcome FROM webhook_inbox").unwrap();
    assert_eq!(outcome, "unknown account");

    // Another linked account of the same customer (an id we do not mirror, with our
    // account's origin id): never applied to ours.
    let mut sibling: serde_json::Value = serde_json::from_slice(&body).unwrap();
    sibling["linked_account"]["id"] = "la-acme-second-link".into();
    let sibling = serde_json::to_vec(&sibling).unwrap();
    verify(
        &env,
        &sibling,
        Some(&sign(SECRET, &sibling)),
        &["--enqueue"],
    )
    .code(0);
    env.cmd().arg("poll").assert().success();
    assert!(
        fake.requests().is_empty(),
        "a sibling account's webhook fetched nothing"
    );

    // A signed date far in the future is ignored rather than used as a window bound.
    let mut future: serde_json::Value = serde_json::from_slice(&body).unwrap();
    future["data"]["sync_status"]["hris.Employee"]["last_sync_finished"] =
        "2098-01-01T00:00:00Z".into();
    let future = serde_json::to_vec(&future).unwrap();
    verify(&env, &future, Some(&sign(SECRET, &future)), &["--enqueue"]).code(0);
    env.cmd().arg("poll").assert().success();
    assert!(
        fake.requests().is_empty(),
        "a future-dated hint fetched nothing"
    );
}

#[test]
fn a_linked_webhook_registers_the_account() {
    let env = Env::new("http://127.0.0.1:9/api");
    let body = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/webhooks/linked.json"
    ))
    .unwrap();
    env.create_state();
    verify(&env, &body, Some(&sign(SECRET, &body)), &["--enqueue"]).code(0);
    // Applied by the next poll (the fake API is closed, so the new account then fails to sync).
    env.cmd().arg("poll").assert().code(1);
    let out = env
        .cmd()
        .args(["accounts", "list", "--json"])
        .output()
        .unwrap();
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        list[0]["linked_account_id"],
        "0496d4c2-42e6-4072-80b3-7b69bfdc76fd"
    );
    assert_eq!(list[0]["end_user_origin_id"], "acme-hr-0001");
    assert_eq!(list[0]["category"], "hris");
}

/// A `merge-sync serve` child on an ephemeral port; killed on drop.
struct Serve {
    child: std::process::Child,
    addr: String,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(env: &Env) -> Serve {
    if env.is_postgres() || !env.db().exists() {
        env.create_state();
    }
    let mut child = env
        .process()
        .env("MERGE_WEBHOOK_SECRET", SECRET)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line.trim().rsplit("http://").next().unwrap().to_string();
    Serve { child, addr }
}

/// `GET path`: the status and body.
fn get(addr: &str, path: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp.split(' ').nth(1).unwrap().parse().unwrap();
    (
        status,
        resp.split("\r\n\r\n").nth(1).unwrap_or("").to_string(),
    )
}

fn post(addr: &str, path: &str, body: &[u8], signature: Option<&str>) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let sig = signature
        .map(|v| format!("X-Merge-Webhook-Signature: {v}\r\n"))
        .unwrap_or_default();
    write!(s, "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{sig}Connection: close\r\n\r\n", body.len()).unwrap();
    s.write_all(body).unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp.split(' ').nth(1).unwrap().parse().unwrap();
    (
        status,
        resp.split("\r\n\r\n").nth(1).unwrap_or("").to_string(),
    )
}

#[test]
fn serve_receives_verifies_stores_and_fetches() {
    let fake = start(&scenario());
    let env = Env::with_fake(&fake);
    add_account(&env, ACME, TOKEN, "hris");
    env.cmd().arg("poll").assert().success();
    let server = serve(&env);

    let body = new_sync(&fake);
    let (status, reply) = post(&server.addr, "/api/webhooks/merge", &body, Some("forged"));
    assert_eq!(
        (status, reply.as_str()),
        (401, r#"{"error":"Invalid signature"}"#)
    );
    let (status, _) = post(&server.addr, "/api/webhooks/merge", &body, None);
    assert_eq!(status, 401);

    let (status, reply) = post(
        &server.addr,
        "/webhooks/merge/sync-completed",
        &body,
        Some(&sign(SECRET, &body)),
    );
    assert_eq!((status, reply.as_str()), (200, r#"{"received":true}"#));

    // The worker applies it and fetches within seconds.
    let want = fake.with_state(|s| s.records(ACME, "hris.Employee").len()) as i64;
    wait_until("the worker fetched", Duration::from_secs(30), || {
        env.count("SELECT COUNT(*) FROM hris_employee") >= want
    });
    assert_mirror_equals_truth(&env, &fake, ACME, "hris.Employee", "hris_employee");

    let mut s = std::net::TcpStream::connect(&server.addr).unwrap();
    write!(
        s,
        "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    let big = vec![b' '; 1024 * 1024 + 1];
    assert_eq!(
        post(&server.addr, "/api/webhooks/merge", &big, Some("x")).0,
        413
    );

    // GET /metrics: the Prometheus text, read by a real parser.
    let (status, text) = get(&server.addr, "/metrics");
    assert_eq!(status, 200, "{text}");
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
    let sample = |metric: &str, label: (&str, &str)| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == metric && s.labels.get(label.0) == Some(label.1))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) => v,
                _ => f64::NAN,
            })
            .unwrap_or_else(|| panic!("no {metric} {label:?} in\n{text}"))
    };
    assert_eq!(
        sample(
            "merge_sync_webhooks_received_total",
            ("outcome", "accepted")
        ),
        1.0
    );
    assert_eq!(
        sample(
            "merge_sync_webhooks_received_total",
            ("outcome", "invalid_signature")
        ),
        2.0
    );
    assert_eq!(
        sample(
            "merge_sync_webhooks_received_total",
            ("outcome", "too_large")
        ),
        1.0
    );
    assert_eq!(
        sample("merge_sync_records", ("linked_account_id", ACME)),
        want as f64
    );
    assert!(
        scrape.docs.contains_key("merge_sync_run_duration_seconds"),
        "{text}"
    );
}

#[test]
fn serve_stops_cleanly_on_sigterm() {
    let env = Env::new("http://127.0.0.1:9/api");
    let mut server = serve(&env);
    let pid = server.child.id().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let mut exit = None;
    wait_until(
        "serve stopped after SIGTERM",
        Duration::from_secs(30),
        || {
            exit = server.child.try_wait().unwrap();
            exit.is_some()
        },
    );
    assert!(exit.unwrap().success(), "{exit:?}");
}

#[test]
fn serve_answers_fast_while_a_slow_fetch_runs() {
    let fake = start(&format!(
        r#"{{"api_key": "{API_KEY}", "accounts": [
          {{"id": "{ACME}", "account_token": "{TOKEN}", "category": "hris", "models": [
            {{"model_id": "hris.Employee", "status": "DONE", "is_initial_sync": false, "last_sync_result": "DONE",
              "last_sync_start": "-70m", "last_sync_finished": "-1h", "next_sync_start": "+23h", "generate": 1500}}]}}]}}"#
    ));
    let env = Env::with_fake(&fake);
    add_account(&env, ACME, TOKEN, "hris");
    let server = serve(&env);
    // The first webhook starts a 15-page fetch at 5 s a page: over a minute, far beyond the
    // 10 s each answer below may take, so an answer that waited for the fetch fails.
    fake.with_state(|s| s.set_latency(Duration::from_secs(5)));
    let body = new_sync(&fake);
    assert_eq!(
        post(
            &server.addr,
            "/api/webhooks/merge",
            &body,
            Some(&sign(SECRET, &body))
        )
        .0,
        200
    );
    wait_until("the fetch is running", Duration::from_secs(60), || {
        fake.requests()
            .iter()
            .any(|r| r.path.ends_with("/employees"))
    });
    for i in 0..3 {
        let mut other: serde_json::Value = serde_json::from_slice(&body).unwrap();
        other["hook"]["id"] = format!("retry-{i}").into();
        let other = serde_json::to_vec(&other).unwrap();
        let (status, _) = post(
            &server.addr,
            "/api/webhooks/merge",
            &other,
            Some(&sign(SECRET, &other)),
        );
        assert_eq!(status, 200);
    }
}

#[test]
fn serve_without_a_secret_answers_500_so_merge_retries() {
    let env = Env::new("http://127.0.0.1:9/api");
    env.create_state();
    let mut child = env
        .process()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stderr.take().unwrap());
    let mut addr = None;
    let mut before = Vec::new();
    for _ in 0..5 {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if let Some(a) = line.trim().split("http://").nth(1) {
            addr = Some(a.to_string());
            break;
        }
        before.push(line);
    }
    // The problem is said once (it used to be logged by serve and by the receiver).
    assert_eq!(
        before.iter().filter(|l| l.contains("answered 500")).count(),
        1,
        "{before:?}"
    );
    let server = Serve {
        child,
        addr: addr.expect("serve printed its address"),
    };
    let (status, reply) = post(&server.addr, "/api/webhooks/merge", b"{}", Some("x"));
    assert_eq!(
        (status, reply.as_str()),
        (500, r#"{"error":"Server configuration error"}"#)
    );
    // The health probe says it cannot do its job, and why.
    let (status, reply) = get(&server.addr, "/healthz");
    assert_eq!(status, 503, "{reply}");
    let reply: serde_json::Value = serde_json::from_str(&reply).unwrap();
    assert_eq!(reply["ok"], false);
    assert!(
        reply["reason"]
            .as_str()
            .unwrap()
            .contains("MERGE_WEBHOOK_SECRET"),
        "{reply}"
    );
}

/// Regression: a base64url signature can start with '-' and was read as a flag.
#[test]
fn a_signature_starting_with_a_dash_is_accepted() {
    let env = Env::new("http://127.0.0.1:9/api");
    let body = (0..10_000)
        .map(|i| format!("{{\"n\": {i}}}"))
        .find(|b| sign(SECRET, b.as_bytes()).starts_with('-'))
        .unwrap();
    let sig = sign(SECRET, body.as_bytes());
    verify(&env, body.as_bytes(), Some(&sig), &[]).code(0);
}

#[test]
fn serve_stops_promptly_on_sigterm_even_during_a_slow_fetch() {
    let fake = start(&scenario());
    let env = Env::with_fake(&fake);
    add_account(&env, ACME, TOKEN, "hris");
    env.cmd().arg("poll").assert().success();
    let mut server = serve(&env);
    let body = new_sync(&fake);
    // Every request now hangs until the client's 60 s timeout: a serve that waited for the
    // fetch in progress would outlive the deadline below.
    fake.with_state(|s| s.set_latency(Duration::from_secs(300)));
    fake.clear_requests();
    assert_eq!(
        post(
            &server.addr,
            "/api/webhooks/merge",
            &body,
            Some(&sign(SECRET, &body))
        )
        .0,
        200
    );
    wait_until(
        "the worker's fetch is waiting on Merge",
        Duration::from_secs(30),
        || !fake.requests().is_empty(),
    );
    let pid = server.child.id().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let mut exit = None;
    wait_until(
        "serve stopped after SIGTERM",
        Duration::from_secs(30),
        || {
            exit = server.child.try_wait().unwrap();
            exit.is_some()
        },
    );
    assert!(exit.unwrap().success(), "{exit:?}");
}

// Hardening item 7: while another process held a long write transaction, a webhook waited
// 34.5 s for the state file, past Merge's 30 s timeout. It now gives up after a short lock
// wait with a 500 (Merge retries), and is stored once the file is free.
#[test]
fn serve_answers_well_inside_merges_timeout_while_the_state_file_is_locked() {
    // The SQLite file's write lock is what a slow writer holds.
    let env = Env::sqlite("http://127.0.0.1:9/api");
    let server = serve(&env);
    let holder = env.sqlite_conn();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let body = b"{\"hook\": {\"event\": \"Employee.synced\"}}";
    // `post` gives up reading after 10 s: that is the deadline.
    let (status, reply) = post(
        &server.addr,
        "/api/webhooks/merge",
        body,
        Some(&sign(SECRET, body)),
    );
    assert_eq!(
        (status, reply.as_str()),
        (500, r#"{"error":"Storage error"}"#)
    );
    holder.execute_batch("ROLLBACK").unwrap();
    let (status, _) = post(
        &server.addr,
        "/api/webhooks/merge",
        body,
        Some(&sign(SECRET, body)),
    );
    assert_eq!(status, 200);
    assert_eq!(env.count("SELECT COUNT(*) FROM webhook_inbox"), 1);
}

// Hardening item 7, under CGI: storing waits a short while for a locked state file, then
// answers 500 so Merge retries, instead of outlasting Merge's 30 s timeout.
#[test]
fn verify_webhook_enqueue_gives_up_on_a_locked_state_file_in_time() {
    let env = Env::sqlite("http://127.0.0.1:9/api");
    env.create_state();
    let holder = env.sqlite_conn();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let body = b"{\"hook\": {\"event\": \"Employee.synced\"}}";
    env.cmd()
        .env("MERGE_WEBHOOK_SECRET", SECRET)
        .env("GATEWAY_INTERFACE", "CGI/1.1")
        .env("HTTP_X_MERGE_WEBHOOK_SIGNATURE", sign(SECRET, body))
        .args(["verify-webhook", "--enqueue"])
        .write_stdin(body.to_vec())
        // The deadline: well inside Merge's 30 s.
        .timeout(Duration::from_secs(20))
        .assert()
        .code(1)
        .stdout(predicate::str::contains("Status: 500"));
    holder.execute_batch("ROLLBACK").unwrap();
    assert_eq!(env.count("SELECT COUNT(*) FROM webhook_inbox"), 0);
}
