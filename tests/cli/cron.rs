//! `crontab.example` works as written: its environment lines and command line, run the way
//! cron runs them (a bare environment, cron's default PATH, no terminal), sync and exit 0.

use std::process::{Command, Stdio};

use super::support::{add_account, assert_mirror_equals_truth, start, Env, API_KEY};

const CRONTAB: &str = include_str!("../../crontab.example");

/// The crontab's `NAME=value` lines and its one job's command (after the five time fields).
fn parse_crontab() -> (Vec<(String, String)>, String) {
    let mut vars = Vec::new();
    let mut jobs = Vec::new();
    for line in CRONTAB.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.split_once('=') {
            Some((name, value)) if !name.contains(' ') => {
                vars.push((name.to_string(), value.to_string()))
            }
            _ => jobs.push(line.splitn(6, ' ').nth(5).unwrap().to_string()),
        }
    }
    assert_eq!(jobs.len(), 1, "one job in crontab.example");
    (vars, jobs.remove(0))
}

/// Regression: the example called /usr/local/bin/merge-sync, README a bare `merge-sync`, and
/// `cargo install` puts it in ~/.cargo/bin: under cron's PATH every run was "not found".
#[test]
fn the_crontab_example_syncs_under_crons_environment() {
    let fake = start(&format!(
        r#"{{"api_key": "{API_KEY}", "accounts": [{{"id": "la1", "account_token": "tok_cron_0001", "category": "hris",
            "models": [{{"model_id": "hris.Employee", "status": "DONE", "is_initial_sync": false,
                        "last_sync_result": "DONE", "last_sync_finished": "-1h", "generate": 25}}]}}]}}"#
    ));
    // The example's --db is the state file beside the log.
    let env = Env::sqlite(&fake.base_url());
    add_account(&env, "la1", "tok_cron_0001", "hris");
    // The state directory stands in for /srv/merge-sync, with the secrets in its .env.
    std::fs::write(
        env.dir.path().join(".env"),
        format!(
            "MERGE_API_KEY={API_KEY}\nMERGE_API_URL={}\n",
            fake.base_url()
        ),
    )
    .unwrap();
    // The service user's home, with merge-sync where `cargo install` puts it.
    let home = tempfile::tempdir().unwrap();
    let cargo_bin = home.path().join(".cargo/bin");
    std::fs::create_dir_all(&cargo_bin).unwrap();
    std::os::unix::fs::symlink(
        assert_cmd::cargo::cargo_bin("merge-sync"),
        cargo_bin.join("merge-sync"),
    )
    .unwrap();

    let state_dir = env.dir.path().to_str().unwrap();
    let home_dir = home.path().to_str().unwrap();
    let local = |s: &str| {
        s.replace("/srv/merge-sync", state_dir)
            .replace("/home/merge-sync", home_dir)
    };
    let (vars, job) = parse_crontab();
    // What cron itself sets, then the crontab's own lines.
    let mut cron_env = vec![
        ("PATH".to_string(), "/usr/bin:/bin".to_string()),
        ("SHELL".to_string(), "/bin/sh".to_string()),
        ("HOME".to_string(), home_dir.to_string()),
        ("LOGNAME".to_string(), "merge-sync".to_string()),
    ];
    for (name, value) in vars {
        cron_env.retain(|(n, _)| *n != name);
        cron_env.push((name, local(&value)));
    }
    let shell = cron_env
        .iter()
        .find(|(n, _)| n == "SHELL")
        .unwrap()
        .1
        .clone();
    let out = Command::new(&shell)
        .arg("-c")
        .arg(local(&job))
        .env_clear()
        .envs(cron_env)
        .current_dir(home.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let log = std::fs::read_to_string(env.dir.path().join("merge-sync.log")).unwrap_or_default();
    assert!(
        out.status.success(),
        "exit {:?}; log: {log}; stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(log, "", "nothing is logged on success");
    assert_mirror_equals_truth(&env, &fake, "la1", "hris.Employee", "hris_employee");
    assert_eq!(env.count("SELECT COUNT(*) FROM hris_employee"), 25);
}
