//! Detection and planning (README, How syncing works): from stored state, Merge's sync-status and `now`,
//! decide which models are ready, whether the account's initial sync just completed, which
//! windows to fetch and when to poll next. Pure: no I/O, no clock.

use chrono::{DateTime, Duration, Utc};

use crate::merge::catalog;
use crate::merge::models::SyncStatus;
use crate::store::{Account, ModelState, ObservedStatus};

/// How much each window reaches back before the previous one's upper bound. Merge does not
/// document whether its bounds are inclusive; the overlap makes that moot, and the upsert
/// absorbs the re-read records.
pub const DEFAULT_OVERLAP: Duration = Duration::seconds(1);

/// How far a reported time may run ahead of our own clock when no `Date` header tells us
/// Merge's: room for ordinary clock skew, small enough that the overlap absorbs most of it.
pub const CLOCK_TOLERANCE: Duration = Duration::seconds(5);

/// The resolution of an HTTP `Date` header: whole seconds.
const DATE_RESOLUTION: Duration = Duration::seconds(1);

/// A reported finish time as a window bound: never past what Merge's clock has reached, by
/// the `Date` header of its sync-status response (`merge_time`); without one, by our clock
/// (`now`) plus [`CLOCK_TOLERANCE`]. Returns the bound and whether the report was capped.
///
/// A bound past Merge's clock would freeze the model: Merge keeps writing records stamped
/// before it, and every later window starts after it, so those records are skipped for good.
/// So a report later than the clock is cut to the clock's reading, never to a guess beyond
/// it. A report within the header's second is consistent with it (the header is truncated
/// to whole seconds, and Merge's clock had reached the report when it sent it) and is kept.
pub fn cap_bound(
    reported: DateTime<Utc>,
    merge_time: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> (DateTime<Utc>, bool) {
    let (clock, slack) = match merge_time {
        Some(t) => (t, DATE_RESOLUTION),
        None => (now + CLOCK_TOLERANCE, Duration::zero()),
    };
    if reported <= clock + slack {
        (reported, false)
    } else {
        (clock, true)
    }
}

/// Whether a webhook's `last_sync_finished` is worth keeping as a hint, judged at our clock
/// `now`. One over a day ahead is a broken report, not skew. A hint kept is capped like any
/// report when a pass plans its window ([`cap_bound`], at Merge's clock from sync-status):
/// the webhook itself carries no reading of Merge's clock, and ours may differ from it.
pub fn hint_is_plausible(reported: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    reported <= now + Duration::days(1)
}

/// A reported `last_sync_finished` that was later than Merge's clock, and the bound used.
#[derive(Debug, Clone, PartialEq)]
pub struct CappedReport {
    pub model_id: String,
    pub reported: DateTime<Utc>,
    pub bound: DateTime<Utc>,
}

/// One `modified_after`/`modified_before` window, possibly resumed at a saved cursor.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub after: Option<DateTime<Utc>>,
    pub before: DateTime<Utc>,
    pub cursor: Option<String>,
    /// What the model's high-water mark (`merge_last_sync_finished`) becomes once the
    /// window's last page is written: never lower than what earlier windows covered, so the
    /// mark only moves forward whatever order windows finish in.
    pub high_water: DateTime<Utc>,
}

/// What to fetch for one model, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct FetchPlan {
    pub model_id: String,
    pub path: String,
    /// Whether the endpoint takes `modified_after`/`modified_before`; without them every
    /// window re-reads the whole model.
    pub filtered: bool,
    pub include_deleted: bool,
    pub windows: Vec<Window>,
}

/// A model we know about but do not fetch this time, and why (shown in `status`).
#[derive(Debug, Clone, PartialEq)]
pub struct Skip {
    pub model_id: String,
    pub reason: String,
}

/// The outcome of detection for one account.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountPlan {
    pub observed: Vec<ObservedStatus>,
    pub models_enabled: usize,
    pub models_ready: usize,
    /// Every enabled model is ready and the account was not complete before.
    pub initial_sync_completed_now: bool,
    pub fetches: Vec<FetchPlan>,
    pub skips: Vec<Skip>,
    /// Models asked for by name (`fetch --model`) that Merge does not sync for this account:
    /// not in its sync-status, or `DISABLED`. Asking for one is a mistake to report.
    pub unavailable: Vec<Skip>,
    /// Reports later than Merge's clock, fetched only up to it (the caller warns).
    pub capped: Vec<CappedReport>,
    pub next_poll_at: DateTime<Utc>,
}

/// How to plan the windows.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// Re-read everything up to the latest finished sync (no lower bound).
    pub full: bool,
    /// Only these models (empty = all).
    pub only_models: Vec<String>,
    pub overlap: Option<Duration>,
}

pub(crate) fn is_ok_result(s: Option<&str>) -> bool {
    matches!(s, Some("DONE") | Some("PARTIALLY_SYNCED"))
}

/// The result that describes the newest finished run: while a sync is running or paused,
/// `status` says so and `last_sync_result` describes the previous run.
pub fn effective_result<'a>(
    status: Option<&'a str>,
    last_sync_result: Option<&'a str>,
) -> Option<&'a str> {
    match status {
        // A terminal status is the newest run's result; anything else (SYNCING, PAUSED, or a
        // status Merge adds later) leaves the previous run's result in `last_sync_result`.
        Some(s @ ("DONE" | "PARTIALLY_SYNCED" | "FAILED")) => Some(s),
        _ => last_sync_result,
    }
}

/// One entry per model. Should Merge list a model twice, the entry that is enabled and
/// finished most recently wins, so a stale duplicate cannot hide news.
fn dedup_statuses(statuses: &[SyncStatus]) -> Vec<&SyncStatus> {
    let mut sorted: Vec<&SyncStatus> = statuses.iter().collect();
    sorted.sort_by(|a, b| {
        a.model_id.cmp(&b.model_id).then_with(|| {
            let rank = |s: &SyncStatus| {
                (
                    s.status.as_deref() != Some("DISABLED"),
                    s.last_sync_finished,
                )
            };
            rank(b).cmp(&rank(a))
        })
    });
    sorted.dedup_by(|later, first| later.model_id == first.model_id);
    sorted
}

/// Plans one account's pass. `merge_time` is Merge's clock from the sync-status response
/// (its `Date` header), `now` ours; no window ends past Merge's clock ([`cap_bound`]).
pub fn plan_account(
    account: &Account,
    stored: &[ModelState],
    statuses: &[SyncStatus],
    merge_time: Option<DateTime<Utc>>,
    options: &PlanOptions,
    now: DateTime<Utc>,
) -> AccountPlan {
    let overlap = options.overlap.unwrap_or(DEFAULT_OVERLAP);
    let mut observed = Vec::new();
    let mut fetches = Vec::new();
    let mut skips = Vec::new();
    let mut capped = Vec::new();
    let mut cadence: Option<Duration> = None;

    for st in dedup_statuses(statuses) {
        let status = st.status.clone().unwrap_or_else(|| "UNKNOWN".to_string());
        if status == "DISABLED" || !account.wants_model(&st.model_id) {
            continue;
        }
        let prev = stored.iter().find(|m| m.model_id == st.model_id);
        // A model's initial sync is complete when it is DONE or no longer initial (the OR
        // rule); once confirmed (also by a webhook), it stays confirmed.
        let is_initial = st.is_initial_sync.unwrap_or(true);
        let ready = prev.is_some_and(|p| p.ready) || status == "DONE" || !is_initial;
        observed.push(ObservedStatus {
            model_id: st.model_id.clone(),
            status: status.clone(),
            last_sync_result: st.last_sync_result.clone(),
            is_initial_sync: is_initial,
            ready,
            last_sync_start: st.last_sync_start,
            next_sync_start: st.next_sync_start,
            last_sync_finished: st.last_sync_finished,
        });
        if let (Some(start), Some(next)) = (st.last_sync_start, st.next_sync_start) {
            let c = next - start;
            if c > Duration::zero() {
                cadence = Some(cadence.map_or(c, |old| old.min(c)));
            }
        }

        if !options.only_models.is_empty() && !options.only_models.contains(&st.model_id) {
            continue;
        }
        let skip = |reason: &str| Skip {
            model_id: st.model_id.clone(),
            reason: reason.to_string(),
        };
        if !ready {
            skips.push(skip("initial sync still running"));
            continue;
        }
        let Some(info) = catalog::find(&st.model_id).filter(|i| i.is_listable()) else {
            skips.push(skip("no list endpoint known for this model"));
            continue;
        };

        let result = effective_result(st.status.as_deref(), st.last_sync_result.as_deref());
        let reported = if is_ok_result(result) {
            st.last_sync_finished
        } else {
            None
        };
        let hinted = prev.and_then(|p| p.hinted_last_sync_finished);
        // Each capped on its own: a hint ahead of the clock must not hide a report behind it.
        let mut cap = |t: DateTime<Utc>| {
            let (bound, was_capped) = cap_bound(t, merge_time, now);
            if was_capped {
                capped.push(CappedReport {
                    model_id: st.model_id.clone(),
                    reported: t,
                    bound,
                });
            }
            bound
        };
        let target = reported.map(&mut cap).max(hinted.map(&mut cap));
        let have = prev.and_then(|p| p.merge_last_sync_finished);
        let resume = prev.and_then(|p| match (&p.cursor, p.window_before) {
            (Some(c), Some(before)) => Some(Window {
                after: p.window_after,
                before,
                cursor: Some(c.clone()),
                high_water: before.max(have.unwrap_or(before)),
            }),
            _ => None,
        });

        let mut windows = Vec::new();
        if options.full {
            if let Some(b) = target.max(have) {
                windows.push(Window {
                    after: None,
                    before: b,
                    cursor: None,
                    high_water: b,
                });
            }
        } else {
            // Finish an interrupted window first; its bound is already promised.
            let mut covered = have;
            if let Some(w) = resume {
                covered = covered.max(Some(w.before));
                windows.push(w);
            }
            if let Some(b) = target {
                if covered.is_none_or(|c| b > c) {
                    windows.push(Window {
                        after: covered.map(|c| c - overlap),
                        before: b,
                        cursor: None,
                        high_water: b,
                    });
                }
            }
        }

        if windows.is_empty() {
            let reason = match (result, st.last_sync_finished) {
                (Some("FAILED"), _) => "last sync FAILED; waiting for a successful one",
                (_, None) if hinted.is_none() => "no finished sync yet",
                (r, _) if !is_ok_result(r) && hinted.is_none() => {
                    "last result is not DONE or PARTIALLY_SYNCED"
                }
                _ => "up to date",
            };
            skips.push(skip(reason));
            continue;
        }
        fetches.push(FetchPlan {
            model_id: st.model_id.clone(),
            path: info.path.clone(),
            filtered: info.supports_modified_filter,
            include_deleted: info.supports_include_deleted,
            windows,
        });
    }

    let unavailable = options
        .only_models
        .iter()
        .filter_map(|wanted| {
            let reason = match statuses.iter().find(|st| &st.model_id == wanted) {
                None => "Merge's sync-status does not list it for this account",
                Some(st) if st.status.as_deref() == Some("DISABLED") => {
                    "Merge reports it DISABLED for this account"
                }
                Some(_) => return None,
            };
            Some(Skip {
                model_id: wanted.clone(),
                reason: reason.to_string(),
            })
        })
        .collect();

    let models_enabled = observed.len();
    let models_ready = observed.iter().filter(|o| o.ready).count();
    let complete = models_enabled > 0 && models_ready == models_enabled;
    let initial_sync_completed_now = complete && !account.initial_sync_complete;
    let next_poll_at = now + poll_interval(account.initial_sync_complete || complete, cadence);

    AccountPlan {
        observed,
        models_enabled,
        models_ready,
        initial_sync_completed_now,
        fetches,
        skips,
        unavailable,
        capped,
        next_poll_at,
    }
}

/// When an account that just passed is next due: `scheduled`, unless a webhook announced a
/// finished sync of a ready, enabled model that the mirror does not hold yet (it arrived
/// during the pass): then it stays due now (`None`). `states` are read in the same
/// transaction that stores the answer, so a hint cannot slip in between.
pub fn next_poll_after_success(
    states: &[ModelState],
    scheduled: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let hint_pending = states.iter().any(|m| {
        m.ready
            && m.status.as_deref().is_some_and(|s| s != "DISABLED")
            && m.hinted_last_sync_finished
                .is_some_and(|hinted| m.merge_last_sync_finished.is_none_or(|have| hinted > have))
    });
    (!hint_pending).then_some(scheduled)
}

/// A webhook's news merged into a model's stored state: `(hinted_last_sync_finished, ready)`.
/// The hint only moves forward (late or duplicate deliveries change nothing) and readiness
/// never goes back.
pub fn merge_hint(
    prev: Option<&ModelState>,
    finished: DateTime<Utc>,
    ready: bool,
) -> (DateTime<Utc>, bool) {
    let hinted = prev
        .and_then(|p| p.hinted_last_sync_finished)
        .map_or(finished, |h| h.max(finished));
    (hinted, ready || prev.is_some_and(|p| p.ready))
}

/// Whether a webhook's news makes the account due now. An account backing off after failures
/// keeps its backoff: the webhook's hint waits for the next attempt.
pub fn due_on_webhook(account: &Account) -> bool {
    account.consecutive_failures == 0
}

/// How long until the next scheduled poll (README, Scheduling): every 10 minutes during the initial
/// sync; after it, every 5 minutes when Merge syncs more often than hourly, else every 30.
pub fn poll_interval(initial_sync_complete: bool, cadence: Option<Duration>) -> Duration {
    if !initial_sync_complete {
        return Duration::minutes(10);
    }
    match cadence {
        Some(c) if c < Duration::hours(1) => Duration::minutes(5),
        _ => Duration::minutes(30),
    }
}

/// Backoff after `failures` consecutive failed passes: 1 minute doubling to 1 hour.
pub fn failure_backoff(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(6);
    Duration::minutes(1 << exp).min(Duration::hours(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use crate::store::AccountStatus;

    fn now() -> DateTime<Utc> {
        crate::time::parse("2026-11-29T12:00:00Z").unwrap()
    }

    fn t(s: &str) -> DateTime<Utc> {
        crate::time::parse(s).unwrap()
    }

    fn account(complete: bool) -> Account {
        Account {
            linked_account_id: "la1".into(),
            end_user_origin_id: None,
            category: "hris".into(),
            integration_slug: None,
            account_token: Secret::new("tok"),
            status: AccountStatus::Active,
            models: None,
            initial_sync_complete: complete,
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

    fn st(
        model: &str,
        status: &str,
        initial: bool,
        result: Option<&str>,
        finished: Option<&str>,
    ) -> SyncStatus {
        SyncStatus {
            model_id: model.into(),
            model_name: None,
            status: Some(status.into()),
            last_sync_result: result.map(Into::into),
            is_initial_sync: Some(initial),
            last_sync_start: None,
            next_sync_start: None,
            last_sync_finished: finished.map(t),
        }
    }

    fn stored(model: &str, ready: bool, have: Option<&str>) -> ModelState {
        ModelState {
            model_id: model.into(),
            ready,
            merge_last_sync_finished: have.map(t),
            ..Default::default()
        }
    }

    #[test]
    fn readiness_follows_the_or_rule_and_skips_disabled() {
        // (status, is_initial_sync, expected ready)
        let cases = [
            ("DONE", true, true),
            ("SYNCING", false, true),
            ("SYNCING", true, false),
            ("FAILED", true, false),
            ("PARTIALLY_SYNCED", true, false),
            ("PAUSED", false, true),
            ("SOMETHING_NEW", true, false),
        ];
        for (status, initial, expected) in cases {
            let statuses = [
                st("hris.Employee", status, initial, None, None),
                st("hris.Group", "DISABLED", true, None, None),
            ];
            let plan = plan_account(
                &account(false),
                &[],
                &statuses,
                None,
                &PlanOptions::default(),
                now(),
            );
            assert_eq!(plan.models_enabled, 1, "DISABLED must not count");
            assert_eq!(
                plan.observed[0].ready, expected,
                "{status} initial={initial}"
            );
            assert_eq!(
                plan.initial_sync_completed_now, expected,
                "{status} initial={initial}"
            );
            assert_eq!(plan.observed[0].status, status, "unknown statuses are kept");
        }
    }

    #[test]
    fn initial_sync_completes_only_when_every_enabled_model_is_ready() {
        let statuses = [
            st(
                "hris.Employee",
                "DONE",
                true,
                Some("DONE"),
                Some("2026-11-29T11:00:00Z"),
            ),
            st("hris.Employment", "SYNCING", true, None, None),
        ];
        let plan = plan_account(
            &account(false),
            &[],
            &statuses,
            None,
            &PlanOptions::default(),
            now(),
        );
        assert!(!plan.initial_sync_completed_now);
        assert_eq!((plan.models_ready, plan.models_enabled), (1, 2));
        // The ready model is fetched already; the other waits.
        assert_eq!(plan.fetches.len(), 1);
        assert_eq!(plan.fetches[0].model_id, "hris.Employee");
        assert_eq!(plan.next_poll_at, now() + Duration::minutes(10));

        // Already complete: never "completed now" again.
        let done = [st(
            "hris.Employee",
            "DONE",
            false,
            Some("DONE"),
            Some("2026-11-29T11:00:00Z"),
        )];
        assert!(
            !plan_account(
                &account(true),
                &[],
                &done,
                None,
                &PlanOptions::default(),
                now()
            )
            .initial_sync_completed_now
        );
        // An account with no enabled model is not complete.
        let none = [st("hris.Employee", "DISABLED", true, None, None)];
        assert!(
            !plan_account(
                &account(false),
                &[],
                &none,
                None,
                &PlanOptions::default(),
                now()
            )
            .initial_sync_completed_now
        );
    }

    #[test]
    fn windows_are_contiguous_on_merges_clock() {
        // (stored bound, status, last_sync_result, last_sync_finished, expected windows as (after, before))
        let b1 = "2026-11-29T10:00:00Z";
        let b2 = "2026-11-29T11:00:00Z";
        type Case<'a> = (
            Option<&'a str>,
            &'a str,
            Option<&'a str>,
            Option<&'a str>,
            Vec<(Option<&'a str>, &'a str)>,
        );
        let cases: Vec<Case> = vec![
            // first run: no lower bound
            (None, "DONE", Some("DONE"), Some(b1), vec![(None, b1)]),
            // newer finished sync: from the previous bound minus the overlap
            (
                Some(b1),
                "DONE",
                Some("DONE"),
                Some(b2),
                vec![(Some("2026-11-29T09:59:59Z"), b2)],
            ),
            // nothing newer
            (Some(b2), "DONE", Some("DONE"), Some(b2), vec![]),
            // clock skew: Merge reports an older finish than we hold — never go backwards
            (Some(b2), "DONE", Some("DONE"), Some(b1), vec![]),
            // running: the previous run's result decides
            (
                Some(b1),
                "SYNCING",
                Some("DONE"),
                Some(b2),
                vec![(Some("2026-11-29T09:59:59Z"), b2)],
            ),
            (
                Some(b1),
                "PAUSED",
                Some("PARTIALLY_SYNCED"),
                Some(b2),
                vec![(Some("2026-11-29T09:59:59Z"), b2)],
            ),
            (Some(b1), "SYNCING", Some("FAILED"), Some(b2), vec![]),
            (Some(b1), "FAILED", Some("FAILED"), Some(b2), vec![]),
            (
                Some(b1),
                "PARTIALLY_SYNCED",
                None,
                Some(b2),
                vec![(Some("2026-11-29T09:59:59Z"), b2)],
            ),
            // a null last_sync_finished means nothing is ready yet
            (None, "DONE", Some("DONE"), None, vec![]),
        ];
        for (have, status, result, finished, expected) in cases {
            let statuses = [st("hris.Employee", status, false, result, finished)];
            let stored = [stored("hris.Employee", true, have)];
            let plan = plan_account(
                &account(true),
                &stored,
                &statuses,
                None,
                &PlanOptions::default(),
                now(),
            );
            let got: Vec<(Option<DateTime<Utc>>, DateTime<Utc>)> = plan
                .fetches
                .iter()
                .flat_map(|f| f.windows.iter().map(|w| (w.after, w.before)))
                .collect();
            let want: Vec<_> = expected.iter().map(|(a, b)| (a.map(t), t(b))).collect();
            assert_eq!(
                got, want,
                "have={have:?} {status}/{result:?} finished={finished:?}"
            );
        }
    }

    #[test]
    fn an_interrupted_window_is_resumed_before_a_newer_one() {
        let mut s = stored("hris.Employee", true, Some("2026-11-29T09:00:00Z"));
        s.cursor = Some("c2".into());
        s.window_after = Some(t("2026-11-29T08:59:59Z"));
        s.window_before = Some(t("2026-11-29T10:00:00Z"));
        let statuses = [st(
            "hris.Employee",
            "DONE",
            false,
            Some("DONE"),
            Some("2026-11-29T11:00:00Z"),
        )];
        let plan = plan_account(
            &account(true),
            &[s],
            &statuses,
            None,
            &PlanOptions::default(),
            now(),
        );
        let w = &plan.fetches[0].windows;
        assert_eq!(w.len(), 2);
        assert_eq!(w[0].cursor.as_deref(), Some("c2"));
        assert_eq!(w[0].before, t("2026-11-29T10:00:00Z"));
        assert_eq!(w[1].after, Some(t("2026-11-29T09:59:59Z")));
        assert_eq!(w[1].cursor, None);
    }

    #[test]
    fn a_webhook_hint_makes_a_newer_window_and_full_rereads_everything() {
        let mut s = stored("hris.Employee", true, Some("2026-11-29T10:00:00Z"));
        s.hinted_last_sync_finished = Some(t("2026-11-29T11:30:00Z"));
        let statuses = [st(
            "hris.Employee",
            "SYNCING",
            false,
            Some("DONE"),
            Some("2026-11-29T10:00:00Z"),
        )];
        let plan = plan_account(
            &account(true),
            std::slice::from_ref(&s),
            &statuses,
            None,
            &PlanOptions::default(),
            now(),
        );
        assert_eq!(plan.fetches[0].windows[0].before, t("2026-11-29T11:30:00Z"));

        let full = PlanOptions {
            full: true,
            ..Default::default()
        };
        let plan = plan_account(&account(true), &[s], &statuses, None, &full, now());
        assert_eq!(
            plan.fetches[0].windows,
            vec![Window {
                after: None,
                before: t("2026-11-29T11:30:00Z"),
                cursor: None,
                high_water: t("2026-11-29T11:30:00Z"),
            }]
        );
    }

    #[test]
    fn schedule_follows_the_sync_cadence() {
        assert_eq!(poll_interval(false, None), Duration::minutes(10));
        assert_eq!(
            poll_interval(true, Some(Duration::minutes(15))),
            Duration::minutes(5)
        );
        assert_eq!(
            poll_interval(true, Some(Duration::hours(24))),
            Duration::minutes(30)
        );
        assert_eq!(poll_interval(true, None), Duration::minutes(30));
        let mut status = st(
            "hris.Employee",
            "DONE",
            false,
            Some("DONE"),
            Some("2026-11-29T11:00:00Z"),
        );
        status.last_sync_start = Some(t("2026-11-29T10:55:00Z"));
        status.next_sync_start = Some(t("2026-11-29T11:10:00Z"));
        let plan = plan_account(
            &account(true),
            &[],
            &[status],
            None,
            &PlanOptions::default(),
            now(),
        );
        assert_eq!(plan.next_poll_at, now() + Duration::minutes(5));
    }

    #[test]
    fn backoff_doubles_from_one_minute_to_one_hour() {
        let got: Vec<i64> = (1..=8).map(|n| failure_backoff(n).num_minutes()).collect();
        assert_eq!(got, vec![1, 2, 4, 8, 16, 32, 60, 60]);
    }

    #[test]
    fn a_duplicate_stale_entry_does_not_hide_a_finished_sync() {
        let statuses = [
            st("hris.Employee", "DISABLED", true, None, None),
            st(
                "hris.Employee",
                "DONE",
                false,
                Some("DONE"),
                Some("2026-11-29T11:00:00Z"),
            ),
            st(
                "hris.Employee",
                "DONE",
                false,
                Some("DONE"),
                Some("2026-11-29T10:00:00Z"),
            ),
        ];
        let plan = plan_account(
            &account(true),
            &[],
            &statuses,
            None,
            &PlanOptions::default(),
            now(),
        );
        assert_eq!(plan.observed.len(), 1);
        assert_eq!(plan.fetches[0].windows[0].before, t("2026-11-29T11:00:00Z"));
    }

    #[test]
    fn an_unknown_running_status_falls_back_to_the_previous_result() {
        let statuses = [st(
            "hris.Employee",
            "QUEUED",
            false,
            Some("DONE"),
            Some("2026-11-29T11:00:00Z"),
        )];
        let plan = plan_account(
            &account(true),
            &[],
            &statuses,
            None,
            &PlanOptions::default(),
            now(),
        );
        assert_eq!(plan.fetches.len(), 1);
        assert_eq!(plan.observed[0].status, "QUEUED");
    }

    #[test]
    fn models_outside_the_accounts_list_are_ignored() {
        let mut a = account(false);
        a.models = Some(vec!["hris.Employee".into()]);
        let statuses = [
            st(
                "hris.Employee",
                "DONE",
                true,
                Some("DONE"),
                Some("2026-11-29T11:00:00Z"),
            ),
            st("hris.Group", "SYNCING", true, None, None),
        ];
        let plan = plan_account(&a, &[], &statuses, None, &PlanOptions::default(), now());
        assert_eq!(plan.models_enabled, 1);
        assert!(plan.initial_sync_completed_now);
    }

    #[test]
    fn the_high_water_mark_never_goes_back() {
        // A resumed window whose bound is older than what is already covered (a `--full`
        // re-read interrupted after a newer window completed) must not lower the mark.
        let mut s = stored("hris.Employee", true, Some("2026-11-29T11:00:00Z"));
        s.cursor = Some("c2".into());
        s.window_before = Some(t("2026-11-29T10:00:00Z"));
        let statuses = [st(
            "hris.Employee",
            "DONE",
            false,
            Some("DONE"),
            Some("2026-11-29T11:30:00Z"),
        )];
        let plan = plan_account(
            &account(true),
            &[s],
            &statuses,
            None,
            &PlanOptions::default(),
            now(),
        );
        let w = &plan.fetches[0].windows;
        assert_eq!(w[0].before, t("2026-11-29T10:00:00Z"));
        assert_eq!(w[0].high_water, t("2026-11-29T11:00:00Z"));
        assert_eq!(w[1].high_water, t("2026-11-29T11:30:00Z"));
    }

    #[test]
    fn an_account_stays_due_while_a_newer_hint_is_pending() {
        let later = now() + Duration::minutes(30);
        let mut m = stored("hris.Employee", true, Some("2026-11-29T11:00:00Z"));
        m.status = Some("DONE".into());
        // (hinted, ready, status, expected next poll)
        let cases = [
            (None, true, "DONE", Some(later)),
            (Some("2026-11-29T10:00:00Z"), true, "DONE", Some(later)),
            (Some("2026-11-29T11:00:00Z"), true, "DONE", Some(later)),
            (Some("2026-11-29T11:30:00Z"), true, "DONE", None),
            (Some("2026-11-29T11:30:00Z"), false, "DONE", Some(later)),
            (Some("2026-11-29T11:30:00Z"), true, "DISABLED", Some(later)),
        ];
        for (hinted, ready, status, want) in cases {
            let mut m = m.clone();
            m.hinted_last_sync_finished = hinted.map(t);
            m.ready = ready;
            m.status = Some(status.into());
            assert_eq!(
                next_poll_after_success(&[m], later),
                want,
                "{hinted:?} {ready} {status}"
            );
        }
        let mut never_fetched = stored("hris.Employee", true, None);
        never_fetched.status = Some("SYNCING".into());
        never_fetched.hinted_last_sync_finished = Some(t("2026-11-29T09:00:00Z"));
        assert_eq!(next_poll_after_success(&[never_fetched], later), None);
    }

    #[test]
    fn a_hint_only_moves_forward_and_readiness_never_goes_back() {
        let mut prev = stored("hris.Employee", true, None);
        prev.hinted_last_sync_finished = Some(t("2026-11-29T11:00:00Z"));
        let older = t("2026-11-29T10:00:00Z");
        let newer = t("2026-11-29T11:30:00Z");
        assert_eq!(
            merge_hint(Some(&prev), older, false),
            (t("2026-11-29T11:00:00Z"), true)
        );
        assert_eq!(merge_hint(Some(&prev), newer, false), (newer, true));
        assert_eq!(merge_hint(None, older, false), (older, false));
        prev.ready = false;
        assert_eq!(merge_hint(Some(&prev), newer, true), (newer, true));
    }

    // Regression (hardening item 1): a future-dated last_sync_finished became a window bound,
    // and records Merge wrote later, stamped before it, were skipped for good.
    #[test]
    fn no_window_ends_past_merges_clock() {
        let merge_time = Some(t("2026-11-29T11:00:00Z"));
        // (reported finish, stored hint, expected bound, capped)
        let cases = [
            ("2026-11-29T10:59:00Z", None, "2026-11-29T10:59:00Z", false),
            // within the Date header's second: consistent with it, kept
            (
                "2026-11-29T11:00:00.900Z",
                None,
                "2026-11-29T11:00:00.900Z",
                false,
            ),
            ("2026-11-29T11:00:40Z", None, "2026-11-29T11:00:00Z", true),
            ("2027-11-29T11:00:00Z", None, "2026-11-29T11:00:00Z", true),
            // a hint is capped the same way
            (
                "2026-11-29T10:00:00Z",
                Some("2026-11-29T11:30:00Z"),
                "2026-11-29T11:00:00Z",
                true,
            ),
        ];
        for (finished, hint, bound, was_capped) in cases {
            let mut s = stored("hris.Employee", true, Some("2026-11-29T09:00:00Z"));
            s.hinted_last_sync_finished = hint.map(t);
            let statuses = [st(
                "hris.Employee",
                "DONE",
                false,
                Some("DONE"),
                Some(finished),
            )];
            let plan = plan_account(
                &account(true),
                &[s],
                &statuses,
                merge_time,
                &PlanOptions::default(),
                now(),
            );
            assert_eq!(plan.fetches[0].windows[0].before, t(bound), "{finished}");
            assert_eq!(!plan.capped.is_empty(), was_capped, "{finished}");
            // The reported value is kept for display.
            assert_eq!(plan.observed[0].last_sync_finished, Some(t(finished)));
        }
        // Without a Date header, our clock plus the tolerance.
        let statuses = [st(
            "hris.Employee",
            "DONE",
            false,
            Some("DONE"),
            Some("2026-11-29T13:00:00Z"),
        )];
        let plan = plan_account(
            &account(true),
            &[],
            &statuses,
            None,
            &PlanOptions::default(),
            now(),
        );
        assert_eq!(plan.fetches[0].windows[0].before, now() + CLOCK_TOLERANCE);
    }

    #[test]
    fn webhook_hints_over_a_day_ahead_are_ignored() {
        assert!(hint_is_plausible(t("2026-11-29T12:00:40Z"), now()));
        assert!(!hint_is_plausible(t("2027-01-01T00:00:00Z"), now()));
    }
}
