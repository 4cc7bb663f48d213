//! Run accounting: what one `poll`, `fetch` or `serve` pass did, and how it ended.

use std::fmt;
use std::time::Duration;

use super::poll::PollReport;
use crate::merge::RequestCounts;

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every account it synced succeeded (or there was nothing to do).
    Ok,
    /// Some accounts succeeded, some failed.
    Partial,
    /// Every account it tried failed, or the run itself failed.
    Failed,
    /// Stopped by SIGINT or SIGTERM.
    Interrupted,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Partial => "partial",
            Outcome::Failed => "failed",
            Outcome::Interrupted => "interrupted",
        }
    }

    pub fn parse(s: &str) -> Option<Outcome> {
        [
            Outcome::Ok,
            Outcome::Partial,
            Outcome::Failed,
            Outcome::Interrupted,
        ]
        .into_iter()
        .find(|o| o.as_str() == s)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The counts a run keeps.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunTotals {
    pub accounts_synced: u64,
    pub accounts_failed: u64,
    pub accounts_not_due: u64,
    pub accounts_busy: u64,
    pub records_written: u64,
    pub requests: u64,
    pub rate_limited: u64,
    pub retries: u64,
    pub first_error: Option<String>,
}

impl RunTotals {
    /// The totals of a poll report and the requests made during it.
    pub fn of_poll(report: &PollReport, requests: &RequestCounts) -> RunTotals {
        let mut t = RunTotals {
            accounts_not_due: report.not_due as u64,
            accounts_busy: report.locked.len() as u64,
            requests: requests.total(),
            rate_limited: requests.rate_limited(),
            retries: requests.retries,
            first_error: report.api_key_rejected.clone(),
            ..Default::default()
        };
        for o in &report.outcomes {
            match &o.result {
                Ok(summary) => {
                    t.accounts_synced += 1;
                    t.records_written += summary.records();
                }
                Err(e) => {
                    t.accounts_failed += 1;
                    if t.first_error.is_none() {
                        t.first_error = Some(format!("{}: {e}", o.linked_account_id));
                    }
                }
            }
        }
        t
    }

    /// How a run with these totals ended, unless it was interrupted or failed outright.
    pub fn outcome(&self) -> Outcome {
        match (self.accounts_synced, self.accounts_failed) {
            (_, 0) if self.first_error.is_none() => Outcome::Ok,
            (0, _) => Outcome::Failed,
            _ => Outcome::Partial,
        }
    }

    /// The one line `poll -v` ends with.
    pub fn summary_line(&self, command: &str, took: Duration) -> String {
        let mut line = format!(
            "{command} finished: {} accounts synced, {} failed, {} not due, {} busy elsewhere; \
             {} records written; {} requests",
            self.accounts_synced,
            self.accounts_failed,
            self.accounts_not_due,
            self.accounts_busy,
            self.records_written,
            self.requests
        );
        if self.rate_limited > 0 || self.retries > 0 {
            line.push_str(&format!(
                " ({} rate-limited, {} retried)",
                self.rate_limited, self.retries
            ));
        }
        line.push_str(&format!("; took {:.1}s", took.as_secs_f64()));
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::poll::AccountOutcome;
    use crate::sync::PassSummary;

    fn report(ok: usize, failed: usize) -> PollReport {
        let mut r = PollReport::default();
        for i in 0..ok {
            r.outcomes.push(AccountOutcome {
                linked_account_id: format!("ok{i}"),
                result: Ok(PassSummary::default()),
            });
        }
        for i in 0..failed {
            r.outcomes.push(AccountOutcome {
                linked_account_id: format!("bad{i}"),
                result: Err(format!("boom {i}")),
            });
        }
        r
    }

    #[test]
    fn outcome_is_ok_partial_or_failed_by_what_the_accounts_did() {
        let none = RequestCounts::default();
        assert_eq!(
            RunTotals::of_poll(&report(0, 0), &none).outcome(),
            Outcome::Ok
        );
        assert_eq!(
            RunTotals::of_poll(&report(2, 0), &none).outcome(),
            Outcome::Ok
        );
        assert_eq!(
            RunTotals::of_poll(&report(2, 1), &none).outcome(),
            Outcome::Partial
        );
        let failed = RunTotals::of_poll(&report(0, 2), &none);
        assert_eq!(failed.outcome(), Outcome::Failed);
        assert_eq!(failed.first_error.as_deref(), Some("bad0: boom 0"));
        let mut rejected = report(0, 0);
        rejected.api_key_rejected = Some("API key rejected".into());
        assert_eq!(
            RunTotals::of_poll(&rejected, &none).outcome(),
            Outcome::Failed
        );
    }

    #[test]
    fn summary_line_names_every_count() {
        let mut counts = RequestCounts::default();
        counts.by_status.insert("200".into(), 7);
        counts.by_status.insert("429".into(), 1);
        counts.retries = 1;
        let line = RunTotals::of_poll(&report(1, 1), &counts)
            .summary_line("poll", Duration::from_millis(1500));
        assert_eq!(
            line,
            "poll finished: 1 accounts synced, 1 failed, 0 not due, 0 busy elsewhere; \
             0 records written; 8 requests (1 rate-limited, 1 retried); took 1.5s"
        );
        for o in ["ok", "partial", "failed", "interrupted"] {
            assert_eq!(Outcome::parse(o).unwrap().as_str(), o);
        }
    }
}
