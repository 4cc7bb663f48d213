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
