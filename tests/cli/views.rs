//! The typed views, `schema` and `export`: every catalogue model through the fake Merge,
//! `poll` and its view; exports that stream and round-trip.

use std::collections::BTreeMap;

use merge_sync::store::{PageProgress, RecordRow};
use merge_sync::views::{catalogue, Kind, ModelView, Source};
use serde_json::{json, Value};

use super::support::{start, Env, API_KEY};

const ORIGIN_PREFIX: &str = "org-";

/// A record with every field of the model set to a value of its kind, plus a field Merge may
/// add later (it must stay in `data` without disturbing the view).
fn full_record(model: &ModelView, n: usize) -> Value {
    let mut r = serde_json::Map::new();
    for c in model.columns.iter().filter(|c| c.from == Source::Data) {
        r.insert(c.name.clone(), sample(c.kind, &c.name));
    }
    r.insert("id".into(), json!(format!("{}-full-{n}", model.table)));
    r.insert("remote_id".into(), json!(format!("remote-{n}")));
    r.insert("created_at".into(), json!("2026-01-02T03:04:05Z"));
    r.insert("modified_at".into(), json!("2026-01-03T03:04:05Z"));
    r.insert("remote_was_deleted".into(), json!(false));
    r.insert("a_field_merge_adds_later".into(), json!({"new": true}));
    Value::Object(r)
}

/// A record with nothing but its id and times: every other column is NULL.
fn sparse_record(model: &ModelView) -> Value {
    json!({"id": format!("{}-sparse", model.table), "modified_at": "2026-01-03T03:04:05Z",
           "remote_was_deleted": false})
}

fn sample(kind: Kind, name: &str) -> Value {
    match kind {
        Kind::Text => json!(format!("text of {name}")),
        Kind::Id => json!("5b7c6a1e-0000-4000-8000-00000000000a"),
        Kind::IdList => json!([
            "5b7c6a1e-0000-4000-8000-00000000000b",
            "5b7c6a1e-0000-4000-8000-00000000000c"
        ]),
        Kind::Timestamp => json!("2025-12-31T23:59:58Z"),
        Kind::Integer => json!(42),
        Kind::Number => json!(1234.5),
        Kind::Boolean => json!(true),
        Kind::Json => json!({"nested": [1, "two", null]}),
    }
}

/// The SQL type a view column has (SQLite `typeof`, PostgreSQL `pg_typeof`) and its value as
/// text; `None` for NULL.
type Shown = (String, Option<String>);

/// A typed view, as a test reads it, in either store.
trait ViewReader {
    /// Every column of the row with `id`, by name.
    fn row(&mut self, model: &ModelView, id: &str) -> BTreeMap<String, Shown>;
    /// The record's JSON as stored.
    fn data(&mut self, model: &ModelView, id: &str) -> Value;
    /// The type a column of `kind` shows: SQLite gives the storage class of the value.
    fn type_name(&self, kind: Kind) -> &'static str;
    /// The view's columns in order, with their SQL type where the store declares one.
    fn columns(&mut self, view: &str) -> Vec<(String, Option<String>)>;
}

struct Sqlite(rusqlite::Connection);

impl ViewReader for Sqlite {
    fn row(&mut self, model: &ModelView, id: &str) -> BTreeMap<String, Shown> {
        let select: Vec<String> = model
            .columns
            .iter()
            .map(|c| format!("typeof(\"{0}\"), CAST(\"{0}\" AS TEXT)", c.name))
            .collect();
        let sql = format!(
            "SELECT {} FROM \"{}\" WHERE id = ?1",
            select.join(", "),
            model.view
        );
        self.0
            .query_row(&sql, [id], |r| {
                Ok(model
                    .columns
                    .iter()
                    .enumerate()
                    .map(|(i, c)| {
                        (
                            c.name.clone(),
                            (r.get(2 * i).unwrap(), r.get(2 * i + 1).unwrap()),
                        )
                    })
                    .collect())
            })
            .unwrap_or_else(|e| panic!("{}: no row {id}: {e}", model.view))
    }

    fn data(&mut self, model: &ModelView, id: &str) -> Value {
        let text: String = self
            .0
            .query_row(
                &format!("SELECT data FROM \"{}\" WHERE id = ?1", model.table),
                [id],
                |r| r.get(0),
            )
            .unwrap();
        serde_json::from_str(&text).unwrap()
    }

    fn columns(&mut self, view: &str) -> Vec<(String, Option<String>)> {
        let stmt = self
            .0
            .prepare(&format!("SELECT * FROM \"{view}\" LIMIT 0"))
            .unwrap();
        // SQLite declares no type for a view's computed columns.
        stmt.column_names()
            .iter()
            .map(|n| (n.to_string(), None))
            .collect()
    }

    fn type_name(&self, kind: Kind) -> &'static str {
        match kind {
            Kind::Integer | Kind::Boolean => "integer",
            Kind::Number => "real",
            _ => "text",
        }
    }
}

struct Postgres(postgres::Client);

impl ViewReader for Postgres {
    fn row(&mut self, model: &ModelView, id: &str) -> BTreeMap<String, Shown> {
        let select: Vec<String> = model
            .columns
            .iter()
            .map(|c| format!("pg_typeof(\"{0}\")::text, \"{0}\"::text", c.name))
            .collect();
        let sql = format!(
            "SELECT {} FROM \"{}\" WHERE id = $1",
            select.join(", "),
            model.view
        );
        let r = self
            .0
            .query_one(&sql, &[&id])
            .unwrap_or_else(|e| panic!("{}: no row {id}: {e}", model.view));
        model
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.clone(), (r.get(2 * i), r.get(2 * i + 1))))
            .collect()
    }

    fn data(&mut self, model: &ModelView, id: &str) -> Value {
        self.0
            .query_one(
                &format!("SELECT data FROM \"{}\" WHERE id = $1", model.table),
                &[&id],
            )
            .unwrap()
            .get(0)
    }

    fn columns(&mut self, view: &str) -> Vec<(String, Option<String>)> {
        self.0
            .query(
                "SELECT column_name::text, udt_name::text FROM information_schema.columns
                 WHERE table_schema = current_schema() AND table_name = $1
                 ORDER BY ordinal_position",
                &[&view],
            )
            .unwrap()
            .iter()
            .map(|r| (r.get(0), Some(r.get(1))))
            .collect()
    }

    fn type_name(&self, kind: Kind) -> &'static str {
        match kind {
            Kind::Text | Kind::Id => "text",
            Kind::Integer => "bigint",
            Kind::Number => "numeric",
            Kind::Boolean => "boolean",
            Kind::Timestamp => "timestamp with time zone",
            Kind::Json | Kind::IdList => "jsonb",
        }
    }
}

/// The view reader of the store `env` uses.
fn reader(env: &Env) -> Box<dyn ViewReader> {
    if env.is_postgres() {
        Box::new(Postgres(env.pg().connect()))
    } else {
        Box::new(Sqlite(env.sqlite_conn()))
    }
}

/// Checks one shown column against the JSON value it was made from.
fn check(reader: &dyn ViewReader, kind: Kind, want: &Value, got: &Shown, what: &str) {
    let (ty, text) = got;
    let Some(text) = text else {
        assert_eq!(want, &Value::Null, "{what}: NULL, expected {want}");
        return;
    };
    assert_eq!(ty, reader.type_name(kind), "{what}: SQL type for {kind:?}");
    match (kind, want) {
        (Kind::Text | Kind::Id, Value::String(w)) => assert_eq!(text, w, "{what}"),
        (Kind::Timestamp, Value::String(w)) => {
            assert_eq!(instant(text), instant(w), "{what}")
        }
        (Kind::Integer, w) => assert_eq!(text.parse::<i64>().ok(), w.as_i64(), "{what}"),
        (Kind::Number, w) => assert_eq!(text.parse::<f64>().ok(), w.as_f64(), "{what}"),
        (Kind::Boolean, Value::Bool(w)) => {
            assert!(
                ["1", "true"].contains(&text.as_str()) == *w,
                "{what}: {text}"
            )
        }
        (Kind::Json | Kind::IdList, w) => {
            assert_eq!(&serde_json::from_str::<Value>(text).unwrap(), w, "{what}")
        }
        (k, w) => panic!("{what}: no expectation for {k:?} {w}"),
    }
}

/// A timestamp as either store prints it (`2025-12-31T23:59:58Z`, `2025-12-31 23:59:58+00`).
fn instant(text: &str) -> chrono::DateTime<chrono::FixedOffset> {
    chrono::DateTime::parse_from_rfc3339(text)
        .or_else(|_| chrono::DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f%#z"))
        .unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn scenario() -> (String, Vec<(String, String)>) {
    let mut accounts = Vec::new();
    let mut registered = Vec::new();
    let mut by_category: BTreeMap<&str, Vec<&ModelView>> = BTreeMap::new();
    for m in &catalogue().models {
        let info = merge_sync::merge::catalog::find(&m.model_id).unwrap();
        if info.is_listable() {
            by_category
                .entry(info.category.as_str())
                .or_default()
                .push(m);
        }
    }
    for (category, models) in by_category {
        let id = format!("la-{category}");
        let token = format!("tok-{category}-0001");
        let models: Vec<Value> = models
            .iter()
            .map(|m| {
                json!({"model_id": m.model_id, "status": "DONE", "is_initial_sync": false,
                       "last_sync_result": "DONE", "last_sync_start": "-70m",
                       "last_sync_finished": "-1h", "next_sync_start": "+23h",
                       "records": [full_record(m, 1), sparse_record(m)]})
            })
            .collect();
        accounts.push(
            json!({"id": id, "account_token": token, "category": category,
                             "end_user_origin_id": format!("{ORIGIN_PREFIX}{category}"),
                             "models": models}),
        );
        registered.push((id, token));
    }
    let scenario = json!({"api_key": API_KEY, "accounts": accounts});
    (scenario.to_string(), registered)
}

/// Registers the scenario's accounts and polls every listable catalogue model's two records.
fn register_and_poll(env: &Env, accounts: &[(String, String)]) {
    for (id, token) in accounts {
        let category = id.strip_prefix("la-").unwrap();
        env.cmd()
            .args([
                "accounts",
                "add",
                "--account-token",
                token,
                "--category",
                category,
            ])
            .args(["--linked-account-id", id, "--end-user-origin-id"])
            .arg(format!("{ORIGIN_PREFIX}{category}"))
            .assert()
            .success();
    }
    env.cmd().args(["poll"]).assert().success();
}

/// Checks each view column of every model against the JSON it came from.
fn every_model_round_trips(reader: &mut dyn ViewReader) {
    let mut checked = 0;
    for model in &catalogue().models {
        let info = merge_sync::merge::catalog::find(&model.model_id).unwrap();
        if !info.is_listable() {
            continue;
        }
        let full = full_record(model, 1);
        let row = reader.row(model, full["id"].as_str().unwrap());
        for c in &model.columns {
            let want = match (c.from, c.name.as_str()) {
                (Source::Account, _) => json!(format!("{ORIGIN_PREFIX}{}", info.category)),
                (Source::Record, "linked_account_id") => json!(format!("la-{}", info.category)),
                _ => full[&c.name].clone(),
            };
            let what = format!("{}.{}", model.view, c.name);
            check(&*reader, c.kind, &want, &row[&c.name], &what);
        }

        // Missing fields are NULL (the fake, like Merge, still renders a few defaults such as
        // `field_mappings`: those must show as they are).
        let sparse_id = sparse_record(model)["id"].as_str().unwrap().to_string();
        let sparse = reader.row(model, &sparse_id);
        let stored = reader.data(model, &sparse_id);
        let mut nulls = 0;
        for c in model.columns.iter().filter(|c| c.from == Source::Data) {
            let want = stored.get(&c.name).unwrap_or(&Value::Null);
            nulls += usize::from(want.is_null());
            check(
                &*reader,
                c.kind,
                want,
                &sparse[&c.name],
                &format!("{} sparse {}", model.view, c.name),
            );
        }
        assert!(
            model.schema.is_none() || nulls > 0,
            "{}: the sparse record left nothing out",
            model.view
        );
        // The field Merge added later is kept in the record's JSON.
        let data = reader.data(model, full["id"].as_str().unwrap());
        assert_eq!(
            data["a_field_merge_adds_later"],
            json!({"new": true}),
            "{}",
            model.table
        );
        checked += 1;
    }
    assert_eq!(
        checked,
        catalogue().models.len() - 3,
        "every listable model (all but CRM's three custom-object models) was checked"
    );
}

#[test]
fn every_model_goes_through_the_fake_poll_and_its_typed_view() {
    let (scenario, accounts) = scenario();
    let fake = start(&scenario);
    let env = Env::with_fake(&fake);
    register_and_poll(&env, &accounts);
    every_model_round_trips(reader(&env).as_mut());
}

#[test]
fn schema_lists_every_model_and_matches_the_views() {
    let env = Env::new("http://127.0.0.1:9");
    let out = env.cmd().args(["schema", "--json"]).output().unwrap();
    assert!(out.status.success());
    let models: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(models.len(), catalogue().models.len());
    // Opening the state creates the views.
    drop(env.store());
    let mut reader = reader(&env);
    for m in &models {
        let model_id = m["model_id"].as_str().unwrap();
        let out = env
            .cmd()
            .args(["schema", model_id, "--json"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{model_id}");
        let one: Value = serde_json::from_slice(&out.stdout).unwrap();
        let schema_columns: Vec<(String, String)> = one["columns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["name"].as_str().unwrap().to_string(),
                    c["sql_type"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let view = one["view"].as_str().unwrap();
        let view_columns = reader.columns(view);
        let names = |c: &[(String, String)]| c.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
        assert_eq!(
            names(&schema_columns),
            view_columns
                .iter()
                .map(|(n, _)| n.clone())
                .collect::<Vec<_>>(),
            "{model_id}"
        );
        for ((name, sql_type), (_, declared)) in schema_columns.iter().zip(&view_columns) {
            if let Some(declared) = declared {
                // PostgreSQL's internal names for the types `schema` shows.
                let shown = match sql_type.as_str() {
                    "bigint" => "int8",
                    "boolean" => "bool",
                    other => other,
                };
                assert_eq!(shown, declared, "{model_id}.{name}");
            }
        }
        assert_eq!(m["columns"], schema_columns.len(), "{model_id}");
    }
    let employee: Value = serde_json::from_slice(
        &env.cmd()
            .args(["schema", "hris.Employee", "--json"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let col = |n: &str| {
        employee["columns"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == n)
            .unwrap()
            .clone()
    };
    assert_eq!(col("manager")["relation"], "Employee");
    let boolean = if env.is_postgres() {
        "boolean"
    } else {
        "INTEGER"
    };
    assert_eq!(col("remote_was_deleted")["sql_type"], boolean);
    let table = env
        .cmd()
        .args(["schema", "hris.Employee"])
        .output()
        .unwrap();
    let table = String::from_utf8(table.stdout).unwrap();
    assert!(table.contains("hris_employee_view") && table.contains("work_email"));
}

#[test]
fn schema_and_export_reject_an_unknown_model_with_exit_2() {
    let env = Env::new("http://127.0.0.1:9");
    for args in [
        vec!["schema", "hris.Nope"],
        vec!["export", "--model", "hris.Nope"],
    ] {
        let out = env.cmd().args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("hris.Nope") && err.contains("merge-sync schema"),
            "{err}"
        );
    }
}

/// Registers `account` (origin `org-{account}`) and writes `n` employees straight into its
/// records table, every 10th deleted; names with commas, quotes and newlines.
fn seed_employees(env: &Env, account: &str, n: usize) {
    env.cmd()
        .args([
            "accounts",
            "add",
            "--account-token",
            &format!("tok-{account}-0001"),
        ])
        .args(["--category", "hris", "--linked-account-id", account])
        .args(["--end-user-origin-id", &format!("org-{account}")])
        .assert()
        .success();
    // Through merge-sync's own store interface, a page at a time, as a fetch writes them.
    let mut store = env.store();
    let t = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().to_utc();
    let rows: Vec<RecordRow> = (0..n)
        .map(|i| {
            let id = format!("{account}-emp-{i:07}");
            RecordRow {
                remote_id: Some(format!("r{i}")),
                created_at: Some("2026-01-01T00:00:00Z".to_string()),
                modified_at: Some("2026-01-02T00:00:00.000000Z".to_string()),
                remote_was_deleted: i % 10 == 9,
                data: employee_json(&id, i).to_string(),
                id,
            }
        })
        .collect();
    for page in rows.chunks(1000) {
        let progress = PageProgress {
            window_after: None,
            window_before: t("2026-01-03T00:00:00Z"),
            next_cursor: Some("more"),
            high_water: t("2026-01-03T00:00:00Z"),
            started_at: t("2026-01-03T00:00:00Z"),
            now: t("2026-01-03T00:00:00Z"),
        };
        store
            .write_page(account, "hris.Employee", page, &progress)
            .unwrap();
    }
}

fn employee_json(id: &str, i: usize) -> Value {
    json!({
        "id": id, "remote_id": format!("r{i}"), "created_at": "2026-01-01T00:00:00Z",
        "modified_at": "2026-01-02T00:00:00Z", "remote_was_deleted": i % 10 == 9,
        "first_name": format!("Ann, \"{i}\"\nSecond line"), "last_name": "O'Brien",
        "work_email": format!("ann{i}@example.com"), "manager": null,
        "employments": [format!("emp-{i}-a"), format!("emp-{i}-b")],
        "employment_status": if i.is_multiple_of(2) { "ACTIVE" } else { "INACTIVE" },
        "start_date": "2020-05-01T00:00:00Z",
        "custom_fields": {"level": i % 7, "note": "x,y"},
        "field_mappings": null, "remote_data": null,
    })
}

/// Runs `merge-sync` to completion and returns its exit code and its own peak RSS in KiB
/// (from `wait4`, so no other process of the test run counts).
fn run_measured(env: &Env, args: &[&str]) -> (i32, i64) {
    let child = env.process().args(args).spawn().unwrap();
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: plain FFI on our own child, with out-parameters that outlive the call.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let got = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(got, pid);
    std::mem::forget(child); // already reaped
    (libc::WEXITSTATUS(status), usage.ru_maxrss)
}

#[test]
fn export_of_100000_rows_streams_in_constant_memory_and_round_trips_through_csv() {
    const BIG: usize = 100_000;
    let env = Env::new("http://127.0.0.1:9");
    seed_employees(&env, "big", BIG);
    seed_employees(&env, "small", 1_000);
    let dir = env.dir.path();

    let (code, small_rss) = run_measured(
        &env,
        &[
            "export",
            "--model",
            "hris.Employee",
            "--account",
            "small",
            "--output",
            "small.csv",
        ],
    );
    assert_eq!(code, 0);
    let (code, big_rss) = run_measured(
        &env,
        &[
            "export",
            "--model",
            "hris.Employee",
            "--account",
            "org-big",
            "--output",
            "big.csv",
        ],
    );
    assert_eq!(code, 0);
    let size = std::fs::metadata(dir.join("big.csv")).unwrap().len();
    // 100x the rows, tens of MB of CSV, and the process grows by no more than a few MiB:
    // rows are written as they are read, never collected.
    assert!(size > 20 << 20, "big.csv is {size} bytes");
    eprintln!(
        "peak RSS: {small_rss} KiB for 1,000 rows, {big_rss} KiB for 100,000 rows ({size} bytes)"
    );
    assert!(
        big_rss - small_rss < 8 * 1024,
        "peak RSS grew from {small_rss} KiB (1,000 rows) to {big_rss} KiB (100,000 rows)"
    );

    let model = catalogue().find("hris.Employee").unwrap();
    let mut reader = csv::Reader::from_path(dir.join("big.csv")).unwrap();
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(
        header,
        model
            .columns
            .iter()
            .map(|c| c.name.clone())
            .collect::<Vec<_>>()
    );
    let col = |n: &str| header.iter().position(|h| h == n).unwrap();
    let mut rows = 0;
    for (k, record) in reader.records().enumerate() {
        let record = record.unwrap();
        // Deleted records (every 10th) are left out by default; the rest come in id order.
        let i = k + k / 9;
        let want = employee_json(&format!("big-emp-{i:07}"), i);
        assert_eq!(&record[col("id")], want["id"].as_str().unwrap());
        assert_eq!(
            &record[col("first_name")],
            want["first_name"].as_str().unwrap()
        );
        assert_eq!(&record[col("last_name")], "O'Brien");
        assert_eq!(&record[col("end_user_origin_id")], "org-big");
        assert_eq!(&record[col("remote_was_deleted")], "false");
        assert_eq!(&record[col("manager")], "");
        let employments: Value = serde_json::from_str(&record[col("employments")]).unwrap();
        assert_eq!(employments, want["employments"]);
        let custom: Value = serde_json::from_str(&record[col("custom_fields")]).unwrap();
        assert_eq!(custom, want["custom_fields"]);
        rows += 1;
    }
    assert_eq!(rows, BIG - BIG / 10);
}

#[test]
fn export_jsonl_is_typed_and_include_deleted_and_account_filter() {
    let env = Env::new("http://127.0.0.1:9");
    seed_employees(&env, "one", 20);
    seed_employees(&env, "two", 5);
    let lines = |args: &[&str]| -> Vec<Value> {
        let out = env.cmd().args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let all = lines(&["export", "--model", "hris.Employee", "--format", "jsonl"]);
    assert_eq!(all.len(), 18 + 5);
    let one = lines(&[
        "export",
        "--model",
        "hris.Employee",
        "--format",
        "jsonl",
        "--account",
        "one",
        "--include-deleted",
    ]);
    assert_eq!(one.len(), 20);
    let deleted = &one[9];
    assert_eq!(deleted["remote_was_deleted"], json!(true));
    let first = &one[0];
    let want = employee_json("one-emp-0000000", 0);
    assert_eq!(first["remote_was_deleted"], json!(false));
    assert_eq!(first["custom_fields"], want["custom_fields"]);
    assert_eq!(first["employments"], want["employments"]);
    assert_eq!(first["first_name"], want["first_name"]);
    assert_eq!(first["manager"], Value::Null);
    assert_eq!(first["end_user_origin_id"], json!("org-one"));
    let keys: Vec<&String> = first.as_object().unwrap().keys().collect();
    assert_eq!(
        keys.len(),
        catalogue().find("hris.Employee").unwrap().columns.len()
    );
}

#[test]
fn a_failed_export_leaves_the_previous_output_file_whole() {
    let env = Env::new("http://127.0.0.1:9");
    seed_employees(&env, "one", 3);
    let out = env.dir.path().join("out.csv");
    std::fs::write(&out, "previous export\n").unwrap();
    env.cmd()
        .args([
            "export",
            "--model",
            "hris.Employee",
            "--account",
            "nobody",
            "--output",
        ])
        .arg(&out)
        .assert()
        .code(2);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "previous export\n");
    env.cmd()
        .args([
            "export",
            "--model",
            "hris.Employee",
            "--output",
            "missing-dir/out.csv",
        ])
        .assert()
        .code(2)
        .stderr(predicates::str::contains("does not exist"));
    env.cmd()
        .args(["export", "--model", "hris.Employee", "--output"])
        .arg(&out)
        .assert()
        .success();
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(
        csv::Reader::from_reader(text.as_bytes()).records().count(),
        3
    );
    // No temporary file is left beside it.
    let names: Vec<_> = std::fs::read_dir(env.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with(".tmp"))
        .collect();
    assert!(names.is_empty(), "{names:?}");
}

/// The example queries in README's "Where state lives", run as written.
#[test]
fn readme_example_queries_answer_as_described() {
    let model = |id: &str, records: Value| {
        json!({"model_id": id, "status": "DONE", "is_initial_sync": false,
               "last_sync_result": "DONE", "last_sync_start": "-70m",
               "last_sync_finished": "-1h", "next_sync_start": "+23h", "records": records})
    };
    let employee = |id: &str, first: &str, last: &str, status: &str, team: Value, jobs: Value| {
        json!({"id": id, "first_name": first, "last_name": last,
               "work_email": format!("{}@acme.example", first.to_lowercase()),
               "employment_status": status, "team": team, "employments": jobs,
               "modified_at": "-2h", "remote_was_deleted": false})
    };
    let mut deleted = employee("e4", "Dee", "Gone", "ACTIVE", Value::Null, json!([]));
    deleted["remote_was_deleted"] = json!(true);
    let scenario = json!({"api_key": API_KEY, "accounts": [
        {"id": "la-acme", "account_token": "tok-acme-0001", "category": "hris",
         "end_user_origin_id": "org-acme", "models": [
            model("hris.Team", json!([{"id": "t1", "name": "Platform", "modified_at": "-2h"}])),
            model("hris.Employment", json!([
                {"id": "j1", "job_title": "Engineer", "pay_rate": 100.5, "modified_at": "-2h"},
                {"id": "j2", "job_title": "Lead", "pay_rate": 120, "modified_at": "-2h"}])),
            model("hris.Employee", json!([
                employee("e1", "Ada", "Lovelace", "ACTIVE", json!("t1"), json!(["j1", "j2"])),
                employee("e2", "Bob", "Marley", "ACTIVE", Value::Null, json!([])),
                employee("e3", "Cy", "Young", "INACTIVE", json!("t1"), json!([])),
                deleted]))]},
        {"id": "la-globex", "account_token": "tok-globex-0001", "category": "hris",
         "end_user_origin_id": "org-globex", "models": [
            model("hris.Employee", json!([
                employee("g1", "Gil", "Bates", "ACTIVE", Value::Null, json!([]))]))]}
    ]});
    let fake = start(&scenario.to_string());
    let env = Env::with_fake(&fake);
    for (id, token, origin) in [
        ("la-acme", "tok-acme-0001", "org-acme"),
        ("la-globex", "tok-globex-0001", "org-globex"),
    ] {
        env.cmd()
            .args([
                "accounts",
                "add",
                "--account-token",
                token,
                "--category",
                "hris",
            ])
            .args(["--linked-account-id", id, "--end-user-origin-id", origin])
            .assert()
            .success();
    }
    env.cmd().arg("poll").assert().success();

    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = &readme[readme.find("## Where state lives").unwrap()..];
    let blocks: Vec<&str> = section
        .split("```sql\n")
        .skip(1)
        .take(2)
        .map(|b| &b[..b.find("```").unwrap()])
        .collect();
    let queries = |block: &str| -> Vec<String> {
        block
            .split(';')
            .filter(|q| !q.trim().is_empty())
            .map(String::from)
            .collect()
    };
    let mut queries_as_written = queries(blocks[0]);
    assert_eq!(queries_as_written.len(), 3);
    // PostgreSQL: the first two as written, the third from its own block.
    let pg_third = queries(blocks[1]);
    assert_eq!(pg_third.len(), 1);
    if env.is_postgres() {
        queries_as_written.truncate(2);
        queries_as_written.extend(pg_third);
    }
    let queries = queries_as_written;
    // Every row, through the helpers that read either store, ordered by the first columns.
    let run = |q: &str| -> Vec<Vec<Value>> {
        let n = env.count(&format!("SELECT COUNT(*) FROM ({q}\n) q"));
        (0..n)
            .map(|k| {
                env.row(&format!(
                    "SELECT * FROM ({q}\n) q ORDER BY 1, 2 LIMIT 1 OFFSET {k}"
                ))
            })
            .collect()
    };
    let s = |v: &str| json!(v);
    assert_eq!(
        run(&queries[0]),
        [
            vec![
                s("Ada"),
                s("Lovelace"),
                s("ada@acme.example"),
                s("Platform")
            ],
            vec![s("Bob"), s("Marley"), s("bob@acme.example"), Value::Null],
        ]
    );
    assert_eq!(
        run(&queries[1]),
        [
            vec![s("org-acme"), json!(2)],
            vec![s("org-globex"), json!(1)]
        ]
    );
    let jobs: Vec<(Value, Value, Option<f64>)> = run(&queries[2])
        .into_iter()
        .map(|r| (r[0].clone(), r[1].clone(), r[2].as_f64()))
        .collect();
    assert_eq!(
        jobs,
        [
            (s("ada@acme.example"), s("Engineer"), Some(100.5)),
            (s("ada@acme.example"), s("Lead"), Some(120.0)),
        ]
    );
}
