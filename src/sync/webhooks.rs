//! Applying stored webhooks (README, Webhooks): they only record what Merge announced and make the
//! account due; the fetch itself is the normal pass, so a webhook can never do more than a
//! poll would. Duplicates and out-of-order deliveries are harmless because only a finished
//! sync newer than what we hold counts.

use anyhow::Result;
use chrono::{DateTime, Utc};

use super::detect::{due_on_webhook, effective_result, hint_is_plausible, merge_hint};
use crate::merge::catalog;
use crate::store::{Account, NewAccount, Store};
use crate::webhook::{self, WebhookKind};

/// How long applied webhooks stay in the inbox (for inspection) before they are pruned.
pub const INBOX_RETENTION: chrono::Duration = chrono::Duration::days(7);

/// What applying one webhook did (stored in the inbox's `outcome`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// These models of this account are due for a fetch.
    Due {
        linked_account_id: String,
        models: Vec<String>,
    },
    /// The account was registered or relinked.
    Linked {
        linked_account_id: String,
    },
    /// Nothing newer than what we hold (duplicate, late or FAILED).
    NothingNew {
        linked_account_id: String,
    },
    UnknownAccount,
    Ignored(String),
    Malformed(String),
}

impl Applied {
    /// The account the webhook turned out to be about.
    pub fn linked_account_id(&self) -> Option<&str> {
        match self {
            Applied::Due {
                linked_account_id, ..
            }
            | Applied::Linked { linked_account_id }
            | Applied::NothingNew { linked_account_id } => Some(linked_account_id),
            _ => None,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Applied::Due {
                linked_account_id,
                models,
            } => format!("due: {linked_account_id} {}", models.join(",")),
            Applied::Linked { linked_account_id } => format!("linked: {linked_account_id}"),
            Applied::NothingNew { linked_account_id } => {
                format!("nothing new: {linked_account_id}")
            }
            Applied::UnknownAccount => "unknown account".into(),
            Applied::Ignored(e) => format!("ignored: {e}"),
            Applied::Malformed(e) => format!("malformed: {e}"),
        }
    }
}

/// Applies every pending webhook in the inbox, oldest first; returns what each did. Each is
/// claimed, applied and marked applied in one transaction, so it is applied exactly once even
/// when several processes share the inbox, and not at all if this one dies midway.
pub fn apply_pending(store: &mut dyn Store, now: DateTime<Utc>) -> Result<Vec<Applied>> {
    let mut out = Vec::new();
    loop {
        let applied = store.in_transaction(|tx| {
            let Some(item) = tx.claim_pending_webhook()? else {
                return Ok(None);
            };
            let applied = apply(tx, &item.body, now)?;
            match &applied {
                Applied::UnknownAccount | Applied::Malformed(_) => {
                    log::warn!(
                        "webhook {} received {}: {}",
                        item.id,
                        item.received_at,
                        applied.describe()
                    )
                }
                other => log::info!("webhook {}: {}", item.id, other.describe()),
            }
            // Once applied, an account token in the body has done its job: keep it only
            // with the account.
            let redacted = webhook::parse(&item.body)
                .ok()
                .and_then(|w| w.account_token)
                .map(|token| webhook::redact(&item.body, token.expose()));
            tx.mark_webhook_applied(
                item.id,
                &applied.describe(),
                applied.linked_account_id(),
                redacted.as_deref(),
                now,
            )?;
            Ok(Some(applied))
        })?;
        match applied {
            Some(applied) => out.push(applied),
            None => break,
        }
    }
    let pruned = store.prune_applied_webhooks(now - INBOX_RETENTION)?;
    if pruned > 0 {
        log::debug!("pruned {pruned} applied webhooks older than the retention");
    }
    Ok(out)
}

/// Deletes every inbox entry about an account (`accounts remove --purge`): the applied ones
/// recorded against it, and pending ones that name it or carry its token.
pub fn purge_account(store: &mut dyn Store, account: &Account) -> Result<usize> {
    let pending: Vec<i64> = store
        .pending_webhooks()?
        .into_iter()
        .filter(|item| {
            webhook::parse(&item.body).is_ok_and(|w| {
                w.linked_account.id.as_deref() == Some(account.linked_account_id.as_str())
                    || w.account_token
                        .is_some_and(|t| t.expose() == account.account_token.expose())
            })
        })
        .map(|item| item.id)
        .collect();
    store.delete_account_webhooks(&account.linked_account_id, &pending)
}

/// The account a webhook is about: by `linked_account.id`; only when the webhook names no id,
/// by `data.account_token`, else by `end_user_origin_id`. An id we do not know is another
/// linked account (one we do not mirror, or a relink under a new id), never a near match.
fn find_account(store: &mut dyn Store, w: &webhook::Webhook) -> Result<Option<Account>> {
    if let Some(id) = &w.linked_account.id {
        return store.account(id);
    }
    if let Some(token) = &w.account_token {
        if let Some(a) = store.find_account_by_token(token.expose())? {
            return Ok(Some(a));
        }
    }
    if let Some(origin) = &w.linked_account.end_user_origin_id {
        let matches: Vec<Account> = store
            .accounts()?
            .into_iter()
            .filter(|a| a.end_user_origin_id.as_deref() == Some(origin))
            .filter(|a| {
                w.linked_account
                    .category
                    .as_ref()
                    .is_none_or(|c| c == &a.category)
            })
            .collect();
        if matches.len() == 1 {
            return Ok(matches.into_iter().next());
        }
    }
    Ok(None)
}

/// Applies one verified webhook body. Call it inside a transaction: it reads the account's
/// rows under the account's row lock, decides, and writes.
pub fn apply(store: &mut dyn Store, body: &[u8], now: DateTime<Utc>) -> Result<Applied> {
    let w = match webhook::parse(body) {
        Ok(w) => w,
        Err(e) => return Ok(Applied::Malformed(e.to_string())),
    };
    if let WebhookKind::Linked { .. } = w.kind {
        return link(store, &w, now);
    }
    let hints = match &w.kind {
        WebhookKind::SyncCompleted { models } => models.clone(),
        WebhookKind::ModelSynced { hint } => vec![hint.clone()],
        _ => return Ok(Applied::Ignored(format!("event {}", w.event))),
    };
    let Some(found) = find_account(store, &w)? else {
        return Ok(Applied::UnknownAccount);
    };
    let id = found.linked_account_id.clone();
    let Some(account) = store.lock_account(&id)? else {
        return Ok(Applied::UnknownAccount);
    };
    let states = store.model_states(&id)?;
    let mut due = Vec::new();
    for h in hints.iter().filter(|h| account.wants_model(&h.model_id)) {
        let result = effective_result(h.status.as_deref(), h.last_sync_result.as_deref());
        if !matches!(result, Some("DONE") | Some("PARTIALLY_SYNCED")) {
            continue;
        }
        let Some(finished) = h.last_sync_finished else {
            continue;
        };
        // Kept as reported: the pass it triggers caps the window at Merge's own clock.
        if !hint_is_plausible(finished, now) {
            log::warn!(
                "{id} {}: ignoring a webhook's last_sync_finished far in the future ({})",
                h.model_id,
                crate::time::format(finished)
            );
            continue;
        }
        // Only what our mirror does not hold yet counts. A hint already saved but not yet
        // fetched is saved again harmlessly, so a crash between saving and scheduling
        // cannot strand it.
        let prev = states.iter().find(|s| s.model_id == h.model_id);
        if prev
            .and_then(|p| p.merge_last_sync_finished)
            .is_some_and(|have| finished <= have)
        {
            continue;
        }
        if catalog::find(&h.model_id).is_none_or(|m| !m.is_listable()) {
            continue;
        }
        due.push(h.model_id.clone());
        // Models sync-status has not shown us yet (first pass pending) or shows as disabled
        // get no hint: the pass this makes due reads sync-status and decides for itself.
        let Some(prev) = prev.filter(|p| p.status.as_deref().is_some_and(|s| s != "DISABLED"))
        else {
            continue;
        };
        // Before initial sync completes, a DONE counts toward the model's readiness.
        let done = result == Some("DONE") || h.is_initial_sync == Some(false);
        let (hinted, ready) = merge_hint(Some(prev), finished, done);
        store.save_hint(&id, &h.model_id, Some(hinted), ready)?;
    }
    if due.is_empty() {
        return Ok(Applied::NothingNew {
            linked_account_id: id,
        });
    }
    if due_on_webhook(&account) {
        store.set_next_poll(&id, None)?;
    }
    Ok(Applied::Due {
        linked_account_id: id,
        models: due,
    })
}

fn link(store: &mut dyn Store, w: &webhook::Webhook, now: DateTime<Utc>) -> Result<Applied> {
    let (Some(token), Some(id)) = (&w.account_token, &w.linked_account.id) else {
        return Ok(Applied::Ignored(
            "LinkedAccount.linked without an account token or id".into(),
        ));
    };
    let existing = store.account(id)?;
    let category = w
        .linked_account
        .category
        .clone()
        .or_else(|| existing.as_ref().map(|a| a.category.clone()));
    let Some(category) = category.filter(|c| catalog::is_category(c)) else {
        return Ok(Applied::Ignored(
            "LinkedAccount.linked for an unknown category".into(),
        ));
    };
    store.upsert_account(
        &NewAccount {
            linked_account_id: id.clone(),
            end_user_origin_id: w.linked_account.end_user_origin_id.clone(),
            category,
            integration_slug: w.linked_account.integration_slug.clone(),
            account_token: token.clone(),
            models: None,
        },
        now,
    )?;
    Ok(Applied::Linked {
        linked_account_id: id.clone(),
    })
}
