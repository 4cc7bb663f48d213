//! `verify-webhook`: check one webhook's signature; optionally store it. Under CGI
//! (`GATEWAY_INTERFACE` set) it answers the web server with a CGI response as well.

use std::io::{Read, Write};
use std::process::ExitCode;

use anyhow::{Context, Result};
use chrono::Utc;
use serde_json::json;

use crate::cli::VerifyWebhookArgs;
use crate::config::{Config, UsageError};
use crate::store;
use crate::webhook::{self, cgi_response, verdict_response, Verdict, WebhookSecrets};

/// The largest body accepted, as in `serve`.
const MAX_BODY: u64 = 1024 * 1024;

pub fn run(config: &Config, args: &VerifyWebhookArgs) -> Result<ExitCode> {
    let cgi = std::env::var_os("GATEWAY_INTERFACE").is_some();
    let answer = |status: u16, body: serde_json::Value| {
        if cgi {
            let mut out = std::io::stdout();
            let _ = out.write_all(cgi_response(status, &body).as_bytes());
            let _ = out.flush();
        }
    };

    let Some(current) = config.webhook_secret.clone() else {
        answer(500, json!({"error": "Server configuration error"}));
        return Err(UsageError(
            "MERGE_WEBHOOK_SECRET is not set: copy the webhook signature key from Merge's dashboard \
             (Webhooks → Security) into the environment or .env"
                .into(),
        )
        .into());
    };
    let secrets = WebhookSecrets::new(current, config.webhook_secret_previous.clone());

    let body = match read_body(args) {
        Ok(body) => body,
        Err(e) => {
            answer(500, json!({"error": "Server error"}));
            return Err(e);
        }
    };
    if body.len() as u64 > MAX_BODY {
        answer(413, json!({"error": "Payload too large"}));
        log::warn!("webhook body over 1 MiB rejected");
        return Ok(ExitCode::from(1));
    }
    // Under CGI, the header arrives as HTTP_X_MERGE_WEBHOOK_SIGNATURE.
    let signature = args
        .signature
        .clone()
        .or_else(|| std::env::var("HTTP_X_MERGE_WEBHOOK_SIGNATURE").ok());

    let verdict = webhook::verify(&secrets, &body, signature.as_deref());
    if verdict != Verdict::Valid {
        let (status, response) = verdict_response(verdict);
        answer(status, response);
        let what = if verdict == Verdict::Missing {
            "missing"
        } else {
            "invalid"
        };
        // One line, with the logger's timestamp: under CGI it lands in the web server's log.
        log::warn!("webhook signature {what} ({} byte body)", body.len());
        return Ok(ExitCode::from(1));
    }

    if args.enqueue {
        let event = webhook::parse(&body).ok().map(|w| w.event);
        let stored = super::require_state_file(config)
            .and_then(|()| store::open(&config.db))
            .and_then(|mut s| {
                // Under CGI the web server, and Merge behind it, will not wait 30 s.
                s.set_lock_wait(webhook::STORE_LOCK_WAIT)?;
                s.in_transaction(|tx| {
                    let new = tx.enqueue_webhook(&body, event.as_deref(), Utc::now())?;
                    tx.add_counters(&[crate::store::Counter {
                        name: "webhooks".into(),
                        label: if new { "accepted" } else { "duplicate" }.into(),
                        value: 1,
                    }])
                })
            });
        if let Err(e) = stored {
            answer(500, json!({"error": "Storage error"}));
            return Err(e.context("storing the webhook"));
        }
    }
    let (status, response) = verdict_response(Verdict::Valid);
    answer(status, response);
    if !cgi {
        println!("valid");
    }
    Ok(ExitCode::SUCCESS)
}

/// The raw body, from `--body-file` or stdin, up to one byte over the limit.
fn read_body(args: &VerifyWebhookArgs) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    match &args.body_file {
        Some(path) => {
            std::fs::File::open(path)
                .and_then(|f| f.take(MAX_BODY + 1).read_to_end(&mut body))
                .with_context(|| format!("reading webhook body from {}", path.display()))?;
        }
        None => {
            std::io::stdin()
                .take(MAX_BODY + 1)
                .read_to_end(&mut body)
                .context("reading the webhook body from stdin")?;
        }
    }
    Ok(body)
}
