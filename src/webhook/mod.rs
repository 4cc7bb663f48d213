//! Webhooks (stub).
