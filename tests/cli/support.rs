//! Hermetic CLI runs: a temp dir as cwd and HOME, a cleared environment, the fake Merge.

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

    pub fn db(&self) -> PathBuf {
        self.dir.path().join("merge-sync.db")
    }

    /// `merge-sync` with nothing from the developer's environment.
    pub fn cmd(&self) -> Command {
        let mut c = Command::cargo_bin("merge-sync").unwrap();
        c.env_clear()
            .current_dir(self.dir.path())
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("MERGE_API_URL", &self.api_url)
            .env("MERGE_API_KEY", API_KEY)
            .timeout(std::time::Duration::from_secs(60));
        c
    }

    /// The same hermetic `merge-sync`, as a plain process for tests that spawn, kill or run
    /// several at once.
    pub fn process(&self) -> std::process::Command {
        let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("merge-sync"));
        c.env_clear()
            .current_dir(self.dir.path())
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.dir.path())
            .env("MERGE_API_URL", &self.api_url)
            .env("MERGE_API_KEY", API_KEY);
        c
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

/// Registers an account without asking Merge for details.
pub fn add_account(env: &Env, id: &str, token: &str, category: &str) {
    env.cmd()
        .args([
            "accounts",
            "add",
            "--account-token",
            token,
            "--category",
            category,
            "--linked-account-id",
            id,
        ])
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
