//! `serve`: the webhook receiver, plus a worker that applies stored webhooks and fetches what
//! they announce. Cron's `poll` stays the safety net.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::Utc;

use super::{engine, record_finish, views};
use crate::cli::ServeArgs;
use crate::config::Config;
use crate::store::{self, Counter, Store};
use crate::sync::webhooks::{apply_pending, Applied};
use crate::sync::{self, Engine, Outcome, PollOptions, Retention, RunTotals};
use crate::webhook::{self, ServerConfig, WebhookSecrets, WebhookSink};

use crate::webhook::STORE_LOCK_WAIT;

/// Connections kept for storing webhooks, so concurrent deliveries each wait on the state
/// file's lock on their own rather than in a queue behind one another.
const STORE_CONNECTIONS: usize = 4;

/// Stores verified bodies in the inbox, durably, before the receiver answers 200.
struct InboxSink {
    stores: Mutex<Vec<Box<dyn Store>>>,
    returned: Condvar,
    wake: Arc<AtomicBool>,
    /// Webhooks refused since start, by outcome (kept in memory: a flood of forged requests
    /// must not turn into writes to the state file).
    rejected: Mutex<std::collections::BTreeMap<&'static str, u64>>,
    /// How long the worker's last pass took.
    last_pass: Arc<Mutex<Option<Duration>>>,
}

impl InboxSink {
    fn open(
        db: &store::Location,
        wake: Arc<AtomicBool>,
        last_pass: Arc<Mutex<Option<Duration>>>,
    ) -> Result<InboxSink> {
        let mut stores = Vec::with_capacity(STORE_CONNECTIONS);
        for _ in 0..STORE_CONNECTIONS {
            let mut s = store::open(db)?;
            s.set_lock_wait(STORE_LOCK_WAIT)?;
            stores.push(s);
        }
        Ok(InboxSink {
            stores: Mutex::new(stores),
            returned: Condvar::new(),
            wake,
            rejected: Mutex::default(),
            last_pass,
        })
    }

    /// Runs `f` on a pooled connection, waiting at most [`STORE_LOCK_WAIT`] for one.
    fn with_store<T>(&self, f: impl FnOnce(&mut dyn Store) -> Result<T>) -> Result<T> {
        let deadline = Instant::now() + STORE_LOCK_WAIT;
        let mut free = self.stores.lock().unwrap_or_else(|e| e.into_inner());
        let mut store = loop {
            if let Some(s) = free.pop() {
                break s;
            }
            let now = Instant::now();
            if now >= deadline {
                anyhow::bail!("every state-file connection is busy; Merge will retry");
            }
            free = self
                .returned
                .wait_timeout(free, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        };
        drop(free);
        let result = f(store.as_mut());
        self.stores
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(store);
        self.returned.notify_one();
        result
    }
}

impl WebhookSink for InboxSink {
    fn store(&self, body: &[u8]) -> Result<()> {
        let event = webhook::parse(body).ok().map(|w| w.event);
        self.with_store(|store| {
            store.in_transaction(|tx| {
                let new = tx.enqueue_webhook(body, event.as_deref(), Utc::now())?;
                tx.add_counters(&[webhook_counter(if new { "accepted" } else { "duplicate" })])
            })
        })?;
        self.wake.store(true, Ordering::SeqCst);
        Ok(())
    }

    fn rejected(&self, outcome: &'static str) {
        *self
            .rejected
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(outcome)
            .or_default() += 1;
    }

    fn metrics(&self) -> Option<Result<String>> {
        let last_pass = *self.last_pass.lock().unwrap_or_else(|e| e.into_inner());
        let rejected = self
            .rejected
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        Some(self.with_store(|store| {
            let mut snapshot = views::metrics_snapshot(store, last_pass, Utc::now())?;
            for (outcome, n) in rejected {
                *snapshot.webhooks.entry(outcome.to_string()).or_default() += n;
            }
            crate::metrics::encode(&snapshot)
        }))
    }
}

/// One more webhook received with `outcome`, for `merge_sync_webhooks_received_total`.
fn webhook_counter(outcome: &str) -> Counter {
    Counter {
        name: "webhooks".into(),
        label: outcome.into(),
        value: 1,
    }
}

pub fn run(config: &Config, args: &ServeArgs) -> Result<ExitCode> {
    // Without a secret nothing can be verified: every webhook is answered 500 (so Merge keeps
    // retrying until the secret is configured), and the problem is logged loudly.
    let secrets = match config.webhook_secret.clone() {
        Some(current) => Some(WebhookSecrets::new(
            current,
            config.webhook_secret_previous.clone(),
        )),
        None => {
            log::error!(
                "MERGE_WEBHOOK_SECRET is not set: every webhook will be answered 500 until it is"
            );
            None
        }
    };
    super::require_state_file(config)?;
    let engine = engine(config, args.rate_limit, None)?;
    let retention = config.run_retention;
    let wake = Arc::new(AtomicBool::new(true));
    let last_pass = Arc::new(Mutex::new(None));
    let sink = InboxSink::open(&config.db, wake.clone(), last_pass.clone())?;
    // Before the address is announced: a supervisor may signal as soon as it sees it.
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        ctrlc::set_handler(move || {
            // A second signal means "now".
            if stop.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
        })
        .context("installing the signal handler")?;
    }
    let server = webhook::start(
        ServerConfig::new(args.listen.clone(), secrets),
        Arc::new(sink),
    )
    .with_context(|| format!("listening on {}", args.listen))?;
    crate::logging::notice(&format!(
        "merge-sync serve: listening on http://{}",
        server.local_addr()
    ));

    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    {
        let stop = stop.clone();
        std::thread::spawn(move || {
            worker(&engine, &stop, &wake, retention, &last_pass);
            let _ = done_tx.send(());
        });
    }
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(100));
    }
    log::info!("stopping");
    server.stop();
    // A fetch in progress may take minutes. Every page already written is committed with its
    // cursor, so leaving now loses nothing: the next run resumes where this one stopped.
    if done_rx.recv_timeout(Duration::from_secs(3)).is_err() {
        log::warn!("stopping while a fetch is running; the next poll resumes it");
    }
    Ok(ExitCode::SUCCESS)
}

/// Applies stored webhooks and fetches the accounts they made due, until `stop`.
fn worker(
    engine: &Engine,
    stop: &AtomicBool,
    wake: &AtomicBool,
    retention: Retention,
    last_pass: &Mutex<Option<Duration>>,
) {
    while !stop.load(Ordering::SeqCst) {
        if wake.swap(false, Ordering::SeqCst) {
            if let Err(e) = work_once(engine, retention, last_pass) {
                log::error!("applying webhooks: {e:#}");
                // Try again shortly; the webhooks stay in the inbox.
                std::thread::sleep(Duration::from_secs(1));
                wake.store(true, Ordering::SeqCst);
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn work_once(
    engine: &Engine,
    retention: Retention,
    last_pass: &Mutex<Option<Duration>>,
) -> Result<()> {
    let mut store = store::open(&engine.db)?;
    let mut due: Vec<String> = Vec::new();
    for applied in apply_pending(store.as_mut(), (engine.clock)())? {
        if let Applied::Due {
            linked_account_id, ..
        } = applied
        {
            if !due.contains(&linked_account_id) {
                due.push(linked_account_id);
            }
        }
    }
    if due.is_empty() {
        return Ok(());
    }
    // Each pass is a run of its own in the history, with its own id on its log lines.
    let run_id = crate::logging::new_run_id();
    let started = Instant::now();
    let run = sync::start_run(store.as_mut(), "serve", &run_id, retention, Utc::now())?;
    let mut engine = engine.clone();
    engine.run_id = Some(run_id.clone());
    crate::logging::set_run_id(Some(&run_id));
    let before = engine.client.request_counts();
    let records = std::sync::atomic::AtomicU64::new(0);
    // The normal pass, under the normal per-account lock: if cron's poll holds an account,
    // this skips it and the poll picks the news up itself.
    let result = sync::poll(
        &engine,
        &PollOptions {
            accounts: due,
            force: false,
            jobs: 2,
        },
        &|p| {
            records.fetch_add(p.page_records, Ordering::Relaxed);
        },
    );
    crate::logging::set_run_id(None);
    *last_pass.lock().unwrap_or_else(|e| e.into_inner()) = Some(started.elapsed());
    let requests = engine.client.request_counts().since(&before);
    let records = records.load(Ordering::Relaxed);
    let report = match result {
        Ok(report) => report,
        Err(e) => {
            let mut totals = RunTotals::of_requests(&requests);
            totals.records_written = records;
            totals.first_error = Some(format!("{e:#}"));
            record_finish(store.as_mut(), &run, &totals, &requests, Outcome::Failed);
            return Err(e);
        }
    };
    let totals = RunTotals::of_poll(&report, &requests, records);
    record_finish(store.as_mut(), &run, &totals, &requests, totals.outcome());
    for (id, e) in report.failures() {
        log::warn!(account = id, run_id = run.run_id.as_str(); "{id}: {e}");
    }
    Ok(())
}
