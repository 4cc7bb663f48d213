//! `accounts add|list|disable|enable|remove`.

use std::process::ExitCode;

use anyhow::{Context, Result};
use chrono::Utc;

use super::{known_model, open_read_only, require_state_file, resolve_account, views};
use crate::cli::{AccountsCommand, AddArgs};
use crate::config::{Config, UsageError};
use crate::merge::limits::RateLimiter;
use crate::merge::{catalog, ClientOptions, MergeClient};
use crate::report;
use crate::secret::Secret;
use crate::store::{self, AccountStatus, NewAccount, Store, UpsertOutcome};

pub fn run(config: &Config, cmd: AccountsCommand) -> Result<ExitCode> {
    match cmd {
        AccountsCommand::Add(args) => add(config, &args),
        AccountsCommand::List { json } => list(config, json),
        AccountsCommand::Disable { account } => {
            set_status(config, &account, AccountStatus::Disabled)
        }
        AccountsCommand::Enable { account } => set_status(config, &account, AccountStatus::Active),
        AccountsCommand::Remove { account, purge } => remove(config, &account, purge),
    }
}

fn validate_category(category: &str) -> Result<(), UsageError> {
    if catalog::is_category(category) {
        Ok(())
    } else {
        Err(UsageError(format!(
            "unknown category {category:?}; expected one of: {}",
            catalog::CATEGORIES.join(", ")
        )))
    }
}

fn validate_models(category: &str, models: &[String]) -> Result<Option<Vec<String>>, UsageError> {
    if models.is_empty() {
        return Ok(None);
    }
    let models: Vec<String> = models.iter().map(|m| m.trim().to_string()).collect();
    // `--models ",,,"` must not quietly mean "every model".
    if models.iter().any(|m| m.is_empty()) {
        return Err(UsageError(format!(
            "--models has an empty entry; list model ids separated by commas, like \
             {category}.Employee,{category}.Employment (or leave the flag out for every model)"
        )));
    }
    for m in &models {
        known_model(m, Some(category))?;
    }
    Ok(Some(models))
}

fn add(config: &Config, args: &AddArgs) -> Result<ExitCode> {
    validate_category(&args.category)?;
    let models = validate_models(&args.category, &args.models)?;
    if args
        .linked_account_id
        .as_deref()
        .is_some_and(|id| id.trim().is_empty())
    {
        return Err(UsageError(
            "--linked-account-id is empty; pass Merge's linked account id, or leave the flag out \
             to ask Merge for it"
                .into(),
        )
        .into());
    }
    // Open an existing state file first, so a corrupt or newer one is refused before any call
    // to Merge; a new one is only created once Merge has answered.
    let mut store = store::open_existing(&config.db)?;

    // The token, and what the exchange of a public token already told us.
    let (token, exchanged_id, exchanged_slug) = match (&args.account_token, &args.public_token) {
        (Some(token), _) => (Secret::new(token.trim()), None, None),
        (None, Some(public)) => {
            let exchanged = client(config)?
                .exchange_public_token(&args.category, &Secret::new(public.trim()))
                .context("exchanging the public token with Merge")?;
            let slug = exchanged.integration.and_then(|i| i.slug);
            (Secret::new(exchanged.account_token), exchanged.id, slug)
        }
        (None, None) => unreachable!("clap requires one of the token flags"),
    };
    let new = match &args.linked_account_id {
        // Explicit flags: no call to Merge.
        Some(id) => NewAccount {
            linked_account_id: id.trim().to_string(),
            end_user_origin_id: args.end_user_origin_id.clone(),
            category: args.category.clone(),
            integration_slug: None,
            account_token: token,
            models,
        },
        None => {
            let limiter = std::sync::Arc::new(RateLimiter::per_minute(100));
            let details = client(config)?
                .account(&args.category, &token, limiter)
                .account_details()
                .context("asking Merge for the account's details")?;
            let id = exchanged_id.or(details.id).context(
                "Merge did not say which linked account the token belongs to; pass --linked-account-id",
            )?;
            NewAccount {
                linked_account_id: id,
                end_user_origin_id: args
                    .end_user_origin_id
                    .clone()
                    .or(details.end_user_origin_id),
                category: args.category.clone(),
                integration_slug: details.integration_slug.or(exchanged_slug),
                account_token: token,
                models,
            }
        }
    };

    let store = match &mut store {
        Some(s) => s,
        None => store.insert(store::open(&config.db)?),
    };
    let outcome = store.upsert_account(&new, Utc::now())?;
    let verb = match outcome {
        UpsertOutcome::Added => "added",
        UpsertOutcome::Relinked => "relinked (token updated, state kept)",
    };
    println!(
        "{verb}: {} ({}{}{}) token {}",
        new.linked_account_id,
        new.category,
        new.integration_slug
            .as_deref()
            .map(|s| format!(", {s}"))
            .unwrap_or_default(),
        new.end_user_origin_id
            .as_deref()
            .map(|s| format!(", origin {s}"))
            .unwrap_or_default(),
        new.account_token.masked()
    );
    Ok(ExitCode::SUCCESS)
}

fn client(config: &Config) -> Result<MergeClient> {
    Ok(MergeClient::new(
        &config.api_url,
        config.api_key()?.clone(),
        ClientOptions::default(),
    ))
}

fn list(config: &Config, json: bool) -> Result<ExitCode> {
    require_state_file(config)?;
    let mut store = open_read_only(config)?;
    let ctx = views::ViewContext::read(store.as_mut(), Utc::now())?;
    let mut out = Vec::new();
    for a in store.accounts()? {
        out.push(views::account_view(store.as_mut(), &a, &ctx)?.0);
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print!(
            "{}",
            report::accounts_table(&out, ctx.now, super::terminal_width())
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn set_status(config: &Config, key: &str, status: AccountStatus) -> Result<ExitCode> {
    let mut store = existing_store(config)?;
    let account = resolve_account(store.as_mut(), key)?;
    store.set_account_status(&account.linked_account_id, status, Utc::now())?;
    println!("{}: {}", account.linked_account_id, status.as_str());
    Ok(ExitCode::SUCCESS)
}

fn remove(config: &Config, key: &str, purge: bool) -> Result<ExitCode> {
    let mut store = existing_store(config)?;
    let account = resolve_account(store.as_mut(), key)?;
    let purged = store.remove_account(&account.linked_account_id, purge)?;
    if purge {
        // Its webhooks too: a linked one carries its token.
        crate::sync::webhooks::purge_account(store.as_mut(), &account)?;
        println!(
            "{}: removed, {purged} mirrored records deleted",
            account.linked_account_id
        );
    } else {
        println!(
            "{}: removed; its mirrored records are kept (use --purge to delete them)",
            account.linked_account_id
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn existing_store(config: &Config) -> Result<Box<dyn Store>> {
    require_state_file(config)?;
    store::open(&config.db)
}
