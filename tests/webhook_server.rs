//! Loopback tests of the `serve` webhook receiver: answers, raw-byte storage, limits, timeouts.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use merge_sync::secret::Secret;
use merge_sync::webhook::{self, ServerConfig, ServerHandle, WebhookSecrets, WebhookSink};
use serde_json::{json, Value};

const SECRET: &str = "whsec_test_current_5b7e";
const PREVIOUS: &str = "whsec_test_previous_91c2";
const PATH: &str = "/api/webhooks/merge";
const MIB: usize = 1024 * 1024;
/// How long a test waits for an answer before failing: generous, for 2 busy cores. Tests
/// never assert that something was fast, only that it happened before this deadline.
const DEADLINE: Duration = Duration::from_secs(30);

/// Keeps every stored body, to prove the exact bytes arrive (and that forgeries do not).
#[derive(Default)]
struct Recording(Mutex<Vec<Vec<u8>>>);

impl Recording {
    fn bodies(&self) -> Vec<Vec<u8>> {
        self.0.lock().unwrap().clone()
    }
}

impl WebhookSink for Recording {
    fn store(&self, body: &[u8]) -> anyhow::Result<()> {
        self.0.lock().unwrap().push(body.to_vec());
        Ok(())
    }
}

struct Failing;

impl WebhookSink for Failing {
    fn store(&self, _body: &[u8]) -> anyhow::Result<()> {
        anyhow::bail!("database is locked")
    }
}

fn secrets(previous: Option<&str>) -> Option<WebhookSecrets> {
    Some(WebhookSecrets::new(
        Secret::new(SECRET),
        previous.map(Secret::new),
    ))
}

fn start_with(
    secrets: Option<WebhookSecrets>,
    io_timeout: Duration,
    sink: Arc<dyn WebhookSink>,
) -> ServerHandle {
    let cfg = ServerConfig {
        listen: "127.0.0.1:0".into(),
        secrets,
        max_body: MIB,
        io_timeout,
    };
    webhook::start(cfg, sink).expect("server starts on loopback")
}

fn start(sink: Arc<dyn WebhookSink>) -> ServerHandle {
    start_with(secrets(None), Duration::from_secs(2), sink)
}

struct Answer {
    status: u16,
    head: String,
    json: Value,
}

impl Answer {
    fn content_type(&self) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-type")
                .then_some(value.trim())
        })
    }
}

/// Sends raw bytes and reads the whole answer (the server closes after each response).
fn raw(addr: SocketAddr, request: &[u8]) -> Answer {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s.write_all(request).unwrap();
    read_answer(&mut s)
}

fn read_answer(s: &mut TcpStream) -> Answer {
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("server answers and closes");
    let text = String::from_utf8(out).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("a complete HTTP answer");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    Answer {
        status,
        head: head.to_string(),
        json: serde_json::from_str(body).unwrap_or(Value::Null),
    }
}

fn request(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\n");
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

fn post(addr: SocketAddr, signature: Option<&str>, body: &[u8]) -> Answer {
    let headers: Vec<(&str, &str)> = signature
        .map(|s| ("X-Merge-Webhook-Signature", s))
        .into_iter()
        .collect();
    raw(addr, &request("POST", PATH, &headers, body))
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(DEADLINE))
        .build()
        .into()
}

/// Non-ASCII text, inner whitespace and a trailing newline: any re-encoding would show.
fn sample_body() -> Vec<u8> {
    "{\"hook\": {\"event\": \"Employee.synced\"},  \"data\": {\"name\": \"Zoë 数据\"}}\n"
        .as_bytes()
        .to_vec()
}

#[test]
fn valid_webhook_is_stored_byte_for_byte_on_every_route() {
    let sink = Arc::new(Recording::default());
    let server = start(sink.clone());
    let addr = server.local_addr();
    let body = sample_body();
    let signature = webhook::sign(SECRET, &body);
    for path in [
        "/api/webhooks/merge",
        "/webhooks/merge/sync-completed",
        "/webhooks/merge/model-synced",
    ] {
        let mut resp = agent()
            .post(format!("http://{addr}{path}"))
            .header("X-Merge-Webhook-Signature", &signature)
            .header("Content-Type", "application/json")
            .send(&body[..])
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{path}");
        assert_eq!(
            resp.headers().get("content-type").unwrap(),
            "application/json"
        );
        let json: Value = resp.body_mut().read_json().unwrap();
        assert_eq!(json, json!({"received": true}));
    }
    assert_eq!(sink.bodies(), vec![body.clone(), body.clone(), body]);
    server.stop();
}

#[test]
fn signature_header_name_is_case_insensitive_and_padding_optional() {
    let sink = Arc::new(Recording::default());
    let server = start(sink.clone());
    let body = sample_body();
    let unpadded = webhook::sign(SECRET, &body)
        .trim_end_matches('=')
        .to_string();
    let req = request(
        "POST",
        PATH,
        &[("x-merge-webhook-signature", unpadded.as_str())],
        &body,
    );
    let answer = raw(server.local_addr(), &req);
    assert_eq!(answer.status, 200);
    assert_eq!(sink.bodies(), vec![body]);
    server.stop();
}

#[test]
fn missing_or_empty_signature_is_401_and_stores_nothing() {
    let sink = Arc::new(Recording::default());
    let server = start(sink.clone());
    for signature in [None, Some("")] {
        let answer = post(server.local_addr(), signature, &sample_body());
        assert_eq!(answer.status, 401, "{signature:?}");
        assert_eq!(answer.json, json!({"error": "Missing signature"}));
        assert_eq!(answer.content_type(), Some("application/json"));
    }
    assert!(sink.bodies().is_empty());
    server.stop();
}

#[test]
fn forged_webhook_is_401_logged_without_the_signature_and_stores_nothing() {
    let logs = capture_logs();
    let sink = Arc::new(Recording::default());
    let server = start(sink.clone());
    let body = sample_body();
    let forged = webhook::sign("whsec_attacker_guess", &body);

    let mut s = TcpStream::connect(server.local_addr()).unwrap();
    let client = s.local_addr().unwrap().to_string();
    let req = request(
        "POST",
        PATH,
        &[("X-Merge-Webhook-Signature", forged.as_str())],
        &body,
    );
    s.write_all(&req).unwrap();
    let answer = read_answer(&mut s);
    assert_eq!(answer.status, 401);
    assert_eq!(answer.json, json!({"error": "Invalid signature"}));
    assert!(sink.bodies().is_empty());

    // A tampered body with the genuine signature is just as invalid.
    let mut tampered = body.clone();
    tampered[10] ^= 1;
    let genuine = webhook::sign(SECRET, &body);
    assert_eq!(
        post(server.local_addr(), Some(&genuine), &tampered).status,
        401
    );
    assert!(sink.bodies().is_empty());
    server.stop();

    let logs = logs.lock().unwrap();
    let line = logs
        .iter()
        .find(|(level, msg)| *level == log::Level::Warn && msg.contains(&client))
        .unwrap_or_else(|| panic!("a warning naming {client} in {logs:?}"));
    assert!(line.1.contains("invalid signature"), "{}", line.1);
    assert!(
        line.1
            .contains(&chrono::Utc::now().format("%Y-%m-%dT").to_string()),
        "the warning carries the UTC time: {}",
        line.1
    );
    for (_, msg) in logs.iter() {
        assert!(!msg.contains(&forged), "signature value logged: {msg}");
        assert!(!msg.contains(&genuine), "signature value logged: {msg}");
        assert!(!msg.contains(SECRET), "secret logged: {msg}");
    }
}

#[test]
fn previous_secret_is_accepted_during_rotation() {
    let sink = Arc::new(Recording::default());
    let server = start_with(
        secrets(Some(PREVIOUS)),
        Duration::from_secs(2),
        sink.clone(),
    );
    let body = sample_body();
    let answer = post(
        server.local_addr(),
        Some(&webhook::sign(PREVIOUS, &body)),
        &body,
    );
    assert_eq!(answer.status, 200);
    assert_eq!(sink.bodies(), vec![body]);
    server.stop();

    // Without the rotation configured, the old key is just a wrong key.
    let sink = Arc::new(Recording::default());
    let server = start(sink.clone());
    let body = sample_body();
    let answer = post(
        server.local_addr(),
        Some(&webhook::sign(PREVIOUS, &body)),
        &body,
    );
    assert_eq!(answer.status, 401);
    assert!(sink.bodies().is_empty());
    server.stop();
}

#[test]
fn no_secret_configured_is_500() {
    let sink = Arc::new(Recording::default());
    let server = start_with(None, Duration::from_secs(2), sink.clone());
    let body = sample_body();
    let answer = post(
        server.local_addr(),
        Some(&webhook::sign(SECRET, &body)),
        &body,
    );
    assert_eq!(answer.status, 500);
    assert_eq!(answer.json, json!({"error": "Server configuration error"}));
    assert!(sink.bodies().is_empty());
    server.stop();
}

#[test]
fn storage_error_is_500_so_merge_retries() {
    let server = start(Arc::new(Failing));
    let body = sample_body();
    let answer = post(
        server.local_addr(),
        Some(&webhook::sign(SECRET, &body)),
        &body,
    );
    assert_eq!(answer.status, 500);
    assert_eq!(answer.json, json!({"error": "Storage error"}));
    server.stop();
}

#[test]
fn body_over_one_mib_is_413_and_one_mib_is_accepted() {
    let sink = Arc::new(Recording::default());
    let server = start(sink.clone());
    let addr = server.local_addr();

    // A real client that writes the whole body before reading still sees the 413.
    let big = vec![b'x'; MIB + 1];
    let resp = agent()
        .post(format!("http://{addr}{PATH}"))
        .header("X-Merge-Webhook-Signature", webhook::sign(SECRET, &big))
        .send(&big[..])
        .unwrap();
    assert_eq!(resp.status().as_u16(), 413);
    assert_eq!(
        resp.headers().get("content-type").unwrap(),
        "application/json"
    );
    assert!(sink.bodies().is_empty());

    let limit = vec![b'y'; MIB];
    let answer = post(addr, Some(&webhook::sign(SECRET, &limit)), &limit);
    assert_eq!(answer.status, 200);
    assert_eq!(sink.bodies(), vec![limit]);
    server.stop();
}

fn chunked(body: &[u8], chunk: usize, signature: &str) -> Vec<u8> {
    let mut out = format!(
        "POST {PATH} HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\
         X-Merge-Webhook-Signature: {signature}\r\n\r\n"
    )
    .into_bytes();
    for part in body.chunks(chunk) {
        out.extend_from_slice(format!("{:x};ext=1\r\n", part.len()).as_bytes());
        out.extend_from_slice(part);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

#[test]
fn chunked_bodies_are_reassembled_and_capped() {
    let sink = Arc::new(Recording::default());
    let server = start(sink.clone());
    let addr = server.local_addr();

    let body = sample_body();
    let answer = raw(addr, &chunked(&body, 7, &webhook::sign(SECRET, &body)));
    assert_eq!(answer.status, 200);
    assert_eq!(sink.bodies(), vec![body]);

    // No Content-Length to check up front: the cap applies to the bytes as they arrive.
    let big = vec![b'z'; MIB + 1];
    let answer = raw(
        addr,
        &chunked(&big, 64 * 1024, &webhook::sign(SECRET, &big)),
    );
    assert_eq!(answer.status, 413);
    assert_eq!(sink.bodies().len(), 1);
    server.stop();
}

#[test]
fn healthz_unknown_paths_and_wrong_methods() {
    let server = start(Arc::new(Recording::default()));
    let addr = server.local_addr();

    let health = raw(addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(health.status, 200);
    assert_eq!(health.json, json!({"ok": true}));
    assert_eq!(health.content_type(), Some("application/json"));

    let missing = raw(addr, &request("POST", "/api/webhooks/other", &[], b"{}"));
    assert_eq!(missing.status, 404);
    assert_eq!(missing.content_type(), Some("application/json"));

    let get = raw(addr, b"GET /api/webhooks/merge HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(get.status, 405);
    assert!(
        get.head.to_ascii_lowercase().contains("allow: post"),
        "{}",
        get.head
    );
    assert_eq!(get.content_type(), Some("application/json"));

    let post_health = raw(addr, &request("POST", "/healthz", &[], b"{}"));
    assert_eq!(post_health.status, 405);

    let garbage = raw(addr, b"NOT HTTP AT ALL\r\n\r\n");
    assert_eq!(garbage.status, 400);
    server.stop();
}

#[test]
fn stalled_client_does_not_delay_other_clients() {
    let sink = Arc::new(Recording::default());
    // The stalled connections are held open far longer than any deadline below: an answer
    // or a stop that waited for them would miss it.
    let server = start_with(secrets(None), Duration::from_secs(300), sink.clone());
    let addr = server.local_addr();

    let mut stalled = TcpStream::connect(addr).unwrap();
    stalled
        .write_all(
            b"POST /api/webhooks/merge HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789",
        )
        .unwrap();
    let mut half_head = TcpStream::connect(addr).unwrap();
    half_head.write_all(b"POST /api/webh").unwrap();
    thread::sleep(Duration::from_millis(50));

    let body = sample_body();
    let answer = post(addr, Some(&webhook::sign(SECRET, &body)), &body);
    assert_eq!(answer.status, 200);
    assert_eq!(sink.bodies(), vec![body]);

    // stop() does not wait for clients that are still sending.
    let (done, stopped) = std::sync::mpsc::channel();
    thread::spawn(move || {
        server.stop();
        let _ = done.send(());
    });
    assert!(
        stopped.recv_timeout(DEADLINE).is_ok(),
        "stop() still waiting after {DEADLINE:?}"
    );
    drop((stalled, half_head));
}

#[test]
fn stalled_client_times_out_with_408() {
    let sink = Arc::new(Recording::default());
    let server = start_with(secrets(None), Duration::from_millis(300), sink.clone());
    let mut s = TcpStream::connect(server.local_addr()).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s.write_all(b"POST /api/webhooks/merge HTTP/1.1\r\nContent-Length: 100\r\n\r\n0123456789")
        .unwrap();
    let answer = read_answer(&mut s);
    assert_eq!(answer.status, 408);

    // Trickling bytes does not extend the deadline: it covers the whole head. A byte every
    // 20 ms would keep a per-read timeout of 300 ms from ever firing. The server closes the
    // connection (hyper's header timeout answers nothing).
    let mut s = TcpStream::connect(server.local_addr()).unwrap();
    s.write_all(b"POST /api/webhooks/merge HTTP/1.1\r\nX-Slow: ")
        .unwrap();
    let give_up = Instant::now() + DEADLINE;
    s.set_nonblocking(true).unwrap();
    loop {
        let mut peek = [0u8; 1];
        match s.peek(&mut peek) {
            Ok(_) => break,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("connection failed before an answer: {e}"),
        }
        assert!(
            Instant::now() < give_up,
            "still no answer after {DEADLINE:?} of trickling"
        );
        if s.write_all(b"y").is_err() {
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    s.set_nonblocking(false).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let answer = String::from_utf8_lossy(&out);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer:?}"
    );
    assert!(sink.bodies().is_empty());
    server.stop();
}

#[test]
fn expect_100_continue_gets_an_interim_answer_before_the_body() {
    let sink = Arc::new(Recording::default());
    let server = start(sink.clone());
    let body = sample_body();
    let head = format!(
        "POST {PATH} HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\
         X-Merge-Webhook-Signature: {}\r\nContent-Length: {}\r\n\r\n",
        webhook::sign(SECRET, &body),
        body.len()
    );
    let mut s = TcpStream::connect(server.local_addr()).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    let mut interim = [0u8; 25];
    s.read_exact(&mut interim).unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    s.write_all(&body).unwrap();
    assert_eq!(read_answer(&mut s).status, 200);
    assert_eq!(sink.bodies(), vec![body]);
    server.stop();
}

// Hardening item 7: 70 idle sockets made every legitimate webhook fail (the old receiver
// had one thread per connection, at most 64). Idle and trickling connections now cost no
// thread, and each webhook is answered by a deadline while hundreds of them are open.
#[test]
fn idle_and_trickling_connections_do_not_silence_the_receiver() {
    let sink = Arc::new(Recording::default());
    let server = start_with(secrets(None), Duration::from_secs(60), sink.clone());
    let addr = server.local_addr();
    let idle: Vec<TcpStream> = (0..250)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    let trickling: Vec<TcpStream> = (0..100)
        .map(|_| {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(b"POST /api/webhooks/merge HTTP/1.1\r\nX-Slow: ")
                .unwrap();
            s
        })
        .collect();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let trickler = {
        let stop = stop.clone();
        thread::spawn(move || {
            let mut trickling = trickling;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                for s in &mut trickling {
                    let _ = s.write_all(b"y");
                }
                thread::sleep(Duration::from_millis(50));
            }
        })
    };
    thread::sleep(Duration::from_millis(200));

    let answered_by = Duration::from_secs(3);
    for i in 0..10 {
        let body =
            format!("{{\"hook\": {{\"event\": \"Employee.synced\"}}, \"n\": {i}}}").into_bytes();
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(answered_by)).unwrap();
        let headers = [("X-Merge-Webhook-Signature", webhook::sign(SECRET, &body))];
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        s.write_all(&request("POST", PATH, &headers, &body))
            .unwrap();
        assert_eq!(read_answer(&mut s).status, 200, "webhook {i}");
    }
    assert_eq!(sink.bodies().len(), 10);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    trickler.join().unwrap();
    server.stop();
    drop(idle);
}

// Hardening item 7: each refusal logged a WARN line (135,000 lines in 30 s). Repeated
// rejections now make one line per interval, which counts the rest.
#[test]
fn a_flood_of_forged_webhooks_makes_one_log_line() {
    let logs = capture_logs();
    let server = start(Arc::new(Recording::default()));
    let addr = server.local_addr();
    let path = "/webhooks/merge/model-synced";
    for _ in 0..40 {
        let body = b"{}";
        let headers = [("X-Merge-Webhook-Signature", "Zm9yZ2VkCg==")];
        assert_eq!(
            raw(addr, &request("POST", path, &headers, body)).status,
            401
        );
    }
    server.stop();
    let lines = logs
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, m)| m.contains("rejected webhook") && m.contains(path))
        .count();
    assert_eq!(lines, 1);
}

type Captured = Arc<Mutex<Vec<(log::Level, String)>>>;

/// Installs (once per test binary) a logger that records every message.
fn capture_logs() -> Captured {
    struct Capture(Captured);
    impl log::Log for Capture {
        fn enabled(&self, _: &log::Metadata) -> bool {
            true
        }
        fn log(&self, record: &log::Record) {
            let msg = record.args().to_string();
            self.0.lock().unwrap().push((record.level(), msg));
        }
        fn flush(&self) {}
    }
    static LOGS: OnceLock<Captured> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Captured::default();
        log::set_boxed_logger(Box::new(Capture(logs.clone()))).expect("no other logger");
        log::set_max_level(log::LevelFilter::Trace);
        logs
    })
    .clone()
}
