//! Reads accounts and model state into the plain views `report` renders.

use anyhow::Result;

use crate::report::{AccountView, ModelRow};
use crate::store::{Account, Store};

pub fn account_view(store: &mut dyn Store, a: &Account) -> Result<(AccountView, Vec<ModelRow>)> {
    let states = store.model_states(&a.linked_account_id)?;
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
    };
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
