//! The scenario file: accounts, models, records and scripted syncs the fake Merge starts with.
//!
//! Every timestamp in a scenario is either absolute RFC 3339 or relative to the scenario's
//! start (`"-2h"`, `"+10m"`, `"now"`), so fixtures stay valid whatever day the tests run.
//! Durations are `"250ms"`, `"90s"`, `"1h30m"`, `"2d"` or a number of seconds.
//!
//! ```json
//! {
//!   "api_key": "test-api-key",
//!   "start": "2026-03-02T12:00:00Z",     "freeze_clock": false,   "seed": 1,
//!   "sync_status_page_size": 30,          "latency_ms": 0,
//!   "accounts": [{
//!     "id": "acct-1", "account_token": "tok-1", "public_token": "pub-1",
//!     "category": "hris", "end_user_origin_id": "org-1",
//!     "integration": "BambooHR", "integration_slug": "bamboohr",
//!     "models": [
//!       {"model_id": "hris.Employee", "status": "DONE", "is_initial_sync": false,
//!        "last_sync_result": "DONE", "last_sync_start": "-2h10m",
//!        "last_sync_finished": "-2h", "next_sync_start": "+22h",
//!        "generate": 250, "generate_deleted": 3,
//!        "records": [{"id": "e-1", "first_name": "Ada", "modified_at": "-2h5m"}],
//!        "schedule": {"start": "+1m", "duration": "30s", "creates": 2, "updates": 5,
//!                     "deletes": 1, "result": "DONE", "cadence": "5m", "runs": 3}},
//!       {"model_id": "hris.BankInfo", "status": "DISABLED"}
//!     ]
//!   }],
//!   "faults": [{"path": "employees", "skip": 1, "times": 1, "kind": "status", "status": 500}]
//! }
//! ```

use std::path::Path;
use std::str::FromStr;

use anyhow::{bail, Context};
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Deserializer};

use super::fault::Fault;

/// A whole fake Merge world. Deserialised from a scenario JSON file, or built in code.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Free text for humans reading the fixture.
    #[serde(default)]
    pub description: Option<String>,
    /// The only API key the fake accepts (`Authorization: Bearer <api_key>`).
    pub api_key: String,
    /// Merge's clock at server start (absolute, or relative to the real now). Default: real now.
    #[serde(default)]
    pub start: Option<TimeSpec>,
    /// Stop Merge's clock: it only moves through `FakeState::advance`. Default: it runs.
    #[serde(default)]
    pub freeze_clock: bool,
    /// Seed for generated records and scripted writes; same seed, same data.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Default `page_size` of `sync-status` (list endpoints default to 30).
    #[serde(default)]
    pub sync_status_page_size: Option<usize>,
    /// The largest `sync-status` page served, whatever `page_size` asks for (Merge may page
    /// sync-status below the client's request; this spreads it over several pages).
    #[serde(default)]
    pub sync_status_max_page_size: Option<usize>,
    /// Added to every request before it is answered.
    #[serde(default)]
    pub latency_ms: u64,
    #[serde(default)]
    pub accounts: Vec<AccountSpec>,
    /// Faults armed from the start (see `Fault`).
    #[serde(default)]
    pub faults: Vec<Fault>,
}

fn default_seed() -> u64 {
    1
}

impl Scenario {
    /// An empty world that accepts `api_key`.
    pub fn new(api_key: &str) -> Scenario {
        Scenario {
            description: None,
            api_key: api_key.to_string(),
            start: None,
            freeze_clock: false,
            seed: default_seed(),
            sync_status_page_size: None,
            sync_status_max_page_size: None,
            latency_ms: 0,
            accounts: Vec::new(),
            faults: Vec::new(),
        }
    }

    /// Adds an account (builder style).
    pub fn account(mut self, account: AccountSpec) -> Scenario {
        self.accounts.push(account);
        self
    }

    pub fn from_file(path: impl AsRef<Path>) -> anyhow::Result<Scenario> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading scenario {}", path.display()))?;
        Scenario::from_json(&text).with_context(|| format!("parsing scenario {}", path.display()))
    }

    pub fn from_json(text: &str) -> anyhow::Result<Scenario> {
        let scenario: Scenario = serde_json::from_str(text)?;
        scenario.validate()?;
        Ok(scenario)
    }

    fn validate(&self) -> anyhow::Result<()> {
        let mut ids = std::collections::HashSet::new();
        for account in &self.accounts {
            if !ids.insert(&account.id) {
                bail!("account id {} appears twice", account.id);
            }
        }
        Ok(())
    }
}

/// One linked account.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountSpec {
    /// Merge's linked account id.
    pub id: String,
    pub account_token: String,
    /// Exchangeable through `GET account-token/{public_token}`.
    #[serde(default)]
    pub public_token: Option<String>,
    pub category: String,
    #[serde(default)]
    pub end_user_origin_id: Option<String>,
    #[serde(default)]
    pub end_user_organization_name: Option<String>,
    #[serde(default)]
    pub end_user_email_address: Option<String>,
    /// Display name, e.g. `BambooHR`.
    #[serde(default)]
    pub integration: Option<String>,
    #[serde(default)]
    pub integration_slug: Option<String>,
    /// `account-details` status; default `COMPLETE`.
    #[serde(default)]
    pub status: Option<String>,
    /// `PRODUCTION` (default) or `TEST`.
    #[serde(default)]
    pub account_type: Option<String>,
    #[serde(default)]
    pub completed_at: Option<TimeSpec>,
    #[serde(default)]
    pub models: Vec<ModelSpec>,
}

impl AccountSpec {
    pub fn new(id: &str, account_token: &str, category: &str) -> AccountSpec {
        AccountSpec {
            id: id.to_string(),
            account_token: account_token.to_string(),
            public_token: None,
            category: category.to_string(),
            end_user_origin_id: None,
            end_user_organization_name: None,
            end_user_email_address: None,
            integration: None,
            integration_slug: None,
            status: None,
            account_type: None,
            completed_at: None,
            models: Vec::new(),
        }
    }

    /// Adds a model (builder style).
    pub fn model(mut self, model: ModelSpec) -> AccountSpec {
        self.models.push(model);
        self
    }
}

/// One Common Model of an account: its sync status and its records.
///
/// Absent timestamps are `null`; `is_initial_sync` defaults to "no sync has finished yet".
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// `hris.Employee`; must be in the model catalogue.
    pub model_id: String,
    /// Default: the model id without its category (and without `FileStorage` etc. prefixes).
    #[serde(default)]
    pub model_name: Option<String>,
    #[serde(default = "default_status")]
    pub status: String,
    #[serde(default)]
    pub is_initial_sync: Option<bool>,
    #[serde(default)]
    pub last_sync_result: Option<String>,
    #[serde(default)]
    pub last_sync_start: Option<TimeSpec>,
    #[serde(default)]
    pub last_sync_finished: Option<TimeSpec>,
    #[serde(default)]
    pub next_sync_start: Option<TimeSpec>,
    #[serde(default)]
    pub data_fresh_as_of: Option<TimeSpec>,
    #[serde(default)]
    pub sync_status_reason: Option<String>,
    #[serde(default)]
    pub selective_sync_configurations_usage: Option<String>,
    /// Explicit records. Their `created_at` / `modified_at` may be relative (`"-3h"`); absent
    /// ones are set to the start of the data window (see `generated_between`).
    #[serde(default)]
    pub records: Vec<serde_json::Value>,
    /// How many realistic records to generate.
    #[serde(default)]
    pub generate: usize,
    /// How many of the generated records are soft-deleted (`remote_was_deleted: true`).
    #[serde(default)]
    pub generate_deleted: usize,
    /// The `modified_at` range of generated records. Default: from `last_sync_start` (or ten
    /// minutes before `last_sync_finished`) to `last_sync_finished`; without a finished sync,
    /// the hour before the start.
    #[serde(default)]
    pub generated_between: Option<(TimeSpec, TimeSpec)>,
    /// Scripted syncs (one object or a list).
    #[serde(default, deserialize_with = "one_or_many")]
    pub schedule: Vec<SyncScript>,
}

fn default_status() -> String {
    "DONE".to_string()
}

impl ModelSpec {
    /// A model in `status` with nothing else set.
    pub fn new(model_id: &str) -> ModelSpec {
        ModelSpec {
            model_id: model_id.to_string(),
            model_name: None,
            status: default_status(),
            is_initial_sync: None,
            last_sync_result: None,
            last_sync_start: None,
            last_sync_finished: None,
            next_sync_start: None,
            data_fresh_as_of: None,
            sync_status_reason: None,
            selective_sync_configurations_usage: None,
            records: Vec::new(),
            generate: 0,
            generate_deleted: 0,
            generated_between: None,
            schedule: Vec::new(),
        }
    }

    /// A model whose initial sync finished at `finished` (started ten minutes before it, next
    /// sync a day after the start).
    pub fn done(model_id: &str, finished: TimeSpec) -> ModelSpec {
        let start = finished.shifted(-TimeDelta::minutes(10));
        ModelSpec {
            status: "DONE".to_string(),
            is_initial_sync: Some(false),
            last_sync_result: Some("DONE".to_string()),
            next_sync_start: Some(start.shifted(TimeDelta::days(1))),
            last_sync_start: Some(start),
            last_sync_finished: Some(finished),
            ..ModelSpec::new(model_id)
        }
    }

    /// A model whose initial sync is running: `SYNCING`, nothing finished yet.
    pub fn initial_syncing(model_id: &str) -> ModelSpec {
        ModelSpec {
            status: "SYNCING".to_string(),
            is_initial_sync: Some(true),
            ..ModelSpec::new(model_id)
        }
    }

    pub fn generate(mut self, n: usize) -> ModelSpec {
        self.generate = n;
        self
    }

    pub fn schedule(mut self, script: SyncScript) -> ModelSpec {
        self.schedule.push(script);
        self
    }
}

/// A scripted sync run: starts at `start`, is `SYNCING` for `duration` while it writes its
/// creates, updates and deletes evenly over that time (each stamped with the Merge time it
/// happens), then finishes with `result`. With a `cadence` it repeats every `cadence` (from
/// one start to the next) for `runs` runs (default: forever).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncScript {
    /// Relative to the scenario start in a file; relative to Merge's now in `start_sync`.
    #[serde(default = "TimeSpec::now")]
    pub start: TimeSpec,
    #[serde(deserialize_with = "de_delta")]
    pub duration: TimeDelta,
    /// `DONE` (default), `PARTIALLY_SYNCED` or `FAILED`.
    #[serde(default = "default_status")]
    pub result: String,
    #[serde(default)]
    pub creates: usize,
    #[serde(default)]
    pub updates: usize,
    #[serde(default)]
    pub deletes: usize,
    #[serde(default, deserialize_with = "de_opt_delta")]
    pub cadence: Option<TimeDelta>,
    /// Number of runs; default 1 without a cadence, unlimited with one.
    #[serde(default)]
    pub runs: Option<u32>,
}

impl SyncScript {
    /// One run starting now that takes `duration` and writes nothing.
    pub fn new(duration: TimeDelta) -> SyncScript {
        SyncScript {
            start: TimeSpec::now(),
            duration,
            result: default_status(),
            creates: 0,
            updates: 0,
            deletes: 0,
            cadence: None,
            runs: None,
        }
    }

    pub fn starting(mut self, start: TimeSpec) -> SyncScript {
        self.start = start;
        self
    }

    pub fn writes(mut self, creates: usize, updates: usize, deletes: usize) -> SyncScript {
        self.creates = creates;
        self.updates = updates;
        self.deletes = deletes;
        self
    }

    pub fn result(mut self, result: &str) -> SyncScript {
        self.result = result.to_string();
        self
    }

    pub fn every(mut self, cadence: TimeDelta, runs: Option<u32>) -> SyncScript {
        self.cadence = Some(cadence);
        self.runs = runs;
        self
    }
}

/// A point in time: absolute, or an offset from an origin (the scenario start, or now).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeSpec {
    At(DateTime<Utc>),
    Relative(TimeDelta),
}

impl TimeSpec {
    pub fn now() -> TimeSpec {
        TimeSpec::Relative(TimeDelta::zero())
    }

    /// `d` before the origin.
    pub fn ago(d: TimeDelta) -> TimeSpec {
        TimeSpec::Relative(-d)
    }

    /// `d` after the origin.
    pub fn after(d: TimeDelta) -> TimeSpec {
        TimeSpec::Relative(d)
    }

    pub fn resolve(&self, origin: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            TimeSpec::At(t) => *t,
            // Absurd offsets saturate instead of panicking on overflow.
            TimeSpec::Relative(d) => {
                origin
                    .checked_add_signed(*d)
                    .unwrap_or(if *d < TimeDelta::zero() {
                        DateTime::<Utc>::MIN_UTC
                    } else {
                        DateTime::<Utc>::MAX_UTC
                    })
            }
        }
    }

    fn shifted(&self, d: TimeDelta) -> TimeSpec {
        match self {
            TimeSpec::At(t) => TimeSpec::At(*t + d),
            TimeSpec::Relative(r) => TimeSpec::Relative(*r + d),
        }
    }
}

impl FromStr for TimeSpec {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<TimeSpec> {
        let s = s.trim();
        if s == "now" {
            return Ok(TimeSpec::now());
        }
        if let Some(rest) = s.strip_prefix('-') {
            return Ok(TimeSpec::Relative(-parse_delta(rest)?));
        }
        if let Some(rest) = s.strip_prefix('+') {
            return Ok(TimeSpec::Relative(parse_delta(rest)?));
        }
        if let Some(t) = crate::time::parse(s) {
            return Ok(TimeSpec::At(t));
        }
        parse_delta(s)
            .map(TimeSpec::Relative)
            .with_context(|| format!("{s:?} is neither RFC 3339 nor a relative time like \"-2h\""))
    }
}

impl<'de> Deserialize<'de> for TimeSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<TimeSpec, D::Error> {
        let s = String::deserialize(d)?;
        s.parse()
            .map_err(|e: anyhow::Error| serde::de::Error::custom(format!("{e:#}")))
    }
}

/// Parses `"90s"`, `"10m"`, `"1h30m"`, `"2d"`, `"250ms"`, `"1.5s"`.
pub fn parse_delta(s: &str) -> anyhow::Result<TimeDelta> {
    let s = s.trim();
    if s.is_empty() {
        bail!("empty duration");
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            bail!("bad duration {s:?}: expected a number");
        }
        let n: f64 = rest[..num_len]
            .parse()
            .with_context(|| format!("bad duration {s:?}"))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            "w" => 604800.0,
            unit => bail!("bad duration {s:?}: unknown unit {unit:?} (use ms, s, m, h, d, w)"),
        };
        rest = &rest[unit_len..];
        total += n * seconds;
    }
    Ok(TimeDelta::microseconds((total * 1e6).round() as i64))
}

/// A duration as `"2s"` / `"1h"` or a number of seconds.
#[derive(Deserialize)]
#[serde(untagged)]
enum DeltaRepr {
    Seconds(f64),
    Text(String),
}

impl DeltaRepr {
    fn into_delta(self) -> anyhow::Result<TimeDelta> {
        match self {
            DeltaRepr::Seconds(s) => Ok(TimeDelta::microseconds((s * 1e6).round() as i64)),
            DeltaRepr::Text(t) => parse_delta(&t),
        }
    }
}

fn de_delta<'de, D: Deserializer<'de>>(d: D) -> Result<TimeDelta, D::Error> {
    DeltaRepr::deserialize(d)?
        .into_delta()
        .map_err(|e| serde::de::Error::custom(format!("{e:#}")))
}

fn de_opt_delta<'de, D: Deserializer<'de>>(d: D) -> Result<Option<TimeDelta>, D::Error> {
    match Option::<DeltaRepr>::deserialize(d)? {
        None => Ok(None),
        Some(r) => r
            .into_delta()
            .map(Some)
            .map_err(|e| serde::de::Error::custom(format!("{e:#}"))),
    }
}

fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<SyncScript>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(Box<SyncScript>),
        Many(Vec<SyncScript>),
    }
    Ok(match Option::<OneOrMany>::deserialize(d)? {
        None => Vec::new(),
        Some(OneOrMany::One(s)) => vec![*s],
        Some(OneOrMany::Many(v)) => v,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_and_absolute_times_parse() {
        assert_eq!(
            "-2h".parse::<TimeSpec>().unwrap(),
            TimeSpec::Relative(-TimeDelta::hours(2))
        );
        assert_eq!(
            "+1h30m".parse::<TimeSpec>().unwrap(),
            TimeSpec::Relative(TimeDelta::minutes(90))
        );
        assert_eq!("now".parse::<TimeSpec>().unwrap(), TimeSpec::now());
        let at = "2026-03-02T14:05:22Z".parse::<TimeSpec>().unwrap();
        assert_eq!(
            at,
            TimeSpec::At(crate::time::parse("2026-03-02T14:05:22Z").unwrap())
        );
        assert!("yesterday".parse::<TimeSpec>().is_err());
        assert_eq!(parse_delta("250ms").unwrap(), TimeDelta::milliseconds(250));
        assert!(parse_delta("5x").is_err());
    }

    #[test]
    fn schedule_accepts_one_object_or_a_list() {
        let one: ModelSpec = serde_json::from_str(
            r#"{"model_id": "hris.Employee", "schedule": {"duration": "2s", "creates": 3}}"#,
        )
        .unwrap();
        assert_eq!(one.schedule.len(), 1);
        assert_eq!(one.schedule[0].duration, TimeDelta::seconds(2));
        let many: ModelSpec = serde_json::from_str(
            r#"{"model_id": "hris.Employee", "schedule": [{"duration": 1.5}, {"start": "+1m", "duration": "1s", "cadence": "30s"}]}"#,
        )
        .unwrap();
        assert_eq!(many.schedule.len(), 2);
        assert_eq!(many.schedule[1].cadence, Some(TimeDelta::seconds(30)));
    }

    #[test]
    fn the_documented_example_loads() {
        let doc: String = include_str!("scenario.rs")
            .lines()
            .take_while(|l| l.starts_with("//!"))
            .map(|l| l.trim_start_matches("//!").trim_start_matches(' '))
            .collect::<Vec<_>>()
            .join("\n");
        let json = doc
            .split("```json")
            .nth(1)
            .unwrap()
            .split("```")
            .next()
            .unwrap();
        let scenario = Scenario::from_json(json).unwrap();
        let state = crate::fake::FakeState::from_scenario(&scenario).unwrap();
        assert_eq!(state.record_count("acct-1", "hris.Employee"), 251);
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let err = Scenario::from_json(r#"{"api_key": "k", "acounts": []}"#).unwrap_err();
        assert!(format!("{err:#}").contains("acounts"), "{err:#}");
    }
}
