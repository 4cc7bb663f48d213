//! The optional `--on-initial-sync-complete` hook.

use std::process::Command;

use crate::store::Account;

/// Runs `cmd` through `sh -c` with the account's identifiers in the environment. Returns a
/// description of the failure, if any; a failing hook never undoes the state it reports.
pub fn run_initial_sync_hook(cmd: &str, account: &Account) -> Result<(), String> {
    let status = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .env("MERGE_LINKED_ACCOUNT_ID", &account.linked_account_id)
        .env(
            "MERGE_END_USER_ORIGIN_ID",
            account.end_user_origin_id.as_deref().unwrap_or(""),
        )
        .env("MERGE_CATEGORY", &account.category)
        // The hook never needs our secrets.
        .env_remove("MERGE_API_KEY")
        .env_remove("MERGE_WEBHOOK_SECRET")
        .env_remove("MERGE_WEBHOOK_SECRET_PREVIOUS")
        .stdin(std::process::Stdio::null())
        .status();
    match status {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!("initial-sync hook exited with {s}")),
        Err(e) => Err(format!("initial-sync hook could not start: {e}")),
    }
}
