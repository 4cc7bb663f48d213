//! Rendering sync state for people (tables) and programs (JSON). Plain structs in, strings
//! out; `now` is passed in, so output is deterministic.

use chrono::{DateTime, Duration, Utc};
use comfy_table::{presets::UTF8_FULL_CONDENSED, ContentArrangement, Table};
use serde::Serialize;

use crate::time;

/// One account, as `status` and `accounts list` show it.
#[derive(Debug, Clone, Serialize)]
pub struct AccountView {
    pub linked_account_id: String,
    pub end_user_origin_id: Option<String>,
    pub category: String,
    pub integration_slug: Option<String>,
    pub status: String,
    /// Masked: the last 4 characters only.
    pub account_token: String,
    pub initial_sync_complete: bool,
    pub models_ready: usize,
    pub models_enabled: usize,
    #[serde(serialize_with = "ser_time")]
    pub initial_sync_started_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "ser_time")]
    pub initial_sync_completed_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "ser_time")]
    pub next_poll_at: Option<DateTime<Utc>>,
    pub consecutive_failures: u32,
    pub last_error: Option<String>,
    pub hook_error: Option<String>,
}

/// One (account, model) row of `status`.
#[derive(Debug, Clone, Serialize)]
pub struct ModelRow {
    pub linked_account_id: String,
    pub end_user_origin_id: Option<String>,
    pub category: String,
    pub initial_sync_complete: bool,
    /// `None` for an account that has not been polled yet.
    pub model_id: Option<String>,
    pub status: Option<String>,
    pub last_sync_result: Option<String>,
    pub ready: Option<bool>,
    #[serde(serialize_with = "ser_time")]
    pub merge_last_sync_finished: Option<DateTime<Utc>>,
    #[serde(serialize_with = "ser_time")]
    pub merge_reported_last_sync_finished: Option<DateTime<Utc>>,
    #[serde(serialize_with = "ser_time")]
    pub last_synced_at: Option<DateTime<Utc>>,
    #[serde(serialize_with = "ser_time")]
    pub last_fetched_at: Option<DateTime<Utc>>,
    pub records: i64,
    #[serde(serialize_with = "ser_time")]
    pub next_poll_at: Option<DateTime<Utc>>,
    /// Whether a window is half-fetched (a saved cursor).
    pub fetch_in_progress: bool,
    pub last_error: Option<String>,
}

fn ser_time<S: serde::Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&time::format(*t)),
        None => s.serialize_none(),
    }
}

/// `2h 13m`, `5m`, `40s`, `3d 4h`.
pub fn human_duration(d: Duration) -> String {
    let secs = d.num_seconds().max(0);
    let (days, hours, mins) = (secs / 86_400, (secs % 86_400) / 3600, (secs % 3600) / 60);
    match (days, hours, mins) {
        (0, 0, 0) => format!("{secs}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

fn short_time(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%d %H:%M:%SZ").to_string())
        .unwrap_or_else(|| "—".into())
}

fn next_poll(t: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    match t {
        None => "due now".into(),
        Some(t) if t <= now => "due now".into(),
        Some(t) => format!("in {}", human_duration(t - now)),
    }
}

/// The line that heads an account: who it is and where its initial sync stands.
pub fn heading(a: &AccountView, now: DateTime<Utc>) -> String {
    let who = match (&a.end_user_origin_id, &a.integration_slug) {
        (Some(o), Some(s)) => format!("{} ({}, {}, {})", a.linked_account_id, o, a.category, s),
        (Some(o), None) => format!("{} ({}, {})", a.linked_account_id, o, a.category),
        (None, Some(s)) => format!("{} ({}, {})", a.linked_account_id, a.category, s),
        (None, None) => format!("{} ({})", a.linked_account_id, a.category),
    };
    let initial = if a.initial_sync_complete {
        match a.initial_sync_completed_at {
            Some(t) => format!("initial sync: complete since {}", short_time(Some(t))),
            None => "initial sync: complete".into(),
        }
    } else if a.models_enabled == 0 {
        "initial sync: not polled yet".into()
    } else {
        let running = a
            .initial_sync_started_at
            .map(|t| format!(", running for {}", human_duration(now - t)))
            .unwrap_or_default();
        format!(
            "initial sync: {} of {} models ready{running}",
            a.models_ready, a.models_enabled
        )
    };
    let mut line = format!("{who} — {initial}");
    if a.status == "disabled" {
        line.push_str(" — DISABLED");
    }
    if let Some(e) = &a.last_error {
        line.push_str(&format!(
            " — failing ({} in a row), next try {}: {e}",
            a.consecutive_failures,
            next_poll(a.next_poll_at, now)
        ));
    }
    if let Some(e) = &a.hook_error {
        line.push_str(&format!(" — hook: {e}"));
    }
    line
}

/// The `status` table: a heading line per account, then its models.
pub fn status_table(accounts: &[(AccountView, Vec<ModelRow>)], now: DateTime<Utc>) -> String {
    if accounts.is_empty() {
        return "No linked accounts. Add one with `merge-sync accounts add`.\n".into();
    }
    let mut out = String::new();
    for (account, rows) in accounts {
        out.push_str(&heading(account, now));
        out.push('\n');
        let mut table = Table::new();
        table
            .load_preset(UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Disabled)
            .set_header([
                "account",
                "model",
                "merge status",
                "last result",
                "ready",
                "merge finished",
                "our last fetch",
                "records",
                "next poll",
                "last error",
            ]);
        for r in rows {
            let account_label = r
                .end_user_origin_id
                .clone()
                .unwrap_or_else(|| r.linked_account_id.clone());
            let Some(model) = &r.model_id else {
                table.add_row([
                    account_label,
                    "—".into(),
                    "not polled yet".into(),
                    "".into(),
                    "".into(),
                    "".into(),
                    "".into(),
                    "0".into(),
                    next_poll(r.next_poll_at, now),
                    "".into(),
                ]);
                continue;
            };
            let fetched = match (r.last_fetched_at, r.fetch_in_progress) {
                (t, true) => format!("{} (resuming)", short_time(t)),
                (t, false) => short_time(t),
            };
            table.add_row([
                account_label,
                model.clone(),
                r.status.clone().unwrap_or_else(|| "—".into()),
                r.last_sync_result.clone().unwrap_or_else(|| "—".into()),
                match r.ready {
                    Some(true) => "yes".into(),
                    _ => "no".into(),
                },
                short_time(
                    r.merge_last_sync_finished
                        .or(r.merge_reported_last_sync_finished),
                ),
                fetched,
                r.records.to_string(),
                next_poll(r.next_poll_at, now),
                r.last_error.clone().unwrap_or_default(),
            ]);
        }
        out.push_str(&table.to_string());
        out.push('\n');
    }
    out
}

/// The `accounts list` table.
pub fn accounts_table(accounts: &[AccountView], now: DateTime<Utc>) -> String {
    if accounts.is_empty() {
        return "No linked accounts. Add one with `merge-sync accounts add`.\n".into();
    }
    let mut table = Table::new();
    table
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header([
            "linked account",
            "origin id",
            "category",
            "integration",
            "status",
            "token",
            "initial sync",
            "next poll",
            "last error",
        ]);
    for a in accounts {
        let initial = if a.initial_sync_complete {
            "complete".to_string()
        } else {
            format!("{} of {} ready", a.models_ready, a.models_enabled)
        };
        table.add_row([
            a.linked_account_id.clone(),
            a.end_user_origin_id.clone().unwrap_or_default(),
            a.category.clone(),
            a.integration_slug.clone().unwrap_or_default(),
            a.status.clone(),
            a.account_token.clone(),
            initial,
            next_poll(a.next_poll_at, now),
            a.last_error.clone().unwrap_or_default(),
        ]);
    }
    format!("{table}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_a_person_would_say_them() {
        assert_eq!(human_duration(Duration::seconds(40)), "40s");
        assert_eq!(human_duration(Duration::minutes(5)), "5m");
        assert_eq!(human_duration(Duration::minutes(133)), "2h 13m");
        assert_eq!(human_duration(Duration::hours(76)), "3d 4h");
    }

    #[test]
    fn heading_says_how_far_the_initial_sync_is() {
        let now = time::parse("2026-11-29T12:00:00Z").unwrap();
        let a = AccountView {
            linked_account_id: "la1".into(),
            end_user_origin_id: Some("acme".into()),
            category: "hris".into(),
            integration_slug: Some("bamboohr".into()),
            status: "active".into(),
            account_token: "••••1234".into(),
            initial_sync_complete: false,
            models_ready: 3,
            models_enabled: 5,
            initial_sync_started_at: Some(now - Duration::minutes(133)),
            initial_sync_completed_at: None,
            next_poll_at: None,
            consecutive_failures: 0,
            last_error: None,
            hook_error: None,
        };
        assert_eq!(
            heading(&a, now),
            "la1 (acme, hris, bamboohr) — initial sync: 3 of 5 models ready, running for 2h 13m"
        );
    }

    #[test]
    fn status_table_renders_one_row_per_model_under_its_account() {
        let now = time::parse("2026-11-29T12:00:00Z").unwrap();
        let account = AccountView {
            linked_account_id: "la1".into(),
            end_user_origin_id: Some("acme".into()),
            category: "hris".into(),
            integration_slug: None,
            status: "active".into(),
            account_token: "••••1234".into(),
            initial_sync_complete: true,
            models_ready: 1,
            models_enabled: 1,
            initial_sync_started_at: None,
            initial_sync_completed_at: Some(now - Duration::hours(2)),
            next_poll_at: Some(now + Duration::minutes(5)),
            consecutive_failures: 0,
            last_error: None,
            hook_error: None,
        };
        let row = ModelRow {
            linked_account_id: "la1".into(),
            end_user_origin_id: Some("acme".into()),
            category: "hris".into(),
            initial_sync_complete: true,
            model_id: Some("hris.Employee".into()),
            status: Some("DONE".into()),
            last_sync_result: Some("DONE".into()),
            ready: Some(true),
            merge_last_sync_finished: Some(now - Duration::minutes(30)),
            merge_reported_last_sync_finished: None,
            last_synced_at: None,
            last_fetched_at: Some(now - Duration::minutes(29)),
            records: 2500,
            next_poll_at: Some(now + Duration::minutes(5)),
            fetch_in_progress: false,
            last_error: None,
        };
        let out = status_table(&[(account, vec![row])], now);
        let expected = "\
la1 (acme, hris) — initial sync: complete since 2026-11-29 10:00:00Z
┌─────────┬───────────────┬──────────────┬─────────────┬───────┬──────────────────────┬──────────────────────┬─────────┬───────────┬────────────┐
│ account ┆ model         ┆ merge status ┆ last result ┆ ready ┆ merge finished       ┆ our last fetch       ┆ records ┆ next poll ┆ last error │
╞═════════╪═══════════════╪══════════════╪═════════════╪═══════╪══════════════════════╪══════════════════════╪═════════╪═══════════╪════════════╡
│ acme    ┆ hris.Employee ┆ DONE         ┆ DONE        ┆ yes   ┆ 2026-11-29 11:30:00Z ┆ 2026-11-29 11:31:00Z ┆ 2500    ┆ in 5m     ┆            │
└─────────┴───────────────┴──────────────┴─────────────┴───────┴──────────────────────┴──────────────────────┴─────────┴───────────┴────────────┘
";
        assert_eq!(out, expected);
    }
}
