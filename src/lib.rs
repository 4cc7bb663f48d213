//! merge-sync: a local SQLite mirror of Merge.dev Common Model data.
//!
//! Dependencies point one way: `commands → sync → {merge, store}`; `report`, `webhook`,
//! `secret` and `time` are leaves. Only `commands` and `main` print.

pub mod fake;
pub mod merge;
pub mod secret;
pub mod time;
pub mod webhook;
pub mod store;
pub mod sync;
