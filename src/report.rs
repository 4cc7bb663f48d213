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
    /// When we last read Merge's sync-status for the account.
    #[serde(serialize_with = "ser_time")]
    pub last_checked_at: Option<DateTime<Utc>>,
    /// When a pass over the account last succeeded.
    #[serde(serialize_with = "ser_time")]
    pub last_success_at: Option<DateTime<Utc>>,
    /// The largest lag of its models: how far the mirror is behind Merge's last finished sync.
    pub lag_seconds: Option<i64>,
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
    /// For a half-fetched window: `running` (a live process is on it now) or `interrupted`.
    pub fetch_state: Option<String>,
    /// For a half-fetched window: the page the next run starts at.
    pub resume_page: Option<u64>,
    /// When we last read Merge's sync-status for the account.
    #[serde(serialize_with = "ser_time")]
    pub checked_at: Option<DateTime<Utc>>,
    /// When a pass last left this model up to date.
    #[serde(serialize_with = "ser_time")]
    pub last_success_at: Option<DateTime<Utc>>,
    /// How far the mirror is behind Merge's last finished sync of the model.
    pub lag_seconds: Option<i64>,
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

fn ago(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    if t >= now {
        "just now".into()
    } else {
        format!("{} ago", human_duration(now - t))
    }
}

fn lag(seconds: Option<i64>) -> String {
    seconds
        .map(|s| human_duration(Duration::seconds(s)))
        .unwrap_or_else(|| "—".into())
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
    if let Some(t) = a.last_checked_at {
        line.push_str(&format!(" — checked {}", ago(t, now)));
    }
    match a.last_success_at {
        Some(t) => line.push_str(&format!(", last success {}", ago(t, now))),
        None if a.last_checked_at.is_some() => line.push_str(", no successful sync yet"),
        None => {}
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

/// The `status` table: a heading line per account (who, initial sync, freshness, its error
/// once), then one row per model. `width` fits it to a terminal.
pub fn status_table(
    accounts: &[(AccountView, Vec<ModelRow>)],
    now: DateTime<Utc>,
    width: Option<u16>,
) -> String {
    if accounts.is_empty() {
        return "No linked accounts. Add one with `merge-sync accounts add`.\n".into();
    }
    let mut out = String::new();
    for (account, rows) in accounts {
        out.push_str(&heading(account, now));
        out.push_str(&format!(
            ", next poll {}",
            next_poll(account.next_poll_at, now)
        ));
        out.push('\n');
        let mut table = table(width);
        table.set_header([
            "model",
            "merge status",
            "last result",
            "ready",
            "merge finished",
            "last success",
            "lag",
            "records",
            "fetch",
            "model error",
        ]);
        for r in rows {
            let Some(model) = &r.model_id else {
                table.add_row([
                    "—".to_string(),
                    "not polled yet".into(),
                    "".into(),
                    "".into(),
                    "".into(),
                    "".into(),
                    "".into(),
                    "0".into(),
                    "".into(),
                    "".into(),
                ]);
                continue;
            };
            let fetch = match (r.fetch_state.as_deref(), r.resume_page) {
                (Some("running"), _) => "running now".to_string(),
                (Some(_), Some(page)) => format!("interrupted; resumes at page {page}"),
                _ => "—".into(),
            };
            // The account's own error is in its heading: rows show only the model's.
            let error = r
                .last_error
                .clone()
                .filter(|e| account.last_error.as_ref() != Some(e))
                .unwrap_or_default();
            table.add_row([
                model.clone(),
                r.status.clone().unwrap_or_else(|| "—".into()),
                r.last_sync_result.clone().unwrap_or_else(|| "—".into()),
                match r.ready {
                    Some(true) => "yes".into(),
                    _ => "no".into(),
                },
                short_time(
                    r.merge_reported_last_sync_finished
                        .or(r.merge_last_sync_finished),
                ),
                short_time(r.last_success_at),
                lag(r.lag_seconds),
                r.records.to_string(),
                fetch,
                error,
            ]);
        }
        out.push_str(&table.to_string());
        out.push('\n');
    }
    out
}

/// The `accounts list` table.
pub fn accounts_table(accounts: &[AccountView], now: DateTime<Utc>, width: Option<u16>) -> String {
    if accounts.is_empty() {
        return "No linked accounts. Add one with `merge-sync accounts add`.\n".into();
    }
    let mut table = table(width);
    table.set_header([
        "linked account",
        "origin id",
        "category",
        "integration",
        "status",
        "token",
        "initial sync",
        "checked",
        "last success",
        "lag",
        "next poll",
        "last error",
    ]);
    for a in accounts {
        let initial = if a.initial_sync_complete {
            "complete".to_string()
        } else {
            format!("{} of {} ready", a.models_ready, a.models_enabled)
        };
        let error = match &a.last_error {
            Some(e) => format!("{e} ({} in a row)", a.consecutive_failures),
            None => String::new(),
        };
        table.add_row([
            a.linked_account_id.clone(),
            a.end_user_origin_id.clone().unwrap_or_default(),
            a.category.clone(),
            a.integration_slug.clone().unwrap_or_default(),
            a.status.clone(),
            a.account_token.clone(),
            initial,
            a.last_checked_at
                .map(|t| ago(t, now))
                .unwrap_or_else(|| "never".into()),
            a.last_success_at
                .map(|t| ago(t, now))
                .unwrap_or_else(|| "never".into()),
            lag(a.lag_seconds),
            next_poll(a.next_poll_at, now),
            error,
        ]);
    }
    format!("{table}\n")
}

/// One run of the history, as `runs` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RunView {
    pub run_id: String,
    pub command: String,
    /// `ok`, `partial`, `failed`, `interrupted`, `running`, or `unfinished` (killed, or still
    /// running on another host).
    pub state: String,
    #[serde(serialize_with = "ser_utc")]
    pub started_at: DateTime<Utc>,
    #[serde(serialize_with = "ser_time")]
    pub finished_at: Option<DateTime<Utc>>,
    pub duration_seconds: Option<f64>,
    pub host: String,
    pub pid: u32,
    pub accounts_synced: u64,
    pub accounts_failed: u64,
    pub accounts_not_due: u64,
    pub accounts_busy: u64,
    pub records_written: u64,
    pub requests: u64,
    pub rate_limited: u64,
    pub retries: u64,
    pub first_error: Option<String>,
    pub accounts: Vec<String>,
}

fn ser_utc<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&time::format(*t))
}

/// A table that fits `width` columns when given (a terminal), else as wide as it needs.
fn table(width: Option<u16>) -> Table {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    match width {
        Some(w) => {
            table
                .set_content_arrangement(ContentArrangement::Dynamic)
                .set_width(w);
        }
        None => {
            table.set_content_arrangement(ContentArrangement::Disabled);
        }
    }
    table
}

/// The `runs` table, newest first.
pub fn runs_table(runs: &[RunView], width: Option<u16>) -> String {
    if runs.is_empty() {
        return "No runs recorded yet.\n".into();
    }
    let mut t = table(width);
    t.set_header([
        "started",
        "command",
        "state",
        "took",
        "accounts",
        "records",
        "requests",
        "host/pid",
        "first error",
    ]);
    for r in runs {
        let took = r
            .duration_seconds
            .map(|s| format!("{s:.1}s"))
            .unwrap_or_else(|| "—".into());
        let accounts = format!(
            "{} ok, {} failed, {} not due, {} busy",
            r.accounts_synced, r.accounts_failed, r.accounts_not_due, r.accounts_busy
        );
        let requests = if r.rate_limited > 0 || r.retries > 0 {
            format!(
                "{} ({} × 429, {} retried)",
                r.requests, r.rate_limited, r.retries
            )
        } else {
            r.requests.to_string()
        };
        t.add_row([
            short_time(Some(r.started_at)),
            r.command.clone(),
            r.state.clone(),
            took,
            accounts,
            r.records_written.to_string(),
            requests,
            format!("{}/{}", r.host, r.pid),
            r.first_error.clone().unwrap_or_default(),
        ]);
    }
    format!("{t}\n")
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
            last_checked_at: None,
            last_success_at: None,
            lag_seconds: None,
        };
        assert_eq!(
            heading(&a, now),
            "la1 (acme, hris, bamboohr) — initial sync: 3 of 5 models ready, running for 2h 13m"
        );
    }

    fn account(now: DateTime<Utc>) -> AccountView {
        AccountView {
            linked_account_id: "la1".into(),
            end_user_origin_id: Some("acme".into()),
            category: "hris".into(),
            integration_slug: None,
            status: "active".into(),
            account_token: "••••1234".into(),
            initial_sync_complete: true,
            models_ready: 2,
            models_enabled: 2,
            initial_sync_started_at: None,
            initial_sync_completed_at: Some(now - Duration::hours(2)),
            next_poll_at: Some(now + Duration::minutes(5)),
            consecutive_failures: 0,
            last_error: None,
            hook_error: None,
            last_checked_at: Some(now - Duration::minutes(3)),
            last_success_at: Some(now - Duration::minutes(3)),
            lag_seconds: Some(3600),
        }
    }

    fn row(now: DateTime<Utc>, model: &str) -> ModelRow {
        ModelRow {
            linked_account_id: "la1".into(),
            end_user_origin_id: Some("acme".into()),
            category: "hris".into(),
            initial_sync_complete: true,
            model_id: Some(model.into()),
            status: Some("DONE".into()),
            last_sync_result: Some("DONE".into()),
            ready: Some(true),
            merge_last_sync_finished: Some(now - Duration::minutes(30)),
            merge_reported_last_sync_finished: Some(now - Duration::minutes(30)),
            last_synced_at: None,
            last_fetched_at: Some(now - Duration::minutes(29)),
            records: 2500,
            next_poll_at: Some(now + Duration::minutes(5)),
            fetch_in_progress: false,
            fetch_state: None,
            resume_page: None,
            checked_at: Some(now - Duration::minutes(3)),
            last_success_at: Some(now - Duration::minutes(3)),
            lag_seconds: Some(0),
            last_error: None,
        }
    }

    #[test]
    fn status_table_renders_freshness_and_tells_interrupted_from_running() {
        let now = time::parse("2026-11-29T12:00:00Z").unwrap();
        let mut employee = row(now, "hris.Employee");
        employee.fetch_in_progress = true;
        employee.fetch_state = Some("interrupted".into());
        employee.resume_page = Some(13);
        employee.lag_seconds = Some(3600);
        let mut team = row(now, "hris.Team");
        team.fetch_in_progress = true;
        team.fetch_state = Some("running".into());
        team.last_error = Some("HTTP 500".into());
        let out = status_table(&[(account(now), vec![employee, team])], now, None);
        let expected = "\
la1 (acme, hris) — initial sync: complete since 2026-11-29 10:00:00Z — checked 3m ago, last success 3m ago, next poll in 5m
┌───────────────┬──────────────┬─────────────┬───────┬──────────────────────┬──────────────────────┬───────┬─────────┬─────────────────────────────────┬─────────────┐
│ model         ┆ merge status ┆ last result ┆ ready ┆ merge finished       ┆ last success         ┆ lag   ┆ records ┆ fetch                           ┆ model error │
╞═══════════════╪══════════════╪═════════════╪═══════╪══════════════════════╪══════════════════════╪═══════╪═════════╪═════════════════════════════════╪═════════════╡
│ hris.Employee ┆ DONE         ┆ DONE        ┆ yes   ┆ 2026-11-29 11:30:00Z ┆ 2026-11-29 11:57:00Z ┆ 1h 0m ┆ 2500    ┆ interrupted; resumes at page 13 ┆             │
│ hris.Team     ┆ DONE         ┆ DONE        ┆ yes   ┆ 2026-11-29 11:30:00Z ┆ 2026-11-29 11:57:00Z ┆ 0s    ┆ 2500    ┆ running now                     ┆ HTTP 500    │
└───────────────┴──────────────┴─────────────┴───────┴──────────────────────┴──────────────────────┴───────┴─────────┴─────────────────────────────────┴─────────────┘
";
        assert_eq!(out, expected);
    }

    #[test]
    fn an_accounts_error_shows_once_and_tables_fit_the_terminal() {
        let now = time::parse("2026-11-29T12:00:00Z").unwrap();
        let mut a = account(now);
        let error = "account token rejected — relink or update the token (HTTP 401 on /hris/v1/sync-status: Invalid token)";
        a.last_error = Some(error.into());
        a.consecutive_failures = 2;
        let mut rows = vec![row(now, "hris.Employee"), row(now, "hris.Team")];
        for r in &mut rows {
            r.last_error = Some(error.into());
        }
        let out = status_table(&[(a.clone(), rows)], now, Some(100));
        assert_eq!(out.matches("Invalid token").count(), 1, "{out}");
        for line in out.lines().skip(1) {
            assert!(line.chars().count() <= 100, "too wide: {line}");
        }
        let out = accounts_table(&[a], now, Some(120));
        for line in out.lines() {
            assert!(line.chars().count() <= 120, "too wide: {line}");
        }
        assert!(out.contains("3m ago"), "{out}");
    }
}
