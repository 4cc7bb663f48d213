//! The `serve` receiver: a thin adapter on hyper that verifies and stores webhooks.
//!
//! It runs on its own small tokio runtime (one thread, used only by `serve`), so an idle or
//! slow connection costs a task and a buffer, never a thread: hundreds of them cannot crowd
//! out Merge's deliveries. Each connection gets one request (`Connection: close`), its head
//! must arrive within [`ServerConfig::io_timeout`] (hyper's header timer, which trickling
//! bytes does not reset), its body by the same deadline counted from the connection's start,
//! and the connection as a whole is cut after [`CONNECTION_LIFETIME`] past that. Heads are
//! limited in count and size, bodies to [`ServerConfig::max_body`]. Repeated warnings (forged
//! signatures, refused connections) are aggregated, so a flood cannot flood the log.
//!
//! Order for a webhook: size check → read the raw body → verify the signature over those exact
//! bytes → [`WebhookSink::store`] → `200 {"received": true}`. The server never parses the JSON;
//! applying stored webhooks is someone else's job. Routes are decided in one place,
//! [`route`].

use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{SecondsFormat, Utc};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ALLOW, CONTENT_LENGTH, CONTENT_TYPE, EXPECT, RETRY_AFTER};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::{json, Value};

use super::verdict_response;
use super::verify::{verify, Verdict, WebhookSecrets};

/// The header Merge signs deliveries in (matched case-insensitively).
pub const SIGNATURE_HEADER: &str = "X-Merge-Webhook-Signature";
/// The paths webhooks are accepted on: the documented one and two per-event aliases.
pub const WEBHOOK_PATHS: [&str; 3] = [
    "/api/webhooks/merge",
    "/webhooks/merge/sync-completed",
    "/webhooks/merge/model-synced",
];
/// The health probe path: `200` when the receiver can do its job, `503` with the reason.
pub const HEALTH_PATH: &str = "/healthz";
/// The Prometheus metrics path.
pub const METRICS_PATH: &str = "/metrics";
/// Default body limit: Merge's deliveries are a few kilobytes.
pub const DEFAULT_MAX_BODY: usize = 1024 * 1024;
/// Default time a client has to send its whole request (well under Merge's 30 s timeout).
pub const DEFAULT_IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections open at once. Idle ones are cheap (no thread), so the cap is only there to
/// keep file descriptors for the state file; beyond it new connections are closed at once.
pub const MAX_CONNECTIONS: usize = 4096;
/// How long a connection may live after its request deadline: room to store the webhook
/// and write the answer. A client that never reads its answer is cut off here.
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(30);

/// How long storing a webhook waits for another process's lock on the state file (a long
/// `poll` transaction, say), and in `serve` also for a free connection: together well inside
/// Merge's 30 s, so a busy state file answers 500 (Merge retries) instead of timing out.
pub const STORE_LOCK_WAIT: Duration = Duration::from_secs(5);

/// Most headers a request may carry; Merge sends about a dozen.
const MAX_HEADERS: usize = 64;
/// Largest request head (request line and headers); Merge sends well under 2 KiB.
const MAX_HEAD: usize = 16 * 1024;
/// How long `stop` waits for requests that are already being stored.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// After refusing an announced body as too large, how long (and how much) to read and discard
/// what the client is still sending, so it sees the `413` instead of a connection reset.
const DRAIN_TIME: Duration = Duration::from_secs(2);
/// At most one line per this interval for each kind of repeated warning.
const WARN_INTERVAL: Duration = Duration::from_secs(10);

/// Where verified webhook bodies go. `store` returns `Ok` only once the body is durably
/// committed: the `200` that follows tells Merge it need not retry. It may block (it runs on
/// a blocking thread) but should give up well within Merge's 30 s timeout.
pub trait WebhookSink: Send + Sync + 'static {
    fn store(&self, body: &[u8]) -> anyhow::Result<()>;

    /// A webhook was refused (`invalid_signature`, `too_large`, `unconfigured`,
    /// `store_failed`), for the metrics. Must not block.
    fn rejected(&self, _outcome: &'static str) {}

    /// The Prometheus text for `GET /metrics` (it may block); `None` when there is none.
    fn metrics(&self) -> Option<anyhow::Result<String>> {
        None
    }
}

/// How to run the receiver. `Debug` never shows the secrets.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// `host:port` to listen on; port 0 picks a free one (see [`ServerHandle::local_addr`]).
    pub listen: String,
    /// `None` makes every webhook a `500`, so a misconfiguration is loud and Merge retries.
    pub secrets: Option<WebhookSecrets>,
    /// Larger bodies get `413`.
    pub max_body: usize,
    /// Time a client has to send its whole request (head and body).
    pub io_timeout: Duration,
}

impl ServerConfig {
    /// The defaults: 1 MiB bodies, 10 s to send a request.
    pub fn new(listen: impl Into<String>, secrets: Option<WebhookSecrets>) -> Self {
        ServerConfig {
            listen: listen.into(),
            secrets,
            max_body: DEFAULT_MAX_BODY,
            io_timeout: DEFAULT_IO_TIMEOUT,
        }
    }
}

/// A running receiver. Dropping it leaves the server running in the background; call
/// [`stop`](ServerHandle::stop) or [`wait`](ServerHandle::wait).
pub struct ServerHandle {
    addr: SocketAddr,
    stop: tokio::sync::watch::Sender<bool>,
    thread: JoinHandle<()>,
}

impl ServerHandle {
    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, then waits briefly for requests already being stored so their `200`
    /// goes out. Connections still sending are dropped; Merge retries anything that did not
    /// get a `200`.
    pub fn stop(self) {
        let _ = self.stop.send(true);
        let deadline = Instant::now() + STOP_GRACE + Duration::from_secs(2);
        while !self.thread.is_finished() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
        if self.thread.is_finished() {
            let _ = self.thread.join();
        } else {
            log::warn!("webhook receiver did not stop in time; leaving it behind");
        }
    }

    /// Blocks for as long as the server runs (the `serve` command's foreground).
    pub fn wait(self) {
        if self.thread.join().is_err() {
            log::error!("webhook receiver thread panicked");
        }
    }
}

/// Binds `cfg.listen` and serves on a background thread with its own runtime.
pub fn start(cfg: ServerConfig, sink: Arc<dyn WebhookSink>) -> anyhow::Result<ServerHandle> {
    let addrs: Vec<SocketAddr> = cfg
        .listen
        .to_socket_addrs()
        .with_context(|| format!("resolving listen address {:?}", cfg.listen))?
        .collect();
    let listener = TcpListener::bind(&addrs[..]).with_context(|| {
        format!(
            "listening on {} (is another process using the port?)",
            cfg.listen
        )
    })?;
    let addr = listener
        .local_addr()
        .context("reading the bound listen address")?;
    listener
        .set_nonblocking(true)
        .context("configuring the listen socket")?;
    // A missing secret and the address are for the caller to report (`serve` does, once).
    raise_open_file_limit();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the webhook receiver's runtime")?;
    let shared = Arc::new(Shared {
        secrets: cfg.secrets,
        max_body: cfg.max_body,
        io_timeout: cfg.io_timeout.max(Duration::from_millis(1)),
        sink,
        storing: AtomicUsize::new(0),
        rejected: Throttle::default(),
        refused: Throttle::default(),
        unconfigured: Throttle::default(),
    });
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let thread = thread::Builder::new()
        .name("webhook-receiver".into())
        .spawn(move || {
            runtime.block_on(serve(listener, shared, stopped));
            // Blocking stores still running were given STOP_GRACE already.
            runtime.shutdown_timeout(Duration::from_millis(500));
        })
        .context("starting the webhook receiver thread")?;
    Ok(ServerHandle { addr, stop, thread })
}

/// Lets the process hold as many sockets as the hard limit allows: the default soft limit
/// (often 1024) would let a few hundred idle connections exhaust descriptors.
fn raise_open_file_limit() {
    #[cfg(unix)]
    // SAFETY: getrlimit/setrlimit only read and write the struct passed in.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            let wanted = lim.rlim_max.min(65_536);
            if wanted > lim.rlim_cur {
                lim.rlim_cur = wanted;
                let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            }
        }
    }
}

struct Shared {
    secrets: Option<WebhookSecrets>,
    max_body: usize,
    io_timeout: Duration,
    sink: Arc<dyn WebhookSink>,
    /// Requests verified and inside `store` or writing their answer.
    storing: AtomicUsize,
    rejected: Throttle,
    refused: Throttle,
    unconfigured: Throttle,
}

/// Decrements a counter when dropped, including while unwinding from a panic.
struct CountGuard<'a>(&'a AtomicUsize);

impl Drop for CountGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// At most one log line per [`WARN_INTERVAL`] for one kind of event; the lines in between are
/// counted and the count is told with the next line.
#[derive(Default)]
struct Throttle {
    last: Mutex<Option<Instant>>,
    suppressed: AtomicU64,
}

impl Throttle {
    /// Calls `emit` with how many events were suppressed since the last line, if a line is
    /// due now; otherwise counts this one.
    fn hit(&self, now: Instant, emit: impl FnOnce(u64)) {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|t| now.duration_since(t) < WARN_INTERVAL) {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        *last = Some(now);
        drop(last);
        emit(self.suppressed.swap(0, Ordering::Relaxed));
    }
}

fn and_more(suppressed: u64) -> String {
    if suppressed == 0 {
        String::new()
    } else {
        format!(" (and {suppressed} more like it since the last such line)")
    }
}

async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            log::error!("webhook receiver cannot use its socket: {e}");
            return;
        }
    };
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            _ = stopped.changed() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(conn) => conn,
            Err(e) => {
                // Usually out of file descriptors; pause rather than spin.
                shared.refused.hit(Instant::now(), |n| {
                    log::warn!("accepting a webhook connection failed: {e}{}", and_more(n))
                });
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            shared.refused.hit(Instant::now(), |n| {
                log::warn!(
                    "{MAX_CONNECTIONS} webhook connections open; closing new ones{}",
                    and_more(n)
                )
            });
            drop(stream);
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let _permit = permit;
            connection(stream, peer, shared).await;
        });
    }
    drop(listener);
    log::info!("webhook receiver stopped accepting");
    let deadline = Instant::now() + STOP_GRACE;
    while shared.storing.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn connection(stream: tokio::net::TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let started = tokio::time::Instant::now();
    let request_deadline = started + shared.io_timeout;
    let service = {
        let shared = shared.clone();
        hyper::service::service_fn(move |req| {
            let shared = shared.clone();
            async move { Ok::<_, Infallible>(handle(req, peer, &shared, request_deadline).await) }
        })
    };
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(shared.io_timeout)
        .max_headers(MAX_HEADERS)
        .max_header_size(MAX_HEAD)
        .keep_alive(false)
        .serve_connection(TokioIo::new(stream), service);
    match tokio::time::timeout_at(request_deadline + CONNECTION_LIFETIME, conn).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => log::debug!("webhook connection from {peer} ended: {e}"),
        Err(_) => log::debug!("webhook connection from {peer} cut off after its lifetime"),
    }
}

/// What a request is for. Every route the receiver serves is listed here and only here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Webhook,
    Health,
    Metrics,
    /// A known path with the wrong method; the method it takes.
    WrongMethod(&'static str),
    NotFound,
}

/// Routes a request by method and path (`/x/` is `/x`).
pub fn route(method: &Method, path: &str) -> Route {
    let path = match path.trim_end_matches('/') {
        "" => "/",
        p => p,
    };
    let (route, allowed) = if WEBHOOK_PATHS.contains(&path) {
        (Route::Webhook, Method::POST)
    } else if path == HEALTH_PATH {
        (Route::Health, Method::GET)
    } else if path == METRICS_PATH {
        (Route::Metrics, Method::GET)
    } else {
        return Route::NotFound;
    };
    if method == allowed {
        route
    } else {
        Route::WrongMethod(if allowed == Method::POST {
            "POST"
        } else {
            "GET"
        })
    }
}

async fn handle(
    req: Request<Incoming>,
    peer: SocketAddr,
    shared: &Shared,
    deadline: tokio::time::Instant,
) -> Response<Full<Bytes>> {
    match route(req.method(), req.uri().path()) {
        Route::Webhook => webhook(req, peer, shared, deadline).await,
        Route::Health => match &shared.secrets {
            Some(_) => reply(StatusCode::OK, json!({"ok": true})),
            // Every webhook would be refused: a load balancer or monitor should know.
            None => reply(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({
                    "ok": false,
                    "reason": "MERGE_WEBHOOK_SECRET is not set: webhooks cannot be verified and \
                               are answered 500"
                }),
            ),
        },
        Route::Metrics => metrics(shared).await,
        Route::WrongMethod(allow) => {
            let mut r = error(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed");
            r.headers_mut()
                .insert(ALLOW, HeaderValue::from_static(allow));
            r
        }
        Route::NotFound => error(StatusCode::NOT_FOUND, "Not found"),
    }
}

async fn webhook(
    req: Request<Incoming>,
    peer: SocketAddr,
    shared: &Shared,
    deadline: tokio::time::Instant,
) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_string();
    let announced = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > shared.max_body as u64) {
        // A client waiting for `100 Continue` sends nothing more; any other is still
        // sending, and would see a reset instead of the 413 if we closed on it.
        if parts.headers.get(EXPECT).is_none() {
            drain(body, shared.max_body.saturating_add(DEFAULT_MAX_BODY)).await;
        }
        shared.sink.rejected("too_large");
        return too_large();
    }
    // The body is polled here for the first time: hyper sends `100 Continue` if asked.
    let collected =
        tokio::time::timeout_at(deadline, Limited::new(body, shared.max_body).collect()).await;
    let body: Bytes = match collected {
        Ok(Ok(c)) => c.to_bytes(),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            shared.sink.rejected("too_large");
            return too_large();
        }
        Ok(Err(e)) => {
            log::debug!("reading a webhook from {peer} failed: {e}");
            return error(StatusCode::BAD_REQUEST, "Bad request");
        }
        Err(_) => return error(StatusCode::REQUEST_TIMEOUT, "Request timeout"),
    };

    let Some(secrets) = &shared.secrets else {
        shared.sink.rejected("unconfigured");
        shared.unconfigured.hit(Instant::now(), |n| {
            log::error!(
                "webhook from {peer} refused: no webhook secret configured (set \
                 MERGE_WEBHOOK_SECRET){}",
                and_more(n)
            )
        });
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Server configuration error",
        );
    };
    let signature = parts
        .headers
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok());
    let verdict = verify(secrets, &body, signature);
    if verdict != Verdict::Valid {
        // The time is in the message so it survives any log format; never the signature value.
        let what = match verdict {
            Verdict::Missing => "missing signature",
            _ => "invalid signature",
        };
        shared.rejected.hit(Instant::now(), |n| {
            log::warn!(
                "{} rejected webhook from {peer} on {path}: {what} ({} bytes){}",
                Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
                body.len(),
                and_more(n)
            )
        });
        shared.sink.rejected("invalid_signature");
        let (status, json) = verdict_response(verdict);
        return reply(status_code(status), json);
    }

    shared.storing.fetch_add(1, Ordering::SeqCst);
    let sink = shared.sink.clone();
    let len = body.len();
    let stored = {
        let _storing = CountGuard(&shared.storing);
        tokio::task::spawn_blocking(move || sink.store(&body)).await
    };
    match stored {
        Ok(Ok(())) => {
            log::debug!("stored webhook from {peer} on {path} ({len} bytes)");
            let (status, json) = verdict_response(Verdict::Valid);
            reply(status_code(status), json)
        }
        Ok(Err(e)) => {
            shared.sink.rejected("store_failed");
            log::error!("storing a webhook from {peer} failed: {e:#}");
            error(StatusCode::INTERNAL_SERVER_ERROR, "Storage error")
        }
        // A panicking sink must still answer 5xx so Merge retries.
        Err(_) => {
            log::error!("storing a webhook from {peer} panicked");
            error(StatusCode::INTERNAL_SERVER_ERROR, "Storage error")
        }
    }
}

async fn metrics(shared: &Shared) -> Response<Full<Bytes>> {
    let sink = shared.sink.clone();
    match tokio::task::spawn_blocking(move || sink.metrics()).await {
        Ok(Some(Ok(text))) => {
            let mut r = Response::new(Full::new(Bytes::from(text)));
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
            );
            r
        }
        Ok(None) => error(StatusCode::NOT_FOUND, "Not found"),
        Ok(Some(Err(e))) => {
            log::error!("reading metrics failed: {e:#}");
            error(StatusCode::INTERNAL_SERVER_ERROR, "Metrics unavailable")
        }
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "Metrics unavailable"),
    }
}

/// Reads and discards up to `limit` bytes of a body for at most [`DRAIN_TIME`].
async fn drain(body: Incoming, limit: usize) {
    let limited = Limited::new(body, limit);
    let _ = tokio::time::timeout(DRAIN_TIME, limited.collect()).await;
}

fn status_code(status: u16) -> StatusCode {
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

fn too_large() -> Response<Full<Bytes>> {
    error(StatusCode::PAYLOAD_TOO_LARGE, "Payload too large")
}

fn error(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    reply(status, json!({ "error": message }))
}

fn reply(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if status == StatusCode::SERVICE_UNAVAILABLE {
        r.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_decided_by_path_then_method() {
        for p in WEBHOOK_PATHS {
            assert_eq!(route(&Method::POST, p), Route::Webhook);
            assert_eq!(route(&Method::POST, &format!("{p}/")), Route::Webhook);
            assert_eq!(route(&Method::GET, p), Route::WrongMethod("POST"));
        }
        assert_eq!(route(&Method::GET, HEALTH_PATH), Route::Health);
        assert_eq!(route(&Method::GET, METRICS_PATH), Route::Metrics);
        assert_eq!(
            route(&Method::POST, METRICS_PATH),
            Route::WrongMethod("GET")
        );
        assert_eq!(route(&Method::POST, HEALTH_PATH), Route::WrongMethod("GET"));
        assert_eq!(route(&Method::POST, "/"), Route::NotFound);
        assert_eq!(route(&Method::POST, "/api/webhooks"), Route::NotFound);
    }

    #[test]
    fn a_throttle_logs_once_per_interval_and_counts_the_rest() {
        let t = Throttle::default();
        let t0 = Instant::now();
        let mut lines = Vec::new();
        for i in 0..5 {
            t.hit(t0 + Duration::from_millis(i), |n| lines.push(n));
        }
        t.hit(t0 + WARN_INTERVAL + Duration::from_millis(10), |n| {
            lines.push(n)
        });
        assert_eq!(lines, vec![0, 4]);
    }
}
