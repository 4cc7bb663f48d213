//! Hermetic CLI runs: a temp dir as cwd and HOME, a cleared environment, the fake Merge.
//!
//! The one place that builds `merge-sync` commands and says which state store they use
//! ([`Env::db_arg`]); tests never spell out `--db` or `accounts add` argument lists themselves.
//!
//! The store under test is SQLite, or with `MERGE_SYNC_TEST_STORE=postgres` a fresh database on
//! the test PostgreSQL server per test (CI runs the suite both ways). Tests about the state
//! file itself use [`Env::sqlite`]; everything else reads the store through the portable
//! helpers here ([`Env::count`], [`Env::row`], [`mirror`]).

use std::path::PathBuf;

use assert_cmd::Command;
use merge_sync::fake::{FakeMerge, Scenario};
use tempfile::TempDir;

pub const API_KEY: &str = "test_api_key_0123456789";

pub struct Env {
    pub dir: TempDir,
    pub api_url: String,
    /// The PostgreSQL database under test; `None` for an SQLite state file.
    pg: Option<merge_sync::testing::postgres::TestDatabase>,
}

/// Whether this run tests the PostgreSQL store (`MERGE_SYNC_TEST_STORE=postgres`).
pub fn testing_postgres() -> bool {
    match std::env::var("MERGE_SYNC_TEST_STORE").as_deref() {
        Ok("postgres") => true,
        Ok("sqlite") | Err(_) => false,
        Ok(other) => panic!("MERGE_SYNC_TEST_STORE={other:?}: expected sqlite or postgres"),
    }
}

impl Env {
    /// An environment on the store under test.
    pub fn new(api_url: &str) -> Env {
        if testing_postgres() {
            Env::postgres(api_url)
        } else {
            Env::sqlite(api_url)
        }
    }

    /// An environment on an SQLite state file, whatever the store under test.
    pub fn sqlite(api_url: &str) -> Env {
        Env {
            dir: tempfile::tempdir().unwrap(),
            api_url: api_url.to_string(),
            pg: None,
        }
    }

    /// An environment on a fresh PostgreSQL database, whatever the store under test.
    pub fn postgres(api_url: &str) -> Env {
        Env {
            dir: tempfile::tempdir().unwrap(),
            api_url: api_url.to_string(),
            pg: Some(merge_sync::testing::postgres::database()),
        }
    }

    pub fn is_postgres(&self) -> bool {
        self.pg.is_some()
    }

    /// The PostgreSQL database under test (panics on SQLite).
    pub fn pg(&self) -> &merge_sync::testing::postgres::TestDatabase {
        self.pg.as_ref().expect("a PostgreSQL environment")
    }

    pub fn with_fake(fake: &FakeMerge) -> Env {
        Env::new(&fake.base_url())
    }

    /// The SQLite state file the commands use.
    pub fn db(&self) -> PathBuf {
        assert!(
            !self.is_postgres(),
            "this test is about the SQLite state file"
        );
        self.dir.path().join("merge-sync.db")
    }

    /// The value every command gets as its state store (`MERGE_SYNC_DB`, i.e. `--db`).
    pub fn db_arg(&self) -> String {
        match &self.pg {
            Some(db) => db.url().to_string(),
            None => self
                .db()
                .to_str()
                .expect("temp paths are UTF-8")
                .to_string(),
        }
    }

    /// The hermetic environment, for either kind of command.
    fn vars(&self) -> Vec<(&'static str, std::ffi::OsString)> {
        vec![
            ("PATH", std::env::var_os("PATH").unwrap_or_default()),
            ("HOME", self.dir.path().into()),
            ("MERGE_API_URL", self.api_url.clone().into()),
            ("MERGE_API_KEY", API_KEY.into()),
            ("MERGE_SYNC_DB", self.db_arg().into()),
        ]
    }

    /// `merge-sync` with nothing from the developer's environment.
    pub fn cmd(&self) -> Command {
        let mut c = Command::cargo_bin("merge-sync").unwrap();
        c.env_clear()
            .current_dir(self.dir.path())
            .envs(self.vars())
            .timeout(std::time::Duration::from_secs(60));
        c
    }

    /// The same hermetic `merge-sync`, as a plain process for tests that spawn, kill or run
    /// several at once.
    pub fn process(&self) -> std::process::Command {
        let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("merge-sync"));
        c.env_clear().current_dir(self.dir.path()).envs(self.vars());
        c
    }

    /// The state store the commands use, through merge-sync's own interface.
    pub fn store(&self) -> Box<dyn merge_sync::store::Store> {
        let location =
            merge_sync::store::Location::parse(std::path::Path::new(&self.db_arg()), &|_| None)
                .unwrap();
        merge_sync::store::open(&location).unwrap()
    }

    /// Creates an empty state store, as the first `accounts add` would, for tests of commands
    /// that refuse to run without one.
    pub fn create_state(&self) {
        self.store();
    }

    /// A connection to the SQLite state file (for tests about the file itself).
    pub fn sqlite_conn(&self) -> rusqlite::Connection {
        assert!(!self.is_postgres(), "this test reads the SQLite state file");
        rusqlite::Connection::open(self.db()).unwrap()
    }

    /// The first row of `sql` (written to run on both stores), one JSON value per column:
    /// booleans as SQLite stores them (0/1), timestamps as text, JSON columns as text.
    pub fn row(&self, sql: &str) -> Vec<serde_json::Value> {
        self.try_row(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    fn try_row(&self, sql: &str) -> Result<Vec<serde_json::Value>, String> {
        use serde_json::Value;
        match &self.pg {
            None => {
                let conn = rusqlite::Connection::open(self.db()).map_err(|e| e.to_string())?;
                let mut stmt = conn.prepare(sql).map_err(|e| e.to_string())?;
                let width = stmt.column_count();
                stmt.query_row([], |r| {
                    (0..width)
                        .map(|i| {
                            Ok(match r.get_ref(i)? {
                                rusqlite::types::ValueRef::Null => Value::Null,
                                rusqlite::types::ValueRef::Integer(v) => v.into(),
                                rusqlite::types::ValueRef::Real(v) => v.into(),
                                rusqlite::types::ValueRef::Text(t)
                                | rusqlite::types::ValueRef::Blob(t) => {
                                    String::from_utf8_lossy(t).into_owned().into()
                                }
                            })
                        })
                        .collect()
                })
                .map_err(|e| e.to_string())
            }
            Some(db) => {
                use postgres::types::Type;
                let mut c = postgres::Client::connect(db.url(), postgres::NoTls)
                    .map_err(|e| e.to_string())?;
                let row = c.query_one(sql, &[]).map_err(|e| e.to_string())?;
                // Numerics (SUM of bigints, say) have no native Rust type here: read as text.
                let texts: Vec<Option<String>> = match c.simple_query(sql) {
                    Ok(msgs) => msgs
                        .into_iter()
                        .find_map(|m| match m {
                            postgres::SimpleQueryMessage::Row(r) => {
                                Some((0..r.len()).map(|i| r.get(i).map(String::from)).collect())
                            }
                            _ => None,
                        })
                        .unwrap_or_default(),
                    Err(e) => return Err(e.to_string()),
                };
                Ok((0..row.len())
                    .map(|i| match *row.columns()[i].type_() {
                        Type::NUMERIC => match texts.get(i).cloned().flatten() {
                            None => Value::Null,
                            Some(t) => t
                                .parse::<i64>()
                                .map(Value::from)
                                .or_else(|_| t.parse::<f64>().map(Value::from))
                                .unwrap_or(Value::String(t)),
                        },
                        Type::BOOL => row
                            .get::<_, Option<bool>>(i)
                            .map_or(Value::Null, |b| (b as i64).into()),
                        Type::INT8 => row.get::<_, Option<i64>>(i).into(),
                        Type::INT4 => row.get::<_, Option<i32>>(i).into(),
                        Type::TIMESTAMPTZ => row
                            .get::<_, Option<chrono::DateTime<chrono::Utc>>>(i)
                            .map(merge_sync::time::format)
                            .into(),
                        Type::JSONB => row
                            .get::<_, Option<serde_json::Value>>(i)
                            .map(|v| v.to_string())
                            .into(),
                        Type::BYTEA => row
                            .get::<_, Option<Vec<u8>>>(i)
                            .map(|b| String::from_utf8_lossy(&b).into_owned())
                            .into(),
                        _ => row.get::<_, Option<String>>(i).into(),
                    })
                    .collect())
            }
        }
    }

    /// The first column of the first row of `sql`, as text (`None` for NULL).
    pub fn text(&self, sql: &str) -> Option<String> {
        match self.row(sql).into_iter().next() {
            Some(serde_json::Value::String(s)) => Some(s),
            Some(serde_json::Value::Null) | None => None,
            Some(other) => Some(other.to_string()),
        }
    }

    /// A number `sql` computes (a `COUNT(*)`, say).
    pub fn count(&self, sql: &str) -> i64 {
        self.row(sql)[0]
            .as_i64()
            .unwrap_or_else(|| panic!("{sql} gave no number"))
    }

    /// Like [`Env::count`], but 0 while the store cannot answer yet (a process is creating it).
    pub fn count_or_zero(&self, sql: &str) -> i64 {
        self.try_row(sql)
            .ok()
            .and_then(|r| r.first().and_then(|v| v.as_i64()))
            .unwrap_or(0)
    }

    /// Runs a statement (written to run on both stores).
    pub fn execute(&self, sql: &str) {
        match &self.pg {
            None => {
                rusqlite::Connection::open(self.db())
                    .unwrap()
                    .execute_batch(sql)
                    .unwrap();
            }
            Some(db) => {
                postgres::Client::connect(db.url(), postgres::NoTls)
                    .unwrap()
                    .batch_execute(sql)
                    .unwrap();
            }
        }
    }

    pub fn status_json(&self) -> Vec<serde_json::Value> {
        let out = self.cmd().args(["status", "--json"]).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

/// Starts the fake Merge from a scenario written inline; its API key is [`API_KEY`].
pub fn start(scenario_json: &str) -> FakeMerge {
    FakeMerge::start(Scenario::from_json(scenario_json).unwrap()).unwrap()
}

/// `accounts add` arguments, built up flag by flag: `.args(accounts_add().token(T).category(C))`.
pub struct AccountsAdd(Vec<String>);

pub fn accounts_add() -> AccountsAdd {
    AccountsAdd(vec!["accounts".into(), "add".into()])
}

impl AccountsAdd {
    fn flag(mut self, name: &str, value: &str) -> AccountsAdd {
        self.0.push(name.into());
        self.0.push(value.into());
        self
    }

    pub fn token(self, token: &str) -> AccountsAdd {
        self.flag("--account-token", token)
    }

    pub fn public_token(self, token: &str) -> AccountsAdd {
        self.flag("--public-token", token)
    }

    pub fn category(self, category: &str) -> AccountsAdd {
        self.flag("--category", category)
    }

    /// `--linked-account-id`: registers without asking Merge for the details.
    pub fn id(self, id: &str) -> AccountsAdd {
        self.flag("--linked-account-id", id)
    }

    pub fn origin(self, origin: &str) -> AccountsAdd {
        self.flag("--end-user-origin-id", origin)
    }

    pub fn models(self, models: &str) -> AccountsAdd {
        self.flag("--models", models)
    }
}

impl IntoIterator for AccountsAdd {
    type Item = String;
    type IntoIter = std::vec::IntoIter<String>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

/// Registers an account without asking Merge for details.
pub fn add_account(env: &Env, id: &str, token: &str, category: &str) {
    env.cmd()
        .args(accounts_add().token(token).category(category).id(id))
        .assert()
        .success();
}

/// The mirror's records of a model for an account: id → (remote_was_deleted, data).
pub fn mirror(
    env: &Env,
    table: &str,
    account: &str,
) -> std::collections::BTreeMap<String, (bool, serde_json::Value)> {
    if env.is_postgres() {
        let mut c = env.pg().connect();
        return c
            .query(
                &format!(
                    "SELECT id, remote_was_deleted, data FROM {table} WHERE linked_account_id = $1"
                ),
                &[&account],
            )
            .unwrap()
            .iter()
            .map(|r| (r.get(0), (r.get(1), r.get(2))))
            .collect();
    }
    let conn = env.sqlite_conn();
    let mut stmt = conn
        .prepare(&format!(
            "SELECT id, remote_was_deleted, data FROM {table} WHERE linked_account_id = ?1"
        ))
        .unwrap();
    stmt.query_map([account], |r| {
        let data: String = r.get(2)?;
        Ok((
            r.get::<_, String>(0)?,
            (
                r.get::<_, i64>(1)? != 0,
                serde_json::from_str(&data).unwrap(),
            ),
        ))
    })
    .unwrap()
    .map(|r| r.unwrap())
    .collect()
}

/// Asserts the mirror holds exactly the fake's records (deleted ones flagged), field for field.
pub fn assert_mirror_equals_truth(
    env: &Env,
    fake: &FakeMerge,
    account: &str,
    model: &str,
    table: &str,
) {
    let truth = fake.with_state(|s| s.records(account, model));
    let got = mirror(env, table, account);
    assert_eq!(
        got.len(),
        truth.len(),
        "{model}: mirror has {} records, Merge {}",
        got.len(),
        truth.len()
    );
    for t in truth {
        let id = t["id"].as_str().unwrap();
        let (deleted, data) = got
            .get(id)
            .unwrap_or_else(|| panic!("{model} record {id} missing from the mirror"));
        assert_eq!(
            *deleted,
            t["remote_was_deleted"].as_bool().unwrap_or(false),
            "{id} deleted flag"
        );
        assert_eq!(data, &t, "{model} record {id} differs");
    }
}

/// Requests the fake received with this account token.
pub fn requests_for(fake: &FakeMerge, token: &str) -> Vec<merge_sync::fake::RecordedRequest> {
    fake.requests()
        .into_iter()
        .filter(|r| r.account_token.as_deref() == Some(token))
        .collect()
}

/// Polls `done` until it holds; panics naming `what` if it has not within `limit`. Tests wait
/// with this instead of sleeping and hoping, and never assert an upper bound on elapsed time.
pub fn wait_until(what: &str, limit: std::time::Duration, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + limit;
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "gave up after {limit:?} waiting until {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
