//! `health`: one verdict for cron and monitoring checks. Exit 0 healthy, 1 with one line per
//! problem, 2 on usage or configuration errors.

use std::process::ExitCode;

use anyhow::Result;
use chrono::Utc;
use serde::Serialize;

use super::{open_read_only, require_state_file};
use crate::cli::HealthArgs;
use crate::config::{Config, UsageError};
use crate::store::{AccountStatus, RunQuery};
use crate::sync::health::{self, AccountHealth, HealthInput, HealthOptions, Problem};

#[derive(Serialize)]
struct Verdict<'a> {
    healthy: bool,
    checked_at: String,
    active_accounts: usize,
    last_successful_poll: Option<String>,
    problems: &'a [Problem],
}

pub fn run(config: &Config, args: &HealthArgs) -> Result<ExitCode> {
    require_state_file(config)?;
    let mut store = open_read_only(config)?;
    let now = Utc::now();
    let accounts = store.accounts()?;
    let mut models = Vec::new();
    for a in &accounts {
        models.push(store.model_states(&a.linked_account_id)?);
    }
    let last_poll = store
        .runs(&RunQuery {
            limit: 1,
            command: Some("poll".into()),
            outcomes: vec!["ok".into(), "partial".into()],
            ..Default::default()
        })?
        .into_iter()
        .next()
        .and_then(|r| r.finished_at);
    let (inbox_pending, inbox_oldest) = store.inbox_backlog()?;
    let input = HealthInput {
        accounts: accounts
            .iter()
            .zip(&models)
            .map(|(account, models)| AccountHealth { account, models })
            .collect(),
        last_successful_poll: last_poll,
        inbox_pending,
        inbox_oldest,
    };
    let options = HealthOptions {
        max_lag: match args.max_lag {
            Some(d) => Some(chrono::Duration::from_std(d).map_err(|_| {
                UsageError("--max-lag is too long; give at most a few years".into())
            })?),
            None => None,
        },
        max_failures: args.max_failures,
        ..Default::default()
    };
    let problems = health::check(&input, &options, now);
    let active = accounts
        .iter()
        .filter(|a| a.status == AccountStatus::Active)
        .count();
    if args.json {
        let verdict = Verdict {
            healthy: problems.is_empty(),
            checked_at: crate::time::format(now),
            active_accounts: active,
            last_successful_poll: last_poll.map(crate::time::format),
            problems: &problems,
        };
        println!("{}", serde_json::to_string_pretty(&verdict)?);
    } else if problems.is_empty() {
        let poll = last_poll
            .map(|t| {
                format!(
                    "last successful poll {} ago",
                    crate::report::human_duration(now - t)
                )
            })
            .unwrap_or_else(|| "no accounts to poll".into());
        println!("healthy: {active} active accounts, {poll}");
    } else {
        for p in &problems {
            println!("{}", p.message);
        }
    }
    Ok(if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
