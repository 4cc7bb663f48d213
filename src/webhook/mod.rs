//! Webhooks from Merge: signature verification, lenient payload parsing and the `serve` receiver.
//!
//! - [`verify`](mod@verify) checks `X-Merge-Webhook-Signature` over the exact raw body, before anything
//!   parses it (see that module for what it accepts and why).
//! - [`payload`] turns a verified body into the few facts the sync acts on.
//! - [`server`] is the HTTP receiver behind `merge-sync serve`, a thin adapter on hyper; it
//!   verifies, hands the raw bytes to a [`WebhookSink`] and answers. It never parses JSON.
//! - [`cgi_response`] and [`verdict_response`] give `verify-webhook` under CGI the same answers
//!   the server gives.
//!
//! This module is a leaf: it depends only on `secret` and `time`.

pub mod payload;
pub mod server;
pub mod verify;

use serde_json::{json, Value};

pub use payload::{
    parse, redact, LinkedAccountRef, ModelSyncHint, PayloadError, Webhook, WebhookKind,
};
pub use server::{
    start, ServerConfig, ServerHandle, WebhookSink, SIGNATURE_HEADER, STORE_LOCK_WAIT,
};
pub use verify::{sign, verify, Verdict, WebhookSecrets};

/// The status and JSON body to answer a verdict with: `200 {"received": true}` for a valid
/// webhook (once it is stored), `401 {"error": …}` otherwise.
pub fn verdict_response(verdict: Verdict) -> (u16, Value) {
    match verdict {
        Verdict::Valid => (200, json!({"received": true})),
        Verdict::Missing => (401, json!({"error": "Missing signature"})),
        Verdict::Invalid => (401, json!({"error": "Invalid signature"})),
    }
}

/// A CGI response (`Status: 401 Unauthorized`, JSON content type, blank line, compact JSON
/// body), for `verify-webhook` running behind a web server's CGI.
pub fn cgi_response(status: u16, body: &Value) -> String {
    format!(
        "Status: {status} {}\r\nContent-Type: application/json\r\n\r\n{body}",
        reason_phrase(status)
    )
}

/// The standard reason phrase for the statuses this module answers with.
pub(crate) fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgi_response_has_status_line_content_type_and_body() {
        let (status, body) = verdict_response(Verdict::Invalid);
        assert_eq!(
            cgi_response(status, &body),
            "Status: 401 Unauthorized\r\nContent-Type: application/json\r\n\r\n{\"error\":\"Invalid signature\"}"
        );
        let (status, body) = verdict_response(Verdict::Valid);
        assert!(cgi_response(status, &body).starts_with("Status: 200 OK\r\n"));
        let config = cgi_response(500, &json!({"error": "Server configuration error"}));
        assert!(config.starts_with("Status: 500 Internal Server Error\r\n"));
    }
}
