//! `check`: configuration and connectivity, changing nothing.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;

use crate::config::Config;
use crate::merge::limits::RateLimiter;
use crate::merge::{ClientOptions, MergeClient};
use crate::store::{self, AccountStatus};

pub fn run(config: &Config) -> Result<ExitCode> {
    println!("API URL:        {}", config.api_url);
    let key = config.api_key();
    println!(
        "API key:        {}",
        match &key {
            Ok(k) => format!("set ({})", k.masked()),
            Err(_) => "MISSING (set MERGE_API_KEY, or try `merge-sync demo`)".into(),
        }
    );
    println!(
        "webhook secret: {}{}",
        if config.webhook_secret.is_some() {
            "set"
        } else {
            "not set (needed by serve and verify-webhook)"
        },
        if config.webhook_secret_previous.is_some() {
            ", previous secret set (rotation)"
        } else {
            ""
        }
    );
    let mut untested = Vec::new();
    if config.webhook_secret.is_none() {
        untested.push("webhook signatures: MERGE_WEBHOOK_SECRET is not set".to_string());
    }
    if let Err(e) = super::require_state_file(config) {
        println!("state file:     MISSING");
        return Err(e);
    }
    // Opening migrates an older schema, which changes it: read the version first and report.
    let version = store::peek_schema_version(&config.db)
        .map_err(|e| anyhow::anyhow!("{} is not a readable state file: {e:#}", config.db))?
        .ok_or_else(|| anyhow::anyhow!("state file {} disappeared", config.db))?;
    let current = config.db.current_version();
    println!(
        "state file:     {} (schema version {version}, this binary writes {current})",
        config.db
    );
    if version > current {
        return Err(crate::store::StoreError::SchemaTooNew {
            place: config.db.to_string(),
            found: version,
            supported: current,
        }
        .into());
    }
    let key = key?.clone();
    let mut store = super::open_read_only(config)?;
    let client = MergeClient::new(&config.api_url, key, ClientOptions::default());
    let accounts = store.accounts()?;
    let (active, disabled): (Vec<_>, Vec<_>) = accounts
        .iter()
        .partition(|a| a.status == AccountStatus::Active);
    if !disabled.is_empty() {
        untested.push(format!("{} disabled accounts", disabled.len()));
    }
    let mut ok = true;
    for a in &active {
        let api = client.account(
            &a.category,
            &a.account_token,
            Arc::new(RateLimiter::per_minute(100)),
        );
        match api.sync_status() {
            Ok(report) => println!(
                "account {}: reachable, {} models in sync-status",
                a.linked_account_id,
                report.statuses.len()
            ),
            Err(e) => {
                ok = false;
                println!("account {}: FAILED: {e}", a.linked_account_id);
            }
        }
    }
    if active.is_empty() {
        // Without an account there is nothing to ask Merge: the API key and URL are untested,
        // and a check that tested nothing has not passed.
        ok = false;
        untested.push(
            "the API key and URL: no active linked account to ask Merge about; add one with \
             `merge-sync accounts add`"
                .into(),
        );
    }
    for what in &untested {
        println!("not tested:     {what}");
    }
    println!("check:          {}", if ok { "OK" } else { "FAILED" });
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
