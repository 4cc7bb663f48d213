//! Fake Merge API server (stub).
