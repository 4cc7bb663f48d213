//! Integration tests of the fake Merge server itself, over real loopback HTTP with ureq.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::TimeDelta;
use merge_sync::fake::{AccountSpec, FakeMerge, Fault, ModelSpec, Scenario, SyncScript, TimeSpec};
use serde_json::{json, Value};

const KEY: &str = "test-api-key";
const ACME: &str = "a1b2c3d4-1111-4000-8000-000000000001";
const ACME_TOKEN: &str = "tok-acme-0001";
const EMPLOYEE: &str = "hris.Employee";

fn fixture(name: &str) -> String {
    format!("{}/fixtures/scenarios/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn basic() -> FakeMerge {
    FakeMerge::start(Scenario::from_file(fixture("basic.json")).unwrap()).unwrap()
}

struct Client {
    agent: ureq::Agent,
    base: String,
    key: String,
    token: Option<String>,
}

struct Resp {
    status: u16,
    text: String,
    retry_after: Option<String>,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("{e}: {}", self.text))
    }
}

impl Client {
    fn new(fake: &FakeMerge, token: Option<&str>) -> Client {
        Client {
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(10)))
                .build()
                .into(),
            base: fake.base_url(),
            key: KEY.to_string(),
            token: token.map(str::to_string),
        }
    }

    fn try_get(&self, path: &str, query: &[(&str, &str)]) -> Result<Resp, ureq::Error> {
        let mut req = self
            .agent
            .get(format!("{}/{path}", self.base))
            .header("Authorization", format!("Bearer {}", self.key));
        if let Some(t) = &self.token {
            req = req.header("X-Account-Token", t);
        }
        for (k, v) in query {
            req = req.query(*k, *v);
        }
        let mut resp = req.call()?;
        Ok(Resp {
            status: resp.status().as_u16(),
            retry_after: resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            text: resp.body_mut().read_to_string()?,
        })
    }

    fn get(&self, path: &str, query: &[(&str, &str)]) -> Resp {
        self.try_get(path, query).unwrap()
    }

    /// Follows `next` cursors from the first page; returns every result.
    fn walk(&self, path: &str, query: &[(&str, &str)]) -> Vec<Value> {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut q = query.to_vec();
            if let Some(c) = &cursor {
                q.push(("cursor", c));
            }
            let r = self.get(path, &q);
            assert_eq!(r.status, 200, "{}", r.text);
            let page = r.json();
            all.extend(page["results"].as_array().unwrap().iter().cloned());
            match page["next"].as_str() {
                Some(next) => {
                    assert!(!next.starts_with("http"), "next is a cursor, not a URL");
                    cursor = Some(next.to_string());
                }
                None => return all,
            }
        }
    }
}

fn ids(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

fn modified(r: &Value) -> chrono::DateTime<chrono::Utc> {
    merge_sync::time::parse(r["modified_at"].as_str().unwrap()).unwrap()
}

#[test]
fn pagination_walks_every_record_exactly_once() {
    let fake = basic();
    let c = Client::new(&fake, Some(ACME_TOKEN));
    let truth = fake.with_state(|s| s.records(ACME, EMPLOYEE));
    assert_eq!(truth.len(), 100);
    for size in ["7", "100"] {
        let all = c.walk(
            "hris/v1/employees",
            &[("page_size", size), ("include_deleted_data", "true")],
        );
        let got = ids(&all);
        assert_eq!(got.len(), 100, "page_size {size}");
        assert_eq!(got.iter().collect::<HashSet<_>>().len(), 100);
        assert_eq!(got, ids(&truth), "ordered by (modified_at, id)");
    }
    // Default page size is 30; a first page has no previous cursor.
    let first = c.get("hris/v1/employees", &[]).json();
    assert_eq!(first["results"].as_array().unwrap().len(), 30);
    assert!(first["previous"].is_null());
    let second = c
        .get(
            "hris/v1/employees",
            &[("cursor", first["next"].as_str().unwrap())],
        )
        .json();
    assert!(second["previous"].is_string());
}

#[test]
fn page_size_above_100_and_bad_cursors_are_400() {
    let fake = basic();
    let c = Client::new(&fake, Some(ACME_TOKEN));
    let r = c.get("hris/v1/employees", &[("page_size", "101")]);
    assert_eq!(r.status, 400);
    assert!(r.json()["detail"].is_string());
    let r = c.get("hris/v1/employees", &[("cursor", "bm9wZQ")]);
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["detail"], "Invalid cursor");
    let first = c.get("hris/v1/employees", &[("page_size", "5")]).json();
    let mut garbled = first["next"].as_str().unwrap().to_string();
    garbled.pop();
    let r = c.get("hris/v1/employees", &[("cursor", &garbled)]);
    assert_eq!(r.status, 400, "{}", r.text);
    let r = c.get("hris/v1/employees", &[("modified_after", "last tuesday")]);
    assert_eq!(r.status, 400);
}

#[test]
fn modified_filters_are_strict_bounds() {
    let fake = basic();
    let c = Client::new(&fake, Some(ACME_TOKEN));
    let truth = fake.with_state(|s| s.records(ACME, EMPLOYEE));
    let (lo, hi) = (&truth[20]["modified_at"], &truth[60]["modified_at"]);
    let (lo, hi) = (lo.as_str().unwrap(), hi.as_str().unwrap());
    let window = c.walk(
        "hris/v1/employees",
        &[
            ("page_size", "100"),
            ("include_deleted_data", "true"),
            ("modified_after", lo),
            ("modified_before", hi),
        ],
    );
    // Strict on both ends: records 21..=59.
    assert_eq!(ids(&window), ids(&truth[21..60]));
    let after = c.walk(
        "hris/v1/employees",
        &[("include_deleted_data", "true"), ("modified_after", hi)],
    );
    assert_eq!(ids(&after), ids(&truth[61..]));
    // The client may send whole seconds or an offset; both parse.
    let whole = modified(&truth[99]) + TimeDelta::seconds(1);
    let whole = whole.format("%Y-%m-%dT%H:%M:%S+00:00").to_string();
    let before = c.walk(
        "hris/v1/employees",
        &[
            ("include_deleted_data", "true"),
            ("modified_before", &whole),
        ],
    );
    assert_eq!(before.len(), 100);
}

#[test]
fn deleted_records_are_hidden_unless_asked_for() {
    let fake = basic();
    let c = Client::new(&fake, Some(ACME_TOKEN));
    let live = c.walk("hris/v1/employees", &[("page_size", "100")]);
    assert_eq!(live.len(), 99);
    assert!(live.iter().all(|r| r["remote_was_deleted"] == false));
    let all = c.walk(
        "hris/v1/employees",
        &[("page_size", "100"), ("include_deleted_data", "true")],
    );
    let deleted: Vec<_> = all
        .iter()
        .filter(|r| r["remote_was_deleted"] == true)
        .collect();
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0]["first_name"], "Shiv");
    // A fixture timestamp without fractional seconds is served as written.
    assert_eq!(deleted[0]["created_at"], "2025-09-15T00:00:00Z");
}

#[test]
fn authentication_errors_carry_detail() {
    let fake = basic();
    let mut c = Client::new(&fake, Some(ACME_TOKEN));
    c.key = "wrong".into();
    let r = c.get("hris/v1/sync-status", &[]);
    assert_eq!(r.status, 401);
    assert!(r.json()["detail"].as_str().unwrap().contains("Invalid"));

    let anonymous = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let mut resp = anonymous
        .get(format!("{}/hris/v1/sync-status", fake.base_url()))
        .call()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let body: Value = serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!(
        body["detail"],
        "Authentication credentials were not provided."
    );

    let c = Client::new(&fake, Some(ACME_TOKEN));
    assert_eq!(c.get("hris/v1/sync-status", &[]).status, 200);
    fake.with_state(|s| s.revoke_token(ACME).unwrap());
    let r = c.get("hris/v1/sync-status", &[]);
    assert_eq!(r.status, 401);
    assert!(r.json()["detail"].is_string());

    let nobody = Client::new(&fake, None);
    assert_eq!(nobody.get("hris/v1/employees", &[]).status, 401);
    // Category must match the account's; unknown routes are 404.
    let globex = Client::new(&fake, Some("tok-globex-0002"));
    assert_eq!(globex.get("ats/v1/candidates", &[]).status, 404);
    let r = globex.get("hris/v1/nothing-here", &[]);
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["detail"], "Not found.");

    let log = fake.requests();
    assert!(!log[0].authorized && log[0].status == 401);
    assert!(log[2].authorized && log[2].status == 200);
    assert_eq!(log[2].account_token.as_deref(), Some(ACME_TOKEN));
}

#[test]
fn sync_status_spreads_over_pages_and_details_match_merge() {
    let mut scenario = Scenario::from_file(fixture("basic.json")).unwrap();
    scenario.sync_status_page_size = Some(3);
    let fake = FakeMerge::start(scenario).unwrap();
    let c = Client::new(&fake, Some(ACME_TOKEN));
    let first = c.get("hris/v1/sync-status", &[]).json();
    assert_eq!(first["results"].as_array().unwrap().len(), 3);
    assert!(first["next"].is_string());
    let all = c.walk("hris/v1/sync-status", &[]);
    assert_eq!(all.len(), 4);
    let employee = &all[0];
    for field in [
        "model_name",
        "model_id",
        "last_sync_start",
        "next_sync_start",
        "last_sync_result",
        "last_sync_finished",
        "status",
        "is_initial_sync",
        "selective_sync_configurations_usage",
    ] {
        assert!(employee.get(field).is_some(), "missing {field}");
    }
    assert_eq!(employee["model_name"], "Employee");
    assert_eq!(employee["status"], "DONE");
    assert_eq!(employee["is_initial_sync"], false);
    let disabled = all
        .iter()
        .find(|m| m["model_id"] == "hris.BankInfo")
        .unwrap();
    assert_eq!(disabled["status"], "DISABLED");
    assert!(disabled["last_sync_finished"].is_null());

    let details = c.get("hris/v1/account-details", &[]).json();
    assert_eq!(details["id"], ACME);
    assert_eq!(details["integration_slug"], "bamboohr");
    assert_eq!(details["end_user_origin_id"], "org-acme");
    assert_eq!(details["category"], "hris");
    for field in [
        "end_user_organization_name",
        "status",
        "account_type",
        "completed_at",
    ] {
        assert!(details.get(field).is_some(), "missing {field}");
    }
}

#[test]
fn public_tokens_exchange_for_account_tokens() {
    let fake = basic();
    let c = Client::new(&fake, None);
    let r = c.get("hris/v1/account-token/pub-acme-0001", &[]).json();
    assert_eq!(r["account_token"], ACME_TOKEN);
    assert_eq!(r["id"], ACME);
    assert_eq!(r["integration"]["slug"], "bamboohr");
    assert_eq!(r["integration"]["categories"], json!(["hris"]));
    assert_eq!(c.get("hris/v1/account-token/pub-nope", &[]).status, 404);
}

#[test]
fn a_scripted_sync_changes_status_and_writes_inside_its_run() {
    let scenario = Scenario {
        start: Some(TimeSpec::At(
            merge_sync::time::parse("2026-03-02T12:00:00Z").unwrap(),
        )),
        freeze_clock: true,
        ..Scenario::new(KEY)
    }
    .account(
        AccountSpec::new("acct-1", "tok-1", "hris")
            .model(ModelSpec::done(EMPLOYEE, TimeSpec::ago(TimeDelta::hours(1))).generate(20)),
    );
    let fake = FakeMerge::start(scenario).unwrap();
    let c = Client::new(&fake, Some("tok-1"));
    let status = |c: &Client| c.get("hris/v1/sync-status", &[]).json()["results"][0].clone();
    let before = status(&c);
    assert_eq!(before["status"], "DONE");

    let start = fake.with_state(|s| {
        s.start_sync(
            "acct-1",
            EMPLOYEE,
            SyncScript::new(TimeDelta::minutes(10))
                .starting(TimeSpec::after(TimeDelta::minutes(1)))
                .writes(5, 3, 1),
        )
        .unwrap();
        s.now() + TimeDelta::minutes(1)
    });
    fake.advance(TimeDelta::minutes(2));
    let running = status(&c);
    assert_eq!(running["status"], "SYNCING");
    // While syncing, the result and finish time still describe the previous run.
    assert_eq!(running["last_sync_result"], "DONE");
    assert_eq!(running["last_sync_finished"], before["last_sync_finished"]);
    assert_eq!(running["last_sync_start"], "2026-03-02T12:01:00Z");

    fake.advance(TimeDelta::minutes(10));
    let done = status(&c);
    assert_eq!(done["status"], "DONE");
    assert_eq!(done["last_sync_finished"], "2026-03-02T12:11:00Z");
    assert_eq!(done["is_initial_sync"], false);
    let end = start + TimeDelta::minutes(10);

    let changed = c.walk(
        "hris/v1/employees",
        &[
            ("include_deleted_data", "true"),
            ("modified_after", done["last_sync_start"].as_str().unwrap()),
        ],
    );
    assert!((6..=9).contains(&changed.len()), "{}", changed.len());
    for r in &changed {
        assert!(modified(r) > start && modified(r) < end, "{r}");
    }
    assert_eq!(
        changed
            .iter()
            .filter(|r| r["remote_was_deleted"] == true)
            .count(),
        1
    );
    assert_eq!(fake.with_state(|s| s.record_count("acct-1", EMPLOYEE)), 25);
}

#[test]
fn writes_during_paging_neither_repeat_nor_skip_records_of_the_window() {
    let fake = basic();
    let c = Client::new(&fake, Some(ACME_TOKEN));
    let until = fake.with_state(|s| merge_sync::time::format(s.now()));
    let q = [
        ("page_size", "10"),
        ("include_deleted_data", "true"),
        ("modified_before", until.as_str()),
    ];
    let first = c.get("hris/v1/employees", &q).json();
    let mut seen = ids(first["results"].as_array().unwrap());
    fake.with_state(|s| {
        s.advance(TimeDelta::seconds(1));
        for i in 0..5 {
            s.upsert_record(ACME, EMPLOYEE, json!({"first_name": format!("New{i}")}))
                .unwrap();
        }
        // A record already seen is updated: it moves past the window and is not repeated.
        s.update_record(ACME, EMPLOYEE, &seen[0], |r| {
            r["first_name"] = json!("Renamed")
        })
        .unwrap();
    });
    let mut cursor = first["next"].as_str().map(str::to_string);
    while let Some(cur) = cursor {
        let mut qq = q.to_vec();
        qq.push(("cursor", &cur));
        let page = c.get("hris/v1/employees", &qq).json();
        seen.extend(ids(page["results"].as_array().unwrap()));
        cursor = page["next"].as_str().map(str::to_string);
    }
    assert_eq!(seen.len(), 100);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 100);
}

#[test]
fn faults_fail_requests_then_let_them_through() {
    let fake = basic();
    let c = Client::new(&fake, Some(ACME_TOKEN));
    fake.with_state(|s| {
        s.inject_fault(Fault::status("employees", 500).times(1));
        s.inject_fault(Fault::malformed_json("sync-status").times(1));
        s.inject_fault(Fault::rate_limit("employments", 7).times(1));
        s.inject_fault(Fault::html("teams", 502).times(1));
        s.inject_fault(Fault::drop_connection("locations").times(1));
    });
    let r = c.get("hris/v1/employees", &[]);
    assert_eq!(r.status, 500);
    assert!(r.json()["detail"].is_string());
    assert_eq!(c.get("hris/v1/employees", &[]).status, 200);

    let r = c.get("hris/v1/sync-status", &[]);
    assert_eq!(r.status, 200);
    assert!(
        serde_json::from_str::<Value>(&r.text).is_err(),
        "{}",
        r.text
    );
    assert!(r.text.starts_with("{\"next\""));
    assert_eq!(
        c.get("hris/v1/sync-status", &[]).json()["results"][0]["model_id"],
        EMPLOYEE
    );

    let r = c.get("hris/v1/employments", &[]);
    assert_eq!(r.status, 429);
    assert_eq!(r.retry_after.as_deref(), Some("7"));

    let r = c.get("hris/v1/teams", &[]);
    assert_eq!(r.status, 502);
    assert!(r.text.contains("<html>"));

    assert!(c.try_get("hris/v1/locations", &[]).is_err());
    assert_eq!(c.get("hris/v1/locations", &[]).status, 200);

    let statuses: Vec<u16> = fake.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [500, 200, 200, 200, 429, 502, 0, 200]);
}

#[test]
fn cut_bodies_and_slow_responses_fail_at_the_client() {
    let fake = basic();
    let mut c = Client::new(&fake, Some(ACME_TOKEN));
    fake.with_state(|s| {
        s.inject_fault(Fault::cut_body("employees").times(1));
        s.inject_fault(Fault::delay("teams", Duration::from_millis(400)).nth(2));
    });
    assert!(c.try_get("hris/v1/employees", &[]).is_err());
    assert_eq!(c.get("hris/v1/employees", &[]).status, 200);
    c.agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_millis(150)))
        .build()
        .into();
    assert_eq!(c.get("hris/v1/teams", &[]).status, 200);
    assert!(
        c.try_get("hris/v1/teams", &[]).is_err(),
        "the 2nd call is delayed"
    );
    assert_eq!(c.get("hris/v1/teams", &[]).status, 200);
}

#[test]
fn latency_is_slept_in_parallel() {
    let fake = basic();
    // Each request sleeps far longer than the test waits: four requests in flight at once
    // (recorded, none answered) show the sleeps overlap instead of queueing.
    fake.with_state(|s| s.set_latency(Duration::from_secs(300)));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let c = Client::new(&fake, Some(ACME_TOKEN));
            std::thread::spawn(move || c.try_get("hris/v1/employees", &[]).is_ok())
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let in_flight = fake.requests().iter().filter(|r| r.status == 0).count();
        if in_flight == 4 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{in_flight} of 4 requests in flight: requests were serialised"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Stopping the fake ends the sleeps; nothing was answered.
    drop(fake);
    for c in clients {
        assert!(!c.join().unwrap(), "no answer before the latency elapsed");
    }
}

#[test]
fn fixtures_play_out_their_initial_syncs() {
    let fake =
        FakeMerge::start(Scenario::from_file(fixture("initial-sync.json")).unwrap()).unwrap();
    let acct = "c3d4e5f6-2222-4000-8000-000000000003";
    let c = Client::new(&fake, Some("tok-initial-0001"));
    let statuses = c.walk("hris/v1/sync-status", &[]);
    let employee = &statuses[0];
    assert_eq!(employee["status"], "SYNCING");
    assert_eq!(employee["is_initial_sync"], true);
    assert!(employee["last_sync_finished"].is_null());
    fake.advance(TimeDelta::minutes(10));
    let statuses = c.walk("hris/v1/sync-status", &[]);
    for m in &statuses {
        if m["model_id"] != "hris.BankInfo" {
            assert_eq!(m["status"], "DONE", "{m}");
            assert_eq!(m["is_initial_sync"], false);
        }
    }
    assert_eq!(fake.with_state(|s| s.record_count(acct, EMPLOYEE)), 120);
    // The hourly runs that follow are announced as the next sync.
    assert!(
        statuses[0]["next_sync_start"].is_string(),
        "{}",
        statuses[0]
    );

    let demo = FakeMerge::start(Scenario::from_file(fixture("demo.json")).unwrap()).unwrap();
    demo.advance(TimeDelta::seconds(2));
    demo.with_state(|s| {
        for a in s.accounts() {
            for m in a.model_ids() {
                let st = s.sync_status(&a.id, &m).unwrap();
                assert!(
                    st.status == "DONE" || st.status == "DISABLED",
                    "{m}: {st:?}"
                );
            }
        }
    });
}

#[test]
fn the_binary_prints_its_base_url_and_serves() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fake-merge"))
        .args([
            "--scenario",
            &fixture("basic.json"),
            "--listen",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line.trim().to_string();
    let result = std::panic::catch_unwind(|| {
        assert!(
            base.starts_with("http://127.0.0.1:") && base.ends_with("/api"),
            "{base}"
        );
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut resp = agent
            .get(format!("{base}/hris/v1/sync-status"))
            .header("Authorization", format!("Bearer {KEY}"))
            .header("X-Account-Token", ACME_TOKEN)
            .call()
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        let body: Value = serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap();
        assert_eq!(body["results"][0]["model_id"], EMPLOYEE);
    });
    let _ = child.kill();
    let _ = child.wait();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

/// Throughput check for the benchmark's data size; run with
/// `cargo test --release --test fake_merge -- --ignored --nocapture`.
#[test]
#[ignore]
fn serves_200k_generated_records_quickly() {
    let t0 = Instant::now();
    let scenario = Scenario::new(KEY)
        .account(AccountSpec::new("big", "tok-big", "hris").model(
            ModelSpec::done(EMPLOYEE, TimeSpec::ago(TimeDelta::hours(1))).generate(200_000),
        ));
    let fake = FakeMerge::start(scenario).unwrap();
    let generated = t0.elapsed();
    let c = Client::new(&fake, Some("tok-big"));
    let t1 = Instant::now();
    let (mut n, mut bytes, mut cursor) = (0, 0, None::<String>);
    loop {
        let mut q = vec![("page_size", "100"), ("include_deleted_data", "true")];
        if let Some(cur) = &cursor {
            q.push(("cursor", cur));
        }
        let r = c.get("hris/v1/employees", &q);
        bytes += r.text.len();
        let page = r.json();
        n += page["results"].as_array().unwrap().len();
        match page["next"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    assert_eq!(n, 200_000);
    eprintln!(
        "generated in {generated:?}; served {n} records ({} MB, {} B/record) in {:?}",
        bytes / 1_000_000,
        bytes / n,
        t1.elapsed()
    );
}
