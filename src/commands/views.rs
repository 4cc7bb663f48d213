//! Reads accounts and model state into the plain views `report` renders.

use std::collections::BTreeSet;

use anyhow::Result;
use chrono::{DateTime, Utc};

use crate::metrics;
use crate::report::{AccountView, ModelRow};
use crate::store::{Account, AccountStatus, RunQuery, Store};
use crate::sync::{health, run_state, RunState};

/// What every account's view is read against.
pub struct ViewContext {
    pub now: DateTime<Utc>,
    /// Accounts a live run (on this host) is working on right now.
    pub running: BTreeSet<String>,
}

impl ViewContext {
    pub fn read(store: &mut dyn Store, now: DateTime<Utc>) -> Result<ViewContext> {
        Ok(ViewContext {
            now,
            running: running_accounts(store)?,
        })
    }
}

/// The accounts unfinished runs are working on, whose process is alive on this host: what
/// tells a fetch running now from one that was interrupted.
pub fn running_accounts(store: &mut dyn Store) -> Result<BTreeSet<String>> {
    let here = crate::sync::run::host_name();
    let mut running = BTreeSet::new();
    for r in store.runs(&RunQuery {
        limit: 50,
        ..Default::default()
    })? {
        if run_state(&r, &here, &super::runs::pid_alive) == RunState::Running {
            running.extend(r.accounts);
        }
    }
    Ok(running)
}

pub fn account_view(
    store: &mut dyn Store,
    a: &Account,
    ctx: &ViewContext,
) -> Result<(AccountView, Vec<ModelRow>)> {
    let states = store.model_states(&a.linked_account_id)?;
    let lag = |m: &crate::store::ModelState| {
        health::model_lag(m, ctx.now).filter(|_| health::is_mirrored(a, m))
    };
    let max_lag = states.iter().filter_map(lag).max();
    let enabled: Vec<_> = states
        .iter()
        .filter(|s| {
            s.status.as_deref() != Some("DISABLED")
                && a.wants_model(&s.model_id)
                && s.status.is_some()
        })
        .collect();
    let view = AccountView {
        linked_account_id: a.linked_account_id.clone(),
        end_user_origin_id: a.end_user_origin_id.clone(),
        category: a.category.clone(),
        integration_slug: a.integration_slug.clone(),
        status: a.status.as_str().to_string(),
        account_token: a.account_token.masked(),
        initial_sync_complete: a.initial_sync_complete,
        models_ready: enabled.iter().filter(|s| s.ready).count(),
        models_enabled: enabled.len(),
        initial_sync_started_at: a.initial_sync_started_at,
        initial_sync_completed_at: a.initial_sync_completed_at,
        next_poll_at: a.next_poll_at,
        consecutive_failures: a.consecutive_failures,
        last_error: a.last_error.clone(),
        hook_error: a.hook_error.clone(),
        last_checked_at: a.last_checked_at,
        last_success_at: a.last_success_at,
        lag_seconds: max_lag.map(|l| l.num_seconds()),
    };
    let running = ctx.running.contains(&a.linked_account_id);
    let mut row = |model: Option<&crate::store::ModelState>| -> Result<ModelRow> {
        Ok(ModelRow {
            linked_account_id: a.linked_account_id.clone(),
            end_user_origin_id: a.end_user_origin_id.clone(),
            category: a.category.clone(),
            initial_sync_complete: a.initial_sync_complete,
            model_id: model.map(|m| m.model_id.clone()),
            status: model.and_then(|m| m.status.clone()),
            last_sync_result: model.and_then(|m| m.last_sync_result.clone()),
            ready: model.map(|m| m.ready),
            merge_last_sync_finished: model.and_then(|m| m.merge_last_sync_finished),
            merge_reported_last_sync_finished: model.and_then(|m| m.reported_last_sync_finished),
            last_synced_at: model.and_then(|m| m.last_synced_at),
            last_fetched_at: model.and_then(|m| m.last_fetched_at),
            records: match model {
                Some(m) => store.record_count(&a.linked_account_id, &m.model_id)?,
                None => 0,
            },
            next_poll_at: a.next_poll_at,
            fetch_in_progress: model.is_some_and(|m| m.cursor.is_some()),
            fetch_state: model
                .filter(|m| m.cursor.is_some())
                .map(|_| if running { "running" } else { "interrupted" }.to_string()),
            resume_page: model
                .filter(|m| m.cursor.is_some())
                .map(|m| m.cursor_page.unwrap_or(0) + 1),
            checked_at: a.last_checked_at,
            last_success_at: model.and_then(|m| health::model_last_success(a.last_success_at, m)),
            lag_seconds: model.and_then(lag).map(|l| l.num_seconds()),
            last_error: model.and_then(|m| m.last_error.clone()).or_else(|| {
                // An account-level failure (e.g. a rejected token) shows on every row.
                a.last_error
                    .clone()
                    .filter(|_| model.is_none() || a.consecutive_failures > 0)
            }),
        })
    };
    let mut rows = Vec::new();
    let visible: Vec<_> = states
        .iter()
        .filter(|s| a.wants_model(&s.model_id))
        .collect();
    if visible.is_empty() {
        rows.push(row(None)?);
    } else {
        for s in visible {
            rows.push(row(Some(s))?);
        }
    }
    Ok((view, rows))
}

/// Everything the metrics say, read from the store at `now`; `run_duration` is the run that
/// just ended (or `serve`'s last pass).
pub fn metrics_snapshot(
    store: &mut dyn Store,
    run_duration: Option<std::time::Duration>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<metrics::Snapshot> {
    let mut snapshot = metrics::Snapshot {
        run_duration,
        ..Default::default()
    };
    for a in store.accounts()? {
        let id = &a.linked_account_id;
        let active = a.status == AccountStatus::Active;
        if active {
            snapshot
                .account_failures
                .push((id.clone(), a.consecutive_failures));
        }
        for m in store.model_states(id)? {
            if !health::is_mirrored(&a, &m) {
                continue;
            }
            snapshot.models.push(metrics::ModelMetrics {
                linked_account_id: id.clone(),
                model_id: m.model_id.clone(),
                last_success: health::model_last_success(a.last_success_at, &m),
                // A disabled account's lag would only raise alarms nobody can act on.
                lag: health::model_lag(&m, now).filter(|_| active),
                records: store.record_count(id, &m.model_id)?,
            });
        }
    }
    for c in store.counters()? {
        match c.name.as_str() {
            "requests" => {
                snapshot.requests.insert(c.label, c.value);
            }
            "records_written" => snapshot.records_written += c.value,
            "webhooks" => {
                snapshot.webhooks.insert(c.label, c.value);
            }
            _ => {}
        }
    }
    Ok(snapshot)
}
