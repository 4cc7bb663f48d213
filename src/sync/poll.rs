//! `poll`: one pass over every due account, `jobs` accounts at a time.

use std::collections::VecDeque;
use std::sync::Mutex;

use anyhow::Result;

use super::account::{record_failure, run_locked_pass, Engine, PassSummary};
use super::detect::PlanOptions;
use super::fetch::FetchProgress;
use crate::merge::MergeError;
use crate::store::{self, Account};

/// Which accounts a run visits.
#[derive(Debug, Clone, Default)]
pub struct PollOptions {
    /// Only these (already resolved) linked account ids; empty = all.
    pub accounts: Vec<String>,
    /// Ignore schedule and backoff.
    pub force: bool,
    pub jobs: usize,
}

/// How one account's pass ended.
#[derive(Debug)]
pub struct AccountOutcome {
    pub linked_account_id: String,
    pub result: Result<PassSummary, String>,
}

/// What a run did.
#[derive(Debug, Default)]
pub struct PollReport {
    pub outcomes: Vec<AccountOutcome>,
    /// Due accounts another process was already syncing.
    pub locked: Vec<String>,
    pub not_due: usize,
    /// Merge rejected our API key: every account would fail the same way.
    pub api_key_rejected: Option<String>,
}

impl PollReport {
    pub fn failures(&self) -> impl Iterator<Item = (&str, &str)> {
        self.outcomes.iter().filter_map(|o| match &o.result {
            Err(e) => Some((o.linked_account_id.as_str(), e.as_str())),
            Ok(_) => None,
        })
    }
}

/// The accounts a run should visit at `now`, in a stable order.
pub fn select_accounts(
    accounts: Vec<Account>,
    options: &PollOptions,
    now: chrono::DateTime<chrono::Utc>,
) -> (Vec<Account>, usize) {
    let mut due = Vec::new();
    let mut not_due = 0;
    for a in accounts {
        if !options.accounts.is_empty() && !options.accounts.contains(&a.linked_account_id) {
            continue;
        }
        if a.status != crate::store::AccountStatus::Active {
            continue;
        }
        if options.force || a.is_due(now) {
            due.push(a);
        } else {
            not_due += 1;
        }
    }
    (due, not_due)
}

/// Runs one pass over every selected account. One account's failure never stops the others.
pub fn poll(
    engine: &Engine,
    options: &PollOptions,
    progress: &(dyn Fn(&FetchProgress) + Sync),
) -> Result<PollReport> {
    let accounts = store::open(&engine.db)?.accounts()?;
    let (due, not_due) = select_accounts(accounts, options, (engine.clock)());
    let queue = Mutex::new(VecDeque::from(due));
    let report = Mutex::new(PollReport {
        not_due,
        ..Default::default()
    });
    let jobs = options.jobs.max(1).min(queue.lock().unwrap().len().max(1));

    std::thread::scope(|scope| -> Result<()> {
        let mut handles = Vec::new();
        for _ in 0..jobs {
            handles.push(scope.spawn(|| -> Result<()> {
                let mut store = store::open(&engine.db)?;
                loop {
                    let Some(account) = queue.lock().unwrap_or_else(|e| e.into_inner()).pop_front()
                    else {
                        return Ok(());
                    };
                    let id = account.linked_account_id.clone();
                    let mut lock = match store.try_lock_account(&id) {
                        Ok(Some(lock)) => lock,
                        Ok(None) => {
                            log::info!(account = id.as_str(); "{id}: another merge-sync is syncing it; skipped");
                            report
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .locked
                                .push(id);
                            continue;
                        }
                        // A lock that cannot be taken at all (a lock file another user left,
                        // say) is this account's failure: recorded, and the others still sync.
                        Err(e) => {
                            let msg = format!("{e:#}");
                            log::error!(account = id.as_str(); "{id}: {msg}");
                            record_failure(engine, store.as_mut(), &account, &msg)?;
                            report
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .outcomes
                                .push(AccountOutcome {
                                    linked_account_id: id,
                                    result: Err(msg),
                                });
                            continue;
                        }
                    };
                    // Re-read under the lock: the holder we waited behind may have changed it.
                    let Some(account) = store.account(&id)? else {
                        continue;
                    };
                    if !options.force && !account.is_due((engine.clock)()) {
                        report.lock().unwrap_or_else(|e| e.into_inner()).not_due += 1;
                        continue;
                    }
                    let mut show = |p: &FetchProgress| progress(p);
                    let result = run_locked_pass(
                        engine,
                        lock.as_mut(),
                        store.as_mut(),
                        &account,
                        &PlanOptions::default(),
                        &mut show,
                    );
                    if let Err(e) = &result {
                        if matches!(
                            e.downcast_ref::<MergeError>(),
                            Some(MergeError::ApiKeyRejected { .. })
                        ) {
                            let mut r = report.lock().unwrap_or_else(|e| e.into_inner());
                            r.api_key_rejected = Some(format!("{e:#}"));
                            // The remaining accounts would only fail the same way.
                            queue.lock().unwrap_or_else(|e| e.into_inner()).clear();
                            continue;
                        }
                    }
                    let result = result.map_err(|e| format!("{e:#}"));
                    if let Err(e) = &result {
                        log::error!(account = id.as_str(); "{id}: {e}");
                    }
                    report
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .outcomes
                        .push(AccountOutcome {
                            linked_account_id: id,
                            result,
                        });
                }
            }));
        }
        for h in handles {
            h.join()
                .map_err(|_| anyhow::anyhow!("a poll worker thread panicked"))??;
        }
        Ok(())
    })?;
    let mut report = report.into_inner().unwrap_or_else(|e| e.into_inner());
    report
        .outcomes
        .sort_by(|a, b| a.linked_account_id.cmp(&b.linked_account_id));
    Ok(report)
}
