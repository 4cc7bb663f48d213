//! Staying under Merge's limits: requests per linked account per minute, and failing
//! requests per 10 seconds across the whole run (Merge's per-IP rule).

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// At most `limit` requests in any rolling `window`. A sliding log rather than a token bucket,
/// because the promise is about *any* 60-second window, bursts included. Each entry keeps the
/// wall-clock time too, so the log can be handed to the next process (see [`RateLimiter::seed`]).
pub struct RateLimiter {
    limit: usize,
    window: Duration,
    sent: Mutex<VecDeque<(Instant, SystemTime)>>,
    /// Where each request's time is recorded as it is made (the account's lock), so a
    /// process that dies mid-pass still hands its requests to the next one.
    journal: Mutex<Option<Journal>>,
}

/// Records one request's wall-clock time durably.
pub type Journal = Box<dyn FnMut(SystemTime) -> anyhow::Result<()> + Send>;

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("limit", &self.limit)
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

/// Wall-clock time at millisecond precision: the precision the journal keeps, so times read
/// back compare equal to the ones recorded.
fn wall_ms() -> SystemTime {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    UNIX_EPOCH + Duration::from_millis(ms)
}

impl RateLimiter {
    pub fn per_minute(limit: u32) -> RateLimiter {
        RateLimiter::new(limit.max(1) as usize, Duration::from_secs(60))
    }

    pub fn new(limit: usize, window: Duration) -> RateLimiter {
        RateLimiter {
            limit,
            window,
            sent: Mutex::new(VecDeque::new()),
            journal: Mutex::new(None),
        }
    }

    /// Blocks until one more request fits, then counts it.
    pub fn acquire(&self) {
        self.acquire_notify(&|_| {});
    }

    /// Like [`RateLimiter::acquire`], telling `on_wait` how long it is about to wait.
    pub fn acquire_notify(&self, on_wait: &dyn Fn(Duration)) {
        loop {
            let wait = {
                let mut sent = self.sent.lock().unwrap_or_else(|e| e.into_inner());
                let now = Instant::now();
                while sent
                    .front()
                    .is_some_and(|(t, _)| now.duration_since(*t) >= self.window)
                {
                    sent.pop_front();
                }
                if sent.len() < self.limit {
                    let wall = wall_ms();
                    sent.push_back((now, wall));
                    self.journal_append(wall);
                    return;
                }
                self.window - now.duration_since(sent[0].0)
            };
            on_wait(wait);
            std::thread::sleep(wait + Duration::from_millis(1));
        }
    }

    fn journal_append(&self, wall: SystemTime) {
        let mut journal = self.journal.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(record) = journal.as_mut() {
            if let Err(e) = record(wall) {
                log::warn!(
                    "cannot record a request time ({e:#}); the rate limit holds for this run only"
                );
                *journal = None;
            }
        }
    }

    /// Records each request's time with `journal` from now on (`None` stops).
    pub fn set_journal(&self, journal: Option<Journal>) {
        *self.journal.lock().unwrap_or_else(|e| e.into_inner()) = journal;
    }

    /// Counts requests an earlier process made (wall-clock times), so back-to-back runs
    /// share one budget. Times this limiter already holds are not counted twice: a time
    /// given n times adds only as many entries as it holds fewer than n.
    pub fn seed(&self, earlier: &[SystemTime]) {
        let mut sent = self.sent.lock().unwrap_or_else(|e| e.into_inner());
        let (now, wall) = (Instant::now(), SystemTime::now());
        let mut given: Vec<SystemTime> = earlier.to_vec();
        given.sort();
        for (k, &t) in given.iter().enumerate() {
            let Ok(age) = wall.duration_since(t) else {
                continue;
            };
            if age >= self.window {
                continue;
            }
            let nth = given[..k].iter().filter(|u| **u == t).count();
            if sent.iter().filter(|(_, w)| *w == t).count() > nth {
                continue;
            }
            let Some(at) = now.checked_sub(age) else {
                continue;
            };
            let pos = sent.partition_point(|(i, _)| *i <= at);
            sent.insert(pos, (at, t));
        }
    }

    /// The wall-clock times of the requests still inside the window.
    pub fn recent(&self) -> Vec<SystemTime> {
        let sent = self.sent.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        sent.iter()
            .filter(|(i, _)| now.duration_since(*i) < self.window)
            .map(|(_, w)| *w)
            .collect()
    }
}

/// Keeps failing requests under `max` in any rolling `window` across all threads. A request
/// may fail, so one is only started while recent failures plus requests in flight stay
/// under the cap.
#[derive(Debug)]
pub struct FailureBudget {
    max: usize,
    window: Duration,
    state: Mutex<BudgetState>,
    freed: Condvar,
}

#[derive(Debug, Default)]
struct BudgetState {
    failures: VecDeque<Instant>,
    in_flight: usize,
}

impl Default for FailureBudget {
    fn default() -> Self {
        FailureBudget::new(20, Duration::from_secs(10))
    }
}

impl FailureBudget {
    pub fn new(max: usize, window: Duration) -> FailureBudget {
        FailureBudget {
            max: max.max(1),
            window,
            state: Mutex::new(BudgetState::default()),
            freed: Condvar::new(),
        }
    }

    /// Blocks until a request may start; pair with [`FailureBudget::finish`].
    pub fn start(&self) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let now = Instant::now();
            while st
                .failures
                .front()
                .is_some_and(|t| now.duration_since(*t) >= self.window)
            {
                st.failures.pop_front();
            }
            if st.failures.len() + st.in_flight < self.max {
                st.in_flight += 1;
                return;
            }
            let wait = st
                .failures
                .front()
                .map(|t| self.window.saturating_sub(now.duration_since(*t)))
                .unwrap_or(Duration::from_millis(50))
                .max(Duration::from_millis(1));
            st = self
                .freed
                .wait_timeout(st, wait)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Ends a request started with [`FailureBudget::start`].
    pub fn finish(&self, failed: bool) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.in_flight = st.in_flight.saturating_sub(1);
        if failed {
            st.failures.push_back(Instant::now());
        }
        drop(st);
        self.freed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limiter_never_exceeds_its_limit_in_a_window() {
        let limiter = RateLimiter::new(3, Duration::from_millis(200));
        let start = Instant::now();
        let mut times = Vec::new();
        for _ in 0..7 {
            limiter.acquire();
            times.push(start.elapsed());
        }
        for (i, t) in times.iter().enumerate() {
            let in_window = times
                .iter()
                .filter(|u| **u >= *t && **u < *t + Duration::from_millis(200))
                .count();
            assert!(
                in_window <= 3,
                "request {i}: {in_window} in one window: {times:?}"
            );
        }
        assert!(times[6] >= Duration::from_millis(400));
    }

    #[test]
    fn a_seeded_limiter_counts_the_previous_process_requests() {
        let first = RateLimiter::new(3, Duration::from_millis(300));
        for _ in 0..3 {
            first.acquire();
        }
        let second = RateLimiter::new(3, Duration::from_millis(300));
        second.seed(&first.recent());
        second.seed(&first.recent()); // idempotent
        assert_eq!(second.recent().len(), 3);
        // Two requests in the same millisecond stay two.
        let t = SystemTime::now();
        let third = RateLimiter::new(5, Duration::from_millis(300));
        third.seed(&[t, t]);
        third.seed(&[t, t]);
        assert_eq!(third.recent().len(), 2);
        let start = Instant::now();
        second.acquire();
        assert!(
            start.elapsed() >= Duration::from_millis(200),
            "waited {:?}",
            start.elapsed()
        );
    }

    #[test]
    fn failure_budget_pauses_after_too_many_failures() {
        let budget = FailureBudget::new(2, Duration::from_millis(150));
        let start = Instant::now();
        budget.start();
        budget.finish(true);
        budget.start();
        budget.finish(true);
        budget.start(); // must wait for the first failure to age out
        assert!(start.elapsed() >= Duration::from_millis(140));
        budget.finish(false);
    }
}
