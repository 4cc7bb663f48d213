//! The sync engine: plan (pure), then fetch and write, one account at a time.

pub mod detect;
