//! `demo`: the whole life cycle against an in-process fake Merge, in a temporary state file.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::{TimeDelta, Utc};

use super::views;
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

pub fn run() -> Result<ExitCode> {
    let scenario = Scenario::from_json(SCENARIO).context("loading the demo scenario")?;
    let api_key = Secret::new(scenario.api_key.clone());
    let fake = FakeMerge::start(scenario).context("starting the fake Merge")?;
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    let db = dir.path().join("demo.db");
    println!(
        "merge-sync demo: fake Merge at {}, state file {}\n",
        fake.base_url(),
        db.display()
    );

    let client = MergeClient::new(&fake.base_url(), api_key, ClientOptions::default());
    let engine = Engine::new(client.clone(), Location::Sqlite(db.clone()), 600, None);

    step("1. Register two linked accounts (details from Merge's account-details)");
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

    step("2. Poll while Merge's initial sync runs, until every model is ready");
    for _ in 0..20 {
        poll(&engine)?;
        let done = store.accounts()?.iter().all(|a| a.initial_sync_complete);
        show(store.as_mut())?;
        if done {
            break;
        }
        std::thread::sleep(Duration::from_millis(700));
    }

    step("3. Merge runs its next scheduled sync (creates, updates, deletes); poll fetches only the change");
    fake.advance(TimeDelta::seconds(30));
    wait_for_syncs(&fake);
    poll(&engine)?;
    show(store.as_mut())?;

    step("4. A signed LinkedAccount.sync_completed webhook arrives and is applied");
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
    println!("signature {signature}: {verdict:?}");
    if verdict == Verdict::Valid {
        store.enqueue_webhook(&body, Some("LinkedAccount.sync_completed"), Utc::now())?;
    }
    for applied in sync::webhooks::apply_pending(store.as_mut(), Utc::now())? {
        println!("webhook: {}", applied.describe());
    }
    poll(&engine)?;
    show(store.as_mut())?;
    println!("Done. The state file is deleted with the demo; run `merge-sync accounts add` to mirror real accounts.");
    Ok(ExitCode::SUCCESS)
}

fn step(title: &str) {
    println!("── {title}");
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
        println!("{id}: {e}");
    }
    for o in &report.outcomes {
        if let Ok(s) = &o.result {
            for (model, totals) in &s.fetched {
                println!(
                    "fetched {} {model}: {} records in {} pages",
                    o.linked_account_id, totals.records, totals.pages
                );
            }
        }
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
    let mut accounts = Vec::new();
    for a in store.accounts()? {
        accounts.push(views::account_view(store, &a)?);
    }
    println!("{}", report::status_table(&accounts, Utc::now()));
    Ok(())
}
