//! Test support shared by unit and integration tests (not part of the CLI): a throwaway
//! PostgreSQL server.

pub mod postgres;
