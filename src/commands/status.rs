//! `status`: per-model sync state as a table or JSON.

use std::process::ExitCode;

use anyhow::Result;
use chrono::Utc;

use super::{resolve_account, views};
use crate::cli::StatusArgs;
use crate::config::Config;
use crate::report;
use crate::store;

pub fn run(config: &Config, args: &StatusArgs) -> Result<ExitCode> {
    let mut accounts = Vec::new();
    if let Some(mut store) = store::open_existing(&config.db)? {
        let list = match &args.account {
            Some(key) => vec![resolve_account(store.as_mut(), key)?],
            None => store.accounts()?,
        };
        for a in &list {
            accounts.push(views::account_view(store.as_mut(), a)?);
        }
    } else if let Some(key) = &args.account {
        return Err(crate::config::UsageError(format!(
            "no linked account {key:?}: there is no state file at {} yet",
            config.db
        ))
        .into());
    }
    if args.json {
        let rows: Vec<&report::ModelRow> = accounts.iter().flat_map(|(_, rows)| rows).collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print!("{}", report::status_table(&accounts, Utc::now()));
    }
    Ok(ExitCode::SUCCESS)
}
