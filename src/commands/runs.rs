//! `runs`: the run history, newest first.

use std::process::ExitCode;

use anyhow::Result;

use super::{open_read_only, require_state_file, resolve_account, terminal_width};
use crate::cli::RunsArgs;
use crate::config::Config;
use crate::report::{self, RunView};
use crate::store::RunQuery;
use crate::sync::{run::host_name, run_state};

pub fn run(config: &Config, args: &RunsArgs) -> Result<ExitCode> {
    require_state_file(config)?;
    let mut store = open_read_only(config)?;
    let account = match &args.account {
        Some(key) => Some(resolve_account(store.as_mut(), key)?.linked_account_id),
        None => None,
    };
    let rows = store.runs(&RunQuery {
        limit: args.limit as usize,
        account,
        ..Default::default()
    })?;
    let here = host_name();
    let views: Vec<RunView> = rows
        .into_iter()
        .map(|r| {
            let state = run_state(&r, &here, &pid_alive).as_str().to_string();
            RunView {
                duration_seconds: r
                    .finished_at
                    .map(|f| (f - r.started_at).num_milliseconds().max(0) as f64 / 1000.0),
                run_id: r.run_id,
                command: r.command,
                state,
                started_at: r.started_at,
                finished_at: r.finished_at,
                host: r.host,
                pid: r.pid,
                accounts_synced: r.accounts_synced,
                accounts_failed: r.accounts_failed,
                accounts_not_due: r.accounts_not_due,
                accounts_busy: r.accounts_busy,
                records_written: r.records_written,
                requests: r.requests,
                rate_limited: r.rate_limited,
                retries: r.retries,
                first_error: r.first_error,
                accounts: r.accounts,
            }
        })
        .collect();
    print(&views, args.json)
}

fn print(views: &[RunView], json: bool) -> Result<ExitCode> {
    if json {
        println!("{}", serde_json::to_string_pretty(views)?);
    } else {
        print!("{}", report::runs_table(views, terminal_width()));
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether a process with this id is alive on this machine.
pub(super) fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}
