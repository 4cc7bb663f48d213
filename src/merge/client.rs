//! The HTTP client for Merge: auth headers, timeouts, retries, limits, cursor pagination.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;

use super::error::{detail, excerpt, MergeError};
use super::limits::{FailureBudget, RateLimiter};
use super::models::{
    AccountDetails, AccountTokenExchange, Page, RecordPage, SyncStatus, SyncStatusReport,
};
use super::stats::{RequestCounts, RequestStats, Wait, WaitObserver, WaitReason};
use crate::secret::Secret;

/// sync-status lists one entry per model: a few pages at most. More means a broken cursor.
const MAX_STATUS_PAGES: usize = 1000;

/// The largest response body read. Merge's pages hold at most 100 records; a body beyond
/// this is hostile or broken, and reading it would take the process's memory with it.
pub const MAX_BODY_BYTES: u64 = 32 * 1024 * 1024;

/// Retries within one run. Merge says GETs are always safe to retry.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Retries after the first attempt for 5xx, timeouts and broken connections.
    pub retries: u32,
    /// First backoff; doubles each retry, with full jitter.
    pub base_delay: Duration,
    /// Longest `Retry-After` we sleep through; beyond it the account fails for this run and
    /// its persisted backoff takes over (cron must not hang for an hour).
    pub max_retry_after: Duration,
    /// How many 429s in a row one request sits out.
    pub rate_limit_retries: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            retries: 3,
            base_delay: Duration::from_millis(500),
            max_retry_after: Duration::from_secs(120),
            rate_limit_retries: 5,
        }
    }
}

/// Settings of a client.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub retry: RetryPolicy,
    /// The largest response body accepted (after decompression).
    pub max_body: u64,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(60),
            retry: RetryPolicy::default(),
            max_body: MAX_BODY_BYTES,
        }
    }
}

/// A connection to Merge for the whole run, shared by every account (cheap to clone).
#[derive(Clone)]
pub struct MergeClient {
    agent: ureq::Agent,
    base_url: String,
    api_key: Secret,
    retry: RetryPolicy,
    max_body: u64,
    failures: Arc<FailureBudget>,
    stats: Arc<RequestStats>,
    on_wait: Option<WaitObserver>,
}

impl std::fmt::Debug for MergeClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MergeClient")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key)
            .finish()
    }
}

/// The query of a list call; every parameter stays the same while paging.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListQuery {
    pub page_size: u32,
    pub include_deleted_data: bool,
    pub modified_after: Option<String>,
    pub modified_before: Option<String>,
}

impl ListQuery {
    fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut q = vec![("page_size", self.page_size.to_string())];
        if self.include_deleted_data {
            q.push(("include_deleted_data", "true".into()));
        }
        if let Some(a) = &self.modified_after {
            q.push(("modified_after", a.clone()));
        }
        if let Some(b) = &self.modified_before {
            q.push(("modified_before", b.clone()));
        }
        q
    }
}

impl MergeClient {
    pub fn new(base_url: &str, api_key: Secret, options: ClientOptions) -> MergeClient {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(options.connect_timeout))
            .timeout_recv_response(Some(options.read_timeout))
            .timeout_recv_body(Some(options.read_timeout))
            .user_agent(concat!("merge-sync/", env!("CARGO_PKG_VERSION")))
            .max_idle_connections_per_host(16)
            // Merge's API does not redirect. Following one would send the account token (and
            // mirror the data) of whatever host it names; a 3xx is reported instead.
            .max_redirects(0)
            .build();
        MergeClient {
            agent: config.into(),
            base_url: base_url.trim_end_matches('/').to_string(),
            api_key,
            retry: options.retry,
            max_body: options.max_body,
            failures: Arc::new(FailureBudget::default()),
            stats: Arc::default(),
            on_wait: None,
        }
    }

    /// Tells `observer` before each wait of a second or more (rate limit, `Retry-After`,
    /// retry backoff), so a terminal can say why nothing is moving.
    pub fn with_wait_observer(mut self, observer: WaitObserver) -> MergeClient {
        self.on_wait = Some(observer);
        self
    }

    /// The requests this client (and its clones) made so far.
    pub fn request_counts(&self) -> RequestCounts {
        self.stats.snapshot()
    }

    fn waiting(&self, reason: WaitReason, duration: Duration) {
        if duration < Duration::from_secs(1) {
            return;
        }
        if let Some(f) = &self.on_wait {
            f(&Wait { reason, duration });
        }
    }

    /// Scopes the client to one linked account, with that account's request limiter.
    pub fn account(
        &self,
        category: &str,
        token: &Secret,
        limiter: Arc<RateLimiter>,
    ) -> AccountApi<'_> {
        AccountApi {
            client: self,
            category: category.to_string(),
            token: Some(token.clone()),
            limiter,
        }
    }

    /// `GET {category}/v1/account-token/{public_token}`: exchanges a Link public token.
    pub fn exchange_public_token(
        &self,
        category: &str,
        public_token: &Secret,
    ) -> Result<AccountTokenExchange, MergeError> {
        let api = AccountApi {
            client: self,
            category: category.to_string(),
            token: None,
            limiter: Arc::new(RateLimiter::per_minute(100)),
        };
        // The public token is in the path; `display_path` keeps it out of errors and logs.
        let path = format!("account-token/{}", public_token.expose());
        api.get_json(&path, &[], None)
    }
}

/// The client scoped to one linked account (`X-Account-Token`) and its rate limit.
pub struct AccountApi<'a> {
    client: &'a MergeClient,
    category: String,
    token: Option<Secret>,
    limiter: Arc<RateLimiter>,
}

impl AccountApi<'_> {
    /// Every page of `GET {category}/v1/sync-status`, with Merge's clock as its responses'
    /// `Date` headers showed it.
    pub fn sync_status(&self) -> Result<SyncStatusReport, MergeError> {
        let mut report = SyncStatusReport::default();
        let mut cursor: Option<String> = None;
        let mut seen = std::collections::HashSet::new();
        let query = [("page_size", "100".to_string())];
        for _ in 0..MAX_STATUS_PAGES {
            let (page, date): (Page<SyncStatus>, _) =
                self.get_json_dated("sync-status", &query, cursor.as_deref())?;
            report.statuses.extend(page.results);
            report.merge_time = report.merge_time.max(date);
            if let Some(c) = cursor.take() {
                seen.insert(c);
            }
            match page.next.as_deref().map(cursor_of) {
                None => return Ok(report),
                // A partial list would make missing models look absent (and an account look
                // complete): better to fail the pass. The same rule as the list endpoints.
                Some(next) if seen.contains(&next) => {
                    return Err(MergeError::Decode {
                        path: self.display_path("sync-status"),
                        message: "Merge's paging came back to a cursor it had already given".into(),
                        excerpt: String::new(),
                    })
                }
                Some(next) => cursor = Some(next),
            }
        }
        Err(MergeError::Decode {
            path: self.display_path("sync-status"),
            message: format!("more than {MAX_STATUS_PAGES} pages"),
            excerpt: String::new(),
        })
    }

    /// `GET {category}/v1/account-details`.
    pub fn account_details(&self) -> Result<AccountDetails, MergeError> {
        self.get_json("account-details", &[], None)
    }

    /// One page of a list endpoint; `cursor` is the previous page's `next`.
    pub fn list_page(
        &self,
        path: &str,
        query: &ListQuery,
        cursor: Option<&str>,
    ) -> Result<RecordPage, MergeError> {
        let mut page: RecordPage = self.get_json(path, &query.pairs(), cursor)?;
        page.next = page.next.as_deref().map(cursor_of);
        Ok(page)
    }

    /// The pages of a list endpoint from `start` (a saved cursor, or `None` for the first
    /// page), streamed one at a time, each with the cursor that fetched it. It ends after the
    /// last page or the first error, and refuses to loop on a cursor Merge repeats.
    pub fn pages<'q>(
        &'q self,
        path: &'q str,
        query: &'q ListQuery,
        start: Option<String>,
    ) -> impl Iterator<Item = Result<(Option<String>, RecordPage), MergeError>> + 'q {
        let mut cursor = start;
        let mut done = false;
        let mut seen = std::collections::HashSet::new();
        std::iter::from_fn(move || {
            if done {
                return None;
            }
            let page = match self.list_page(path, query, cursor.as_deref()) {
                Ok(page) => page,
                Err(e) => {
                    done = true;
                    return Some(Err(e));
                }
            };
            let used = cursor.take();
            if let Some(c) = &used {
                seen.insert(c.clone());
            }
            match &page.next {
                // A cursor seen before in this window means Merge's paging loops.
                Some(next) if seen.contains(next) => {
                    done = true;
                    return Some(Err(MergeError::Decode {
                        path: self.display_path(path),
                        message: "Merge's paging came back to a cursor it had already given".into(),
                        excerpt: String::new(),
                    }));
                }
                Some(next) => cursor = Some(next.clone()),
                None => done = true,
            }
            Some(Ok((used, page)))
        })
    }

    fn get_json<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
        cursor: Option<&str>,
    ) -> Result<T, MergeError> {
        self.get_json_dated(path, query, cursor).map(|(v, _)| v)
    }

    /// Like `get_json`, with the response's `Date` header (Merge's clock).
    fn get_json_dated<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
        cursor: Option<&str>,
    ) -> Result<(T, Option<DateTime<Utc>>), MergeError> {
        let policy = &self.client.retry;
        let mut transient_failures = 0;
        let mut rate_limited = 0;
        let mut waited_for_limit = Duration::ZERO;
        loop {
            let result = self.get_once(path, query, cursor).and_then(|(body, date)| {
                serde_json::from_slice(&body)
                    .map(|v| (v, date))
                    .map_err(|e| MergeError::Decode {
                        path: self.display_path(path),
                        message: format!("malformed JSON ({e})"),
                        excerpt: excerpt(&body, &self.secrets()),
                    })
            });
            match result {
                Ok(value) => return Ok(value),
                Err(MergeError::RateLimited { path, retry_after }) => {
                    rate_limited += 1;
                    // Without Retry-After, back off from 2 s, doubling.
                    let wait = retry_after
                        .unwrap_or_else(|| Duration::from_secs(2u64 << rate_limited.min(6)) / 2);
                    waited_for_limit += wait;
                    if rate_limited > policy.rate_limit_retries
                        || waited_for_limit > policy.max_retry_after
                    {
                        return Err(MergeError::RateLimited { path, retry_after });
                    }
                    log::info!(
                        "rate limited on {path}; waiting {}s as Merge asks",
                        wait.as_secs()
                    );
                    self.client.waiting(WaitReason::RetryAfter, wait);
                    self.client.stats.retried();
                    std::thread::sleep(wait);
                }
                Err(e) if e.is_transient() && transient_failures < policy.retries => {
                    transient_failures += 1;
                    let cap = policy.base_delay * 2u32.pow(transient_failures - 1);
                    let delay = cap / 2 + cap.mul_f64(fastrand::f64() / 2.0);
                    log::info!(
                        "{e}; retry {transient_failures} of {} in {delay:?}",
                        policy.retries
                    );
                    self.client.waiting(WaitReason::Retry, delay);
                    self.client.stats.retried();
                    std::thread::sleep(delay);
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn secrets(&self) -> Vec<&str> {
        let mut s = vec![self.client.api_key.expose()];
        if let Some(t) = &self.token {
            s.push(t.expose());
        }
        s
    }

    /// Why a 404 on an endpoint every linked account has (sync-status, account-details, the
    /// token exchange) happened: the base URL or the category is wrong, not the request.
    fn not_found_hint(&self, status: u16, shown: &str) -> String {
        let fixed = shown.ends_with("/sync-status")
            || shown.ends_with("/account-details")
            || shown.contains("/account-token/");
        if status != 404 || !fixed {
            return String::new();
        }
        format!(
            " — check that the API URL ends in /api (like https://api.merge.dev/api; it is {}), \
             and that the account token's category is {} (see --category)",
            self.client.base_url, self.category
        )
    }

    /// The path as errors and logs show it; a public token in it is never shown.
    fn display_path(&self, path: &str) -> String {
        match path.split_once("account-token/") {
            Some((head, _)) => format!("/{}/v1/{head}account-token/(redacted)", self.category),
            None => format!("/{}/v1/{}", self.category, path),
        }
    }

    fn get_once(
        &self,
        path: &str,
        query: &[(&str, String)],
        cursor: Option<&str>,
    ) -> Result<(Vec<u8>, Option<DateTime<Utc>>), MergeError> {
        let url = format!("{}/{}/v1/{}", self.client.base_url, self.category, path);
        let shown = self.display_path(path);
        let mut req = self
            .client
            .agent
            .get(&url)
            .header(
                "Authorization",
                &format!("Bearer {}", self.client.api_key.expose()),
            )
            .header("Accept", "application/json");
        if let Some(token) = &self.token {
            req = req.header("X-Account-Token", token.expose());
        }
        for (k, v) in query {
            req = req.query(*k, v);
        }
        if let Some(c) = cursor {
            req = req.query("cursor", c);
        }

        self.limiter
            .acquire_notify(&|wait| self.client.waiting(WaitReason::RateLimit, wait));
        self.client.failures.start();
        let result = self.exchange(req, &shown);
        let failed = match &result {
            Ok(_) | Err(MergeError::RateLimited { .. } | MergeError::Redirected { .. }) => false,
            Err(_) => true,
        };
        self.client.failures.finish(failed);
        result
    }

    fn exchange(
        &self,
        req: ureq::RequestBuilder<ureq::typestate::WithoutBody>,
        shown: &str,
    ) -> Result<(Vec<u8>, Option<DateTime<Utc>>), MergeError> {
        let limit = self.client.max_body;
        let transport = |e: ureq::Error| match e {
            // Not worth a retry: the same request gets the same body.
            ureq::Error::BodyExceedsLimit(_) => MergeError::TooLarge {
                path: shown.to_string(),
                limit,
            },
            e => MergeError::Transport {
                origin: origin(&self.client.base_url),
                path: shown.to_string(),
                message: e.to_string(),
            },
        };
        let mut resp = match req.call() {
            Ok(resp) => resp,
            Err(e) => {
                self.client.stats.record(None);
                return Err(transport(e));
            }
        };
        let status = resp.status().as_u16();
        self.client.stats.record(Some(status));
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let retry_after = header("retry-after").as_deref().and_then(parse_retry_after);
        let date = header("date").as_deref().and_then(parse_http_date);
        if (300..400).contains(&status) {
            return Err(MergeError::Redirected {
                status,
                path: shown.to_string(),
                location: header("location")
                    .map(|l| excerpt(l.as_bytes(), &self.secrets()))
                    .unwrap_or_else(|| "(no Location header)".into()),
            });
        }
        let body = resp
            .body_mut()
            .with_config()
            .limit(limit)
            .read_to_vec()
            .map_err(transport)?;
        let secrets = self.secrets();
        match status {
            200..=299 => Ok((body, date)),
            401 | 403 => {
                let detail = detail(&body, &secrets);
                // Merge answers 401 both for a bad API key and for a bad account token; the
                // key is ours to fix (a configuration error), the token the account's.
                let lower = detail.to_ascii_lowercase();
                if self.token.is_none() || lower.contains("api key") || lower.contains("api_key") {
                    Err(MergeError::ApiKeyRejected {
                        path: shown.to_string(),
                        detail,
                    })
                } else {
                    Err(MergeError::Unauthorized {
                        path: shown.to_string(),
                        detail,
                    })
                }
            }
            429 => Err(MergeError::RateLimited {
                path: shown.to_string(),
                retry_after,
            }),
            408 | 500..=599 => Err(MergeError::Server {
                status,
                path: shown.to_string(),
                excerpt: excerpt(&body, &secrets),
            }),
            _ => Err(MergeError::Rejected {
                status,
                path: shown.to_string(),
                detail: detail(&body, &secrets),
                hint: self.not_found_hint(status, shown),
            }),
        }
    }
}

/// The scheme, host and port of `base_url` (the port made explicit), for connection errors.
fn origin(base_url: &str) -> String {
    match base_url.parse::<ureq::http::Uri>() {
        Ok(uri) => {
            let scheme = uri.scheme_str().unwrap_or("https");
            let port = uri
                .port_u16()
                .unwrap_or(if scheme == "http" { 80 } else { 443 });
            format!("{scheme}://{}:{port}", uri.host().unwrap_or("?"))
        }
        Err(_) => base_url.to_string(),
    }
}

/// `Retry-After` as seconds (an HTTP date is also allowed by the RFC).
fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<f64>() {
        return Some(Duration::from_secs_f64(secs.clamp(0.0, 86_400.0)));
    }
    let when = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let secs = (when.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_seconds();
    Some(Duration::from_secs(secs.clamp(0, 86_400) as u64))
}

/// An HTTP `Date` header (`Thu, 03 Dec 2026 10:40:55 GMT`).
fn parse_http_date(v: &str) -> Option<DateTime<Utc>> {
    chrono::DateTime::parse_from_rfc2822(v.trim())
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

/// Merge's `next` is an opaque cursor; some proxies and older APIs give a URL instead
/// (absolute or relative), whose `cursor` parameter is the cursor.
fn cursor_of(next: &str) -> String {
    if let Some((_, query)) = next.split_once('?') {
        for pair in query.split('&') {
            if let Some(v) = pair.strip_prefix("cursor=") {
                return percent_decode(v);
            }
        }
    }
    next.to_string()
}

/// Decodes `%XX` escapes. `+` is kept: cursors are base64, where it is a real character.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 3 <= bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_is_taken_from_a_next_url_or_used_as_is() {
        assert_eq!(cursor_of("cD0yMDI2"), "cD0yMDI2");
        assert_eq!(
            cursor_of("https://api.merge.dev/api/hris/v1/employees?cursor=cD0y%3D&page_size=100"),
            "cD0y="
        );
        assert_eq!(
            cursor_of("/api/hris/v1/employees?page_size=100&cursor=ab+c"),
            "ab+c"
        );
    }

    #[test]
    fn retry_after_accepts_seconds() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn connection_errors_name_scheme_host_and_port() {
        assert_eq!(
            origin("https://api.merge.dev/api"),
            "https://api.merge.dev:443"
        );
        assert_eq!(origin("http://127.0.0.1:9/api"), "http://127.0.0.1:9");
        assert_eq!(
            origin("http://merge.internal/api"),
            "http://merge.internal:80"
        );
    }

    #[test]
    fn debug_never_shows_the_api_key() {
        let c = MergeClient::new(
            "http://127.0.0.1:1/api",
            Secret::new("sk_live_abcdefgh"),
            ClientOptions::default(),
        );
        assert!(!format!("{c:?}").contains("abcdefgh"));
    }

    /// A loopback HTTP server answering every request with `answer(request line)`, counting
    /// requests. Raw, so a test can send any status, header or body.
    fn raw_server(
        answer: impl Fn(&str) -> String + Send + 'static,
    ) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = count.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() {
                    continue;
                }
                // Skip the headers.
                let mut h = String::new();
                while reader.read_line(&mut h).is_ok_and(|n| n > 2) {
                    h.clear();
                }
                seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let _ = stream.write_all(answer(&line).as_bytes());
            }
        });
        (format!("http://{addr}/api"), count)
    }

    fn client(base: &str, max_body: u64) -> MergeClient {
        MergeClient::new(
            base,
            Secret::new("sk_test_key_000"),
            ClientOptions {
                retry: RetryPolicy {
                    base_delay: Duration::from_millis(1),
                    ..RetryPolicy::default()
                },
                max_body,
                ..ClientOptions::default()
            },
        )
    }

    fn status_of(c: &MergeClient) -> Result<SyncStatusReport, MergeError> {
        let token = Secret::new("tok_account_000");
        c.account("hris", &token, Arc::new(RateLimiter::per_minute(10_000)))
            .sync_status()
    }

    fn ok(body: &str) -> String {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nDate: Thu, 03 Dec 2026 10:40:55 GMT\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    }

    // Regression (hardening item 3): a redirect to another host got the account token.
    #[test]
    fn a_redirect_is_an_error_naming_where_it_pointed_and_sends_nothing_there() {
        let (elsewhere, hits) = raw_server(|_| ok(r#"{"next": null, "results": []}"#));
        let location = format!("{elsewhere}/hris/v1/sync-status");
        let (merge, _) = raw_server(move |_| {
            format!(
                "HTTP/1.1 301 Moved Permanently\r\nLocation: {location}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
        });
        let err = status_of(&client(&merge, MAX_BODY_BYTES)).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, MergeError::Redirected { status: 301, .. }),
            "{msg}"
        );
        assert!(msg.contains(&elsewhere), "{msg}");
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 0);
    }

    // Regression (hardening item 10): a cursor cycle in sync-status cost 1,000 requests.
    #[test]
    fn a_sync_status_cursor_cycle_stops_within_a_few_requests() {
        let (merge, hits) = raw_server(|line| {
            let next = if line.contains("cursor=A") {
                "B"
            } else if line.contains("cursor=B") {
                "C"
            } else if line.contains("cursor=C") {
                "A"
            } else {
                "B"
            };
            ok(&format!(r#"{{"next": "{next}", "results": []}}"#))
        });
        let err = status_of(&client(&merge, MAX_BODY_BYTES)).unwrap_err();
        assert!(err.to_string().contains("cursor"), "{err}");
        assert!(hits.load(std::sync::atomic::Ordering::SeqCst) <= 4);
    }

    // Regression (hardening item 11): an over-size body was read (up to 256 MiB), retried
    // and reported as a network problem.
    #[test]
    fn an_over_size_body_is_refused_once_with_a_clear_message() {
        let big = format!(
            r#"{{"next": null, "results": [], "pad": "{}"}}"#,
            "x".repeat(4096)
        );
        let (merge, hits) = raw_server(move |_| ok(&big));
        let err = status_of(&client(&merge, 1024)).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, MergeError::TooLarge { .. }), "{msg}");
        assert!(msg.contains("larger than 1024 bytes"), "{msg}");
        assert!(!msg.contains("check the network"), "{msg}");
        assert_eq!(
            hits.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "not retried"
        );
    }

    #[test]
    fn sync_status_reports_merges_clock_from_the_date_header() {
        let (merge, _) = raw_server(|_| ok(r#"{"next": null, "results": []}"#));
        let report = status_of(&client(&merge, MAX_BODY_BYTES)).unwrap();
        assert_eq!(
            report.merge_time,
            crate::time::parse("2026-12-03T10:40:55Z")
        );
    }
}
