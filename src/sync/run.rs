//! Run accounting: what one `poll`, `fetch` or `serve` pass did, and how it ended.

use std::fmt;
use std::time::Duration;

use anyhow::Result;
use chrono::{DateTime, Utc};

use super::poll::PollReport;
use crate::merge::RequestCounts;
use crate::store::{Counter, RunRow, Store};

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
    /// The totals of a poll report, the requests made during it and the records its pages
    /// wrote (failed accounts' pages included).
    pub fn of_poll(
        report: &PollReport,
        requests: &RequestCounts,
        records_written: u64,
    ) -> RunTotals {
        let mut t = RunTotals::of_requests(requests);
        t.accounts_not_due = report.not_due as u64;
        t.accounts_busy = report.locked.len() as u64;
        t.records_written = records_written;
        t.first_error = report.api_key_rejected.clone();
        for o in &report.outcomes {
            match &o.result {
                Ok(_) => {
                    t.accounts_synced += 1;
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

    /// Totals with only the requests filled in.
    pub fn of_requests(requests: &RequestCounts) -> RunTotals {
        RunTotals {
            requests: requests.total(),
            rate_limited: requests.rate_limited(),
            retries: requests.retries,
            ..Default::default()
        }
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

/// How much run history is kept: runs younger than `days`, at most `max_runs` of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub days: u32,
    pub max_runs: usize,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            days: 30,
            max_runs: 10_000,
        }
    }
}

/// Records the start of a run (by this process, on this host) and prunes the history.
/// Returns the row [`finish_run`] completes.
pub fn start_run(
    store: &mut dyn Store,
    command: &str,
    run_id: &str,
    retention: Retention,
    now: DateTime<Utc>,
) -> Result<RunRow> {
    let row = RunRow {
        run_id: run_id.to_string(),
        command: command.to_string(),
        host: host_name(),
        pid: std::process::id(),
        started_at: now,
        ..Default::default()
    };
    store.start_run(&row)?;
    store.prune_runs(
        now - chrono::Duration::days(retention.days.into()),
        retention.max_runs,
    )?;
    Ok(row)
}

/// Records how a run ended, and adds its requests and records to the lifetime counters, in
/// one transaction.
pub fn finish_run(
    store: &mut dyn Store,
    started: &RunRow,
    totals: &RunTotals,
    requests: &RequestCounts,
    outcome: Outcome,
    now: DateTime<Utc>,
) -> Result<()> {
    let row = finished_row(started, totals, outcome, now);
    let mut counters: Vec<Counter> = requests
        .by_status
        .iter()
        .map(|(status, n)| Counter {
            name: "requests".into(),
            label: status.clone(),
            value: *n,
        })
        .collect();
    counters.push(Counter {
        name: "records_written".into(),
        label: String::new(),
        value: totals.records_written,
    });
    store.in_transaction(|tx| {
        tx.finish_run(&row)?;
        tx.add_counters(&counters)
    })
}

/// The history row of a run that ended with `totals` and `outcome` at `now`.
pub fn finished_row(
    started: &RunRow,
    totals: &RunTotals,
    outcome: Outcome,
    now: DateTime<Utc>,
) -> RunRow {
    RunRow {
        finished_at: Some(now),
        outcome: Some(outcome.as_str().to_string()),
        accounts_synced: totals.accounts_synced,
        accounts_failed: totals.accounts_failed,
        accounts_not_due: totals.accounts_not_due,
        accounts_busy: totals.accounts_busy,
        records_written: totals.records_written,
        requests: totals.requests,
        rate_limited: totals.rate_limited,
        retries: totals.retries,
        first_error: totals.first_error.clone(),
        ..started.clone()
    }
}

/// Where a run in the history stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    Finished(Outcome),
    /// Unfinished, and its process is alive on this host.
    Running,
    /// Unfinished on another host: it may be running there.
    ElsewhereUnfinished,
    /// Unfinished and its process is gone: killed (SIGKILL, power loss) before it could say.
    Killed,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Finished(o) => o.as_str(),
            RunState::Running => "running",
            // Killed, or still running on another host: either way, not a success.
            RunState::ElsewhereUnfinished | RunState::Killed => "unfinished",
        }
    }
}

/// Where `run` stands; `alive` tells whether a process id is alive on `this_host`.
pub fn run_state(run: &RunRow, this_host: &str, alive: &dyn Fn(u32) -> bool) -> RunState {
    match run.outcome.as_deref().and_then(Outcome::parse) {
        Some(o) if run.finished_at.is_some() => RunState::Finished(o),
        _ if run.host != this_host => RunState::ElsewhereUnfinished,
        _ if alive(run.pid) => RunState::Running,
        _ => RunState::Killed,
    }
}

/// This machine's name, as run rows record it.
pub fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it
    // when the name fits (the last byte is kept 0 in case it does not).
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len() - 1) };
    if rc != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
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
            RunTotals::of_poll(&report(0, 0), &none, 0).outcome(),
            Outcome::Ok
        );
        assert_eq!(
            RunTotals::of_poll(&report(2, 0), &none, 0).outcome(),
            Outcome::Ok
        );
        assert_eq!(
            RunTotals::of_poll(&report(2, 1), &none, 0).outcome(),
            Outcome::Partial
        );
        let failed = RunTotals::of_poll(&report(0, 2), &none, 0);
        assert_eq!(failed.outcome(), Outcome::Failed);
        assert_eq!(failed.first_error.as_deref(), Some("bad0: boom 0"));
        let mut rejected = report(0, 0);
        rejected.api_key_rejected = Some("API key rejected".into());
        assert_eq!(
            RunTotals::of_poll(&rejected, &none, 0).outcome(),
            Outcome::Failed
        );
    }

    #[test]
    fn summary_line_names_every_count() {
        let mut counts = RequestCounts::default();
        counts.by_status.insert("200".into(), 7);
        counts.by_status.insert("429".into(), 1);
        counts.retries = 1;
        let line = RunTotals::of_poll(&report(1, 1), &counts, 0)
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

    #[test]
    fn an_unfinished_run_is_running_only_while_its_process_lives() {
        let now = crate::time::parse("2026-12-03T12:00:00Z").unwrap();
        let started = RunRow {
            run_id: "r1".into(),
            command: "poll".into(),
            host: "here".into(),
            pid: 77,
            started_at: now,
            ..Default::default()
        };
        let alive = |pid: u32| pid == 77;
        let dead = |_: u32| false;
        assert_eq!(run_state(&started, "here", &alive), RunState::Running);
        assert_eq!(run_state(&started, "here", &dead), RunState::Killed);
        assert_eq!(
            run_state(&started, "there", &alive),
            RunState::ElsewhereUnfinished
        );
        let done = finished_row(
            &started,
            &RunTotals::default(),
            Outcome::Ok,
            now + chrono::Duration::seconds(3),
        );
        assert_eq!(
            run_state(&done, "here", &alive),
            RunState::Finished(Outcome::Ok)
        );
        assert_eq!(done.started_at, now);
        assert!(!host_name().is_empty());
    }
}
