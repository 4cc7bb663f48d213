//! Hermetic CLI runs: a temp dir as cwd and HOME, a cleared environment, the fake Merge.
//!
//! The one place that builds `merge-sync` commands and says which state store they use
//! ([`Env::db_arg`]); tests never spell out `--db` or `accounts add` argument lists themselves.

use std::path::PathBuf;

use assert_cmd::Command;
use merge_sync::fake::{FakeMerge, Scenario};
use tempfile::TempDir;

pub const API_KEY: &str = "test_api_key_0123456789";

pub struct Env {
    pub dir: TempDir,
    pub api_url: String,
}

impl Env {
    pub fn new(api_url: &str) -> Env {
        Env {
            dir: tempfile::tempdir().unwrap(),
            api_url: api_url.to_string(),
        }
    }

    pub fn with_fake(fake: &FakeMerge) -> Env {
        Env::new(&fake.base_url())
    }

    /// The SQLite state file the commands use.
    pub fn db(&self) -> PathBuf {
        self.dir.path().join("merge-sync.db")
    }

    /// The value every command gets as its state store (`MERGE_SYNC_DB`, i.e. `--db`).
    pub fn db_arg(&self) -> String {
        self.db()
            .to_str()
            .expect("temp paths are UTF-8")
            .to_string()
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
        merge_sync::store::open(&merge_sync::store::Location::Sqlite(self.db())).unwrap()
    }

    /// Creates an empty state store, as the first `accounts add` would, for tests of commands
    /// that refuse to run without one.
    pub fn create_state(&self) {
        self.store();
    }

    pub fn sqlite(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.db()).unwrap()
    }

    pub fn count(&self, sql: &str) -> i64 {
        self.sqlite().query_row(sql, [], |r| r.get(0)).unwrap()
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
    let conn = env.sqlite();
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
