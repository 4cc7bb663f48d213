//! Merge's API: the model catalogue, payload types and the HTTP client.

pub mod catalog;
pub mod client;
pub mod error;
pub mod limits;
pub mod models;
pub mod published;
pub mod stats;

pub use client::{AccountApi, ClientOptions, ListQuery, MergeClient, RetryPolicy};
pub use error::MergeError;
pub use stats::{RequestCounts, Wait, WaitObserver, WaitReason};
