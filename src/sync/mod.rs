//! The sync engine: plan (pure), then fetch and write, one account at a time.

pub mod account;
pub mod detect;
pub mod fetch;
pub mod health;
pub mod hook;
pub mod poll;
pub mod run;
pub mod webhooks;

pub use account::{run_locked_pass, run_pass, Engine, PassSummary};
pub use detect::PlanOptions;
pub use fetch::FetchProgress;
pub use poll::{poll, PollOptions, PollReport};
pub use run::{finish_run, run_state, start_run, Outcome, Retention, RunState, RunTotals};
