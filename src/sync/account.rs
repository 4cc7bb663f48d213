//! One pass over one linked account: sync-status, detection, fetches, bookkeeping.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};

use super::detect::{failure_backoff, next_poll_after_success, plan_account, PlanOptions};
use super::fetch::{fetch_model, FetchProgress, FetchTotals};
use super::hook::run_initial_sync_hook;
use crate::merge::limits::RateLimiter;
use crate::merge::{MergeClient, MergeError};
use crate::store::{Account, AccountLock, Location, Store};

/// Everything a pass needs besides the account: shared by every thread of a run.
#[derive(Clone)]
pub struct Engine {
    pub client: MergeClient,
    pub db: Location,
    /// Requests per minute per linked account.
    pub rate_limit: u32,
    pub on_initial_sync_complete: Option<String>,
    pub clock: fn() -> DateTime<Utc>,
    /// The run in the history that passes belong to, if one is recorded.
    pub run_id: Option<String>,
    /// One limiter per account for the life of the process, so passes that follow each other
    /// (`serve`'s worker, the demo) share the account's budget.
    limiters: Arc<Mutex<HashMap<String, Arc<RateLimiter>>>>,
}

impl Engine {
    pub fn new(
        client: MergeClient,
        db: Location,
        rate_limit: u32,
        on_initial_sync_complete: Option<String>,
    ) -> Engine {
        Engine {
            client,
            db,
            rate_limit,
            on_initial_sync_complete,
            clock: Utc::now,
            run_id: None,
            limiters: Arc::default(),
        }
    }

    /// The request limiter of one account.
    pub fn limiter(&self, linked_account_id: &str) -> Arc<RateLimiter> {
        let mut map = self.limiters.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(linked_account_id.to_string())
            .or_insert_with(|| Arc::new(RateLimiter::per_minute(self.rate_limit)))
            .clone()
    }
}

/// What one pass did.
#[derive(Debug, Clone, Default)]
pub struct PassSummary {
    pub fetched: Vec<(String, FetchTotals)>,
    pub model_errors: Vec<(String, String)>,
    pub models_ready: usize,
    pub models_enabled: usize,
    /// Models asked for by name that Merge does not sync for this account: (model, why).
    pub unavailable: Vec<(String, String)>,
}

impl PassSummary {
    pub fn records(&self) -> u64 {
        self.fetched.iter().map(|(_, t)| t.records).sum()
    }
}

/// Runs a pass while holding the account's `lock`: the account's request budget is handed
/// over through the lock, so passes in processes that follow each other share it.
pub fn run_locked_pass(
    engine: &Engine,
    lock: &mut dyn AccountLock,
    store: &mut dyn Store,
    account: &Account,
    options: &PlanOptions,
    progress: &mut dyn FnMut(&FetchProgress),
) -> Result<PassSummary> {
    if let Some(run_id) = &engine.run_id {
        if let Err(e) = store.add_run_account(run_id, &account.linked_account_id) {
            log::warn!(account = account.linked_account_id.as_str();
                "{}: could not add it to the run history: {e:#}",
                account.linked_account_id
            );
        }
    }
    let limiter = engine.limiter(&account.linked_account_id);
    limiter.seed(&lock.recent_requests());
    limiter.set_journal(lock.journal().ok());
    let result = run_pass(engine, store, account, options, progress);
    limiter.set_journal(None);
    if let Err(e) = lock.save_requests(&limiter.recent()) {
        log::warn!(account = account.linked_account_id.as_str();
            "{}: could not save its request times: {e}",
            account.linked_account_id
        );
    }
    result
}

/// Runs one pass over `account` and records its outcome (schedule, backoff, errors) in the
/// store. The returned error is the account's failure for this run.
pub fn run_pass(
    engine: &Engine,
    store: &mut dyn Store,
    account: &Account,
    options: &PlanOptions,
    progress: &mut dyn FnMut(&FetchProgress),
) -> Result<PassSummary> {
    let now = (engine.clock)();
    let outcome = pass(engine, store, account, options, progress);
    let id = &account.linked_account_id;
    // The hook is owed from the moment the account was marked complete; run it whatever
    // else this pass did, so a crash or a failing model cannot skip it.
    run_pending_hook(engine, store, account)?;
    let outcome = match outcome {
        // Our API key, not this account: no backoff for the account.
        Err(e)
            if matches!(
                e.downcast_ref::<MergeError>(),
                Some(MergeError::ApiKeyRejected { .. })
            ) =>
        {
            return Err(e)
        }
        other => other,
    };
    match &outcome {
        Ok((summary, next_poll_at)) if summary.model_errors.is_empty() => {
            // A pass limited to some models (`fetch --model`) saw only those: it must not push
            // the account's schedule back past news about the others.
            let next = match (options.only_models.is_empty(), account.next_poll_at) {
                (false, Some(scheduled)) => scheduled.min(*next_poll_at),
                (false, None) => now,
                (true, _) => *next_poll_at,
            };
            // Decided on the model rows as they stand when the outcome is stored, so a
            // webhook that arrived during the pass is not lost.
            store.in_transaction(|tx| {
                tx.lock_account(id)?;
                let next = next_poll_after_success(&tx.model_states(id)?, next);
                tx.record_account_success(id, next, now)
            })?;
        }
        Ok((summary, _)) => {
            let msg = summary
                .model_errors
                .iter()
                .map(|(m, e)| format!("{m}: {e}"))
                .collect::<Vec<_>>()
                .join("; ");
            let next = now + failure_backoff(account.consecutive_failures + 1);
            store.record_account_failure(id, &msg, next, now)?;
        }
        Err(e) => record_failure(engine, store, account, &format!("{e:#}"))?,
    }
    match outcome {
        Ok((summary, _)) if summary.model_errors.is_empty() => Ok(summary),
        Ok((summary, _)) => {
            let (model, err) = &summary.model_errors[0];
            Err(anyhow::anyhow!("{model}: {err}")).with_context(|| {
                format!(
                    "{} of {} models failed",
                    summary.model_errors.len(),
                    summary.models_enabled
                )
            })
        }
        Err(e) => Err(e),
    }
}

/// Records a failed pass over `account` (or one that could not start): the error, and the
/// next poll after the backoff.
pub fn record_failure(
    engine: &Engine,
    store: &mut dyn Store,
    account: &Account,
    error: &str,
) -> Result<()> {
    let now = (engine.clock)();
    let next = now + failure_backoff(account.consecutive_failures + 1);
    store.record_account_failure(&account.linked_account_id, error, next, now)
}

fn pass(
    engine: &Engine,
    store: &mut dyn Store,
    account: &Account,
    options: &PlanOptions,
    progress: &mut dyn FnMut(&FetchProgress),
) -> Result<(PassSummary, DateTime<Utc>)> {
    let id = &account.linked_account_id;
    let limiter = engine.limiter(id);
    let api = engine
        .client
        .account(&account.category, &account.account_token, limiter);
    let report = api.sync_status().map_err(anyhow::Error::from)?;
    let now = (engine.clock)();
    store.mark_checked(id, now)?;
    // Planned on rows read under the account's row lock and saved in the same transaction,
    // so a webhook's readiness or hint saved meanwhile is never overwritten.
    let plan = store.in_transaction(|tx| {
        tx.lock_account(id)?;
        let stored = tx.model_states(id)?;
        let plan = plan_account(
            account,
            &stored,
            &report.statuses,
            report.merge_time,
            options,
            now,
        );
        tx.save_observed(id, &plan.observed)?;
        Ok(plan)
    })?;
    for c in &plan.capped {
        log::warn!(
            account = id.as_str(), model = c.model_id.as_str();
            "{id} {}: Merge reported a finished sync at {}, later than its own clock; \
             fetching only up to {} (the rest on a later pass)",
            c.model_id,
            crate::time::format(c.reported),
            crate::time::format(c.bound)
        );
    }

    let mut summary = PassSummary {
        models_ready: plan.models_ready,
        models_enabled: plan.models_enabled,
        unavailable: plan
            .unavailable
            .iter()
            .map(|s| (s.model_id.clone(), s.reason.clone()))
            .collect(),
        ..Default::default()
    };
    if plan.initial_sync_completed_now {
        if store.mark_initial_sync_complete(id, now)? {
            log::info!(account = id.as_str();
                "{id}: initial sync complete ({} models ready)",
                plan.models_enabled
            );
        }
    } else if !account.initial_sync_complete {
        store.mark_initial_sync_started(id, now)?;
    }

    for fetch in &plan.fetches {
        match fetch_model(&api, store, id, fetch, &engine.clock, progress) {
            Ok(totals) => {
                log::debug!(account = id.as_str(), model = fetch.model_id.as_str();
                    "{id} {}: {} records in {} pages",
                    fetch.model_id,
                    totals.records,
                    totals.pages
                );
                summary.fetched.push((fetch.model_id.clone(), totals));
            }
            Err(e) => {
                let msg = format!("{e:#}");
                log::warn!(account = id.as_str(), model = fetch.model_id.as_str(); "{id} {}: {msg}", fetch.model_id);
                store.set_model_error(id, &fetch.model_id, Some(&msg))?;
                // A rejected token fails every other model the same way: stop here.
                if matches!(
                    e.downcast_ref::<MergeError>(),
                    Some(MergeError::Unauthorized { .. })
                ) {
                    return Err(e);
                }
                summary.model_errors.push((fetch.model_id.clone(), msg));
            }
        }
    }

    Ok((summary, plan.next_poll_at))
}

fn run_pending_hook(engine: &Engine, store: &mut dyn Store, account: &Account) -> Result<()> {
    let id = &account.linked_account_id;
    if !store.initial_sync_hook_pending(id)? {
        return Ok(());
    }
    let result = match &engine.on_initial_sync_complete {
        Some(cmd) => run_initial_sync_hook(cmd, account),
        None => Ok(()),
    };
    if let Err(e) = &result {
        log::warn!(account = id.as_str(); "{id}: {e}");
    }
    store.set_hook_error(id, result.err().as_deref())
}
