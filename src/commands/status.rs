//! `status`: per-model sync state as a table or JSON.

use std::process::ExitCode;

use anyhow::Result;
use chrono::Utc;

use super::{open_read_only, require_state_file, resolve_account, views};
use crate::cli::StatusArgs;
use crate::config::Config;
use crate::report;

pub fn run(config: &Config, args: &StatusArgs) -> Result<ExitCode> {
    require_state_file(config)?;
    let mut store = open_read_only(config)?;
    let list = match &args.account {
        Some(key) => vec![resolve_account(store.as_mut(), key)?],
        None => store.accounts()?,
    };
    let mut accounts = Vec::new();
    let now = Utc::now();
    let ctx = views::ViewContext::read(store.as_mut(), now)?;
    for a in &list {
        accounts.push(views::account_view(store.as_mut(), a, &ctx)?);
    }
    if args.json {
        let rows: Vec<&report::ModelRow> = accounts.iter().flat_map(|(_, rows)| rows).collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        print!(
            "{}",
            report::status_table(&accounts, now, super::terminal_width())
        );
    }
    Ok(ExitCode::SUCCESS)
}
