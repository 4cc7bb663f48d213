//! The running fake: a loopback listener, one thread per connection (so parallel clients are
//! not serialised), the request log, fault handling and a shutdown that never hangs.

use std::collections::HashMap;
use std::io::{BufReader, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::json;

use super::api::{self, Reply};
use super::fault::FaultAction;
use super::http::{self, HttpRequest, HttpResponse, ReadError};
use super::scenario::Scenario;
use super::state::FakeState;

/// An idle keep-alive connection is closed after this long.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// One request the fake received, for assertions.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    /// Percent-decoded path without the query, e.g. `/api/hris/v1/employees`.
    pub path: String,
    /// Percent-decoded query parameters, in order.
    pub query: Vec<(String, String)>,
    pub account_token: Option<String>,
    /// Whether the API key (and the account token, where the endpoint needs one) was valid.
    pub authorized: bool,
    /// The status sent; 0 when no response was sent (dropped connection, server stopping).
    pub status: u16,
    /// When the request arrived.
    pub at: Instant,
}

impl RecordedRequest {
    /// The last value of a query parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

struct Shared {
    state: Mutex<FakeState>,
    requests: Mutex<Vec<RecordedRequest>>,
    stopping: Mutex<bool>,
    wake: Condvar,
    /// Open connections, so shutdown can unblock the threads reading them.
    conns: Mutex<HashMap<u64, TcpStream>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking handler must not take the whole fake down with a poisoned lock.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn stopped(&self) -> bool {
        *lock(&self.stopping)
    }

    /// Sleeps `d` unless the server stops first; `false` when it is stopping.
    fn sleep(&self, d: Duration) -> bool {
        let deadline = Instant::now() + d;
        let mut stopping = lock(&self.stopping);
        loop {
            if *stopping {
                return false;
            }
            let now = Instant::now();
            if now >= deadline {
                return true;
            }
            stopping = self
                .wake
                .wait_timeout(stopping, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

/// A running fake Merge API. Stops (and joins its threads) when dropped.
pub struct FakeMerge {
    shared: Arc<Shared>,
    addr: SocketAddr,
    acceptor: Option<JoinHandle<()>>,
}

impl FakeMerge {
    /// Serves `scenario` on an ephemeral loopback port.
    pub fn start(scenario: Scenario) -> anyhow::Result<FakeMerge> {
        FakeMerge::start_on("127.0.0.1:0", scenario)
    }

    pub fn start_on(addr: &str, scenario: Scenario) -> anyhow::Result<FakeMerge> {
        let state = FakeState::from_scenario(&scenario)?;
        let listener =
            TcpListener::bind(addr).with_context(|| format!("binding fake Merge to {addr}"))?;
        let addr = listener
            .local_addr()
            .context("reading the fake's address")?;
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            requests: Mutex::new(Vec::new()),
            stopping: Mutex::new(false),
            wake: Condvar::new(),
            conns: Mutex::new(HashMap::new()),
        });
        let s = shared.clone();
        let acceptor = thread::Builder::new()
            .name("fake-merge-accept".into())
            .spawn(move || accept_loop(listener, s))
            .context("starting the fake's accept thread")?;
        Ok(FakeMerge {
            shared,
            addr,
            acceptor: Some(acceptor),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The API base URL, including `/api`, e.g. `http://127.0.0.1:43121/api`.
    pub fn base_url(&self) -> String {
        format!("http://{}/api", connect_addr(self.addr))
    }

    /// Runs `f` on the state under its lock, with scripted events due before and after it
    /// applied.
    pub fn with_state<R>(&self, f: impl FnOnce(&mut FakeState) -> R) -> R {
        let mut state = lock(&self.shared.state);
        state.process_due();
        let r = f(&mut state);
        state.process_due();
        r
    }

    /// Moves Merge's clock forward (shorthand for `with_state(|s| s.advance(by))`).
    pub fn advance(&self, by: chrono::TimeDelta) {
        self.with_state(|s| s.advance(by));
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.requests).clone()
    }

    pub fn clear_requests(&self) {
        lock(&self.shared.requests).clear();
    }
}

impl Drop for FakeMerge {
    fn drop(&mut self) {
        {
            let mut stopping = lock(&self.shared.stopping);
            *stopping = true;
            self.shared.wake.notify_all();
        }
        // The accept loop is blocked in accept(): a connection wakes it to see the flag.
        let _ = TcpStream::connect_timeout(&connect_addr(self.addr), Duration::from_secs(1));
        for (_, c) in lock(&self.shared.conns).drain() {
            let _ = c.shutdown(Shutdown::Both);
        }
        if let Some(h) = self.acceptor.take() {
            let _ = h.join();
        }
    }
}

/// Where a client reaches `addr` (a wildcard bind is reached on loopback).
fn connect_addr(addr: SocketAddr) -> SocketAddr {
    let mut a = addr;
    if a.ip().is_unspecified() {
        a.set_ip(match a {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    a
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut workers: Vec<JoinHandle<()>> = Vec::new();
    let mut next_id = 0u64;
    for conn in listener.incoming() {
        if shared.stopped() {
            break;
        }
        let stream = match conn {
            Ok(s) => s,
            Err(e) => {
                log::warn!("fake-merge: accept failed: {e}");
                // Out of file descriptors and the like: do not spin.
                thread::sleep(Duration::from_millis(20));
                continue;
            }
        };
        workers.retain(|h| !h.is_finished());
        next_id += 1;
        let id = next_id;
        if let Ok(clone) = stream.try_clone() {
            lock(&shared.conns).insert(id, clone);
        }
        let s = shared.clone();
        let spawned = thread::Builder::new()
            .name(format!("fake-merge-conn-{id}"))
            .spawn(move || {
                serve_conn(&s, stream);
                lock(&s.conns).remove(&id);
            });
        match spawned {
            Ok(h) => workers.push(h),
            Err(e) => {
                log::warn!("fake-merge: cannot start a connection thread: {e}");
                lock(&shared.conns).remove(&id);
            }
        }
    }
    for (_, c) in lock(&shared.conns).drain() {
        let _ = c.shutdown(Shutdown::Both);
    }
    for h in workers {
        let _ = h.join();
    }
}

enum Outcome {
    Send(HttpResponse),
    /// Close without answering.
    Drop,
    /// Send the head and half the body, then close.
    Cut(HttpResponse),
    Stopped,
}

fn serve_conn(shared: &Shared, stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_read_timeout(Some(IDLE_TIMEOUT));
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut writer = stream;
    while !shared.stopped() {
        let req = match http::read_request(&mut reader) {
            Ok(Some(r)) => r,
            Ok(None) => break,
            Err(ReadError::Io(e)) => {
                log::debug!("fake-merge: connection closed: {e}");
                break;
            }
            Err(ReadError::Bad(msg)) => {
                let _ = Reply::detail(400, msg)
                    .into_response()
                    .write_to(&mut writer, false);
                break;
            }
        };
        let keep_alive = req.keep_alive;
        match respond(shared, &req) {
            Outcome::Send(resp) => {
                if resp.write_to(&mut writer, keep_alive).is_err() {
                    break;
                }
            }
            Outcome::Drop => {
                let _ = writer.shutdown(Shutdown::Both);
                break;
            }
            Outcome::Cut(resp) => {
                let mut bytes = resp.head(false);
                bytes.extend_from_slice(&resp.body[..resp.body.len() / 2]);
                let _ = writer.write_all(&bytes);
                let _ = writer.flush();
                let _ = writer.shutdown(Shutdown::Both);
                break;
            }
            Outcome::Stopped => break,
        }
        if !keep_alive {
            break;
        }
    }
}

/// Handles one request end to end and records it.
fn respond(shared: &Shared, req: &HttpRequest) -> Outcome {
    let index = {
        let mut log = lock(&shared.requests);
        log.push(RecordedRequest {
            method: req.method.clone(),
            path: req.path.clone(),
            query: req.query.clone(),
            account_token: req.header("x-account-token").map(str::to_string),
            authorized: false,
            status: 0,
            at: Instant::now(),
        });
        log.len() - 1
    };
    let (authorized, fault, latency) = {
        let mut state = lock(&shared.state);
        state.process_due();
        (
            api::is_authorized(&state, req),
            state.check_faults(&req.method, &req.path),
            state.latency(),
        )
    };
    // Latency and delays are slept outside the state lock, so parallel clients overlap.
    let outcome = if !latency.is_zero() && !shared.sleep(latency) {
        Outcome::Stopped
    } else {
        apply_fault(shared, req, fault)
    };
    let status = match &outcome {
        Outcome::Send(r) | Outcome::Cut(r) => r.status,
        Outcome::Drop | Outcome::Stopped => 0,
    };
    // `clear_requests` may have emptied the log meanwhile.
    if let Some(r) = lock(&shared.requests).get_mut(index) {
        r.authorized = authorized;
        r.status = status;
    }
    outcome
}

fn apply_fault(shared: &Shared, req: &HttpRequest, fault: Option<FaultAction>) -> Outcome {
    let Some(fault) = fault else {
        return Outcome::Send(answer(shared, req));
    };
    match fault {
        FaultAction::Status { status, body } => {
            let body = body.unwrap_or_else(|| {
                json!({ "detail": default_detail(status) }).to_string()
            });
            Outcome::Send(HttpResponse {
                status,
                content_type: "application/json",
                headers: Vec::new(),
                body: body.into_bytes(),
            })
        }
        FaultAction::RateLimit { retry_after } => Outcome::Send(HttpResponse {
            status: 429,
            content_type: "application/json",
            headers: vec![("Retry-After", retry_after.to_string())],
            body: json!({
                "detail": format!("Request was throttled. Expected available in {retry_after} seconds.")
            })
            .to_string()
            .into_bytes(),
        }),
        FaultAction::MalformedJson => {
            let mut resp = answer(shared, req);
            let half = (resp.body.len() / 2).max(1).min(resp.body.len());
            resp.body.truncate(half);
            resp.status = 200;
            resp.content_type = "application/json";
            Outcome::Send(resp)
        }
        FaultAction::Html { status } => {
            let title = format!("{status} {}", http::reason(status));
            Outcome::Send(HttpResponse {
                status,
                content_type: "text/html; charset=utf-8",
                headers: Vec::new(),
                body: format!(
                    "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
                )
                .into_bytes(),
            })
        }
        FaultAction::Delay { delay } => {
            if shared.sleep(delay) {
                Outcome::Send(answer(shared, req))
            } else {
                Outcome::Stopped
            }
        }
        FaultAction::DropConnection => Outcome::Drop,
        FaultAction::CutBody => Outcome::Cut(answer(shared, req)),
    }
}

fn default_detail(status: u16) -> &'static str {
    match status {
        400 => "Bad request.",
        401 => "Authentication credentials were not provided.",
        403 => "You do not have permission to perform this action.",
        404 => "Not found.",
        408 => "Request timed out.",
        429 => "Request was throttled.",
        500 => "A server error occurred.",
        502 => "Bad gateway.",
        503 => "Service temporarily unavailable, try again later.",
        504 => "Gateway timed out.",
        _ => "Error.",
    }
}

/// The real answer: the handler runs under the state lock, rendering outside it.
fn answer(shared: &Shared, req: &HttpRequest) -> HttpResponse {
    let result = catch_unwind(AssertUnwindSafe(|| {
        let (reply, now) = {
            let mut state = lock(&shared.state);
            state.process_due();
            (api::handle(&state, req), state.now())
        };
        let mut resp = reply.into_response();
        // Merge's clock, as a real server reports its own: clients cap window bounds by it.
        resp.headers
            .push(("Date", now.format("%a, %d %b %Y %H:%M:%S GMT").to_string()));
        resp
    }));
    result.unwrap_or_else(|_| {
        log::error!(
            "fake-merge: handler panicked on {} {}",
            req.method,
            req.path
        );
        Reply::detail(500, "fake-merge internal error").into_response()
    })
}
