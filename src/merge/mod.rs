//! Merge's API: the model catalogue, payload types and the HTTP client.

pub mod catalog;
