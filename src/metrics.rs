//! Prometheus metrics: a plain snapshot in, the text exposition format out; no I/O but the
//! atomic file write the node_exporter textfile collector expects.
//!
//! The `prometheus` crate writes the classic text format (version 0.0.4), where a counter's
//! `# TYPE` line names the sample (`merge_sync_requests_total`): the format the textfile
//! collector and every scraper read. (OpenMetrics-only encoders name the family without
//! `_total`, which the textfile collector reads as an untyped metric.)

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use prometheus::{Encoder, GaugeVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};

/// The content type of [`encode`]'s output, for an HTTP answer.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// One mirrored model of one account.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelMetrics {
    pub linked_account_id: String,
    pub model_id: String,
    /// The last pass that left this model up to date.
    pub last_success: Option<DateTime<Utc>>,
    /// How far the mirror is behind Merge's last finished sync (`None`: unknown).
    pub lag: Option<chrono::Duration>,
    pub records: i64,
}

/// Everything the metrics say, read from the store and the run that just ended.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub models: Vec<ModelMetrics>,
    /// Active accounts and their consecutive failed passes.
    pub account_failures: Vec<(String, u32)>,
    /// Requests to Merge by HTTP status (or `error`), since the state was created.
    pub requests: BTreeMap<String, u64>,
    /// Records written since the state was created.
    pub records_written: u64,
    /// Webhooks received, by outcome, since the state was created.
    pub webhooks: BTreeMap<String, u64>,
    /// How long the last run took.
    pub run_duration: Option<Duration>,
}

/// The snapshot in the text exposition format, every family with `# HELP` and `# TYPE`.
pub fn encode(s: &Snapshot) -> Result<String> {
    let registry = Registry::new();
    let per_model = ["linked_account_id", "model"];

    let last_success = GaugeVec::new(
        Opts::new(
            "merge_sync_last_success_timestamp_seconds",
            "When a sync pass last left the model up to date (Unix time).",
        ),
        &per_model,
    )?;
    let lag = GaugeVec::new(
        Opts::new(
            "merge_sync_lag_seconds",
            "How far the mirror is behind Merge's last finished sync of the model.",
        ),
        &per_model,
    )?;
    let records = IntGaugeVec::new(
        Opts::new(
            "merge_sync_records",
            "Records of the model the mirror holds, deleted ones included.",
        ),
        &per_model,
    )?;
    for m in &s.models {
        let labels = [m.linked_account_id.as_str(), m.model_id.as_str()];
        if let Some(t) = m.last_success {
            last_success
                .with_label_values(&labels)
                .set(t.timestamp_millis() as f64 / 1000.0);
        }
        if let Some(l) = m.lag {
            lag.with_label_values(&labels)
                .set(l.num_milliseconds().max(0) as f64 / 1000.0);
        }
        records.with_label_values(&labels).set(m.records);
    }

    let failures = IntGaugeVec::new(
        Opts::new(
            "merge_sync_account_consecutive_failures",
            "Sync passes of the account that failed in a row (0 after a success).",
        ),
        &["linked_account_id"],
    )?;
    for (id, n) in &s.account_failures {
        failures.with_label_values(&[id.as_str()]).set(*n as i64);
    }

    let requests = IntCounterVec::new(
        Opts::new(
            "merge_sync_requests_total",
            "Requests sent to Merge, by HTTP status (error: no response).",
        ),
        &["status"],
    )?;
    for (status, n) in &s.requests {
        requests.with_label_values(&[status.as_str()]).inc_by(*n);
    }
    let written = prometheus::IntCounter::new(
        "merge_sync_records_written_total",
        "Records written to the mirror (inserted or updated).",
    )?;
    written.inc_by(s.records_written);
    let webhooks = IntCounterVec::new(
        Opts::new(
            "merge_sync_webhooks_received_total",
            "Webhooks received, by outcome.",
        ),
        &["outcome"],
    )?;
    // The stored outcomes exist from the start, so the family is there (at 0) for alert
    // rules before the first webhook arrives.
    for outcome in ["accepted", "duplicate"] {
        webhooks.with_label_values(&[outcome]);
    }
    for (outcome, n) in &s.webhooks {
        webhooks.with_label_values(&[outcome.as_str()]).inc_by(*n);
    }
    let duration = prometheus::Gauge::new(
        "merge_sync_run_duration_seconds",
        "How long the last poll, fetch or serve pass took.",
    )?;

    registry.register(Box::new(last_success))?;
    registry.register(Box::new(lag))?;
    registry.register(Box::new(records))?;
    registry.register(Box::new(failures))?;
    registry.register(Box::new(requests))?;
    registry.register(Box::new(written))?;
    registry.register(Box::new(webhooks))?;
    if let Some(d) = s.run_duration {
        duration.set(d.as_secs_f64());
        registry.register(Box::new(duration))?;
    }

    // A labelled family with no sample yet (no accounts) is left out, as the format wants.
    let families = registry.gather();
    let mut out = Vec::new();
    TextEncoder::new()
        .encode(&families, &mut out)
        .context("encoding metrics")?;
    String::from_utf8(out).context("encoding metrics")
}

/// Replaces `path` with `text` atomically: a temporary file in the same directory, synced,
/// then renamed over it, so a collector never reads half a file.
pub fn write_file(path: &Path, text: &str) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".merge-sync-metrics")
        .suffix(".tmp")
        .tempfile_in(dir)
        .with_context(|| format!("creating a temporary metrics file in {}", dir.display()))?;
    tmp.write_all(text.as_bytes())
        .and_then(|_| tmp.as_file().sync_all())
        .with_context(|| format!("writing metrics next to {}", path.display()))?;
    // Readable by the collector, which often runs as another user.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = tmp
            .as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644));
    }
    tmp.persist(path)
        .with_context(|| format!("replacing metrics file {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> Snapshot {
        let now = crate::time::parse("2026-12-03T10:00:00Z").unwrap();
        Snapshot {
            models: vec![
                ModelMetrics {
                    linked_account_id: "la-acme".into(),
                    model_id: "hris.Employee".into(),
                    last_success: Some(now),
                    lag: Some(chrono::Duration::seconds(90)),
                    records: 2500,
                },
                ModelMetrics {
                    linked_account_id: "la-globex".into(),
                    model_id: "hris.Team".into(),
                    last_success: None,
                    lag: None,
                    records: 0,
                },
            ],
            account_failures: vec![("la-acme".into(), 0), ("la-globex".into(), 3)],
            requests: BTreeMap::from([("200".into(), 40), ("429".into(), 2)]),
            records_written: 2500,
            webhooks: BTreeMap::from([("accepted".into(), 5)]),
            run_duration: Some(Duration::from_millis(1500)),
        }
    }

    fn parse(text: &str) -> prometheus_parse::Scrape {
        prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap()
    }

    fn value(scrape: &prometheus_parse::Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
        let s = scrape
            .samples
            .iter()
            .find(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(v)))
            .unwrap_or_else(|| panic!("no {metric} {labels:?}"));
        match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => panic!("{metric} is not a plain value"),
        }
    }

    #[test]
    fn every_family_parses_with_help_type_and_labels() {
        let text = encode(&snapshot()).unwrap();
        let scrape = parse(&text);
        for name in [
            "merge_sync_last_success_timestamp_seconds",
            "merge_sync_lag_seconds",
            "merge_sync_records",
            "merge_sync_account_consecutive_failures",
            "merge_sync_requests_total",
            "merge_sync_records_written_total",
            "merge_sync_run_duration_seconds",
            "merge_sync_webhooks_received_total",
        ] {
            assert!(
                scrape.docs.contains_key(name),
                "no HELP for {name}:\n{text}"
            );
            assert!(
                text.contains(&format!("# TYPE {name} ")),
                "no TYPE for {name}"
            );
        }
        let acme = [("linked_account_id", "la-acme"), ("model", "hris.Employee")];
        assert_eq!(value(&scrape, "merge_sync_lag_seconds", &acme), 90.0);
        assert_eq!(value(&scrape, "merge_sync_records", &acme), 2500.0);
        assert_eq!(
            value(&scrape, "merge_sync_last_success_timestamp_seconds", &acme),
            1_796_292_000.0
        );
        assert_eq!(
            value(&scrape, "merge_sync_requests_total", &[("status", "429")]),
            2.0
        );
        assert_eq!(
            value(
                &scrape,
                "merge_sync_account_consecutive_failures",
                &[("linked_account_id", "la-globex")]
            ),
            3.0
        );
        assert_eq!(value(&scrape, "merge_sync_run_duration_seconds", &[]), 1.5);
        // Counters are typed as counters, not left untyped.
        let written = scrape
            .samples
            .iter()
            .find(|s| s.metric == "merge_sync_records_written_total")
            .unwrap();
        assert!(matches!(written.value, prometheus_parse::Value::Counter(v) if v == 2500.0));
        // No lag is made up for a model whose lag is unknown.
        assert!(!scrape
            .samples
            .iter()
            .any(|s| s.metric == "merge_sync_lag_seconds"
                && s.labels.get("model") == Some("hris.Team")));
    }

    #[test]
    fn an_empty_snapshot_is_still_valid() {
        let text = encode(&Snapshot::default()).unwrap();
        let scrape = parse(&text);
        assert_eq!(
            value(&scrape, "merge_sync_records_written_total", &[]),
            0.0,
            "{text}"
        );
        assert!(!text.contains("merge_sync_run_duration_seconds"), "{text}");
        // Alert rules on webhooks find the family before the first webhook.
        assert_eq!(
            value(
                &scrape,
                "merge_sync_webhooks_received_total",
                &[("outcome", "accepted")]
            ),
            0.0,
            "{text}"
        );
    }

    #[test]
    fn the_file_is_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("merge_sync.prom");
        write_file(&path, "first\n").unwrap();
        write_file(&path, "second\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "second\n");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary file is left behind");
    }
}
