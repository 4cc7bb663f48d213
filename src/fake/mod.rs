//! A stateful fake Merge.dev API on loopback, for tests, the demo and the benchmarks.
//!
//! `FakeMerge::start(scenario)` serves Merge's endpoints under `{base_url}/{category}/v1/`:
//! `sync-status`, every Common Model list (and retrieve) endpoint, `account-details` and
//! `account-token/{public_token}`, with Merge's JSON shapes, opaque cursor pagination and
//! `{"detail": ...}` errors. Merge's clock can be moved forward, scripted syncs change
//! sync status and write records as it moves, and faults make chosen requests fail.
//!
//! List filters: `modified_after` / `created_after` are strict (`>`), `modified_before` /
//! `created_before` are strict (`<`), all on Merge's microsecond timestamps. Results are in
//! `(modified_at, id)` order and cursors are keyset positions in that order, so records
//! written while a client pages never make it skip or repeat a record of its window.

mod api;
mod fault;
mod generate;
mod http;
mod scenario;
mod server;
mod state;
mod store;

pub use fault::{Fault, FaultAction};
pub use scenario::{parse_delta, AccountSpec, ModelSpec, Scenario, SyncScript, TimeSpec};
pub use server::{FakeMerge, RecordedRequest};
pub use state::{
    default_model_name, FakeAccount, FakeState, SyncStatus, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE,
};

/// Formats a timestamp as Merge does: UTC, `Z`, microseconds unless they are zero.
pub fn merge_timestamp(t: chrono::DateTime<chrono::Utc>) -> String {
    generate::merge_ts(t.timestamp_micros())
}
