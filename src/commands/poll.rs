//! `poll`: the cron job.

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use chrono::Utc;

use super::{
    engine, on_interrupt, record_finish, require_state_file, resolve_account, views, Activity,
    Progress,
};
use crate::cli::PollArgs;
use crate::config::{Config, UsageError};
use crate::store::{self, Store};
use crate::sync::{self, Outcome, PollOptions, PollReport, RunTotals};

pub fn run(config: &Config, args: &PollArgs) -> Result<ExitCode> {
    require_state_file(config)?;
    let started = Instant::now();
    if let Some(path) = &args.metrics_file {
        check_metrics_path(path)?;
    }
    let run_id = crate::logging::new_run_id();
    crate::logging::set_run_id(Some(&run_id));
    let progress = Progress::new();
    let mut engine = engine(config, args.rate_limit, Some(progress.clone()))?;
    engine.run_id = Some(run_id.clone());
    let mut store = store::open(&config.db)?;
    let mut ids = Vec::new();
    for key in &args.accounts {
        ids.push(resolve_account(store.as_mut(), key)?.linked_account_id);
    }
    let run = sync::start_run(
        store.as_mut(),
        "poll",
        &run_id,
        config.run_retention,
        Utc::now(),
    )?;
    let activity = Arc::new(Activity::default());
    on_interrupt(config, &run, &engine, activity.clone())?;

    let result = (|| -> Result<PollReport> {
        let applied = sync::webhooks::apply_pending(store.as_mut(), (engine.clock)())?;
        if !applied.is_empty() {
            log::info!("applied {} queued webhooks", applied.len());
        }
        sync::poll(
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
        )
    })();
    progress.finish();
    let requests = engine.client.request_counts();
    let report = match result {
        Ok(report) => report,
        Err(e) => {
            let mut totals = RunTotals::of_requests(&requests);
            totals.records_written = activity.records();
            totals.first_error = Some(format!("{e:#}"));
            record_finish(store.as_mut(), &run, &totals, &requests, Outcome::Failed);
            return Err(e);
        }
    };
    let totals = RunTotals::of_poll(&report, &requests, activity.records());
    record_finish(store.as_mut(), &run, &totals, &requests, totals.outcome());
    if let Some(path) = &args.metrics_file {
        write_metrics(store.as_mut(), started, path)?;
    }
    if let Some(e) = report.api_key_rejected {
        return Err(UsageError(e).into());
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

/// Replaces the metrics file with the state as this run left it.
fn write_metrics(store: &mut dyn Store, started: Instant, path: &Path) -> Result<()> {
    let snapshot = views::metrics_snapshot(store, Some(started.elapsed()), Utc::now())?;
    let text = crate::metrics::encode(&snapshot)?;
    crate::metrics::write_file(path, &text)
}

/// Refuses a metrics path whose directory does not exist before anything runs.
fn check_metrics_path(path: &Path) -> Result<(), UsageError> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    if path.as_os_str().is_empty() || path.is_dir() || dir.is_some_and(|d| !d.is_dir()) {
        return Err(UsageError(format!(
            "--metrics-file {}: not a file in an existing directory (for node_exporter, point it \
             into the textfile collector's directory, e.g. \
             /var/lib/node_exporter/textfile_collector/merge_sync.prom)",
            path.display()
        )));
    }
    Ok(())
}
