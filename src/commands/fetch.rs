//! `fetch`: one account, now.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Result};

use chrono::Utc;

use super::{
    engine, known_model, on_interrupt, record_finish, require_state_file, resolve_account,
    Activity, Progress,
};
use crate::cli::FetchArgs;
use crate::config::{Config, UsageError};
use crate::store::{self, AccountStatus};
use crate::sync::{self, run_locked_pass, Outcome, PlanOptions, RunTotals};

pub fn run(config: &Config, args: &FetchArgs) -> Result<ExitCode> {
    for m in &args.models {
        known_model(m, None)?;
    }
    require_state_file(config)?;
    let run_id = crate::logging::new_run_id();
    crate::logging::set_run_id(Some(&run_id));
    let progress = Progress::new();
    let mut engine = engine(config, args.rate_limit, Some(progress.clone()))?;
    engine.run_id = Some(run_id.clone());
    let mut store = store::open(&config.db)?;
    let account = resolve_account(store.as_mut(), &args.account)?;
    for m in &args.models {
        known_model(m, Some(&account.category))?;
        if !account.wants_model(m) {
            return Err(UsageError(format!(
                "account {} does not mirror {m}: it was added with --models {}; add the model \
                 with `merge-sync accounts add --account-token TOKEN --category {} --models ...`",
                account.linked_account_id,
                account.models.as_deref().unwrap_or_default().join(","),
                account.category
            ))
            .into());
        }
    }
    if account.status == AccountStatus::Disabled {
        return Err(UsageError(format!(
            "account {} is disabled; enable it first with `merge-sync accounts enable {}`",
            account.linked_account_id, account.linked_account_id
        ))
        .into());
    }
    let id = account.linked_account_id.clone();
    let Some(mut lock) = store.try_lock_account(&id)? else {
        bail!("another merge-sync is syncing account {id} right now; try again when it finishes");
    };
    let activity = Arc::new(Activity::default());
    let run = sync::start_run(
        store.as_mut(),
        "fetch",
        &run_id,
        config.run_retention,
        Utc::now(),
    )?;
    on_interrupt(config, &run, &engine, activity.clone())?;
    let prepared = sync::webhooks::apply_pending(store.as_mut(), (engine.clock)())
        .and_then(|_| resolve_account(store.as_mut(), &id));
    let account = match prepared {
        Ok(account) => account,
        Err(e) => {
            let requests = engine.client.request_counts();
            let mut totals = RunTotals::of_requests(&requests);
            totals.first_error = Some(format!("{e:#}"));
            record_finish(store.as_mut(), &run, &totals, &requests, Outcome::Failed);
            return Err(e);
        }
    };
    // A fetch that resumes an interrupted window says where it picks up.
    for m in store.model_states(&id)? {
        if let (Some(_), Some(done)) = (&m.cursor, m.cursor_page) {
            if args.models.is_empty() || args.models.contains(&m.model_id) {
                let line = format!(
                    "{id} {}: resuming an interrupted fetch at page {}",
                    m.model_id,
                    done + 1
                );
                log::info!(account = id.as_str(), model = m.model_id.as_str(); "{line}");
                if !log::log_enabled!(log::Level::Info) {
                    progress.say(&line);
                }
            }
        }
    }

    let options = PlanOptions {
        full: args.full,
        only_models: args.models.clone(),
        overlap: None,
    };
    let result = run_locked_pass(
        &engine,
        lock.as_mut(),
        store.as_mut(),
        &account,
        &options,
        &mut |p| {
            activity.update(p);
            progress.show(p);
        },
    );
    progress.finish();
    let requests = engine.client.request_counts();
    let mut totals = RunTotals::of_requests(&requests);
    totals.records_written = activity.records();
    match &result {
        Ok(_) => totals.accounts_synced = 1,
        Err(e) => {
            totals.accounts_failed = 1;
            totals.first_error = Some(format!("{id}: {e:#}"));
        }
    }
    record_finish(store.as_mut(), &run, &totals, &requests, totals.outcome());
    let summary = result?;
    for (model, totals) in &summary.fetched {
        progress.say(&format!(
            "{id} {model}: {} records in {} pages",
            totals.records, totals.pages
        ));
    }
    if summary.fetched.is_empty() {
        progress.say(&format!(
            "{id}: nothing new to fetch ({} of {} models ready)",
            summary.models_ready, summary.models_enabled
        ));
    }
    if !summary.unavailable.is_empty() {
        let why: Vec<String> = summary
            .unavailable
            .iter()
            .map(|(m, reason)| format!("{m}: {reason}"))
            .collect();
        return Err(UsageError(format!(
            "nothing fetched for {}; see `merge-sync status --account {id}` for the models \
             Merge reports",
            why.join("; ")
        ))
        .into());
    }
    Ok(ExitCode::SUCCESS)
}
