//! Merge's response payloads, parsed leniently: unknown status strings are kept, optional
//! fields may be missing or null, timestamps come with or without fractional seconds.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use crate::time;

fn lenient_time<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    let v: Option<serde_json::Value> = Option::deserialize(d)?;
    Ok(match v {
        Some(serde_json::Value::String(s)) => time::parse(&s),
        _ => None,
    })
}

fn lenient_bool<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    let v: Option<serde_json::Value> = Option::deserialize(d)?;
    Ok(match v {
        Some(serde_json::Value::Bool(b)) => Some(b),
        Some(serde_json::Value::Number(n)) => n.as_i64().map(|n| n != 0),
        Some(serde_json::Value::String(s)) => match s.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Some(true),
            "false" | "0" | "no" => Some(false),
            _ => None,
        },
        _ => None,
    })
}

fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v: Option<serde_json::Value> = Option::deserialize(d)?;
    Ok(match v {
        Some(serde_json::Value::String(s)) => Some(s),
        Some(serde_json::Value::Null) | None => None,
        Some(other) => Some(other.to_string()),
    })
}

/// One model's entry in `GET {category}/v1/sync-status`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct SyncStatus {
    pub model_id: String,
    #[serde(default, deserialize_with = "lenient_string")]
    pub model_name: Option<String>,
    /// `SYNCING`, `DONE`, `FAILED`, `DISABLED`, `PAUSED`, `PARTIALLY_SYNCED`, or anything new.
    #[serde(default, deserialize_with = "lenient_string")]
    pub status: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub last_sync_result: Option<String>,
    #[serde(default, deserialize_with = "lenient_bool")]
    pub is_initial_sync: Option<bool>,
    #[serde(default, deserialize_with = "lenient_time")]
    pub last_sync_start: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "lenient_time")]
    pub next_sync_start: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "lenient_time")]
    pub last_sync_finished: Option<DateTime<Utc>>,
}

/// Every entry of sync-status, and Merge's clock as the responses' `Date` headers showed it
/// (the latest page's; `None` when Merge, or a proxy, sent none).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SyncStatusReport {
    pub statuses: Vec<SyncStatus>,
    pub merge_time: Option<DateTime<Utc>>,
}

/// The envelope of every list endpoint. `next` is an opaque cursor.
#[derive(Debug, Deserialize)]
pub struct Page<T> {
    #[serde(default)]
    pub next: Option<String>,
    pub results: Vec<T>,
}

/// A page of records, each kept as the exact JSON Merge sent.
pub type RecordPage = Page<Box<RawValue>>;

/// The fields of a Common Model record merge-sync indexes; the rest stays in `data`.
#[derive(Debug, Deserialize)]
pub struct RecordHead {
    #[serde(default, deserialize_with = "lenient_string")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub remote_id: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub created_at: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub modified_at: Option<String>,
    #[serde(default, deserialize_with = "lenient_bool")]
    pub remote_was_deleted: Option<bool>,
}

/// `GET {category}/v1/account-details`.
#[derive(Debug, Clone, Deserialize)]
pub struct AccountDetails {
    #[serde(default, deserialize_with = "lenient_string")]
    pub id: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub integration: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub integration_slug: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub category: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub end_user_origin_id: Option<String>,
    #[serde(default, deserialize_with = "lenient_string")]
    pub status: Option<String>,
}

/// `GET {category}/v1/account-token/{public_token}`.
#[derive(Deserialize)]
pub struct AccountTokenExchange {
    pub account_token: String,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub integration: Option<ExchangeIntegration>,
}

#[derive(Debug, Deserialize)]
pub struct ExchangeIntegration {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub slug: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_status_tolerates_nulls_missing_fields_and_unknown_statuses() {
        let page: Page<SyncStatus> = serde_json::from_str(
            r#"{"next": null, "previous": null, "results": [
                {"model_name": "Employee", "model_id": "hris.Employee",
                 "last_sync_start": "2026-03-02T14:00:00Z", "next_sync_start": null,
                 "last_sync_result": "DONE", "last_sync_finished": "2026-03-02T14:05:22.123456Z",
                 "status": "QUANTUM_SYNC", "is_initial_sync": false, "new_field": [1,2]},
                {"model_id": "hris.Group", "status": "SYNCING", "is_initial_sync": true}
            ]}"#,
        )
        .unwrap();
        assert_eq!(page.results[0].status.as_deref(), Some("QUANTUM_SYNC"));
        assert!(page.results[0].last_sync_finished.is_some());
        assert_eq!(page.results[1].last_sync_finished, None);
    }

    #[test]
    fn record_head_reads_the_indexed_fields_only() {
        let raw = r#"{"id":"e1","remote_id":123,"modified_at":"2026-03-02T14:05:22Z","remote_was_deleted":null,"x":{"y":1}}"#;
        let head: RecordHead = serde_json::from_str(raw).unwrap();
        assert_eq!(head.id.as_deref(), Some("e1"));
        assert_eq!(head.remote_id.as_deref(), Some("123"));
        assert_eq!(head.remote_was_deleted, None);
        let odd: RecordHead =
            serde_json::from_str(r#"{"id":"e2","remote_was_deleted":"true"}"#).unwrap();
        assert_eq!(odd.remote_was_deleted, Some(true));
    }
}

#[cfg(test)]
mod fixture_tests {
    use super::*;

    #[test]
    fn the_sync_status_fixture_parses_with_its_cursor() {
        let page: Page<SyncStatus> =
            serde_json::from_str(include_str!("../../fixtures/merge/sync_status_page.json"))
                .unwrap();
        assert!(page.next.is_some());
        assert_eq!(page.results.len(), 3);
        let time_off = &page.results[1];
        assert_eq!(time_off.status.as_deref(), Some("SYNCING"));
        assert_eq!(
            time_off.last_sync_result.as_deref(),
            Some("PARTIALLY_SYNCED")
        );
        assert!(
            time_off.last_sync_finished.is_some(),
            "no fractional seconds still parses"
        );
        assert_eq!(page.results[2].last_sync_finished, None);
    }

    #[test]
    fn the_employees_fixture_keeps_each_record_verbatim() {
        let text = include_str!("../../fixtures/merge/employees_page.json");
        let page: RecordPage = serde_json::from_str(text).unwrap();
        assert_eq!(page.results.len(), 2);
        let deleted: RecordHead = serde_json::from_str(page.results[1].get()).unwrap();
        assert_eq!(deleted.remote_was_deleted, Some(true));
        let first: serde_json::Value = serde_json::from_str(page.results[0].get()).unwrap();
        assert_eq!(first["first_name"], "Greg");
    }
}
