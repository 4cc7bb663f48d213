//! Fault injection: make chosen requests fail the ways real networks and Merge do.
//!
//! A fault matches requests by a substring of the path (and optionally the method), lets the
//! first `skip` matches through, then hits the next `times` matches (all of them by default).

use std::time::Duration;

use serde::Deserialize;

/// One armed fault. In a scenario file: `{"path": "employees", "times": 1, "kind": "status",
/// "status": 500}`; other kinds: `rate_limit` (`retry_after`), `malformed_json`, `html`
/// (`status`), `delay` (`ms`), `drop_connection`, `cut_body`.
#[derive(Debug, Clone, Deserialize)]
pub struct Fault {
    /// Substring of the request path (without the query); empty matches every request.
    #[serde(default)]
    pub path: String,
    /// Only this method (`GET`), any when `None`.
    #[serde(default)]
    pub method: Option<String>,
    /// Matching requests let through before the fault starts hitting (`skip: 2` hits the 3rd).
    #[serde(default)]
    pub skip: u32,
    /// How many matching requests it hits after `skip`; `None` is every one.
    #[serde(default)]
    pub times: Option<u32>,
    #[serde(flatten)]
    pub action: FaultAction,
    /// Matching requests seen so far (skipped ones included).
    #[serde(skip)]
    pub(crate) seen: u32,
}

/// What a fault does to the request it hits.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultAction {
    /// Answer `status` with `body` (default: a DRF-style `{"detail": ...}` for the status).
    Status {
        status: u16,
        #[serde(default)]
        body: Option<String>,
    },
    /// 429 with `Retry-After: <retry_after>` (seconds) and `{"detail": "Request was throttled..."}`.
    RateLimit {
        #[serde(default = "default_retry_after")]
        retry_after: u64,
    },
    /// 200 whose JSON body is cut in half (the `Content-Length` matches what is sent).
    MalformedJson,
    /// An HTML error page, as a proxy or load balancer in front of Merge sends.
    Html {
        #[serde(default = "default_html_status")]
        status: u16,
    },
    /// Answer normally, but only after this long (to trip client timeouts).
    Delay {
        #[serde(rename = "ms", with = "millis")]
        delay: Duration,
    },
    /// Close the connection without any response.
    DropConnection,
    /// Send the headers of the real response and half its body, then close the connection.
    CutBody,
}

fn default_retry_after() -> u64 {
    1
}

fn default_html_status() -> u16 {
    502
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

impl Fault {
    /// A fault on every request whose path contains `path`.
    pub fn new(path: &str, action: FaultAction) -> Fault {
        Fault {
            path: path.to_string(),
            method: None,
            skip: 0,
            times: None,
            action,
            seen: 0,
        }
    }

    /// Answers `status` with a DRF-style `{"detail": ...}` body.
    pub fn status(path: &str, status: u16) -> Fault {
        Fault::new(path, FaultAction::Status { status, body: None })
    }

    /// Answers `status` with exactly `body`.
    pub fn status_body(path: &str, status: u16, body: &str) -> Fault {
        Fault::new(
            path,
            FaultAction::Status {
                status,
                body: Some(body.to_string()),
            },
        )
    }

    pub fn rate_limit(path: &str, retry_after_secs: u64) -> Fault {
        Fault::new(
            path,
            FaultAction::RateLimit {
                retry_after: retry_after_secs,
            },
        )
    }

    pub fn malformed_json(path: &str) -> Fault {
        Fault::new(path, FaultAction::MalformedJson)
    }

    pub fn html(path: &str, status: u16) -> Fault {
        Fault::new(path, FaultAction::Html { status })
    }

    pub fn delay(path: &str, delay: Duration) -> Fault {
        Fault::new(path, FaultAction::Delay { delay })
    }

    pub fn drop_connection(path: &str) -> Fault {
        Fault::new(path, FaultAction::DropConnection)
    }

    pub fn cut_body(path: &str) -> Fault {
        Fault::new(path, FaultAction::CutBody)
    }

    /// Hits only the next `n` matching requests.
    pub fn times(mut self, n: u32) -> Fault {
        self.times = Some(n);
        self
    }

    /// Hits only the `n`-th matching request (1-based).
    pub fn nth(mut self, n: u32) -> Fault {
        self.skip = n.saturating_sub(1);
        self.times = Some(1);
        self
    }

    /// Lets the first `n` matching requests through.
    pub fn skip(mut self, n: u32) -> Fault {
        self.skip = n;
        self
    }

    pub fn method(mut self, method: &str) -> Fault {
        self.method = Some(method.to_ascii_uppercase());
        self
    }

    /// Whether this fault is spent and can be forgotten.
    pub(crate) fn exhausted(&self) -> bool {
        matches!(self.times, Some(t) if self.seen >= self.skip.saturating_add(t))
    }

    /// Counts a request against this fault; `Some(action)` when the fault hits it.
    pub(crate) fn check(&mut self, method: &str, path: &str) -> Option<FaultAction> {
        if !path.contains(&self.path) || self.exhausted() {
            return None;
        }
        if let Some(m) = &self.method {
            if !m.eq_ignore_ascii_case(method) {
                return None;
            }
        }
        self.seen += 1;
        (self.seen > self.skip).then(|| self.action.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nth_hits_only_that_match() {
        let mut f = Fault::status("employees", 500).nth(2);
        assert!(f.check("GET", "/api/hris/v1/employees").is_none());
        assert!(f.check("GET", "/api/hris/v1/sync-status").is_none());
        assert!(f.check("GET", "/api/hris/v1/employees").is_some());
        assert!(f.check("GET", "/api/hris/v1/employees").is_none());
        assert!(f.exhausted());
    }

    #[test]
    fn faults_deserialize_from_scenario_json() {
        let f: Fault = serde_json::from_str(
            r#"{"path": "employees", "times": 2, "kind": "rate_limit", "retry_after": 3}"#,
        )
        .unwrap();
        assert!(matches!(
            f.action,
            FaultAction::RateLimit { retry_after: 3 }
        ));
        assert_eq!(f.times, Some(2));
        let d: Fault = serde_json::from_str(r#"{"kind": "delay", "ms": 1500}"#).unwrap();
        assert!(
            matches!(d.action, FaultAction::Delay { delay } if delay == Duration::from_millis(1500))
        );
    }
}
