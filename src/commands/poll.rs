//! `poll`: the cron job.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Result;

use super::{engine, resolve_account, Progress};
use crate::cli::PollArgs;
use crate::config::Config;
use crate::store::Store;
use crate::sync::{self, PollOptions};

pub fn run(config: &Config, args: &PollArgs) -> Result<ExitCode> {
    let engine = engine(config, args.rate_limit)?;
    let mut store = Store::open(&config.db)?;
    let mut ids = Vec::new();
    for key in &args.accounts {
        ids.push(resolve_account(&store, key)?.linked_account_id);
    }
    let applied = crate::sync::webhooks::apply_pending(&mut store, (engine.clock)())?;
    if !applied.is_empty() {
        log::info!("applied {} queued webhooks", applied.len());
    }
    drop(store);

    let progress = Progress::new();
    let report = sync::poll(
        &engine,
        &PollOptions {
            accounts: ids,
            force: args.force,
            jobs: args.jobs as usize,
        },
        &|p| progress.show(p),
    )?;
    progress.finish();
    if let Some(e) = report.api_key_rejected {
        return Err(crate::config::UsageError(e).into());
    }

    if report.outcomes.is_empty() && !report.locked.is_empty() {
        log::warn!(
            "another merge-sync run is syncing every due account ({}); nothing to do",
            report.locked.len()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let failed: Vec<_> = report.failures().collect();
    if std::io::stderr().is_terminal() {
        let records: u64 = report
            .outcomes
            .iter()
            .filter_map(|o| o.result.as_ref().ok())
            .map(|s| s.records())
            .sum();
        eprintln!(
            "polled {} accounts ({} failed, {} not due, {} busy elsewhere), {records} records written",
            report.outcomes.len(),
            failed.len(),
            report.not_due,
            report.locked.len()
        );
    }
    if failed.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::from(1))
    }
}
