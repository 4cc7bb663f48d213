//! `poll`: the cron job.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;

use super::{engine, on_interrupt, require_state_file, resolve_account, Activity, Progress};
use crate::cli::PollArgs;
use crate::config::Config;
use crate::store;
use crate::sync::{self, PollOptions, RunTotals};

pub fn run(config: &Config, args: &PollArgs) -> Result<ExitCode> {
    require_state_file(config)?;
    let started = Instant::now();
    let run_id = crate::logging::new_run_id();
    crate::logging::set_run_id(Some(&run_id));
    let progress = Progress::new();
    let engine = engine(config, args.rate_limit, Some(progress.clone()))?;
    let activity = Arc::new(Activity::default());
    on_interrupt("poll", activity.clone(), || {})?;

    let mut store = store::open(&config.db)?;
    let mut ids = Vec::new();
    for key in &args.accounts {
        ids.push(resolve_account(store.as_mut(), key)?.linked_account_id);
    }
    let applied = crate::sync::webhooks::apply_pending(store.as_mut(), (engine.clock)())?;
    if !applied.is_empty() {
        log::info!("applied {} queued webhooks", applied.len());
    }
    drop(store);

    let report = sync::poll(
        &engine,
        &PollOptions {
            accounts: ids,
            force: args.force,
            jobs: args.jobs as usize,
        },
        &|p| {
            activity.update(p);
            progress.show(p);
        },
    )?;
    progress.finish();
    let totals = RunTotals::of_poll(&report, &engine.client.request_counts());
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
    // One summary line: a log line at -v (so cron keeps it), on a terminal always.
    let summary = totals.summary_line("poll", started.elapsed());
    if log::log_enabled!(log::Level::Info) {
        log::info!("{summary}");
    } else if std::io::stderr().is_terminal() && crate::logging::is_text() {
        eprintln!("{summary}");
    }
    if totals.accounts_failed == 0 {
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::from(1))
    }
}
