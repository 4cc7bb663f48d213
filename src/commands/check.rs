//! `check`: configuration and connectivity, changing nothing.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;

use crate::config::Config;
use crate::merge::limits::RateLimiter;
use crate::merge::{ClientOptions, MergeClient};
use crate::store::{self, AccountStatus, CURRENT_VERSION};

pub fn run(config: &Config) -> Result<ExitCode> {
    let mut ok = true;
    println!("API URL:        {}", config.api_url);
    let key = config.api_key();
    println!(
        "API key:        {}",
        match &key {
            Ok(k) => format!("set ({})", k.masked()),
            Err(_) => "MISSING (set MERGE_API_KEY)".into(),
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
    // Opening migrates an older schema, which changes it: read the version first and report.
    let version = store::peek_schema_version(&config.db)
        .map_err(|e| anyhow::anyhow!("{} is not a readable state file: {e:#}", config.db))?;
    let Some(version) = version else {
        println!("state file:     {} (not created yet)", config.db);
        let key = key?;
        let _ = key;
        return Ok(ExitCode::SUCCESS);
    };
    println!(
        "state file:     {} (schema version {version}, this binary writes {CURRENT_VERSION})",
        config.db
    );
    if version > CURRENT_VERSION {
        return Err(crate::store::StoreError::SchemaTooNew {
            found: version,
            supported: CURRENT_VERSION,
        }
        .into());
    }
    let key = key?.clone();
    let mut store = store::open(&config.db)?;
    let client = MergeClient::new(&config.api_url, key, ClientOptions::default());
    let accounts = store.accounts()?;
    if accounts.is_empty() {
        println!("accounts:       none registered");
    }
    for a in accounts
        .iter()
        .filter(|a| a.status == AccountStatus::Active)
    {
        let api = client.account(
            &a.category,
            &a.account_token,
            Arc::new(RateLimiter::per_minute(100)),
        );
        match api.sync_status() {
            Ok(models) => println!(
                "account {}: reachable, {} models in sync-status",
                a.linked_account_id,
                models.len()
            ),
            Err(e) => {
                ok = false;
                println!("account {}: {e}", a.linked_account_id);
            }
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
