//! Hermetic CLI runs: a temp dir as cwd and HOME, a cleared environment, the fake Merge.

use std::path::PathBuf;

use assert_cmd::Command;
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
