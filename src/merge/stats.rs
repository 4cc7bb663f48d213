//! What a client did: requests by HTTP status, retries, and the waits it sat through, for run
//! history, the summary line, metrics and the progress display.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Why a request is waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitReason {
    /// Our own per-account budget (requests per minute) is spent.
    RateLimit,
    /// Merge answered 429; we wait as its `Retry-After` asks (or back off without one).
    RetryAfter,
    /// A transient failure (5xx, timeout); retrying after a backoff.
    Retry,
}

/// A wait about to start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Wait {
    pub reason: WaitReason,
    pub duration: Duration,
}

/// Called before each wait of a second or more.
pub type WaitObserver = Arc<dyn Fn(&Wait) + Send + Sync>;

/// Live counters, shared by every clone of a client.
#[derive(Debug, Default)]
pub struct RequestStats {
    by_status: Mutex<BTreeMap<String, u64>>,
    retries: AtomicU64,
}

/// A snapshot of [`RequestStats`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestCounts {
    /// Requests by HTTP status code (`"200"`, `"429"`), or `"error"` when no response came.
    pub by_status: BTreeMap<String, u64>,
    /// Requests sent again after a 429 or a transient failure.
    pub retries: u64,
}

impl RequestStats {
    pub(crate) fn record(&self, status: Option<u16>) {
        let key = status.map_or_else(|| "error".to_string(), |s| s.to_string());
        *self
            .by_status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key)
            .or_default() += 1;
    }

    pub(crate) fn retried(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> RequestCounts {
        RequestCounts {
            by_status: self
                .by_status
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            retries: self.retries.load(Ordering::Relaxed),
        }
    }
}

impl RequestCounts {
    pub fn total(&self) -> u64 {
        self.by_status.values().sum()
    }

    pub fn rate_limited(&self) -> u64 {
        self.by_status.get("429").copied().unwrap_or(0)
    }

    /// What happened since `earlier` (a snapshot of the same counters).
    pub fn since(&self, earlier: &RequestCounts) -> RequestCounts {
        RequestCounts {
            by_status: self
                .by_status
                .iter()
                .map(|(k, v)| {
                    let before = earlier.by_status.get(k).copied().unwrap_or(0);
                    (k.clone(), v.saturating_sub(before))
                })
                .filter(|(_, v)| *v > 0)
                .collect(),
            retries: self.retries.saturating_sub(earlier.retries),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_status_and_differences_between_snapshots() {
        let stats = RequestStats::default();
        stats.record(Some(200));
        let before = stats.snapshot();
        stats.record(Some(200));
        stats.record(Some(429));
        stats.record(None);
        stats.retried();
        let now = stats.snapshot();
        assert_eq!(now.total(), 4);
        assert_eq!(now.rate_limited(), 1);
        let delta = now.since(&before);
        assert_eq!(delta.total(), 3);
        assert_eq!(delta.by_status.get("error"), Some(&1));
        assert_eq!(delta.retries, 1);
    }
}
