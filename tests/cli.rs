//! CLI tests: the real binary against the fake Merge over loopback, in temp dirs.

#[path = "cli/support.rs"]
#[allow(dead_code)]
mod support;

#[path = "cli/bad_input.rs"]
mod bad_input;

#[path = "cli/accounts.rs"]
mod accounts;

#[path = "cli/sync.rs"]
mod sync;

#[path = "cli/initial_sync.rs"]
mod initial_sync;

#[path = "cli/webhooks.rs"]
mod webhooks;

#[path = "cli/misc.rs"]
mod misc;

#[path = "cli/monitoring.rs"]
mod monitoring;

#[path = "cli/hardening.rs"]
mod hardening;

#[path = "cli/ci.rs"]
mod ci;

#[path = "cli/cron.rs"]
mod cron;

#[path = "cli/views.rs"]
mod views;

#[path = "cli/postgres.rs"]
mod postgres;

#[path = "cli/copy_state.rs"]
mod copy_state;

#[path = "cli/multi_host.rs"]
mod multi_host;
