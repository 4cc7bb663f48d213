//! The fake Merge's world: its clock, linked accounts, per-model sync status and records, and
//! the scripted sync runs that change them as Merge's clock moves.
//!
//! Scripted events are applied lazily: whenever a request arrives, the clock is advanced or a
//! test looks at the state, every event due at Merge's current time is applied first, each
//! stamped with the time it was due (not the time it was noticed).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail};
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{json, Map, Value};

use super::fault::{Fault, FaultAction};
use super::generate::{self, hash_str, merge_ts, mix};
use super::scenario::{AccountSpec, ModelSpec, Scenario, SyncScript, TimeSpec};
use super::store::{Body, ModelStore, Record};
use crate::merge::catalog;

/// Default `page_size` of list endpoints and `sync-status`.
pub const DEFAULT_PAGE_SIZE: usize = 30;
/// Largest `page_size` Merge accepts; larger ones are answered with 400.
pub const MAX_PAGE_SIZE: usize = 100;

/// Where one model of one account stands, as `GET sync-status` reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncStatus {
    pub model_name: String,
    pub model_id: String,
    pub status: String,
    pub last_sync_result: Option<String>,
    pub last_sync_start: Option<DateTime<Utc>>,
    pub next_sync_start: Option<DateTime<Utc>>,
    pub last_sync_finished: Option<DateTime<Utc>>,
    pub data_fresh_as_of: Option<DateTime<Utc>>,
    pub historical_data_since: Option<DateTime<Utc>>,
    pub sync_status_reason: Option<String>,
    pub is_initial_sync: bool,
    pub selective_sync_configurations_usage: Option<String>,
}

fn ts_value(t: Option<DateTime<Utc>>) -> Value {
    t.map_or(Value::Null, |t| merge_ts(t.timestamp_micros()).into())
}

impl SyncStatus {
    /// The JSON Merge sends for it (every field, nulls included).
    pub fn to_json(&self) -> Value {
        json!({
            "model_name": self.model_name,
            "model_id": self.model_id,
            "last_sync_start": ts_value(self.last_sync_start),
            "next_sync_start": ts_value(self.next_sync_start),
            "last_sync_result": self.last_sync_result,
            "last_sync_finished": ts_value(self.last_sync_finished),
            "data_fresh_as_of": ts_value(self.data_fresh_as_of),
            "historical_data_since": ts_value(self.historical_data_since),
            "status": self.status,
            "sync_status_reason": self.sync_status_reason,
            "is_initial_sync": self.is_initial_sync,
            "selective_sync_configurations_usage": self.selective_sync_configurations_usage,
        })
    }
}

/// A linked account. Its fields are what `account-details` reports.
#[derive(Debug)]
pub struct FakeAccount {
    pub id: String,
    pub account_token: String,
    pub public_token: Option<String>,
    pub category: String,
    pub end_user_origin_id: String,
    pub end_user_organization_name: String,
    pub end_user_email_address: String,
    pub integration: String,
    pub integration_slug: String,
    pub status: String,
    pub account_type: String,
    pub completed_at: Option<DateTime<Utc>>,
    /// A revoked account's token is answered with 401.
    pub revoked: bool,
    pub(crate) models: Vec<FakeModel>,
}

impl FakeAccount {
    pub fn model_ids(&self) -> Vec<String> {
        self.models
            .iter()
            .map(|m| m.sync.model_id.clone())
            .collect()
    }

    /// The `account-details` response.
    pub fn details_json(&self) -> Value {
        json!({
            "id": self.id,
            "integration": self.integration,
            "integration_slug": self.integration_slug,
            "category": self.category,
            "end_user_origin_id": self.end_user_origin_id,
            "end_user_organization_name": self.end_user_organization_name,
            "end_user_email_address": self.end_user_email_address,
            "status": self.status,
            "webhook_listener_url": format!(
                "https://api.merge.dev/api/integrations/webhook-listener/{}",
                generate::uuid(hash_str(&self.id))
            ),
            "is_duplicate": null,
            "account_type": self.account_type,
            "completed_at": ts_value(self.completed_at),
            "instance_id": null,
            "instance_display_value": null,
        })
    }
}

#[derive(Debug)]
pub(crate) struct FakeModel {
    pub sync: SyncStatus,
    pub store: ModelStore,
    /// Scripted runs in progress; the model shows `SYNCING` while any is.
    running: u32,
    seed: u64,
}

impl std::fmt::Debug for ModelStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ModelStore({} records)", self.len())
    }
}

/// Merge's clock: the real clock (or a frozen instant) plus an offset tests move forward.
#[derive(Debug, Clone)]
struct Clock {
    offset: TimeDelta,
    frozen: Option<DateTime<Utc>>,
}

impl Clock {
    fn now(&self) -> DateTime<Utc> {
        let t = self.frozen.unwrap_or_else(Utc::now) + self.offset;
        // Merge keeps microseconds; truncating here makes stamps equal their JSON text.
        DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpKind {
    Create,
    Update,
    Delete,
}

#[derive(Debug)]
enum Event {
    Start {
        acct: usize,
        model: usize,
        script: Arc<SyncScript>,
        run_no: u32,
    },
    Op {
        run: u64,
        k: usize,
    },
    End {
        run: u64,
    },
}

#[derive(Debug)]
struct Run {
    acct: usize,
    model: usize,
    script: Arc<SyncScript>,
    run_no: u32,
    start: i64,
    end: i64,
    ops: Vec<OpKind>,
    done: usize,
    seed: u64,
}

impl Run {
    /// Ops are spread evenly strictly inside (start, end), so each is stamped within the run.
    fn op_time(&self, k: usize) -> i64 {
        let span = (self.end - self.start) as i128;
        self.start + (span * (k as i128 + 1) / (self.ops.len() as i128 + 1)) as i64
    }
}

/// Everything the fake knows. Reach it through `FakeMerge::with_state`.
#[derive(Debug)]
pub struct FakeState {
    api_key: String,
    clock: Clock,
    seed: u64,
    /// Default `page_size` of `sync-status`.
    pub sync_status_page_size: usize,
    /// The largest `sync-status` page served (see `Scenario::sync_status_max_page_size`).
    pub sync_status_max_page_size: usize,
    latency: Duration,
    accounts: Vec<FakeAccount>,
    faults: Vec<Fault>,
    events: BTreeMap<(i64, u64), Event>,
    runs: HashMap<u64, Run>,
    next_seq: u64,
}

/// `hris.Employee` → `Employee`; `filestorage.FileStorageFile` → `File`, as Merge names them.
pub fn default_model_name(model_id: &str) -> String {
    let name = model_id.split_once('.').map_or(model_id, |(_, n)| n);
    for prefix in ["FileStorage", "KnowledgeBase", "Ticketing"] {
        if let Some(rest) = name.strip_prefix(prefix) {
            if !rest.is_empty() {
                return rest.to_string();
            }
        }
    }
    name.to_string()
}

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

fn from_micros(m: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(m).unwrap_or_default()
}

impl FakeState {
    /// Builds the world a scenario describes, with Merge's clock at the scenario's start.
    pub fn from_scenario(scenario: &Scenario) -> anyhow::Result<FakeState> {
        let real_now = Utc::now();
        let start = scenario.start.map(|s| s.resolve(real_now));
        let clock = match (start, scenario.freeze_clock) {
            (Some(s), true) => Clock {
                offset: TimeDelta::zero(),
                frozen: Some(s),
            },
            (None, true) => Clock {
                offset: TimeDelta::zero(),
                frozen: Some(real_now),
            },
            (Some(s), false) => Clock {
                offset: s - real_now,
                frozen: None,
            },
            (None, false) => Clock {
                offset: TimeDelta::zero(),
                frozen: None,
            },
        };
        let mut state = FakeState {
            api_key: scenario.api_key.clone(),
            clock,
            seed: scenario.seed,
            sync_status_page_size: scenario
                .sync_status_page_size
                .unwrap_or(DEFAULT_PAGE_SIZE)
                .clamp(1, MAX_PAGE_SIZE),
            sync_status_max_page_size: scenario
                .sync_status_max_page_size
                .unwrap_or(MAX_PAGE_SIZE)
                .clamp(1, MAX_PAGE_SIZE),
            latency: Duration::from_millis(scenario.latency_ms),
            accounts: Vec::new(),
            faults: scenario.faults.clone(),
            events: BTreeMap::new(),
            runs: HashMap::new(),
            next_seq: 0,
        };
        let origin = state.now();
        for account in &scenario.accounts {
            state.add_account_at(account, origin)?;
        }
        state.process_due();
        Ok(state)
    }

    pub fn api_key(&self) -> &str {
        &self.api_key
    }

    pub fn set_api_key(&mut self, key: &str) {
        self.api_key = key.to_string();
    }

    /// Merge's current time (microsecond precision).
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Moves Merge's clock forward and applies every scripted event that falls due.
    pub fn advance(&mut self, by: TimeDelta) {
        self.clock.offset += by;
        self.process_due();
    }

    /// Stops (or restarts) Merge's clock at its current reading.
    pub fn freeze_clock(&mut self, frozen: bool) {
        let now = self.now();
        self.clock = Clock {
            offset: TimeDelta::zero(),
            frozen: frozen.then_some(now),
        };
        if !frozen {
            self.clock.offset = now - Utc::now();
        }
    }

    pub fn latency(&self) -> Duration {
        self.latency
    }

    /// Adds `latency` to every request (slept outside the state lock).
    pub fn set_latency(&mut self, latency: Duration) {
        self.latency = latency;
    }

    pub fn inject_fault(&mut self, fault: Fault) {
        self.faults.push(fault);
    }

    pub fn clear_faults(&mut self) {
        self.faults.clear();
    }

    /// Counts a request against the armed faults, in the order they were armed; the first
    /// that hits answers it, and later ones do not see it.
    pub(crate) fn check_faults(&mut self, method: &str, path: &str) -> Option<FaultAction> {
        let hit = self.faults.iter_mut().find_map(|f| f.check(method, path));
        self.faults.retain(|f| !f.exhausted());
        hit
    }

    pub fn accounts(&self) -> &[FakeAccount] {
        &self.accounts
    }

    pub fn account(&self, account_id: &str) -> Option<&FakeAccount> {
        self.accounts.iter().find(|a| a.id == account_id)
    }

    pub fn account_mut(&mut self, account_id: &str) -> Option<&mut FakeAccount> {
        self.accounts.iter_mut().find(|a| a.id == account_id)
    }

    pub(crate) fn account_index_by_token(&self, token: &str) -> Option<usize> {
        self.accounts
            .iter()
            .position(|a| !a.revoked && a.account_token == token)
    }

    pub(crate) fn account_at(&self, index: usize) -> &FakeAccount {
        &self.accounts[index]
    }

    /// Adds a linked account; its relative times count from Merge's now.
    pub fn add_account(&mut self, spec: AccountSpec) -> anyhow::Result<()> {
        let now = self.now();
        self.add_account_at(&spec, now)?;
        self.process_due();
        Ok(())
    }

    /// Adds a model to an existing account; its relative times count from Merge's now.
    pub fn add_model(&mut self, account_id: &str, spec: ModelSpec) -> anyhow::Result<()> {
        let acct = self.account_index(account_id)?;
        let now = self.now();
        self.add_model_at(acct, &spec, now)?;
        self.process_due();
        Ok(())
    }

    /// Makes the account's token answer 401.
    pub fn revoke_token(&mut self, account_id: &str) -> anyhow::Result<()> {
        let acct = self.account_index(account_id)?;
        self.accounts[acct].revoked = true;
        Ok(())
    }

    /// Gives the account a new token (a relink), which also un-revokes it.
    pub fn set_account_token(&mut self, account_id: &str, token: &str) -> anyhow::Result<()> {
        let acct = self.account_index(account_id)?;
        self.accounts[acct].account_token = token.to_string();
        self.accounts[acct].revoked = false;
        Ok(())
    }

    pub fn sync_status(&self, account_id: &str, model_id: &str) -> Option<&SyncStatus> {
        let a = self.account(account_id)?;
        a.models
            .iter()
            .find(|m| m.sync.model_id == model_id)
            .map(|m| &m.sync)
    }

    pub fn sync_status_mut(&mut self, account_id: &str, model_id: &str) -> Option<&mut SyncStatus> {
        let a = self.account_mut(account_id)?;
        a.models
            .iter_mut()
            .find(|m| m.sync.model_id == model_id)
            .map(|m| &mut m.sync)
    }

    /// Replaces a model's sync status wholesale (scripted runs keep changing it afterwards).
    pub fn set_sync_status(
        &mut self,
        account_id: &str,
        model_id: &str,
        status: SyncStatus,
    ) -> anyhow::Result<()> {
        let (a, m) = self.indices(account_id, model_id)?;
        self.accounts[a].models[m].sync = status;
        Ok(())
    }

    /// Creates or updates a record (matched by its `id`; one is made up when absent), stamping
    /// `modified_at` = now and, on create, `created_at` = now. Missing common fields are filled
    /// in. Returns the record's id.
    pub fn upsert_record(
        &mut self,
        account_id: &str,
        model_id: &str,
        record: Value,
    ) -> anyhow::Result<String> {
        let (a, m) = self.indices(account_id, model_id)?;
        let Value::Object(mut obj) = record else {
            bail!("a record must be a JSON object");
        };
        let now = micros(self.now());
        let store = &mut self.accounts[a].models[m].store;
        let id: Arc<str> = match obj.get("id").and_then(Value::as_str) {
            Some(id) if !id.is_empty() => id.into(),
            _ => store.new_id().1,
        };
        let old = store.get(&id).cloned();
        let created = old.as_ref().map_or(now, |r| r.created);
        let modified = old.as_ref().map_or(now, |r| now.max(r.modified));
        // A replaced generated record keeps its remote id.
        if !obj.contains_key("remote_id") {
            let remote = old
                .as_ref()
                .map(|r| store.ctx.to_value(r)["remote_id"].clone())
                .unwrap_or_else(|| {
                    format!("R{}", generate::splitmix64(hash_str(&id)) % 100_000_000).into()
                });
            obj.insert("remote_id".into(), remote);
        }
        obj.insert("id".into(), id.to_string().into());
        obj.insert("created_at".into(), merge_ts(created).into());
        obj.insert("modified_at".into(), merge_ts(modified).into());
        fill_common_fields(&mut obj);
        let deleted = obj
            .get("remote_was_deleted")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        store.put(Record {
            id: id.clone(),
            created,
            modified,
            deleted,
            body: Body::Json(Value::Object(obj).to_string().into()),
        });
        Ok(id.to_string())
    }

    /// Changes a record in place: `f` gets its current JSON; the result is upserted.
    pub fn update_record(
        &mut self,
        account_id: &str,
        model_id: &str,
        id: &str,
        f: impl FnOnce(&mut Value),
    ) -> anyhow::Result<()> {
        let mut v = self
            .record(account_id, model_id, id)
            .ok_or_else(|| anyhow!("{account_id}/{model_id} has no record {id}"))?;
        f(&mut v);
        if let Some(obj) = v.as_object_mut() {
            obj.insert("id".into(), id.into());
        }
        self.upsert_record(account_id, model_id, v)?;
        Ok(())
    }

    /// Soft-deletes a record: `remote_was_deleted: true`, `modified_at` = now.
    pub fn delete_record(
        &mut self,
        account_id: &str,
        model_id: &str,
        id: &str,
    ) -> anyhow::Result<()> {
        let (a, m) = self.indices(account_id, model_id)?;
        let now = micros(self.now());
        if !self.accounts[a].models[m].store.touch(id, now, true) {
            bail!("{account_id}/{model_id} has no record {id}");
        }
        Ok(())
    }

    /// One record as Merge would send it (deleted ones included).
    pub fn record(&self, account_id: &str, model_id: &str, id: &str) -> Option<Value> {
        let (a, m) = self.indices(account_id, model_id).ok()?;
        let store = &self.accounts[a].models[m].store;
        store.get(id).map(|r| store.ctx.to_value(r))
    }

    /// Every record of a model as Merge would send it, deleted ones included, in
    /// `(modified_at, id)` order: the truth to compare a mirror against.
    pub fn records(&self, account_id: &str, model_id: &str) -> Vec<Value> {
        let Ok((a, m)) = self.indices(account_id, model_id) else {
            return Vec::new();
        };
        let store = &self.accounts[a].models[m].store;
        store.iter().map(|r| store.ctx.to_value(r)).collect()
    }

    pub fn record_count(&self, account_id: &str, model_id: &str) -> usize {
        self.indices(account_id, model_id)
            .map_or(0, |(a, m)| self.accounts[a].models[m].store.len())
    }

    /// Schedules a scripted sync of one model; a relative `script.start` counts from now.
    pub fn start_sync(
        &mut self,
        account_id: &str,
        model_id: &str,
        script: SyncScript,
    ) -> anyhow::Result<()> {
        let (a, m) = self.indices(account_id, model_id)?;
        let at = micros(script.start.resolve(self.now()));
        self.schedule_start(a, m, Arc::new(script), 0, at);
        self.process_due();
        Ok(())
    }

    /// Whether any scripted run is running or still to start.
    pub fn has_pending_syncs(&self) -> bool {
        !self.events.is_empty()
    }

    /// The `LinkedAccount.sync_completed` webhook Merge would send for this account now.
    pub fn sync_completed_webhook(&self, account_id: &str) -> Option<Value> {
        let a = self.account(account_id)?;
        let mut statuses = Map::new();
        for m in &a.models {
            statuses.insert(
                m.sync.model_id.clone(),
                json!({
                    "last_sync_result": m.sync.last_sync_result,
                    "last_sync_finished": ts_value(m.sync.last_sync_finished),
                }),
            );
        }
        Some(json!({
            "hook": {
                "id": generate::uuid(hash_str("hook")),
                "event": "LinkedAccount.sync_completed",
                "target": "https://example.com/webhooks/merge",
            },
            "linked_account": a.details_json(),
            "data": {
                "is_initial_sync": a.models.iter().any(|m| m.sync.is_initial_sync),
                "sync_status": statuses,
            },
        }))
    }

    fn account_index(&self, account_id: &str) -> anyhow::Result<usize> {
        self.accounts
            .iter()
            .position(|a| a.id == account_id)
            .ok_or_else(|| anyhow!("no account {account_id}"))
    }

    fn indices(&self, account_id: &str, model_id: &str) -> anyhow::Result<(usize, usize)> {
        let a = self.account_index(account_id)?;
        let m = self.accounts[a]
            .models
            .iter()
            .position(|m| m.sync.model_id == model_id)
            .ok_or_else(|| anyhow!("account {account_id} has no model {model_id}"))?;
        Ok((a, m))
    }

    pub(crate) fn model(&self, acct: usize, model_id: &str) -> Option<&FakeModel> {
        self.accounts[acct]
            .models
            .iter()
            .find(|m| m.sync.model_id == model_id)
    }

    fn add_account_at(&mut self, spec: &AccountSpec, origin: DateTime<Utc>) -> anyhow::Result<()> {
        if self.account(&spec.id).is_some() {
            bail!("account {} exists already", spec.id);
        }
        if !catalog::is_category(&spec.category) {
            bail!("account {}: unknown category {:?}", spec.id, spec.category);
        }
        let slug = spec.integration_slug.clone().unwrap_or_else(|| {
            match spec.category.as_str() {
                "hris" => "bamboohr",
                "ats" => "greenhouse",
                "crm" => "hubspot",
                "accounting" => "quickbooks-online",
                "ticketing" => "jira",
                "filestorage" => "google-drive",
                "knowledgebase" => "confluence",
                "calendar" => "google-calendar",
                "chat" => "slack",
                _ => "gmail",
            }
            .to_string()
        });
        self.accounts.push(FakeAccount {
            id: spec.id.clone(),
            account_token: spec.account_token.clone(),
            public_token: spec.public_token.clone(),
            category: spec.category.clone(),
            end_user_origin_id: spec
                .end_user_origin_id
                .clone()
                .unwrap_or_else(|| format!("origin-{}", spec.id)),
            end_user_organization_name: spec
                .end_user_organization_name
                .clone()
                .unwrap_or_else(|| "Acme Corp".to_string()),
            end_user_email_address: spec
                .end_user_email_address
                .clone()
                .unwrap_or_else(|| "admin@acme-corp.example".to_string()),
            integration: spec.integration.clone().unwrap_or_else(|| slug.clone()),
            integration_slug: slug,
            status: spec
                .status
                .clone()
                .unwrap_or_else(|| "COMPLETE".to_string()),
            account_type: spec
                .account_type
                .clone()
                .unwrap_or_else(|| "PRODUCTION".to_string()),
            completed_at: Some(
                spec.completed_at
                    .map_or(origin - TimeDelta::days(1), |t| t.resolve(origin)),
            ),
            revoked: false,
            models: Vec::new(),
        });
        let acct = self.accounts.len() - 1;
        for model in &spec.models {
            if let Err(e) = self.add_model_at(acct, model, origin) {
                self.accounts.pop();
                return Err(e.context(format!("account {}", spec.id)));
            }
        }
        Ok(())
    }

    fn add_model_at(
        &mut self,
        acct: usize,
        spec: &ModelSpec,
        origin: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        let account = &self.accounts[acct];
        let info = catalog::find(&spec.model_id)
            .ok_or_else(|| anyhow!("unknown model {:?}", spec.model_id))?;
        if info.category != account.category {
            bail!(
                "model {} is not in the account's category {}",
                spec.model_id,
                account.category
            );
        }
        if account
            .models
            .iter()
            .any(|m| m.sync.model_id == spec.model_id)
        {
            bail!("model {} listed twice", spec.model_id);
        }
        let at = |t: &Option<TimeSpec>| t.map(|t| t.resolve(origin));
        let finished = at(&spec.last_sync_finished);
        let started = at(&spec.last_sync_start);
        let model_name = spec
            .model_name
            .clone()
            .unwrap_or_else(|| default_model_name(&spec.model_id));
        let sync = SyncStatus {
            model_name: model_name.clone(),
            model_id: spec.model_id.clone(),
            status: spec.status.clone(),
            last_sync_result: spec.last_sync_result.clone(),
            last_sync_start: started,
            next_sync_start: at(&spec.next_sync_start),
            last_sync_finished: finished,
            data_fresh_as_of: at(&spec.data_fresh_as_of),
            historical_data_since: None,
            sync_status_reason: spec.sync_status_reason.clone(),
            is_initial_sync: spec.is_initial_sync.unwrap_or(finished.is_none()),
            selective_sync_configurations_usage: spec.selective_sync_configurations_usage.clone(),
        };
        let seed = mix(
            mix(self.seed, hash_str(&account.id)),
            hash_str(&spec.model_id),
        );
        let mut store = ModelStore::new(&spec.model_id, &model_name, seed);

        // The data window: generated records were written by the last finished sync.
        let (lo, hi) = match (&spec.generated_between, finished) {
            (Some((a, b)), _) => (micros(a.resolve(origin)), micros(b.resolve(origin))),
            (None, Some(f)) => {
                let f = micros(f);
                let s = started.map(micros).filter(|&s| s < f);
                (s.unwrap_or(f - 600_000_000), f)
            }
            (None, None) => (micros(origin) - 3_600_000_000, micros(origin)),
        };
        if hi < lo {
            bail!(
                "model {}: generated_between ends before it starts",
                spec.model_id
            );
        }
        generate_records(&mut store, spec, lo, hi, seed);
        for (i, record) in spec.records.iter().enumerate() {
            let rec = explicit_record(&mut store, record, origin, lo)
                .map_err(|e| e.context(format!("model {} record {i}", spec.model_id)))?;
            store.put(rec);
        }
        let account = &mut self.accounts[acct];
        account.models.push(FakeModel {
            sync,
            store,
            running: 0,
            seed,
        });
        let model = account.models.len() - 1;
        for script in &spec.schedule {
            let start = micros(script.start.resolve(origin));
            self.schedule_start(acct, model, Arc::new(script.clone()), 0, start);
        }
        Ok(())
    }

    fn push_event(&mut self, at: i64, event: Event) {
        self.next_seq += 1;
        self.events.insert((at, self.next_seq), event);
    }

    fn schedule_start(
        &mut self,
        acct: usize,
        model: usize,
        script: Arc<SyncScript>,
        run_no: u32,
        at: i64,
    ) {
        self.push_event(
            at,
            Event::Start {
                acct,
                model,
                script,
                run_no,
            },
        );
    }

    /// Applies every scripted event due at Merge's current time, in time order.
    pub fn process_due(&mut self) {
        let now = micros(self.now());
        while let Some(entry) = self.events.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let ((at, _), event) = entry.remove_entry();
            self.apply(at, event);
        }
    }

    fn apply(&mut self, at: i64, event: Event) {
        match event {
            Event::Start {
                acct,
                model,
                script,
                run_no,
            } => self.start_run(acct, model, script, run_no, at),
            Event::Op { run, k } => {
                let Some(r) = self.runs.get(&run) else {
                    return;
                };
                if k < r.done {
                    return;
                }
                self.do_op(run, k, at);
                let r = &self.runs[&run];
                if k + 1 < r.ops.len() {
                    let next = r.op_time(k + 1);
                    self.push_event(next, Event::Op { run, k: k + 1 });
                }
            }
            Event::End { run } => self.end_run(run),
        }
    }

    fn start_run(
        &mut self,
        acct: usize,
        model: usize,
        script: Arc<SyncScript>,
        run_no: u32,
        at: i64,
    ) {
        let m = &mut self.accounts[acct].models[model];
        let seed = mix(m.seed, 0x5c41_7000 + run_no as u64);
        let mut ops = Vec::with_capacity(script.creates + script.updates + script.deletes);
        ops.extend(std::iter::repeat_n(OpKind::Create, script.creates));
        ops.extend(std::iter::repeat_n(OpKind::Update, script.updates));
        ops.extend(std::iter::repeat_n(OpKind::Delete, script.deletes));
        fastrand::Rng::with_seed(seed).shuffle(&mut ops);
        let end = at
            + script
                .duration
                .num_microseconds()
                .unwrap_or(i64::MAX / 4)
                .max(0);
        m.running += 1;
        m.sync.status = "SYNCING".to_string();
        m.sync.last_sync_start = Some(from_micros(at));
        let cadence_next = script.cadence.map(|c| from_micros(at) + c);
        let scheduled = self.next_scheduled_start(acct, model).map(from_micros);
        let m = &mut self.accounts[acct].models[model];
        m.sync.next_sync_start = cadence_next.or(scheduled);
        self.next_seq += 1;
        let run_id = self.next_seq;
        let run = Run {
            acct,
            model,
            script,
            run_no,
            start: at,
            end,
            ops,
            done: 0,
            seed,
        };
        if !run.ops.is_empty() {
            let first = run.op_time(0);
            self.push_event(first, Event::Op { run: run_id, k: 0 });
        }
        self.runs.insert(run_id, run);
        self.push_event(end, Event::End { run: run_id });
    }

    fn do_op(&mut self, run: u64, k: usize, at: i64) {
        let Some(r) = self.runs.get_mut(&run) else {
            return;
        };
        r.done = k + 1;
        let (kind, acct, model) = (r.ops[k], r.acct, r.model);
        let mut rng = fastrand::Rng::with_seed(mix(r.seed, k as u64));
        let store = &mut self.accounts[acct].models[model].store;
        match kind {
            OpKind::Create => {
                store.create_generated(at, at, false);
            }
            OpKind::Update | OpKind::Delete => {
                if let Some(id) = store.random_live(&mut rng) {
                    store.touch(&id, at, kind == OpKind::Delete);
                }
            }
        }
    }

    fn end_run(&mut self, run: u64) {
        let Some(r) = self.runs.get(&run) else {
            return;
        };
        // Ops not applied yet (a zero-length run) all happen before the end.
        for k in r.done..r.ops.len() {
            let t = self.runs[&run].op_time(k);
            self.do_op(run, k, t);
        }
        let Some(r) = self.runs.remove(&run) else {
            return;
        };
        let m = &mut self.accounts[r.acct].models[r.model];
        m.running = m.running.saturating_sub(1);
        let result = r.script.result.clone();
        m.sync.last_sync_result = Some(result.clone());
        m.sync.last_sync_finished = Some(from_micros(r.end));
        m.sync.is_initial_sync = false;
        if result != "FAILED" {
            m.sync.data_fresh_as_of = Some(from_micros(r.start));
            if m.sync.historical_data_since.is_none() {
                m.sync.historical_data_since = DateTime::parse_from_rfc3339("1900-01-01T00:00:00Z")
                    .ok()
                    .map(|t| t.with_timezone(&Utc));
            }
        }
        if m.running == 0 {
            m.sync.status = result;
            m.sync.sync_status_reason = None;
        }
        if let Some(cadence) = r.script.cadence {
            let runs = r.script.runs.unwrap_or(u32::MAX);
            if r.run_no + 1 < runs {
                let step = cadence.num_microseconds().unwrap_or(i64::MAX / 4).max(1);
                let next = (r.start + step).max(r.end);
                self.schedule_start(r.acct, r.model, r.script, r.run_no + 1, next);
            }
        }
        // Merge reports the next run it has planned, whichever script it comes from.
        if let Some(next) = self.next_scheduled_start(r.acct, r.model) {
            self.accounts[r.acct].models[r.model].sync.next_sync_start = Some(from_micros(next));
        }
    }

    /// When the next scripted run of a model starts, if one is scheduled.
    fn next_scheduled_start(&self, acct: usize, model: usize) -> Option<i64> {
        self.events.iter().find_map(|((at, _), e)| match e {
            Event::Start {
                acct: a, model: m, ..
            } if *a == acct && *m == model => Some(*at),
            _ => None,
        })
    }
}

/// Adds the fields every Common Model carries when a record leaves them out.
fn fill_common_fields(obj: &mut Map<String, Value>) {
    obj.entry("remote_was_deleted")
        .or_insert(Value::Bool(false));
    obj.entry("field_mappings").or_insert_with(
        || json!({"organization_defined_targets": {}, "linked_account_defined_targets": {}}),
    );
    obj.entry("remote_data").or_insert(Value::Null);
}

fn generate_records(store: &mut ModelStore, spec: &ModelSpec, lo: i64, hi: i64, seed: u64) {
    let n = spec.generate;
    let deleted = spec.generate_deleted.min(n);
    let span = (hi - lo) as i128;
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut next_deleted = 0usize;
    for i in 0..n {
        // Evenly spread inside (lo, hi), with sub-step jitter so microseconds look real.
        let base = lo + (span * (2 * i as i128 + 1) / (2 * n as i128)) as i64;
        let jitter_max = (span / (4 * n as i128)) as i64;
        let modified = base
            + if jitter_max > 0 {
                rng.i64(0..jitter_max)
            } else {
                0
            };
        let created = if rng.u32(0..10) < 7 {
            modified
        } else {
            modified - rng.i64(3_600_000_000..30 * 86_400_000_000)
        };
        // The deleted ones are spread evenly among the rest.
        let is_deleted = next_deleted < deleted && i == (2 * next_deleted + 1) * n / (2 * deleted);
        if is_deleted {
            next_deleted += 1;
        }
        store.create_generated(created, modified, is_deleted);
    }
}

/// A record given in the scenario: relative timestamps resolved, missing fields filled in.
fn explicit_record(
    store: &mut ModelStore,
    record: &Value,
    origin: DateTime<Utc>,
    default_time: i64,
) -> anyhow::Result<Record> {
    let Value::Object(obj) = record else {
        bail!("a record must be a JSON object");
    };
    let mut obj = obj.clone();
    let id: Arc<str> = match obj.get("id").and_then(Value::as_str) {
        Some(id) if !id.is_empty() => id.into(),
        _ => store.new_id().1,
    };
    obj.insert("id".into(), id.to_string().into());
    if !obj.contains_key("remote_id") {
        obj.insert("remote_id".into(), format!("{}", 1000 + store.len()).into());
    }
    let mut stamp = |field: &str| -> anyhow::Result<i64> {
        match obj.get(field) {
            None | Some(Value::Null) => {
                obj.insert(field.into(), merge_ts(default_time).into());
                Ok(default_time)
            }
            Some(Value::String(s)) => {
                // Absolute timestamps are kept verbatim (a fixture may use Merge's
                // no-fraction form); relative ones become Merge-formatted text.
                if let Some(t) = crate::time::parse(s) {
                    return Ok(micros(t));
                }
                let t = micros(s.parse::<TimeSpec>()?.resolve(origin));
                obj.insert(field.into(), merge_ts(t).into());
                Ok(t)
            }
            Some(other) => bail!("{field} must be a timestamp string, not {other}"),
        }
    };
    let modified = stamp("modified_at")?;
    let created = stamp("created_at")?;
    fill_common_fields(&mut obj);
    let deleted = obj
        .get("remote_was_deleted")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Ok(Record {
        id,
        created,
        modified,
        deleted,
        body: Body::Json(Value::Object(obj).to_string().into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn world() -> FakeState {
        let scenario = Scenario {
            start: Some(TimeSpec::At(
                crate::time::parse("2026-03-02T12:00:00Z").unwrap(),
            )),
            freeze_clock: true,
            ..Scenario::new("key")
        }
        .account(
            AccountSpec::new("acct-1", "tok-1", "hris")
                .model(
                    ModelSpec::done("hris.Employee", TimeSpec::ago(TimeDelta::hours(1)))
                        .generate(50),
                )
                .model(
                    ModelSpec::initial_syncing("hris.Team")
                        .schedule(SyncScript::new(TimeDelta::minutes(10)).writes(20, 0, 0)),
                ),
        );
        FakeState::from_scenario(&scenario).unwrap()
    }

    #[test]
    fn generated_records_fall_inside_the_last_sync() {
        let s = world();
        let st = s.sync_status("acct-1", "hris.Employee").unwrap().clone();
        let records = s.records("acct-1", "hris.Employee");
        assert_eq!(records.len(), 50);
        for r in &records {
            let m = crate::time::parse(r["modified_at"].as_str().unwrap()).unwrap();
            assert!(m > st.last_sync_start.unwrap() && m < st.last_sync_finished.unwrap());
        }
    }

    #[test]
    fn an_initial_sync_writes_over_its_duration_then_finishes() {
        let mut s = world();
        let t0 = s.now();
        let st = s.sync_status("acct-1", "hris.Team").unwrap();
        assert_eq!(st.status, "SYNCING");
        assert!(st.is_initial_sync && st.last_sync_finished.is_none());
        s.advance(TimeDelta::minutes(5));
        let halfway = s.record_count("acct-1", "hris.Team");
        assert!((8..=12).contains(&halfway), "{halfway}");
        assert_eq!(
            s.sync_status("acct-1", "hris.Team").unwrap().status,
            "SYNCING"
        );
        s.advance(TimeDelta::minutes(5));
        let st = s.sync_status("acct-1", "hris.Team").unwrap();
        assert_eq!(st.status, "DONE");
        assert_eq!(st.last_sync_result.as_deref(), Some("DONE"));
        assert!(!st.is_initial_sync);
        assert_eq!(st.last_sync_finished, Some(t0 + TimeDelta::minutes(10)));
        assert_eq!(s.record_count("acct-1", "hris.Team"), 20);
        assert!(!s.has_pending_syncs());
    }

    #[test]
    fn upsert_and_delete_stamp_merge_time() {
        let mut s = world();
        let id = s
            .upsert_record("acct-1", "hris.Employee", json!({"first_name": "Ada"}))
            .unwrap();
        s.advance(TimeDelta::seconds(3));
        s.delete_record("acct-1", "hris.Employee", &id).unwrap();
        let r = s.record("acct-1", "hris.Employee", &id).unwrap();
        assert_eq!(r["remote_was_deleted"], true);
        assert_eq!(r["first_name"], "Ada");
        let created = crate::time::parse(r["created_at"].as_str().unwrap()).unwrap();
        let modified = crate::time::parse(r["modified_at"].as_str().unwrap()).unwrap();
        assert_eq!(modified - created, TimeDelta::seconds(3));
        assert_eq!(modified, s.now());
    }

    #[test]
    fn cadence_repeats_runs() {
        let mut s = world();
        s.start_sync(
            "acct-1",
            "hris.Employee",
            SyncScript::new(TimeDelta::minutes(1))
                .writes(1, 2, 0)
                .every(TimeDelta::minutes(5), Some(3)),
        )
        .unwrap();
        s.advance(TimeDelta::minutes(30));
        assert_eq!(s.record_count("acct-1", "hris.Employee"), 53);
        let st = s.sync_status("acct-1", "hris.Employee").unwrap();
        assert_eq!(st.status, "DONE");
        assert!(!s.has_pending_syncs());
    }

    #[test]
    fn model_names_follow_merge() {
        assert_eq!(default_model_name("hris.Employee"), "Employee");
        assert_eq!(default_model_name("filestorage.FileStorageFile"), "File");
        assert_eq!(default_model_name("ticketing.Ticket"), "Ticket");
    }
}
