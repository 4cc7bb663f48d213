//! One module per command: open the store, build the client, call `sync`/`report`, print.
//! Only this layer and `main` write to stdout and stderr.

mod accounts;
mod check;
mod copy_state;
mod demo;
mod export;
mod fetch;
mod health;
mod poll;
mod runs;
mod schema;
mod serve;
mod status;
mod verify_webhook;
mod views;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use chrono::Utc;

use crate::cli::{Cli, Command};
use crate::config::{Config, UsageError};
use crate::merge::{ClientOptions, MergeClient, Wait, WaitReason};
use crate::store::{self, Account, RunRow, Store};
use crate::sync::{self, Engine, FetchProgress, Outcome, RunTotals};

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<ExitCode> {
    let config = Config::resolve(&cli, &|k| std::env::var(k).ok())?;
    match cli.command {
        Command::Accounts(cmd) => accounts::run(&config, cmd),
        Command::Poll(args) => poll::run(&config, &args),
        Command::Fetch(args) => fetch::run(&config, &args),
        Command::Status(args) => status::run(&config, &args),
        Command::Check => check::run(&config),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "merge-sync", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::VerifyWebhook(args) => verify_webhook::run(&config, &args),
        Command::Serve(args) => serve::run(&config, &args),
        Command::Schema(args) => schema::run(&config, &args),
        Command::Export(args) => export::run(&config, &args),
        Command::Runs(args) => runs::run(&config, &args),
        Command::Health(args) => health::run(&config, &args),
        Command::CopyState(args) => copy_state::run(&config, &args, &|k| std::env::var(k).ok()),
        Command::Demo => demo::run(&config),
    }
}

/// The engine for commands that sync; `progress` hears about rate-limit waits.
fn engine(config: &Config, rate_limit: u32, progress: Option<Arc<Progress>>) -> Result<Engine> {
    let mut client = MergeClient::new(
        &config.api_url,
        config.api_key()?.clone(),
        ClientOptions::default(),
    );
    if let Some(p) = progress.filter(|p| p.enabled) {
        client = client.with_wait_observer(Arc::new(move |w: &Wait| p.waiting(w)));
    }
    Ok(Engine::new(
        client,
        config.db.clone(),
        rate_limit,
        config.on_initial_sync_complete.clone(),
    ))
}

/// Where a sync stands, for the one line an interrupt logs: the windows being fetched now,
/// and the records written so far.
#[derive(Default)]
struct Activity {
    /// Account → (model, pages written by this run).
    in_flight: std::sync::Mutex<std::collections::BTreeMap<String, (String, u64)>>,
    records: std::sync::atomic::AtomicU64,
}

impl Activity {
    fn records(&self) -> u64 {
        self.records.load(Ordering::Relaxed)
    }

    fn update(&self, p: &FetchProgress) {
        self.records.fetch_add(p.page_records, Ordering::Relaxed);
        let mut map = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        if p.window_done {
            map.remove(p.linked_account_id);
        } else {
            map.insert(
                p.linked_account_id.to_string(),
                (p.model_id.to_string(), p.pages),
            );
        }
    }

    /// The line logged when `command` is interrupted.
    fn interrupted_line(&self, command: &str) -> String {
        let map = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        if map.is_empty() {
            return format!(
                "{command} interrupted (SIGINT/SIGTERM) between pages; nothing is half-written, \
                 the next run starts from the saved state"
            );
        }
        let parts: Vec<String> = map
            .iter()
            .map(|(account, (model, pages))| {
                format!("{account} {model} after {pages} pages written by this run")
            })
            .collect();
        format!(
            "{command} interrupted (SIGINT/SIGTERM) during {}; every page written is kept and \
             the next run resumes each from its saved cursor",
            parts.join(", ")
        )
    }
}

/// On SIGINT or SIGTERM: log where the run stood, record it as interrupted, exit 130. Pages
/// already committed stay; the next run resumes from them.
fn on_interrupt(
    config: &Config,
    run: &RunRow,
    engine: &Engine,
    activity: Arc<Activity>,
) -> Result<()> {
    let (db, run, client) = (config.db.clone(), run.clone(), engine.client.clone());
    ctrlc::set_handler(move || {
        log::warn!("{}", activity.interrupted_line(&run.command));
        let requests = client.request_counts();
        let mut totals = RunTotals::of_requests(&requests);
        totals.records_written = activity.records();
        let recorded = store::open(&db).and_then(|mut s| {
            sync::finish_run(
                s.as_mut(),
                &run,
                &totals,
                &requests,
                Outcome::Interrupted,
                Utc::now(),
            )
        });
        if let Err(e) = recorded {
            log::warn!("could not record the interrupted run: {e:#}");
        }
        std::process::exit(130);
    })
    .map_err(|e| anyhow::anyhow!("installing the signal handler: {e}"))
}

/// Opens the state file for reading only (`status`, `accounts list`, `check`): a read-only
/// user can run them. Call [`require_state_file`] first.
fn open_read_only(config: &Config) -> anyhow::Result<Box<dyn crate::store::Store>> {
    crate::store::open_existing_read_only(&config.db)?
        .ok_or_else(|| anyhow::anyhow!("state file {} disappeared", config.db))
}

/// Refuses a state file that does not exist (or is empty) for every command but
/// `accounts add`: a typo in `--db`, or cron starting in another directory, would otherwise
/// create a new, empty state file and report success having synced nothing.
fn require_state_file(config: &Config) -> anyhow::Result<()> {
    let path = match &config.db {
        crate::store::Location::Sqlite(path) => path,
        // A database that is missing or refuses us fails to connect, naming itself; one that
        // connects but holds no merge-sync tables is the wrong (or an empty) database, which
        // must not be filled with tables and reported healthy.
        crate::store::Location::Postgres(_) => {
            if crate::store::peek_schema_version(&config.db)?.is_some() {
                return Ok(());
            }
            return Err(UsageError(format!(
                "{} holds no merge-sync tables: an empty database, or not the one you meant. \
                 Point --db / MERGE_SYNC_DB at your merge-sync database, create the tables by \
                 adding an account (`merge-sync --db URL accounts add --account-token TOKEN \
                 --category CATEGORY`), or move a state file over with `merge-sync --db FILE \
                 copy-state --to URL`",
                config.db
            ))
            .into());
        }
    };
    let shown = std::path::absolute(path).unwrap_or_else(|_| path.clone());
    let problem = match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => {
            return Err(UsageError(
                crate::store::StoreError::IsDirectory { path: shown }.to_string(),
            )
            .into())
        }
        Ok(meta) if meta.len() == 0 => "is empty (0 bytes): it is not a state file yet",
        Ok(_) => return Ok(()),
        Err(_) => "does not exist",
    };
    Err(UsageError(format!(
        "state file {} {problem}. Point --db / MERGE_SYNC_DB at your state file (the default is \
         merge-sync.db in the current directory), or create one by adding an account: \
         `merge-sync accounts add --account-token TOKEN --category CATEGORY`",
        shown.display()
    ))
    .into())
}

/// Checks a model id against the catalogue (and against `category`, when the account is
/// known), suggesting the closest ids for a typo.
fn known_model(model_id: &str, category: Option<&str>) -> Result<(), UsageError> {
    crate::store::records_table(model_id).map_err(|e| UsageError(e.to_string()))?;
    let Some(info) = crate::merge::catalog::find(model_id) else {
        let closest = crate::merge::catalog::closest(model_id);
        // Without an account, the id's own prefix says which category was meant.
        let prefix = model_id
            .split_once('.')
            .map(|(c, _)| c)
            .filter(|c| crate::merge::catalog::is_category(c));
        let hint = match (closest.as_slice(), category.or(prefix)) {
            ([], Some(c)) => format!(
                "{c} models are: {}",
                crate::merge::catalog::ids_in(c).join(", ")
            ),
            ([], None) => "model ids look like hris.Employee or ats.Candidate".into(),
            (ids, _) => format!("did you mean {}?", ids.join(" or ")),
        };
        return Err(UsageError(format!(
            "unknown model {model_id:?}: merge-sync's catalogue has no such Common Model; {hint}"
        )));
    };
    match category {
        Some(c) if info.category != c => Err(UsageError(format!(
            "model {model_id:?} is not a {c} model (it belongs to {}); model ids start with the \
             account's category, like {c}.{}",
            info.category,
            crate::merge::catalog::ids_in(c)
                .first()
                .and_then(|id| id.split_once('.'))
                .map_or("Employee", |(_, name)| name)
        ))),
        _ => Ok(()),
    }
}

/// Records the end of a run; a failure to do so is logged, never the run's own failure.
fn record_finish(
    store: &mut dyn store::Store,
    run: &RunRow,
    totals: &RunTotals,
    requests: &crate::merge::RequestCounts,
    outcome: Outcome,
) {
    if let Err(e) = sync::finish_run(store, run, totals, requests, outcome, Utc::now()) {
        log::warn!("could not record the end of the run: {e:#}");
    }
}

/// The terminal's width when stdout is one, so tables fit; `None` (no limit) for pipes.
fn terminal_width() -> Option<u16> {
    if !std::io::stdout().is_terminal() {
        return None;
    }
    comfy_table::Table::new().width()
}

/// Finds an account by linked account id or origin id, or fails with a usage error.
fn resolve_account(store: &mut dyn Store, key: &str) -> Result<Account> {
    store.find_account(key)?.ok_or_else(|| {
        UsageError(format!(
            "no linked account {key:?} in {} (by linked account id or end_user_origin_id); \
             see `merge-sync accounts list`",
            store.describe()
        ))
        .into()
    })
}

/// A progress line on stderr when it is a terminal (and logs are text); nothing under cron.
struct Progress {
    enabled: bool,
    started: Instant,
    dirty: AtomicBool,
}

impl Progress {
    fn new() -> Arc<Progress> {
        Arc::new(Progress {
            enabled: std::io::stderr().is_terminal() && crate::logging::is_text(),
            started: Instant::now(),
            dirty: AtomicBool::new(false),
        })
    }

    fn line(&self, text: &str) {
        if self.enabled {
            eprint!("\r\x1b[2K{text}");
            self.dirty.store(true, Ordering::Relaxed);
        }
    }

    fn show(&self, p: &FetchProgress) {
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        self.line(&format!(
            "{} {}: {} pages, {} records ({:.0} records/s)",
            p.linked_account_id,
            p.model_id,
            p.pages,
            p.records,
            p.records as f64 / secs
        ));
    }

    fn waiting(&self, w: &Wait) {
        let secs = w.duration.as_secs_f64().ceil() as u64;
        self.line(&match w.reason {
            WaitReason::RateLimit => {
                format!("waiting {secs} s for the rate limit (requests per minute per account)")
            }
            WaitReason::RetryAfter => format!("waiting {secs} s for Merge's rate limit (429)"),
            WaitReason::Retry => format!("Merge did not answer; retrying in {secs} s"),
        });
    }

    /// Prints a line of its own (not overwritten by the next update).
    fn say(&self, text: &str) {
        if self.enabled {
            self.finish();
            eprintln!("{text}");
        }
    }

    fn finish(&self) {
        if self.enabled && self.dirty.swap(false, Ordering::Relaxed) {
            eprint!("\r\x1b[2K");
        }
    }
}
