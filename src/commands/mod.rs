//! One module per command: open the store, build the client, call `sync`/`report`, print.
//! Only this layer and `main` write to stdout and stderr.

mod accounts;
mod check;
mod demo;
mod fetch;
mod poll;
mod serve;
mod status;
mod verify_webhook;
mod views;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Result;

use crate::cli::{Cli, Command};
use crate::config::{Config, UsageError};
use crate::merge::{ClientOptions, MergeClient};
use crate::store::{Account, Store};
use crate::sync::{Engine, FetchProgress};

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
        Command::Demo => demo::run(),
    }
}

/// The engine for commands that sync.
fn engine(config: &Config, rate_limit: u32) -> Result<Engine> {
    let client = MergeClient::new(
        &config.api_url,
        config.api_key()?.clone(),
        ClientOptions::default(),
    );
    Ok(Engine::new(
        client,
        config.db.clone(),
        rate_limit,
        config.on_initial_sync_complete.clone(),
    ))
}

/// Finds an account by linked account id or origin id, or fails with a usage error.
fn resolve_account(store: &Store, key: &str) -> Result<Account> {
    store.find_account(key)?.ok_or_else(|| {
        UsageError(format!(
            "no linked account {key:?} in {} (by linked account id or end_user_origin_id); \
             see `merge-sync accounts list`",
            store.path().display()
        ))
        .into()
    })
}

/// A progress line on stderr when it is a terminal; nothing under cron.
struct Progress {
    enabled: bool,
    started: Instant,
    dirty: std::sync::atomic::AtomicBool,
}

impl Progress {
    fn new() -> Progress {
        Progress {
            enabled: std::io::stderr().is_terminal(),
            started: Instant::now(),
            dirty: Default::default(),
        }
    }

    fn show(&self, p: &FetchProgress) {
        if !self.enabled {
            return;
        }
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        eprint!(
            "\r\x1b[2K{} {}: {} pages, {} records ({:.0} records/s)",
            p.linked_account_id,
            p.model_id,
            p.pages,
            p.records,
            p.records as f64 / secs
        );
        self.dirty.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    fn finish(&self) {
        if self.enabled && self.dirty.load(std::sync::atomic::Ordering::Relaxed) {
            eprint!("\r\x1b[2K");
        }
    }
}
