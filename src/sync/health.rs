//! Freshness and health: how far behind Merge the mirror is, and what a monitoring check
//! should call a problem. Pure: rows and `now` in, lags and problems out.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::detect::{effective_result, is_ok_result};
use crate::store::{Account, AccountStatus, ModelState};

/// Failed passes in a row before an account is a problem (a rejected token is one at once).
pub const DEFAULT_MAX_FAILURES: u32 = 3;
/// How long a received webhook may wait in the inbox before the backlog is a problem.
pub const DEFAULT_MAX_INBOX_AGE: Duration = Duration::minutes(15);

/// The words `MergeError::Unauthorized` starts with, as stored in `last_error`.
const TOKEN_REJECTED: &str = "account token rejected";

/// Whether the account mirrors this model now: enabled at Merge and wanted by us.
pub fn is_mirrored(account: &Account, m: &ModelState) -> bool {
    m.status.is_some()
        && m.status.as_deref() != Some("DISABLED")
        && account.wants_model(&m.model_id)
}

/// How far the mirror of a model is behind Merge's last finished sync: Merge's newest
/// successful sync (reported or announced by a webhook) minus the newest one we hold, or,
/// before we hold any, the time since Merge finished it. Zero when we hold the newest;
/// `None` while the model's initial sync runs or Merge has not finished a sync yet.
pub fn model_lag(m: &ModelState, now: DateTime<Utc>) -> Option<Duration> {
    if !m.ready {
        return None;
    }
    let result = effective_result(m.status.as_deref(), m.last_sync_result.as_deref());
    let reported = m
        .reported_last_sync_finished
        .filter(|_| is_ok_result(result));
    let newest = reported.max(m.hinted_last_sync_finished)?;
    let lag = match m.merge_last_sync_finished {
        Some(have) => newest - have,
        None => now - newest,
    };
    Some(lag.max(Duration::zero()))
}

/// When a pass last left the model up to date: its last completed window, or the last
/// successful pass over the account if the model had no error then (a successful pass
/// fetches or checks every model it mirrors).
pub fn model_last_success(
    account_last_success: Option<DateTime<Utc>>,
    m: &ModelState,
) -> Option<DateTime<Utc>> {
    let by_pass = account_last_success.filter(|_| m.last_error.is_none() && m.cursor.is_none());
    m.last_synced_at.max(by_pass)
}

/// Merge's sync cadence for the account: the shortest gap between a model's last and next
/// sync start.
pub fn cadence(models: &[ModelState]) -> Option<Duration> {
    models
        .iter()
        .filter_map(|m| Some(m.merge_next_sync_start? - m.merge_last_sync_start?))
        .filter(|c| *c > Duration::zero())
        .min()
}

/// The lag allowed when `--max-lag` is not given: one and a half of Merge's sync intervals
/// (so one sync behind is normal, two is not) plus our longest poll interval. Merge syncs
/// daily by default, which stands in when the cadence is unknown.
pub fn default_max_lag(cadence: Option<Duration>) -> Duration {
    let c = cadence.unwrap_or(Duration::days(1));
    c + c / 2 + Duration::minutes(30)
}

/// One account as health sees it.
#[derive(Debug, Clone)]
pub struct AccountHealth<'a> {
    pub account: &'a Account,
    pub models: &'a [ModelState],
}

/// Everything health looks at.
#[derive(Debug, Clone, Default)]
pub struct HealthInput<'a> {
    pub accounts: Vec<AccountHealth<'a>>,
    /// The last `poll` that ended ok or partial.
    pub last_successful_poll: Option<DateTime<Utc>>,
    /// Webhooks received but not applied yet, and when the oldest arrived.
    pub inbox_pending: u64,
    pub inbox_oldest: Option<DateTime<Utc>>,
}

/// Thresholds; `max_lag: None` derives one per account from its cadence.
#[derive(Debug, Clone)]
pub struct HealthOptions {
    pub max_lag: Option<Duration>,
    pub max_failures: u32,
    pub max_inbox_age: Duration,
}

impl Default for HealthOptions {
    fn default() -> Self {
        HealthOptions {
            max_lag: None,
            max_failures: DEFAULT_MAX_FAILURES,
            max_inbox_age: DEFAULT_MAX_INBOX_AGE,
        }
    }
}

/// What is wrong, in one line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    /// `lag`, `stale`, `failing`, `token_rejected`, `hook_failed`, `inbox_backlog`, `no_poll`.
    pub kind: &'static str,
    pub linked_account_id: Option<String>,
    pub model_id: Option<String>,
    pub message: String,
}

fn ago(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    format!("{} ago", crate::report::human_duration(now - t))
}

/// Every problem at `now`, accounts in the order given. A disabled account is never one.
pub fn check(input: &HealthInput, options: &HealthOptions, now: DateTime<Utc>) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut loosest: Option<Duration> = None;
    for a in &input.accounts {
        let account = a.account;
        if account.status == AccountStatus::Disabled {
            continue;
        }
        let id = &account.linked_account_id;
        let problem = |kind, model: Option<&str>, message: String| Problem {
            kind,
            linked_account_id: Some(id.clone()),
            model_id: model.map(str::to_owned),
            message,
        };
        let max_lag = options
            .max_lag
            .unwrap_or_else(|| default_max_lag(cadence(a.models)));
        loosest = loosest.max(Some(max_lag));
        let human = crate::report::human_duration;

        let error = account.last_error.as_deref().unwrap_or("");
        if account.consecutive_failures > 0 && error.contains(TOKEN_REJECTED) {
            problems.push(problem(
                "token_rejected",
                None,
                format!(
                    "{id}: Merge rejects its account token — relink it with `merge-sync accounts add \
                     --account-token NEW --category {}`",
                    account.category
                ),
            ));
        } else if account.consecutive_failures >= options.max_failures.max(1) {
            problems.push(problem(
                "failing",
                None,
                format!(
                    "{id}: {} passes failed in a row: {error}",
                    account.consecutive_failures
                ),
            ));
        }
        if let Some(e) = &account.hook_error {
            problems.push(problem(
                "hook_failed",
                None,
                format!("{id}: the initial-sync hook failed: {e}"),
            ));
        }
        if let Some(t) = account.last_success_at.filter(|t| now - *t > max_lag) {
            problems.push(problem(
                "stale",
                None,
                format!(
                    "{id}: no successful sync for {} (since {}; max {})",
                    human(now - t),
                    crate::time::format(t),
                    human(max_lag)
                ),
            ));
        }
        for m in a.models.iter().filter(|m| is_mirrored(account, m)) {
            if let Some(lag) = model_lag(m, now).filter(|l| *l > max_lag) {
                problems.push(problem(
                    "lag",
                    Some(&m.model_id),
                    format!(
                        "{id} {}: the mirror is {} behind Merge's last finished sync (max {})",
                        m.model_id,
                        human(lag),
                        human(max_lag)
                    ),
                ));
            }
        }
    }

    let any_active = input
        .accounts
        .iter()
        .any(|a| a.account.status == AccountStatus::Active);
    if let (true, Some(max_lag)) = (any_active, options.max_lag.or(loosest)) {
        match input.last_successful_poll {
            None => problems.push(Problem {
                kind: "no_poll",
                linked_account_id: None,
                model_id: None,
                message: "no successful `merge-sync poll` on record; is the cron job running?"
                    .into(),
            }),
            Some(t) if now - t > max_lag => problems.push(Problem {
                kind: "no_poll",
                linked_account_id: None,
                model_id: None,
                message: format!(
                    "the last successful `merge-sync poll` ended {} (max {}); is the cron job running?",
                    ago(t, now),
                    crate::report::human_duration(max_lag)
                ),
            }),
            Some(_) => {}
        }
    }
    if let Some(oldest) = input
        .inbox_oldest
        .filter(|t| input.inbox_pending > 0 && now - *t > options.max_inbox_age)
    {
        problems.push(Problem {
            kind: "inbox_backlog",
            linked_account_id: None,
            model_id: None,
            message: format!(
                "{} webhooks wait in the inbox, the oldest received {}; `merge-sync poll` or \
                 `serve` applies them",
                input.inbox_pending,
                ago(oldest, now)
            ),
        });
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn now() -> DateTime<Utc> {
        crate::time::parse("2026-12-03T12:00:00Z").unwrap()
    }

    fn at(offset_minutes: i64) -> Option<DateTime<Utc>> {
        Some(now() + Duration::minutes(offset_minutes))
    }

    fn account(id: &str) -> Account {
        Account {
            linked_account_id: id.into(),
            end_user_origin_id: None,
            category: "hris".into(),
            integration_slug: None,
            account_token: Secret::new("tok_secret_123456"),
            status: AccountStatus::Active,
            models: None,
            initial_sync_complete: true,
            initial_sync_started_at: None,
            initial_sync_completed_at: None,
            next_poll_at: None,
            consecutive_failures: 0,
            last_error: None,
            last_polled_at: None,
            hook_error: None,
            last_checked_at: None,
            last_success_at: None,
        }
    }

    /// A model Merge syncs hourly, last finished `merge_finished` minutes from now, of which
    /// we hold the sync that finished `have` minutes from now.
    fn model(merge_finished: i64, have: Option<i64>) -> ModelState {
        ModelState {
            model_id: "hris.Employee".into(),
            status: Some("DONE".into()),
            last_sync_result: Some("DONE".into()),
            ready: true,
            merge_last_sync_start: at(merge_finished - 5),
            merge_next_sync_start: at(merge_finished + 55),
            reported_last_sync_finished: at(merge_finished),
            merge_last_sync_finished: have.and_then(at),
            ..Default::default()
        }
    }

    fn kinds(problems: &[Problem]) -> Vec<&'static str> {
        problems.iter().map(|p| p.kind).collect()
    }

    #[test]
    fn lag_is_merges_newest_finished_sync_minus_ours() {
        assert_eq!(
            model_lag(&model(-10, Some(-10)), now()),
            Some(Duration::zero())
        );
        assert_eq!(
            model_lag(&model(-10, Some(-190)), now()),
            Some(Duration::hours(3))
        );
        // Never fetched: the time since Merge finished.
        assert_eq!(
            model_lag(&model(-30, None), now()),
            Some(Duration::minutes(30))
        );
        // A webhook's newer news counts.
        let mut hinted = model(-100, Some(-100));
        hinted.hinted_last_sync_finished = at(-40);
        assert_eq!(model_lag(&hinted, now()), Some(Duration::minutes(60)));
        // A failed sync is not data we are missing.
        let mut failed = model(-10, Some(-70));
        failed.status = Some("FAILED".into());
        failed.last_sync_result = Some("FAILED".into());
        assert_eq!(model_lag(&failed, now()), None);
        // Initial sync still running: no lag yet.
        let mut initial = model(-10, None);
        initial.ready = false;
        assert_eq!(model_lag(&initial, now()), None);
    }

    #[test]
    fn the_default_max_lag_follows_merges_cadence() {
        let hourly = cadence(&[model(-10, None)]);
        assert_eq!(hourly, Some(Duration::hours(1)));
        assert_eq!(default_max_lag(hourly), Duration::minutes(120));
        assert_eq!(
            default_max_lag(None),
            Duration::hours(36) + Duration::minutes(30)
        );
    }

    /// Accounts whose last successful pass was at the given offset.
    fn with_success(
        accounts: Vec<(Account, Vec<ModelState>, Option<DateTime<Utc>>)>,
    ) -> Vec<(Account, Vec<ModelState>)> {
        accounts
            .into_iter()
            .map(|(mut a, m, success)| {
                a.last_success_at = success;
                (a, m)
            })
            .collect()
    }

    fn input(accounts: &[(Account, Vec<ModelState>)]) -> HealthInput<'_> {
        HealthInput {
            accounts: accounts
                .iter()
                .map(|(a, m)| AccountHealth {
                    account: a,
                    models: m,
                })
                .collect(),
            last_successful_poll: at(-5),
            inbox_pending: 0,
            inbox_oldest: None,
        }
    }

    #[test]
    fn a_healthy_account_has_no_problem() {
        let rows = with_success(vec![(account("la1"), vec![model(-10, Some(-10))], at(-5))]);
        assert!(check(&input(&rows), &HealthOptions::default(), now()).is_empty());
    }

    #[test]
    fn a_stale_mirror_is_a_lag_problem_against_the_cadence_or_the_flag() {
        // Hourly cadence: 3 hours behind is more than the derived 2 hours.
        let rows = with_success(vec![(account("la1"), vec![model(-10, Some(-190))], at(-5))]);
        let problems = check(&input(&rows), &HealthOptions::default(), now());
        assert_eq!(kinds(&problems), ["lag"]);
        assert!(problems[0]
            .message
            .starts_with("la1 hris.Employee: the mirror is 3h 0m behind"));
        let lenient = HealthOptions {
            max_lag: Some(Duration::hours(4)),
            ..Default::default()
        };
        assert!(check(&input(&rows), &lenient, now()).is_empty());
        // No successful pass for longer than the lag allows.
        let rows = with_success(vec![(
            account("la1"),
            vec![model(-10, Some(-10))],
            at(-300),
        )]);
        assert_eq!(
            kinds(&check(&input(&rows), &HealthOptions::default(), now())),
            ["stale"]
        );
    }

    #[test]
    fn failing_accounts_rejected_tokens_and_failed_hooks_are_problems() {
        let mut failing = account("la1");
        failing.consecutive_failures = 3;
        failing.last_error = Some("HTTP 500 on /hris/v1/employees".into());
        let mut once = account("la2");
        once.consecutive_failures = 1;
        once.last_error = Some("HTTP 500".into());
        let mut revoked = account("la3");
        revoked.consecutive_failures = 1;
        revoked.last_error =
            Some("account token rejected — relink or update the token (HTTP 401 ...)".into());
        let mut hook = account("la4");
        hook.hook_error = Some("exit status 3".into());
        let rows = with_success(vec![
            (failing, vec![], at(-5)),
            (once, vec![], at(-5)),
            (revoked, vec![], at(-5)),
            (hook, vec![], at(-5)),
        ]);
        let problems = check(&input(&rows), &HealthOptions::default(), now());
        assert_eq!(
            kinds(&problems),
            ["failing", "token_rejected", "hook_failed"]
        );
        assert!(
            problems[1].message.contains("relink"),
            "{}",
            problems[1].message
        );
        assert!(!problems.iter().any(|p| p.message.contains("tok_secret")));
    }

    #[test]
    fn a_disabled_account_is_never_a_problem() {
        let mut a = account("la1");
        a.status = AccountStatus::Disabled;
        a.consecutive_failures = 9;
        a.last_error = Some("account token rejected".into());
        a.hook_error = Some("boom".into());
        let rows = with_success(vec![(a, vec![model(-10, Some(-5000))], at(-9000))]);
        let mut i = input(&rows);
        i.last_successful_poll = None;
        assert!(check(&i, &HealthOptions::default(), now()).is_empty());
    }

    #[test]
    fn no_recent_poll_and_an_old_inbox_backlog_are_problems() {
        let rows = with_success(vec![(account("la1"), vec![model(-10, Some(-10))], at(-5))]);
        let mut i = input(&rows);
        i.last_successful_poll = at(-600);
        i.inbox_pending = 4;
        i.inbox_oldest = at(-20);
        let problems = check(&i, &HealthOptions::default(), now());
        assert_eq!(kinds(&problems), ["no_poll", "inbox_backlog"]);
        assert!(problems[1].message.starts_with("4 webhooks wait"));
        i.last_successful_poll = None;
        i.inbox_oldest = at(-2);
        assert_eq!(
            kinds(&check(&i, &HealthOptions::default(), now())),
            ["no_poll"]
        );
    }
}
