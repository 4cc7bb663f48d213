//! Lenient parsing of verified webhook bodies into the few facts merge-sync acts on.
//!
//! Merge's webhook shapes are only partly documented (help.merge.dev shows examples, not a schema), so the
//! parser walks a `serde_json::Value` instead of deriving strict types: a missing, null or
//! oddly typed optional field becomes `None`, unknown keys are ignored, unknown status strings
//! are kept as given, and unknown events become [`WebhookKind::Other`]. Only a body that is not
//! a JSON object, or that names no event, is an error.
//!
//! Parse only bodies whose signature was verified: parsing is not a security boundary.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::secret::Secret;

/// The event name of a sync-completed delivery (one per linked account and sync run).
pub const SYNC_COMPLETED: &str = "LinkedAccount.sync_completed";
/// The event name of a newly linked (or relinked) account; the only one documented to carry
/// the account token.
pub const LINKED: &str = "LinkedAccount.linked";

/// A parsed webhook. `Debug` never shows the account token.
#[derive(Clone, Debug)]
pub struct Webhook {
    /// `hook.event`, as sent (for example `Employee.synced`).
    pub event: String,
    pub linked_account: LinkedAccountRef,
    /// `data.account_token`, when the delivery carries one.
    pub account_token: Option<Secret>,
    pub kind: WebhookKind,
}

/// The fields of the envelope's `linked_account` that identify the account. Empty strings are
/// read as absent, since they identify nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LinkedAccountRef {
    pub id: Option<String>,
    pub end_user_origin_id: Option<String>,
    pub category: Option<String>,
    pub integration_slug: Option<String>,
}

/// What a webhook says, for the events merge-sync acts on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WebhookKind {
    /// `LinkedAccount.sync_completed`: one hint per model in `data.sync_status`, sorted by
    /// model id.
    SyncCompleted { models: Vec<ModelSyncHint> },
    /// `{Model}.synced`: one model's sync status.
    ModelSynced { hint: ModelSyncHint },
    /// `LinkedAccount.linked`.
    Linked { is_relink: bool },
    /// Any other event, or a `.synced` event that names no model.
    Other,
}

/// One model's sync status as a webhook reports it. Status strings are kept as sent, so an
/// unknown value is not lost; timestamps that do not parse are `None`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelSyncHint {
    /// `"{category}.{InternalModel}"`, for example `hris.Employee`.
    pub model_id: String,
    pub last_sync_result: Option<String>,
    pub status: Option<String>,
    pub is_initial_sync: Option<bool>,
    pub last_sync_finished: Option<DateTime<Utc>>,
}

/// Why a body could not be read as a webhook. Messages never quote the body, which may carry
/// an account token.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    #[error("webhook body is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("webhook body is JSON but not an object (expected {{\"hook\": …, \"data\": …}})")]
    NotAnObject,
    #[error("webhook body names no event (expected a string at hook.event)")]
    MissingEvent,
}

/// Parses a verified webhook body.
pub fn parse(body: &[u8]) -> Result<Webhook, PayloadError> {
    let root: Value = serde_json::from_slice(body)?;
    let root = root.as_object().ok_or(PayloadError::NotAnObject)?;

    // `hook.event` is documented; a top-level `event` is tolerated for hand-made deliveries.
    let event = root
        .get("hook")
        .and_then(|h| text(h, "event"))
        .or_else(|| text_in(root, "event"))
        .ok_or(PayloadError::MissingEvent)?;

    let empty = Map::new();
    let data = root
        .get("data")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let linked_account = root
        .get("linked_account")
        .map(linked_account_ref)
        .unwrap_or_default();
    let account_token = text_in(data, "account_token")
        .or_else(|| text_in(root, "account_token"))
        .map(Secret::new);

    let kind = if event == SYNC_COMPLETED {
        WebhookKind::SyncCompleted {
            models: sync_completed_models(data),
        }
    } else if event == LINKED {
        let is_relink = flag_in(data, "is_relink")
            .or_else(|| flag_in(root, "is_relink"))
            .unwrap_or(false);
        WebhookKind::Linked { is_relink }
    } else if let Some(model_name) = synced_model_name(&event) {
        match model_synced_hint(data, model_name, linked_account.category.as_deref()) {
            Some(hint) => WebhookKind::ModelSynced { hint },
            None => WebhookKind::Other,
        }
    } else {
        WebhookKind::Other
    };

    Ok(Webhook {
        event,
        linked_account,
        account_token,
        kind,
    })
}

/// `Employee.synced` → `Employee`. `LinkedAccount.synced` is the deprecated account-level event
/// (its payload is undocumented), not a model.
fn synced_model_name(event: &str) -> Option<&str> {
    let name = event.strip_suffix(".synced")?;
    (!name.is_empty() && name != "LinkedAccount").then_some(name)
}

fn linked_account_ref(v: &Value) -> LinkedAccountRef {
    LinkedAccountRef {
        id: text(v, "id"),
        end_user_origin_id: text(v, "end_user_origin_id"),
        category: text(v, "category"),
        integration_slug: text(v, "integration_slug"),
    }
}

/// `data.sync_status` maps model id → status. A list of SyncStatus objects, or a single one,
/// is accepted too, since the documents disagree on shapes and this costs nothing.
fn sync_completed_models(data: &Map<String, Value>) -> Vec<ModelSyncHint> {
    let initial = flag_in(data, "is_initial_sync");
    let mut models: Vec<ModelSyncHint> = match data.get("sync_status") {
        Some(Value::Object(map)) if text_in(map, "model_id").is_some() => {
            hint_from(map, None, initial).into_iter().collect()
        }
        Some(Value::Object(map)) => map
            .iter()
            .filter_map(|(id, v)| hint_from(v.as_object()?, Some(id), initial))
            .collect(),
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(|v| hint_from(v.as_object()?, None, initial))
            .collect(),
        _ => Vec::new(),
    };
    // Deterministic whatever serde_json's map ordering is.
    models.sort_by(|a, b| a.model_id.cmp(&b.model_id));
    models
}

/// `data.sync_status` is one SyncStatus object. Without a `model_id`, it is derived as
/// `{category}.{model_name}` from the linked account and the event name: right for most models,
/// and a wrong guess only names a model the catalogue does not know.
fn model_synced_hint(
    data: &Map<String, Value>,
    event_model: &str,
    category: Option<&str>,
) -> Option<ModelSyncHint> {
    let empty = Map::new();
    let status = data
        .get("sync_status")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let derived = || {
        let name = text_in(status, "model_name").unwrap_or_else(|| event_model.to_string());
        Some(format!("{}.{name}", category?))
    };
    let model_id = text_in(status, "model_id").or_else(derived)?;
    hint_from(status, Some(&model_id), flag_in(data, "is_initial_sync"))
}

/// Builds a hint from a status object; `model_id` overrides the object's own `model_id` key.
fn hint_from(
    status: &Map<String, Value>,
    model_id: Option<&str>,
    initial: Option<bool>,
) -> Option<ModelSyncHint> {
    let model_id = match model_id {
        Some(id) if !id.trim().is_empty() => id.trim().to_string(),
        _ => text_in(status, "model_id")?,
    };
    Some(ModelSyncHint {
        model_id,
        last_sync_result: text_in(status, "last_sync_result"),
        status: text_in(status, "status"),
        is_initial_sync: flag_in(status, "is_initial_sync").or(initial),
        last_sync_finished: text_in(status, "last_sync_finished")
            .as_deref()
            .and_then(crate::time::parse),
    })
}

fn text(v: &Value, key: &str) -> Option<String> {
    text_in(v.as_object()?, key)
}

/// A non-empty string field, trimmed. Numbers are accepted as their text, since an id sent as a
/// number still identifies; anything else is absent.
fn text_in(map: &Map<String, Value>, key: &str) -> Option<String> {
    let s = match map.get(key)? {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    (!s.is_empty()).then_some(s)
}

/// A boolean field; `"true"`/`"false"` strings are accepted as a lenient courtesy.
fn flag_in(map: &Map<String, Value>, key: &str) -> Option<bool> {
    match map.get(key)? {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// `body` with every JSON string that contains `token` replaced by `"(redacted)"`; a body
/// that is not JSON gets a plain byte replacement. Used once a webhook is applied, so the
/// stored copy no longer carries a credential.
pub fn redact(body: &[u8], token: &str) -> Vec<u8> {
    fn walk(v: &mut Value, token: &str) {
        match v {
            Value::String(s) if s.contains(token) => *s = "(redacted)".into(),
            Value::Array(items) => items.iter_mut().for_each(|i| walk(i, token)),
            Value::Object(map) => map.values_mut().for_each(|i| walk(i, token)),
            _ => {}
        }
    }
    if token.is_empty() {
        return body.to_vec();
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(mut v) => {
            walk(&mut v, token);
            serde_json::to_vec(&v).unwrap_or_default()
        }
        Err(_) => String::from_utf8_lossy(body)
            .replace(token, "(redacted)")
            .into_bytes(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SYNC_COMPLETED_JSON: &str = include_str!("../../fixtures/webhooks/sync_completed.json");
    const EMPLOYEE_SYNCED_JSON: &str = include_str!("../../fixtures/webhooks/employee_synced.json");
    const LINKED_JSON: &str = include_str!("../../fixtures/webhooks/linked.json");
    const UNKNOWN_EVENT_JSON: &str = include_str!("../../fixtures/webhooks/unknown_event.json");

    fn ts(s: &str) -> Option<DateTime<Utc>> {
        Some(crate::time::parse(s).unwrap())
    }

    #[test]
    fn sync_completed_fixture_gives_one_hint_per_model() {
        let w = parse(SYNC_COMPLETED_JSON.as_bytes()).unwrap();
        assert_eq!(w.event, "LinkedAccount.sync_completed");
        assert_eq!(
            w.linked_account,
            LinkedAccountRef {
                id: Some("7841ee0a-5a1a-44db-bc7e-2912d8c17515".into()),
                end_user_origin_id: Some("TEST_AUM6QPMP".into()),
                category: Some("ticketing".into()),
                integration_slug: Some("azure-devops".into()),
            }
        );
        assert!(w.account_token.is_none());
        let WebhookKind::SyncCompleted { models } = w.kind else {
            panic!("expected SyncCompleted, got {:?}", w.kind);
        };
        let ids: Vec<&str> = models.iter().map(|m| m.model_id.as_str()).collect();
        assert_eq!(ids, ["ticketing.Ticket", "ticketing.TicketingAttachment"]);
        for m in &models {
            assert_eq!(m.last_sync_result.as_deref(), Some("DONE"));
            assert_eq!(m.is_initial_sync, Some(true), "data-level flag applies");
            assert_eq!(m.last_sync_finished, ts("2025-11-27T00:16:19Z"));
            assert_eq!(m.status, None);
        }
    }

    #[test]
    fn employee_synced_fixture_gives_one_hint() {
        let w = parse(EMPLOYEE_SYNCED_JSON.as_bytes()).unwrap();
        assert_eq!(w.event, "Employee.synced");
        assert_eq!(w.linked_account.category.as_deref(), Some("hris"));
        let WebhookKind::ModelSynced { hint } = w.kind else {
            panic!("expected ModelSynced, got {:?}", w.kind);
        };
        assert_eq!(
            hint,
            ModelSyncHint {
                model_id: "hris.Employee".into(),
                last_sync_result: Some("DONE".into()),
                status: Some("DONE".into()),
                is_initial_sync: Some(false),
                last_sync_finished: ts("2026-03-02T14:06:41.118204Z"),
            }
        );
    }

    #[test]
    fn linked_fixture_carries_the_token_and_debug_hides_it() {
        let w = parse(LINKED_JSON.as_bytes()).unwrap();
        assert_eq!(w.kind, WebhookKind::Linked { is_relink: false });
        let token = w.account_token.as_ref().expect("linked carries a token");
        assert!(token.expose().starts_with("tok_"));
        let shown = format!("{w:?}");
        assert!(!shown.contains(token.expose()), "{shown}");
        assert!(shown.contains("(redacted)"));
    }

    #[test]
    fn unknown_event_fixture_is_other() {
        let w = parse(UNKNOWN_EVENT_JSON.as_bytes()).unwrap();
        assert_eq!(w.kind, WebhookKind::Other);
        assert!(w.linked_account.id.is_some());
    }

    #[test]
    fn is_relink_is_read_from_data_or_top_level() {
        let in_data = br#"{"hook":{"event":"LinkedAccount.linked"},"data":{"account_token":"t","is_relink":true}}"#;
        let top = br#"{"hook":{"event":"LinkedAccount.linked"},"is_relink":"true","data":{}}"#;
        let neither = br#"{"hook":{"event":"LinkedAccount.linked"}}"#;
        assert_eq!(
            parse(in_data).unwrap().kind,
            WebhookKind::Linked { is_relink: true }
        );
        assert_eq!(
            parse(top).unwrap().kind,
            WebhookKind::Linked { is_relink: true }
        );
        assert_eq!(
            parse(neither).unwrap().kind,
            WebhookKind::Linked { is_relink: false }
        );
    }

    #[test]
    fn account_token_in_other_events_is_kept() {
        let body = br#"{"hook":{"event":"Employee.synced"},"linked_account":null,
            "data":{"account_token":"tok_x","sync_status":{"model_id":"hris.Employee","status":"SYNCING"}}}"#;
        let w = parse(body).unwrap();
        assert_eq!(w.account_token.unwrap().expose(), "tok_x");
        assert_eq!(w.linked_account, LinkedAccountRef::default());
    }

    #[test]
    fn sync_completed_tolerates_odd_and_missing_fields() {
        let body = br#"{"hook":{"event":"LinkedAccount.sync_completed"},
            "linked_account":{"id":"","category":7},
            "data":{"sync_status":{
              "hris.Employee":{"last_sync_result":"SOMETHING_NEW","last_sync_finished":"2026-03-02T14:06:41Z",
                               "status":null,"is_initial_sync":false,"extra":{"x":1}},
              "hris.TimeOff":{"last_sync_result":null,"last_sync_finished":"not a time"},
              "hris.Broken":"DONE",
              "hris.BankInfo":{}}}}"#;
        let w = parse(body).unwrap();
        assert_eq!(w.linked_account.id, None, "empty id is absent");
        assert_eq!(w.linked_account.category.as_deref(), Some("7"));
        let WebhookKind::SyncCompleted { models } = w.kind else {
            panic!("expected SyncCompleted");
        };
        let ids: Vec<&str> = models.iter().map(|m| m.model_id.as_str()).collect();
        assert_eq!(ids, ["hris.BankInfo", "hris.Employee", "hris.TimeOff"]);
        assert_eq!(models[1].last_sync_result.as_deref(), Some("SOMETHING_NEW"));
        assert_eq!(models[1].last_sync_finished, ts("2026-03-02T14:06:41Z"));
        assert_eq!(models[1].is_initial_sync, Some(false));
        assert_eq!(models[2].last_sync_finished, None);
        assert_eq!(models[0].is_initial_sync, None);
    }

    #[test]
    fn sync_completed_without_sync_status_has_no_models() {
        let body = br#"{"hook":{"event":"LinkedAccount.sync_completed"},"data":null}"#;
        let w = parse(body).unwrap();
        assert_eq!(w.kind, WebhookKind::SyncCompleted { models: vec![] });
    }

    #[test]
    fn model_synced_derives_a_missing_model_id_from_category_and_event() {
        let body = br#"{"hook":{"event":"Candidate.synced"},"linked_account":{"category":"ats"},
            "data":{"is_initial_sync":true,"sync_status":{"last_sync_result":"PARTIALLY_SYNCED",
            "last_sync_finished":"2026-03-01T14:09:12.003187+00:00"}}}"#;
        let WebhookKind::ModelSynced { hint } = parse(body).unwrap().kind else {
            panic!("expected ModelSynced");
        };
        assert_eq!(hint.model_id, "ats.Candidate");
        assert_eq!(hint.is_initial_sync, Some(true));
        assert_eq!(hint.last_sync_finished, ts("2026-03-01T14:09:12.003187Z"));

        let no_category = br#"{"hook":{"event":"Candidate.synced"},"data":{}}"#;
        assert_eq!(parse(no_category).unwrap().kind, WebhookKind::Other);
    }

    #[test]
    fn linked_account_synced_is_not_a_model() {
        let body =
            br#"{"hook":{"event":"LinkedAccount.synced"},"linked_account":{"category":"hris"}}"#;
        assert_eq!(parse(body).unwrap().kind, WebhookKind::Other);
        let bare = br#"{"hook":{"event":".synced"},"linked_account":{"category":"hris"}}"#;
        assert_eq!(parse(bare).unwrap().kind, WebhookKind::Other);
    }

    #[test]
    fn malformed_bodies_give_clear_errors() {
        let err = parse(b"{\"hook\": ").unwrap_err();
        assert!(matches!(err, PayloadError::Json(_)));
        assert!(
            err.to_string()
                .starts_with("webhook body is not valid JSON"),
            "{err}"
        );
        assert!(matches!(parse(b"[1,2]"), Err(PayloadError::NotAnObject)));
        assert!(matches!(
            parse(b"{\"data\":{}}"),
            Err(PayloadError::MissingEvent)
        ));
        assert!(matches!(
            parse(br#"{"hook":{"event":null}}"#),
            Err(PayloadError::MissingEvent)
        ));
        // A top-level event is tolerated.
        assert_eq!(
            parse(br#"{"event":"Issue.new"}"#).unwrap().event,
            "Issue.new"
        );
    }

    #[test]
    fn redact_removes_the_token_wherever_it_is() {
        let body = br#"{"data":{"account_token":"tok_\u0041bc","nested":["x tok_Abc y"]},"n":1}"#;
        let out = String::from_utf8(redact(body, "tok_Abc")).unwrap();
        assert!(!out.contains("tok_Abc") && !out.contains("u0041"), "{out}");
        assert!(out.contains("\"n\":1"), "{out}");
    }
}
