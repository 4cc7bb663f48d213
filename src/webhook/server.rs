//! The `serve` receiver: a small synchronous HTTP/1.1 server that verifies and stores webhooks.
//!
//! It is written on `std::net` rather than `tiny_http` because every connection needs its own
//! read deadline: a client that sends half a request must time out on its own thread without
//! holding up anyone else. One thread per connection (at most [`MAX_CONNECTIONS`]), one request
//! per connection (`Connection: close`), and the whole request (head and body) must arrive
//! within [`ServerConfig::io_timeout`], so a client trickling one byte at a time is cut off too.
//!
//! Order for a webhook: size check → read the raw body → verify the signature over those exact
//! bytes → [`WebhookSink::store`] → `200 {"received": true}`. The server never parses the JSON;
//! applying stored webhooks is someone else's job.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{SecondsFormat, Utc};
use serde_json::{json, Value};

use super::verify::{verify, Verdict, WebhookSecrets};
use super::{reason_phrase, verdict_response};

/// The header Merge signs deliveries in (matched case-insensitively).
pub const SIGNATURE_HEADER: &str = "X-Merge-Webhook-Signature";
/// The paths webhooks are accepted on: the documented one and two per-event aliases.
pub const WEBHOOK_PATHS: [&str; 3] = [
    "/api/webhooks/merge",
    "/webhooks/merge/sync-completed",
    "/webhooks/merge/model-synced",
];
/// The liveness probe path.
pub const HEALTH_PATH: &str = "/healthz";
/// Default body limit: Merge's deliveries are a few kilobytes.
pub const DEFAULT_MAX_BODY: usize = 1024 * 1024;
/// Default time a client has to send its whole request (well under Merge's 30 s timeout).
pub const DEFAULT_IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; more are answered `503` straight away (Merge retries 5xx).
pub const MAX_CONNECTIONS: usize = 64;

/// Request line plus headers; Merge sends well under 2 KiB.
const MAX_HEAD: usize = 16 * 1024;
/// How long `stop` waits for requests that are already being stored.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// How long, and how much, to read and discard after answering early (for example `413`), so
/// the client sees the answer instead of a connection reset.
const LINGER_TIME: Duration = Duration::from_secs(2);

/// Where verified webhook bodies go. `store` returns `Ok` only once the body is durably
/// committed: the `200` that follows tells Merge it need not retry.
pub trait WebhookSink: Send + Sync + 'static {
    fn store(&self, body: &[u8]) -> anyhow::Result<()>;
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
    /// Time a client has to send its whole request, and per write of the response.
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
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

impl ServerHandle {
    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, then waits briefly for requests already being stored so their `200`
    /// goes out. Requests still being received are abandoned (they end at their own timeout);
    /// Merge retries anything that did not get a `200`.
    pub fn stop(self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // A blocking accept() only returns on a connection, so make one.
        let wake = wake_address(self.addr);
        if let Err(e) = TcpStream::connect_timeout(&wake, Duration::from_secs(1)) {
            log::debug!("could not wake the webhook listener at {wake}: {e}");
        }
        let deadline = Instant::now() + STOP_GRACE;
        while !self.accept.is_finished() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
        if self.accept.is_finished() {
            let _ = self.accept.join();
        } else {
            log::warn!("webhook listener did not stop within {STOP_GRACE:?}; leaving it behind");
        }
        while self.shared.storing.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Blocks for as long as the server runs (the `serve` command's foreground).
    pub fn wait(self) {
        if self.accept.join().is_err() {
            log::error!("webhook listener thread panicked");
        }
    }
}

/// Binds `cfg.listen` and serves on background threads.
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
    if cfg.secrets.is_none() {
        log::warn!("no webhook secret configured: every webhook will be answered 500");
    }
    let shared = Arc::new(Shared {
        stopping: AtomicBool::new(false),
        open: AtomicUsize::new(0),
        storing: AtomicUsize::new(0),
        secrets: cfg.secrets,
        max_body: cfg.max_body,
        io_timeout: cfg.io_timeout.max(Duration::from_millis(1)),
        sink,
    });
    let accept_shared = Arc::clone(&shared);
    let accept = thread::Builder::new()
        .name("webhook-accept".into())
        .spawn(move || accept_loop(listener, accept_shared))
        .context("starting the webhook listener thread")?;
    log::info!("webhook receiver listening on {addr}");
    Ok(ServerHandle {
        addr,
        shared,
        accept,
    })
}

struct Shared {
    stopping: AtomicBool,
    /// Connections with a live thread.
    open: AtomicUsize,
    /// Requests verified and inside `store` or writing their answer.
    storing: AtomicUsize,
    secrets: Option<WebhookSecrets>,
    max_body: usize,
    io_timeout: Duration,
    sink: Arc<dyn WebhookSink>,
}

/// Decrements a counter when dropped, including while unwinding from a panic.
struct CountGuard<'a>(&'a AtomicUsize);

impl Drop for CountGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn wake_address(addr: SocketAddr) -> SocketAddr {
    let mut wake = addr;
    if addr.ip().is_unspecified() {
        wake.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    wake
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let accepted = listener.accept();
        if shared.stopping.load(Ordering::SeqCst) {
            break;
        }
        let (stream, peer) = match accepted {
            Ok(conn) => conn,
            Err(e) => {
                // Usually out of file descriptors; pause rather than spin.
                log::warn!("accepting a webhook connection failed: {e}");
                thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        if shared.open.fetch_add(1, Ordering::SeqCst) >= MAX_CONNECTIONS {
            shared.open.fetch_sub(1, Ordering::SeqCst);
            log::warn!("{MAX_CONNECTIONS} connections open; answering {peer} 503");
            // A short write timeout: this runs on the accept thread.
            let _ = stream.set_write_timeout(Some(Duration::from_millis(200)));
            let busy = Reply::json(503, json!({"error": "Server busy"}));
            let _ = write_reply(&stream, &busy);
            continue;
        }
        let conn_shared = Arc::clone(&shared);
        let spawned = thread::Builder::new()
            .name("webhook-conn".into())
            .spawn(move || {
                let _open = CountGuard(&conn_shared.open);
                handle_connection(stream, peer, &conn_shared);
            });
        if let Err(e) = spawned {
            // The closure (and its stream) was dropped without running.
            shared.open.fetch_sub(1, Ordering::SeqCst);
            log::error!("could not start a thread for a webhook connection: {e}");
        }
    }
    log::info!("webhook receiver stopped");
}

/// An answer: status, JSON body, and the `Allow` header for a `405`.
struct Reply {
    status: u16,
    body: Value,
    allow: Option<&'static str>,
}

impl Reply {
    fn json(status: u16, body: Value) -> Self {
        Reply {
            status,
            body,
            allow: None,
        }
    }

    fn error(status: u16, message: &str) -> Self {
        Reply::json(status, json!({ "error": message }))
    }
}

/// Why reading a request stopped early.
enum Stop {
    /// Answer, then close.
    Reply(Reply),
    /// Close without answering (the peer went away, or never sent anything).
    Close,
}

impl From<Reply> for Stop {
    fn from(r: Reply) -> Self {
        Stop::Reply(r)
    }
}

fn handle_connection(stream: TcpStream, peer: SocketAddr, shared: &Shared) {
    // Accepted sockets are blocking on every platform we target; the timeouts bound each call.
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(shared.io_timeout));
    let mut input = Input {
        stream: &stream,
        deadline: Instant::now() + shared.io_timeout,
        buf: Vec::new(),
        pos: 0,
    };
    let mut body_pending = false;
    let reply = match serve_request(&mut input, peer, shared, &mut body_pending) {
        Ok(reply) | Err(Stop::Reply(reply)) => reply,
        Err(Stop::Close) => return,
    };
    if let Err(e) = write_reply(&stream, &reply) {
        log::debug!("writing the answer to {peer} failed: {e}");
        return;
    }
    // A timed-out client is not sending anything worth waiting for.
    if body_pending && reply.status != 408 {
        linger(&stream, shared.max_body);
    }
}

/// Reads one request and decides the answer. `body_pending` is set while a body was announced
/// but not read, so the caller knows to drain it after answering early.
fn serve_request(
    input: &mut Input<'_>,
    peer: SocketAddr,
    shared: &Shared,
    body_pending: &mut bool,
) -> Result<Reply, Stop> {
    let head = input.read_head()?;
    let request = parse_head(&head)?;
    let framing = body_framing(&request, shared.max_body);
    // Set before `?` so a 413 also drains what the client is still sending.
    *body_pending = !matches!(framing, Ok(Framing::Length(0)));
    let framing = framing?;

    let path = request.path.as_str();
    if path == HEALTH_PATH {
        return Ok(if request.method == "GET" {
            Reply::json(200, json!({"ok": true}))
        } else {
            method_not_allowed("GET")
        });
    }
    if !WEBHOOK_PATHS.contains(&path) {
        return Ok(Reply::error(404, "Not found"));
    }
    if request.method != "POST" {
        return Ok(method_not_allowed("POST"));
    }

    if *body_pending && request.expects_continue() {
        // curl and others wait for this before sending a large body.
        input
            .stream
            .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            .map_err(|_| Stop::Close)?;
    }
    let body = match framing {
        Framing::Length(n) => input.read_exact(n)?,
        Framing::Chunked => input.read_chunked(shared.max_body)?,
    };
    *body_pending = false;

    let Some(secrets) = &shared.secrets else {
        log::error!(
            "webhook from {peer} refused: no webhook secret configured (set MERGE_WEBHOOK_SECRET)"
        );
        return Ok(Reply::error(500, "Server configuration error"));
    };
    let verdict = verify(secrets, &body, request.header(SIGNATURE_HEADER));
    if verdict != Verdict::Valid {
        // The time is in the message so it survives any log format; never the signature value.
        let what = match verdict {
            Verdict::Missing => "missing signature",
            _ => "invalid signature",
        };
        log::warn!(
            "{} rejected webhook from {peer} on {path}: {what} ({} bytes)",
            Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
            body.len()
        );
        let (status, json) = verdict_response(verdict);
        return Ok(Reply::json(status, json));
    }

    shared.storing.fetch_add(1, Ordering::SeqCst);
    let _storing = CountGuard(&shared.storing);
    // A panicking sink must still answer 5xx so Merge retries.
    match catch_unwind(AssertUnwindSafe(|| shared.sink.store(&body))) {
        Ok(Ok(())) => {
            log::debug!(
                "stored webhook from {peer} on {path} ({} bytes)",
                body.len()
            );
            let (status, json) = verdict_response(Verdict::Valid);
            Ok(Reply::json(status, json))
        }
        Ok(Err(e)) => {
            log::error!("storing a webhook from {peer} failed: {e:#}");
            Ok(Reply::error(500, "Storage error"))
        }
        Err(_) => {
            log::error!("storing a webhook from {peer} panicked");
            Ok(Reply::error(500, "Storage error"))
        }
    }
}

fn method_not_allowed(allow: &'static str) -> Reply {
    Reply {
        allow: Some(allow),
        ..Reply::error(405, "Method not allowed")
    }
}

struct Request {
    method: String,
    /// The target without query string, `scheme://authority` or a trailing slash.
    path: String,
    headers: Vec<(String, String)>,
}

impl Request {
    /// The first header with this name, case-insensitively.
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn expects_continue(&self) -> bool {
        self.header("Expect")
            .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
    }
}

fn bad_request(why: &str) -> Stop {
    log::debug!("bad webhook request: {why}");
    Reply::error(400, "Bad request").into()
}

fn parse_head(head: &[u8]) -> Result<Request, Stop> {
    // Header values are ASCII in practice; anything else cannot be a valid signature anyway.
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let request_line = lines.next().unwrap_or("");
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad_request("malformed request line"));
    };
    if !version.starts_with("HTTP/") {
        return Err(bad_request("no HTTP version"));
    }
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(Reply::error(505, "HTTP version not supported").into());
    }
    let mut headers = Vec::new();
    for line in lines.take_while(|l| !l.is_empty()) {
        let Some((name, value)) = line.split_once(':') else {
            return Err(bad_request("header line without a colon"));
        };
        // Whitespace in a name (or obsolete line folding) is how smuggling attempts look.
        if name.is_empty() || name.bytes().any(|b| b.is_ascii_whitespace()) {
            return Err(bad_request("malformed header name"));
        }
        headers.push((name.to_string(), value.trim().to_string()));
    }
    Ok(Request {
        method: method.to_string(),
        path: normalise_path(target),
        headers,
    })
}

fn normalise_path(target: &str) -> String {
    let mut path = target.split(['?', '#']).next().unwrap_or("");
    // Absolute form (`http://host/path`), as sent through some proxies.
    if let Some(rest) = path
        .strip_prefix("http://")
        .or_else(|| path.strip_prefix("https://"))
    {
        path = rest.find('/').map_or("/", |i| &rest[i..]);
    }
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        "/".to_string()
    } else {
        trimmed.to_string()
    }
}

enum Framing {
    Length(usize),
    Chunked,
}

/// Decides how the body is delimited, refusing an announced body over `max_body` before any of
/// it is read.
fn body_framing(request: &Request, max_body: usize) -> Result<Framing, Stop> {
    let te: Vec<&str> = request.all("Transfer-Encoding").collect();
    let cl: Vec<&str> = request.all("Content-Length").collect();
    if !te.is_empty() {
        // Both at once is the classic smuggling shape; refuse rather than pick one.
        if !cl.is_empty() {
            return Err(bad_request("both Transfer-Encoding and Content-Length"));
        }
        let last = te.last().and_then(|v| v.rsplit(',').next()).unwrap_or("");
        if !last.trim().eq_ignore_ascii_case("chunked") {
            return Err(Reply::error(501, "Transfer-Encoding not supported").into());
        }
        return Ok(Framing::Chunked);
    }
    let Some(first) = cl.first() else {
        return Ok(Framing::Length(0));
    };
    if cl.iter().any(|v| v != first)
        || first.is_empty()
        || !first.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad_request("malformed Content-Length"));
    }
    match first.parse::<usize>() {
        Ok(n) if n <= max_body => Ok(Framing::Length(n)),
        _ => Err(too_large()),
    }
}

fn too_large() -> Stop {
    Reply::error(413, "Payload too large").into()
}

/// The request bytes of one connection, read under one deadline for the whole request.
struct Input<'a> {
    stream: &'a TcpStream,
    deadline: Instant,
    buf: Vec<u8>,
    /// Bytes before `pos` are consumed.
    pos: usize,
}

impl Input<'_> {
    /// Reads more bytes into `buf`; `Ok(0)` at end of stream.
    fn fill(&mut self) -> Result<usize, Stop> {
        let mut chunk = [0u8; 8192];
        loop {
            let now = Instant::now();
            if now >= self.deadline {
                return Err(Reply::error(408, "Request timeout").into());
            }
            // Re-armed before every read so the total, not each read, is bounded.
            if self
                .stream
                .set_read_timeout(Some(self.deadline - now))
                .is_err()
            {
                return Err(Stop::Close);
            }
            match (&*self.stream).read(&mut chunk) {
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(Reply::error(408, "Request timeout").into())
                }
                Err(_) => return Err(Stop::Close),
            }
        }
    }

    fn unread(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// The request line and headers, without the blank line that ends them.
    fn read_head(&mut self) -> Result<Vec<u8>, Stop> {
        loop {
            if let Some(end) = head_end(self.unread()) {
                let head = self.unread()[..end].to_vec();
                self.pos += end;
                return Ok(head);
            }
            if self.unread().len() > MAX_HEAD {
                return Err(Reply::error(431, "Request header fields too large").into());
            }
            if self.fill()? == 0 {
                // Nothing at all is a port probe (or `stop` waking the listener): no answer.
                return Err(if self.buf.is_empty() {
                    Stop::Close
                } else {
                    bad_request("connection closed inside the headers")
                });
            }
        }
    }

    fn read_exact(&mut self, n: usize) -> Result<Vec<u8>, Stop> {
        while self.unread().len() < n {
            if self.fill()? == 0 {
                return Err(bad_request("connection closed inside the body"));
            }
        }
        let out = self.unread()[..n].to_vec();
        self.pos += n;
        Ok(out)
    }

    /// One line without its line ending, at most `max` bytes.
    fn read_line(&mut self, max: usize) -> Result<Vec<u8>, Stop> {
        loop {
            if let Some(i) = self.unread().iter().position(|&b| b == b'\n') {
                let line = self.unread()[..i].to_vec();
                self.pos += i + 1;
                let line = line.strip_suffix(b"\r").map(<[u8]>::to_vec).unwrap_or(line);
                return Ok(line);
            }
            if self.unread().len() > max {
                return Err(bad_request("overlong line in a chunked body"));
            }
            if self.fill()? == 0 {
                return Err(bad_request("connection closed inside a chunked body"));
            }
        }
    }

    /// A `Transfer-Encoding: chunked` body, refused with `413` as soon as it passes `max`.
    fn read_chunked(&mut self, max: usize) -> Result<Vec<u8>, Stop> {
        let mut body = Vec::new();
        loop {
            let line = self.read_line(1024)?;
            let line = String::from_utf8_lossy(&line);
            let size = line.split(';').next().unwrap_or("").trim();
            if size.is_empty() || size.len() > 16 || !size.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad_request("malformed chunk size"));
            }
            let size = usize::from_str_radix(size, 16).map_err(|_| too_large())?;
            if size == 0 {
                // Trailers are ignored, up to the blank line.
                while !self.read_line(MAX_HEAD)?.is_empty() {}
                return Ok(body);
            }
            if size > max.saturating_sub(body.len()) {
                return Err(too_large());
            }
            body.extend(self.read_exact(size)?);
            if !self.read_line(2)?.is_empty() {
                return Err(bad_request("chunk not followed by CRLF"));
            }
        }
    }
}

/// The length of the head including the blank line that ends it (CRLF or bare LF).
fn head_end(buf: &[u8]) -> Option<usize> {
    buf.iter().enumerate().find_map(|(i, &b)| {
        if b != b'\n' {
            return None;
        }
        match (buf.get(i + 1), buf.get(i + 2)) {
            (Some(b'\n'), _) => Some(i + 2),
            (Some(b'\r'), Some(b'\n')) => Some(i + 3),
            _ => None,
        }
    })
}

fn write_reply(mut stream: &TcpStream, reply: &Reply) -> io::Result<()> {
    let body = reply.body.to_string();
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        reply.status,
        reason_phrase(reply.status),
        body.len()
    );
    if let Some(allow) = reply.allow {
        out.push_str(&format!("Allow: {allow}\r\n"));
    }
    if reply.status == 503 {
        out.push_str("Retry-After: 1\r\n");
    }
    out.push_str("\r\n");
    out.push_str(&body);
    stream.write_all(out.as_bytes())?;
    stream.flush()
}

/// After answering before the body was read, reads and discards what the client is still
/// sending (bounded in time and bytes) before closing. Closing with unread data makes the
/// kernel reset the connection, and the client would then lose the answer.
fn linger(stream: &TcpStream, max_body: usize) {
    let _ = stream.shutdown(Shutdown::Write);
    let deadline = Instant::now() + LINGER_TIME;
    let mut left = max_body.saturating_add(DEFAULT_MAX_BODY);
    let mut chunk = [0u8; 16 * 1024];
    while left > 0 {
        let now = Instant::now();
        if now >= deadline || stream.set_read_timeout(Some(deadline - now)).is_err() {
            return;
        }
        match (&*stream).read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => left = left.saturating_sub(n),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Request {
        match parse_head(text.as_bytes()) {
            Ok(r) => r,
            Err(_) => panic!("head should parse: {text:?}"),
        }
    }

    #[test]
    fn head_end_finds_crlf_and_bare_lf() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nA: b\r\n\r\nbody"), Some(24));
        assert_eq!(head_end(b"GET / HTTP/1.1\nA: b\n\nbody"), Some(21));
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nA: b\r\n"), None);
    }

    #[test]
    fn parses_request_line_headers_and_path_forms() {
        let r =
            head("POST /api/webhooks/merge/?x=1 HTTP/1.1\r\nx-merge-webhook-signature:  abc= \r\n");
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/api/webhooks/merge");
        assert_eq!(r.header(SIGNATURE_HEADER), Some("abc="));
        assert_eq!(head("GET http://h:1/healthz HTTP/1.0\r\n").path, "/healthz");
        assert_eq!(head("GET / HTTP/1.1\r\n").path, "/");
    }

    #[test]
    fn rejects_malformed_heads() {
        for bad in [
            "GET /\r\n",
            "GET / HTTP/1.1 extra\r\n",
            "GET / HTTP/1.1\r\nNo colon\r\n",
            "GET / HTTP/1.1\r\nBad name: x\r\n",
            "GET / HTTP/2.0\r\n",
        ] {
            assert!(parse_head(bad.as_bytes()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn framing_refuses_ambiguous_and_oversized_bodies() {
        let framing = |h: &str| body_framing(&head(&format!("POST / HTTP/1.1\r\n{h}")), 100);
        assert!(matches!(
            framing("Content-Length: 100\r\n"),
            Ok(Framing::Length(100))
        ));
        assert!(matches!(framing(""), Ok(Framing::Length(0))));
        assert!(matches!(
            framing("Transfer-Encoding: gzip, chunked\r\n"),
            Ok(Framing::Chunked)
        ));
        let status = |r: Result<Framing, Stop>| match r {
            Err(Stop::Reply(reply)) => reply.status,
            _ => 0,
        };
        assert_eq!(status(framing("Content-Length: 101\r\n")), 413);
        assert_eq!(
            status(framing("Content-Length: 99999999999999999999999\r\n")),
            413
        );
        assert_eq!(status(framing("Content-Length: -1\r\n")), 400);
        assert_eq!(
            status(framing("Content-Length: 1\r\nContent-Length: 2\r\n")),
            400
        );
        assert_eq!(
            status(framing(
                "Content-Length: 1\r\nTransfer-Encoding: chunked\r\n"
            )),
            400
        );
        assert_eq!(status(framing("Transfer-Encoding: gzip\r\n")), 501);
    }

    #[test]
    fn wake_address_turns_unspecified_into_loopback() {
        let a: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        assert_eq!(wake_address(a), "127.0.0.1:8080".parse().unwrap());
        let b: SocketAddr = "[::]:8080".parse().unwrap();
        assert_eq!(wake_address(b), "[::1]:8080".parse().unwrap());
    }
}
