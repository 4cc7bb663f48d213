//! Resolving the command line and environment into validated settings.

use crate::cli::{Cli, Region};
use crate::secret::Secret;
use crate::store::Location;
use crate::sync::Retention;

pub const DEFAULT_API_URL: &str = "https://api.merge.dev/api";
/// The state file when neither `--db` nor `MERGE_SYNC_DB` names one, in the current directory.
pub const DEFAULT_DB: &str = "merge-sync.db";

/// A usage or configuration error: exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Settings every command shares, resolved once.
#[derive(Debug, Clone)]
pub struct Config {
    pub db: Location,
    /// Whether `--db` / `MERGE_SYNC_DB` named the state (else the default file): `demo` then
    /// writes there instead of in a temporary file.
    pub db_given: bool,
    pub api_url: String,
    api_key: Option<Secret>,
    pub webhook_secret: Option<Secret>,
    pub webhook_secret_previous: Option<Secret>,
    pub on_initial_sync_complete: Option<String>,
    /// How much run history is kept (`MERGE_SYNC_RUN_HISTORY_DAYS`, `..._MAX`).
    pub run_retention: Retention,
}

impl Config {
    /// Resolves `cli` with `env` (the process environment, after `.env`). Flags win over the
    /// environment; `--api-url` and `--region` win over `MERGE_API_URL`.
    pub fn resolve(cli: &Cli, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, UsageError> {
        let non_empty = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        let api_url = match (&cli.api_url, cli.region) {
            (Some(url), _) => url.clone(),
            (None, Some(region)) => region_url(region).to_string(),
            (None, None) => {
                non_empty("MERGE_API_URL").unwrap_or_else(|| DEFAULT_API_URL.to_string())
            }
        };
        let api_url = api_url.trim().trim_end_matches('/').to_string();
        if !(api_url.starts_with("http://") || api_url.starts_with("https://")) {
            return Err(UsageError(format!(
                "API URL {api_url:?} is not an http(s) URL; set --api-url or MERGE_API_URL like \
                 https://api.merge.dev/api"
            )));
        }
        let db = cli.db.clone().unwrap_or_else(|| DEFAULT_DB.into());
        if db.as_os_str().is_empty() {
            return Err(UsageError("--db / MERGE_SYNC_DB is empty".into()));
        }
        let number = |key: &str, default: u64| -> Result<u64, UsageError> {
            match non_empty(key) {
                None => Ok(default),
                Some(v) => v
                    .trim()
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| {
                        UsageError(format!("{key}={v:?} is not a positive whole number"))
                    }),
            }
        };
        let defaults = Retention::default();
        let run_retention = Retention {
            days: number("MERGE_SYNC_RUN_HISTORY_DAYS", defaults.days.into())?.min(u32::MAX.into())
                as u32,
            max_runs: number("MERGE_SYNC_RUN_HISTORY_MAX", defaults.max_runs as u64)?
                .min(usize::MAX as u64) as usize,
        };
        Ok(Config {
            db: Location::parse(&db, env).map_err(|e| UsageError(e.to_string()))?,
            db_given: cli.db.is_some(),
            api_url,
            api_key: non_empty("MERGE_API_KEY").map(|k| Secret::new(k.trim())),
            webhook_secret: non_empty("MERGE_WEBHOOK_SECRET").map(Secret::new),
            webhook_secret_previous: non_empty("MERGE_WEBHOOK_SECRET_PREVIOUS").map(Secret::new),
            on_initial_sync_complete: cli
                .on_initial_sync_complete
                .clone()
                .filter(|c| !c.trim().is_empty()),
            run_retention,
        })
    }

    /// The API key, or a usage error saying how to set it.
    pub fn api_key(&self) -> Result<&Secret, UsageError> {
        self.api_key.as_ref().ok_or_else(|| {
            UsageError(
                "MERGE_API_KEY is not set: export it, or put MERGE_API_KEY=... in a .env file in \
                 the current directory (Merge dashboard → API keys). To try merge-sync without a \
                 Merge account, run `merge-sync demo`"
                    .into(),
            )
        })
    }
}

pub fn region_url(region: Region) -> &'static str {
    match region {
        Region::Us => "https://api.merge.dev/api",
        Region::Eu => "https://api-eu.merge.dev/api",
        Region::Ap => "https://api-ap.merge.dev/api",
    }
}

/// The log filter: `-q`/`-v` win, then `RUST_LOG`, then warnings and errors only. The HTTP
/// and PostgreSQL clients' own logs are capped at `info` whatever is asked: at debug and
/// trace they dump raw requests, headers (the API key, account tokens) and statement
/// parameters included.
pub fn log_filter(cli: &Cli, rust_log: Option<String>) -> String {
    let level: String = match (cli.quiet, cli.verbose) {
        (true, _) => "error".into(),
        (false, 1) => "info".into(),
        (false, n) if n >= 2 => "debug".into(),
        _ => rust_log
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| "warn".into()),
    };
    format!("{level},ureq=info,ureq_proto=info,rustls=info,tokio_postgres=info,postgres=info")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::collections::HashMap;

    fn resolve(args: &[&str], env: &[(&str, &str)]) -> Result<Config, UsageError> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut argv = vec!["merge-sync"];
        argv.extend_from_slice(args);
        argv.push("check");
        let cli = Cli::try_parse_from(argv).unwrap();
        Config::resolve(&cli, &|k| env.get(k).cloned())
    }

    #[test]
    fn api_url_precedence_is_flag_then_region_then_env_then_default() {
        assert_eq!(resolve(&[], &[]).unwrap().api_url, DEFAULT_API_URL);
        assert_eq!(
            resolve(&[], &[("MERGE_API_URL", "http://e/api/")])
                .unwrap()
                .api_url,
            "http://e/api"
        );
        assert_eq!(
            resolve(&["--region", "eu"], &[("MERGE_API_URL", "http://e/api")])
                .unwrap()
                .api_url,
            "https://api-eu.merge.dev/api"
        );
        assert_eq!(
            resolve(
                &["--api-url", "http://f/api"],
                &[("MERGE_API_URL", "http://e/api")]
            )
            .unwrap()
            .api_url,
            "http://f/api"
        );
        assert_eq!(
            resolve(&["--region", "ap"], &[]).unwrap().api_url,
            "https://api-ap.merge.dev/api"
        );
        assert!(resolve(&["--api-url", "ftp://x"], &[]).is_err());
    }

    #[test]
    fn run_history_retention_comes_from_the_environment_and_is_checked() {
        assert_eq!(
            resolve(&[], &[]).unwrap().run_retention,
            Retention::default()
        );
        let cfg = resolve(
            &[],
            &[
                ("MERGE_SYNC_RUN_HISTORY_DAYS", "7"),
                ("MERGE_SYNC_RUN_HISTORY_MAX", "500"),
            ],
        )
        .unwrap();
        assert_eq!(
            cfg.run_retention,
            Retention {
                days: 7,
                max_runs: 500
            }
        );
        for bad in ["0", "-1", "ten"] {
            let err = resolve(&[], &[("MERGE_SYNC_RUN_HISTORY_DAYS", bad)]).unwrap_err();
            assert!(err.0.contains("MERGE_SYNC_RUN_HISTORY_DAYS"), "{}", err.0);
        }
    }

    #[test]
    fn missing_api_key_is_a_usage_error_that_says_how_to_fix_it() {
        let cfg = resolve(&[], &[]).unwrap();
        let err = cfg.api_key().unwrap_err().to_string();
        assert!(err.contains("MERGE_API_KEY"), "{err}");
        assert!(err.contains("merge-sync demo"), "{err}");
        let cfg = resolve(&[], &[("MERGE_API_KEY", "  ")]).unwrap();
        assert!(cfg.api_key().is_err(), "blank counts as missing");
        let cfg = resolve(&[], &[("MERGE_API_KEY", "sk_test_12345678")]).unwrap();
        assert_eq!(cfg.api_key().unwrap().expose(), "sk_test_12345678");
        assert!(!format!("{cfg:?}").contains("sk_test_12345678"));
    }

    #[test]
    fn log_level_flags_beat_rust_log() {
        let level = |f: String| f.split(',').next().unwrap().to_string();
        let cli = Cli::try_parse_from(["merge-sync", "-v", "check"]).unwrap();
        assert_eq!(level(log_filter(&cli, Some("debug".into()))), "info");
        let cli = Cli::try_parse_from(["merge-sync", "check"]).unwrap();
        assert_eq!(level(log_filter(&cli, Some("debug".into()))), "debug");
        assert_eq!(level(log_filter(&cli, None)), "warn");
        assert!(log_filter(&cli, Some("trace".into()))
            .ends_with("ureq=info,ureq_proto=info,rustls=info,tokio_postgres=info,postgres=info"));
        let cli = Cli::try_parse_from(["merge-sync", "-q", "check"]).unwrap();
        assert_eq!(level(log_filter(&cli, Some("debug".into()))), "error");
    }
}
