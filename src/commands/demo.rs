//! `demo`: the whole life cycle against an in-process fake Merge, in a temporary state file
//! (deleted however the demo ends) or in the new one `--db` names (kept).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::{TimeDelta, Utc};

use super::views;
use crate::config::{Config, UsageError};
use crate::fake::{FakeMerge, Scenario, SyncScript};
use crate::merge::limits::RateLimiter;
use crate::merge::{ClientOptions, MergeClient};
use crate::report;
use crate::secret::Secret;
use crate::store::{self, Location, NewAccount, Store};
use crate::sync::{self, Engine, PollOptions};
use crate::webhook::{self, Verdict, WebhookSecrets};

const SCENARIO: &str = include_str!("../../fixtures/scenarios/demo.json");
const DEMO_SECRET: &str = "demo-webhook-secret";

/// Prints a line of the demo; a closed pipe (`merge-sync demo | head`) ends the demo with an
/// error the caller recognises, so the temporary directory is still deleted.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout(), $($arg)*)?;
    }};
}

pub fn run(config: &Config) -> Result<ExitCode> {
    let given =
        match &config.db {
            Location::Sqlite(path) => path,
            Location::Postgres(_) => return Err(UsageError(
                "the demo writes a new SQLite state file: pass --db with a file path that does \
                 not exist yet, or no --db for a temporary one"
                    .into(),
            )
            .into()),
        };
    // Kept only when asked for; a temporary one is deleted on return, on a panic and (below)
    // on a signal.
    let (db, temp) = if config.db_given {
        if std::fs::metadata(given).is_ok_and(|m| m.len() > 0) {
            return Err(UsageError(format!(
                "{} exists; the demo writes a new state file and never touches an existing one: \
                 pass --db with a path that does not exist yet (or unset MERGE_SYNC_DB for a \
                 temporary one)",
                given.display()
            ))
            .into());
        }
        (given.clone(), None)
    } else {
        let dir = tempfile::tempdir().context("creating a temporary directory")?;
        (dir.path().join("demo.db"), Some(dir))
    };
    if let Some(dir) = &temp {
        let path = dir.path().to_path_buf();
        ctrlc::set_handler(move || {
            INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
            // The demo keeps running meanwhile and may add a file (WAL, lock) mid-removal:
            // try again until the directory is gone.
            for _ in 0..100 {
                if std::fs::remove_dir_all(&path).is_ok() || !path.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            std::process::exit(130);
        })
        .context("installing the signal handler")?;
    }
    let result = demo(&db, temp.is_none());
    // A signal arrived: the handler is deleting the directory (which may have made the demo
    // fail) and owns the exit.
    while INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst) {
        std::thread::park();
    }
    match result {
        Err(e) if is_broken_pipe(&e) => Ok(ExitCode::from(141)),
        other => other,
    }
}

/// Set by the signal handler before it deletes the temporary directory and exits 130.
static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn demo(db: &std::path::Path, keep: bool) -> Result<ExitCode> {
    let scenario = Scenario::from_json(SCENARIO).context("loading the demo scenario")?;
    let api_key = Secret::new(scenario.api_key.clone());
    let fake = FakeMerge::start(scenario).context("starting the fake Merge")?;
    let db = db.to_path_buf();
    say!(
        "merge-sync demo: fake Merge at {}, state file {}\n",
        fake.base_url(),
        db.display()
    );

    let client = MergeClient::new(&fake.base_url(), api_key, ClientOptions::default());
    let engine = Engine::new(client.clone(), Location::Sqlite(db.clone()), 600, None);

    say!("── 1. Register two linked accounts (details from Merge's account-details)");
    let mut store = store::open(&Location::Sqlite(db.clone()))?;
    let accounts: Vec<(String, String, String)> = fake.with_state(|s| {
        s.accounts()
            .iter()
            .map(|a| (a.id.clone(), a.account_token.clone(), a.category.clone()))
            .collect()
    });
    for (id, token, category) in accounts {
        let token = Secret::new(token);
        let details = client
            .account(&category, &token, Arc::new(RateLimiter::per_minute(100)))
            .account_details()?;
        store.upsert_account(
            &NewAccount {
                linked_account_id: details.id.unwrap_or(id),
                end_user_origin_id: details.end_user_origin_id,
                category,
                integration_slug: details.integration_slug,
                account_token: token,
                models: None,
            },
            Utc::now(),
        )?;
    }
    show(store.as_mut())?;

    say!("── 2. Poll while Merge's initial sync runs, until every model is ready");
    for _ in 0..20 {
        poll(&engine)?;
        let done = store.accounts()?.iter().all(|a| a.initial_sync_complete);
        show(store.as_mut())?;
        if done {
            break;
        }
        std::thread::sleep(Duration::from_millis(700));
    }

    say!(
        "── 3. Merge runs its next scheduled sync (a few creates, updates, deletes); poll asks only \
         for records modified since the previous window's bound minus a 1-second overlap, so it \
         gets the changes plus records Merge stamped in the previous sync's last second"
    );
    fake.advance(TimeDelta::seconds(30));
    wait_for_syncs(&fake);
    poll(&engine)?;
    show(store.as_mut())?;

    say!("── 4. A signed LinkedAccount.sync_completed webhook arrives and is applied");
    let first = fake.with_state(|s| s.accounts()[0].id.clone());
    fake.with_state(|s| {
        s.start_sync(
            &first,
            "hris.Employee",
            SyncScript::new(TimeDelta::milliseconds(200)).writes(2, 1, 0),
        )
    })?;
    std::thread::sleep(Duration::from_millis(300));
    let body = serde_json::to_vec(
        &fake
            .with_state(|s| s.sync_completed_webhook(&first))
            .context("building the webhook")?,
    )?;
    let signature = webhook::sign(DEMO_SECRET, &body);
    let secrets = WebhookSecrets::new(Secret::new(DEMO_SECRET), None);
    let verdict = webhook::verify(&secrets, &body, Some(&signature));
    say!("signature {signature}: {verdict:?}");
    if verdict == Verdict::Valid {
        store.enqueue_webhook(&body, Some("LinkedAccount.sync_completed"), Utc::now())?;
    }
    for applied in sync::webhooks::apply_pending(store.as_mut(), Utc::now())? {
        say!("webhook: {}", applied.describe());
    }
    poll(&engine)?;
    show(store.as_mut())?;
    if keep {
        say!(
            "Done. The state file is kept: `merge-sync --db {} status`, or query it with sqlite3.",
            db.display()
        );
    } else {
        say!("Done. The temporary state file is deleted with the demo (--db PATH keeps one).");
    }
    say!("To mirror real accounts: `merge-sync accounts add --account-token TOKEN --category CATEGORY`.");
    Ok(ExitCode::SUCCESS)
}

/// `n` and `word`, plural unless `n` is 1.
fn count(n: u64, word: &str) -> String {
    format!("{n} {word}{}", if n == 1 { "" } else { "s" })
}

fn poll(engine: &Engine) -> Result<()> {
    let report = sync::poll(
        engine,
        &PollOptions {
            accounts: Vec::new(),
            force: true,
            jobs: 2,
        },
        &|_| {},
    )?;
    for (id, e) in report.failures() {
        say!("{id}: {e}");
    }
    let mut fetched = false;
    for o in &report.outcomes {
        if let Ok(s) = &o.result {
            for (model, totals) in &s.fetched {
                fetched = true;
                say!(
                    "fetched {} {model}: {} in {}",
                    o.linked_account_id,
                    count(totals.records, "record"),
                    count(totals.pages, "page")
                );
            }
        }
    }
    if !fetched {
        say!("nothing to fetch yet");
    }
    Ok(())
}

fn wait_for_syncs(fake: &FakeMerge) {
    for _ in 0..50 {
        let running = fake.with_state(|s| {
            s.accounts()
                .iter()
                .any(|a| a.models.iter().any(|m| m.sync.status == "SYNCING"))
        });
        if !running {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn show(store: &mut dyn Store) -> Result<()> {
    let ctx = views::ViewContext::read(store, Utc::now())?;
    let mut accounts = Vec::new();
    for a in store.accounts()? {
        accounts.push(views::account_view(store, &a, &ctx)?);
    }
    say!(
        "{}",
        report::status_table(&accounts, ctx.now, super::terminal_width())
    );
    Ok(())
}
