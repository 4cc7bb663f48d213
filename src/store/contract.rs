//! The store contract: one suite of behaviour every backend must show, run against each.
//! A backend passes by being handed to [`run_all`] through a fixture that opens fresh stores
//! on one empty database.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Utc};

use super::*;

/// Opens stores (separate connections) on one empty database for the life of a test.
pub struct Fixture {
    pub open: Box<dyn Fn() -> Box<dyn Store>>,
}

fn t(s: &str) -> DateTime<Utc> {
    crate::time::parse(s).unwrap()
}

fn new(id: &str, token: &str) -> NewAccount {
    NewAccount {
        linked_account_id: id.into(),
        end_user_origin_id: Some(format!("org-{id}")),
        category: "hris".into(),
        integration_slug: Some("bamboohr".into()),
        account_token: Secret::new(token),
        models: None,
    }
}

fn observed(model: &str, ready: bool) -> ObservedStatus {
    ObservedStatus {
        model_id: model.into(),
        status: "DONE".into(),
        last_sync_result: Some("DONE".into()),
        is_initial_sync: false,
        ready,
        last_sync_start: Some(t("2026-03-01T09:00:00Z")),
        next_sync_start: Some(t("2026-03-01T10:00:00Z")),
        last_sync_finished: Some(t("2026-03-01T09:30:00Z")),
    }
}

fn row(id: &str, modified: &str, data: &str) -> RecordRow {
    RecordRow {
        id: id.into(),
        remote_id: Some(format!("r-{id}")),
        created_at: Some(crate::time::normalize("2026-01-01T00:00:00Z")),
        modified_at: Some(crate::time::normalize(modified)),
        remote_was_deleted: false,
        data: data.into(),
    }
}

fn progress(cursor: Option<&str>, high_water: DateTime<Utc>) -> PageProgress<'_> {
    PageProgress {
        window_after: None,
        window_before: high_water,
        next_cursor: cursor,
        high_water,
        started_at: t("2026-03-02T00:00:00Z"),
        now: t("2026-03-02T00:00:01Z"),
    }
}

type ContractTest = (&'static str, fn(&Fixture));

/// Every contract test, in order; a failure names the test.
pub fn run_all(fixture: &Fixture) {
    let tests: &[ContractTest] = &[
        (
            "relinking keeps state",
            relinking_an_account_keeps_its_state,
        ),
        (
            "accounts are found",
            accounts_are_found_by_id_origin_or_token,
        ),
        ("completion once", initial_sync_completion_is_recorded_once),
        ("schedule", the_schedule_is_stored_as_given),
        (
            "observed",
            observed_status_is_saved_as_given_keeping_progress,
        ),
        ("hints", hints_are_saved_as_given),
        ("pages", pages_carry_their_cursor_and_the_high_water_mark),
        ("older copies", an_older_copy_never_replaces_a_newer_one),
        ("remove", removing_an_account_purges_only_when_asked),
        (
            "inbox",
            the_inbox_stores_duplicates_once_and_applies_each_once,
        ),
        (
            "inbox redaction",
            applied_webhooks_are_redacted_pruned_and_purged,
        ),
        ("export", views_export_typed_rows_in_order),
        ("rollback", a_failed_transaction_leaves_nothing_behind),
        ("locks", an_account_lock_excludes_a_second_holder),
        (
            "request times",
            request_times_pass_from_one_lock_holder_to_the_next,
        ),
        ("runs", runs_are_recorded_listed_and_pruned),
        ("counters", counters_only_grow),
        ("freshness", checked_success_and_page_columns_are_kept),
        ("backlog", the_inbox_backlog_counts_unapplied_webhooks),
    ];
    for (name, test) in tests {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| test(fixture)));
        if let Err(e) = outcome {
            panic!("store contract test {name:?} failed: {e:?}");
        }
    }
}

fn relinking_an_account_keeps_its_state(f: &Fixture) {
    let mut store = (f.open)();
    let now = Utc::now();
    assert_eq!(
        store
            .upsert_account(&new("rl1", "tok-old-1234"), now)
            .unwrap(),
        UpsertOutcome::Added
    );
    store.mark_initial_sync_complete("rl1", now).unwrap();
    store
        .record_account_failure("rl1", "boom", now + chrono::Duration::hours(1), now)
        .unwrap();
    assert_eq!(
        store
            .upsert_account(&new("rl1", "tok-new-5678"), now)
            .unwrap(),
        UpsertOutcome::Relinked
    );
    let a = store.account("rl1").unwrap().unwrap();
    assert_eq!(a.account_token.expose(), "tok-new-5678");
    assert!(a.initial_sync_complete);
    assert_eq!(a.consecutive_failures, 0, "a relink forgets old failures");
    assert!(a.next_poll_at.is_none(), "a relinked account is due now");
    assert_eq!(a.end_user_origin_id.as_deref(), Some("org-rl1"));
}

fn accounts_are_found_by_id_origin_or_token(f: &Fixture) {
    let mut store = (f.open)();
    let mut with_models = new("fa1", "tok-aaaa-1111");
    with_models.models = Some(vec!["hris.Employee".into()]);
    store.upsert_account(&with_models, Utc::now()).unwrap();
    let a = store.find_account("fa1").unwrap().unwrap();
    assert_eq!(a.models, Some(vec!["hris.Employee".to_string()]));
    assert_eq!(a.status, AccountStatus::Active);
    assert!(store.find_account("org-fa1").unwrap().is_some());
    assert!(store.find_account("nobody").unwrap().is_none());
    let by_token = store.find_account_by_token("tok-aaaa-1111").unwrap();
    assert_eq!(by_token.unwrap().linked_account_id, "fa1");
    let ids: Vec<String> = store
        .accounts()
        .unwrap()
        .into_iter()
        .map(|a| a.linked_account_id)
        .collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "accounts come ordered by id");
    store
        .set_account_status("fa1", AccountStatus::Disabled, Utc::now())
        .unwrap();
    assert_eq!(
        store.account("fa1").unwrap().unwrap().status,
        AccountStatus::Disabled
    );
}

fn initial_sync_completion_is_recorded_once(f: &Fixture) {
    let mut store = (f.open)();
    store
        .upsert_account(&new("ic1", "tok-aaaa-2222"), Utc::now())
        .unwrap();
    let started = t("2026-03-01T08:00:00Z");
    store.mark_initial_sync_started("ic1", started).unwrap();
    store
        .mark_initial_sync_started("ic1", t("2026-03-01T09:00:00Z"))
        .unwrap();
    assert!(!store.initial_sync_hook_pending("ic1").unwrap());
    assert!(store.mark_initial_sync_complete("ic1", Utc::now()).unwrap());
    assert!(!store.mark_initial_sync_complete("ic1", Utc::now()).unwrap());
    let a = store.account("ic1").unwrap().unwrap();
    assert_eq!(a.initial_sync_started_at, Some(started), "kept once set");
    assert!(store.initial_sync_hook_pending("ic1").unwrap());
    store.set_hook_error("ic1", Some("hook failed")).unwrap();
    assert!(!store.initial_sync_hook_pending("ic1").unwrap());
    assert_eq!(
        store.account("ic1").unwrap().unwrap().hook_error.as_deref(),
        Some("hook failed")
    );
}

fn the_schedule_is_stored_as_given(f: &Fixture) {
    let mut store = (f.open)();
    let now = t("2026-03-01T12:00:00.123456Z");
    store
        .upsert_account(&new("sc1", "tok-sc1-1234"), now)
        .unwrap();
    let later = now + chrono::Duration::minutes(10);
    store
        .record_account_success("sc1", Some(later), now)
        .unwrap();
    let a = store.account("sc1").unwrap().unwrap();
    assert_eq!(a.next_poll_at, Some(later));
    assert_eq!(a.last_polled_at, Some(now));
    store
        .record_account_failure("sc1", "e1", later, now)
        .unwrap();
    store
        .record_account_failure("sc1", "e2", later, now)
        .unwrap();
    let a = store.account("sc1").unwrap().unwrap();
    assert_eq!(
        (a.consecutive_failures, a.last_error.as_deref()),
        (2, Some("e2"))
    );
    store.set_next_poll("sc1", None).unwrap();
    assert!(store
        .account("sc1")
        .unwrap()
        .unwrap()
        .next_poll_at
        .is_none());
    store.record_account_success("sc1", None, now).unwrap();
    let a = store.account("sc1").unwrap().unwrap();
    assert_eq!((a.consecutive_failures, a.last_error), (0, None));
}

fn observed_status_is_saved_as_given_keeping_progress(f: &Fixture) {
    let mut store = (f.open)();
    store
        .upsert_account(&new("ob1", "tok-ob1-1234"), Utc::now())
        .unwrap();
    store
        .save_observed("ob1", &[observed("hris.Employee", true)])
        .unwrap();
    let hw = t("2026-03-01T09:30:00Z");
    store
        .write_page("ob1", "hris.Employee", &[], &progress(Some("c2"), hw))
        .unwrap();
    // The planner decides readiness; the store writes what it is told.
    let mut later = observed("hris.Employee", false);
    later.status = "SYNCING".into();
    store.save_observed("ob1", &[later]).unwrap();
    let m = &store.model_states("ob1").unwrap()[0];
    assert_eq!(m.status.as_deref(), Some("SYNCING"));
    assert!(!m.ready);
    assert_eq!(m.is_initial_sync, Some(false));
    assert_eq!(m.merge_next_sync_start, Some(t("2026-03-01T10:00:00Z")));
    assert_eq!(m.reported_last_sync_finished, Some(hw));
    assert_eq!(m.cursor.as_deref(), Some("c2"), "progress kept");
    store
        .set_model_error("ob1", "hris.Employee", Some("bad"))
        .unwrap();
    assert_eq!(
        store.model_states("ob1").unwrap()[0].last_error.as_deref(),
        Some("bad")
    );
    store.clear_cursor("ob1", "hris.Employee").unwrap();
    let m = &store.model_states("ob1").unwrap()[0];
    assert_eq!((m.cursor.as_deref(), m.window_before), (None, None));
}

fn hints_are_saved_as_given(f: &Fixture) {
    let mut store = (f.open)();
    store
        .upsert_account(&new("hi1", "tok-hi1-1234"), Utc::now())
        .unwrap();
    let h = t("2026-03-01T11:00:00.5Z");
    store
        .save_hint("hi1", "hris.Employee", Some(h), true)
        .unwrap();
    let m = &store.model_states("hi1").unwrap()[0];
    assert_eq!((m.hinted_last_sync_finished, m.ready), (Some(h), true));
    assert!(
        m.status.is_none(),
        "a hint alone is not a sync-status report"
    );
}

fn pages_carry_their_cursor_and_the_high_water_mark(f: &Fixture) {
    let mut store = (f.open)();
    store
        .upsert_account(&new("pg1", "tok-pg1-1234"), Utc::now())
        .unwrap();
    store
        .save_observed("pg1", &[observed("hris.Employee", true)])
        .unwrap();
    let hw = t("2026-03-01T09:30:00.000001Z");
    let page1 = [row("e1", "2026-03-01T09:00:00Z", r#"{"id":"e1"}"#)];
    assert_eq!(
        store
            .write_page("pg1", "hris.Employee", &page1, &progress(Some("cur-2"), hw))
            .unwrap(),
        1
    );
    let m = &store.model_states("pg1").unwrap()[0];
    assert_eq!(m.cursor.as_deref(), Some("cur-2"));
    assert_eq!(m.window_before, Some(hw));
    assert_eq!(
        m.merge_last_sync_finished, None,
        "the bound waits for the last page"
    );
    let page2 = [
        row("e2", "2026-03-01T09:00:00Z", r#"{"id":"e2","n":[1,2]}"#),
        row("e3", "2026-03-01T09:00:00Z", r#"{"id":"e3"}"#),
    ];
    store
        .write_page("pg1", "hris.Employee", &page2, &progress(None, hw))
        .unwrap();
    let m = &store.model_states("pg1").unwrap()[0];
    assert_eq!(m.cursor, None);
    assert_eq!(m.merge_last_sync_finished, Some(hw));
    assert_eq!(m.last_synced_at, Some(t("2026-03-02T00:00:00Z")));
    assert_eq!(store.record_count("pg1", "hris.Employee").unwrap(), 3);
    assert_eq!(store.record_count("pg1", "hris.Group").unwrap(), 0);
    assert!(store
        .record_tables()
        .unwrap()
        .contains(&"hris_employee".to_string()));
    let data: serde_json::Value = serde_json::from_str(
        &store
            .record_data("pg1", "hris.Employee", "e2")
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(data, serde_json::json!({"id": "e2", "n": [1, 2]}));
}

fn an_older_copy_never_replaces_a_newer_one(f: &Fixture) {
    let mut store = (f.open)();
    store
        .upsert_account(&new("oc1", "tok-oc1-1234"), Utc::now())
        .unwrap();
    store
        .save_observed("oc1", &[observed("hris.Employee", true)])
        .unwrap();
    let hw = Utc::now();
    let newer = row("e1", "2026-03-02T10:00:00Z", r#"{"v":"new"}"#);
    let older = row("e1", "2026-03-01T10:00:00Z", r#"{"v":"old"}"#);
    store
        .write_page("oc1", "hris.Employee", &[newer], &progress(None, hw))
        .unwrap();
    store
        .write_page("oc1", "hris.Employee", &[older], &progress(None, hw))
        .unwrap();
    let data = store.record_data("oc1", "hris.Employee", "e1").unwrap();
    assert_eq!(
        data.as_deref().map(|d| d.replace(' ', "")),
        Some(r#"{"v":"new"}"#.into())
    );
    assert_eq!(store.record_count("oc1", "hris.Employee").unwrap(), 1);
}

fn removing_an_account_purges_only_when_asked(f: &Fixture) {
    let mut store = (f.open)();
    for id in ["rm1", "rm2"] {
        store
            .upsert_account(&new(id, &format!("tok-{id}-1234")), Utc::now())
            .unwrap();
        store
            .save_observed(id, &[observed("hris.Employee", true)])
            .unwrap();
        let rows = [row("e1", "2026-03-01T09:00:00Z", "{}")];
        store
            .write_page(id, "hris.Employee", &rows, &progress(None, Utc::now()))
            .unwrap();
    }
    assert_eq!(store.remove_account("rm1", false).unwrap(), 0);
    assert!(store.account("rm1").unwrap().is_none());
    assert!(store.model_states("rm1").unwrap().is_empty());
    assert_eq!(store.record_count("rm1", "hris.Employee").unwrap(), 1);
    assert_eq!(store.remove_account("rm2", true).unwrap(), 1);
    assert_eq!(store.record_count("rm2", "hris.Employee").unwrap(), 0);
}

fn the_inbox_stores_duplicates_once_and_applies_each_once(f: &Fixture) {
    let mut store = (f.open)();
    let now = Utc::now();
    assert!(store.enqueue_webhook(b"{\"a\":1}", Some("X"), now).unwrap());
    assert!(!store.enqueue_webhook(b"{\"a\":1}", Some("X"), now).unwrap());
    assert!(store.enqueue_webhook(b"{\"a\":2}", None, now).unwrap());
    let first = store
        .in_transaction(|tx| {
            let item = tx.claim_pending_webhook()?.expect("one is pending");
            tx.mark_webhook_applied(item.id, "applied", None, None, now)?;
            Ok(item)
        })
        .unwrap();
    assert_eq!(first.body, b"{\"a\":1}");
    let second = store
        .in_transaction(|tx| {
            let item = tx.claim_pending_webhook()?.expect("one more is pending");
            tx.mark_webhook_applied(item.id, "applied", None, None, now)?;
            Ok(item)
        })
        .unwrap();
    assert_eq!(second.body, b"{\"a\":2}");
    let none = store
        .in_transaction(|tx| tx.claim_pending_webhook())
        .unwrap();
    assert!(none.is_none());
}

// Hardening item 5: tokens stayed in applied bodies, the inbox was never pruned, and
// `--purge` left an account's webhooks behind.
fn applied_webhooks_are_redacted_pruned_and_purged(f: &Fixture) {
    let mut store = (f.open)();
    let t0 = t("2026-03-01T00:00:00Z");
    let secret_body = b"{\"token\":\"tok_secret\"}";
    store.enqueue_webhook(secret_body, None, t0).unwrap();
    let id = store.pending_webhooks().unwrap()[0].id;
    store
        .mark_webhook_applied(id, "linked: a1", Some("a1"), Some(b"{}"), t0)
        .unwrap();
    assert!(store.pending_webhooks().unwrap().is_empty());
    // The original is still recognised as a duplicate.
    assert!(!store.enqueue_webhook(secret_body, None, t0).unwrap());

    let later = t0 + chrono::Duration::days(1);
    store.enqueue_webhook(b"{\"n\":2}", None, later).unwrap();
    let second = store.pending_webhooks().unwrap()[0].id;
    store
        .mark_webhook_applied(second, "due: a2", Some("a2"), None, later)
        .unwrap();
    store.enqueue_webhook(b"{\"n\":3}", None, later).unwrap();
    let pending = store.pending_webhooks().unwrap()[0].id;
    assert_eq!(
        store
            .prune_applied_webhooks(t0 + chrono::Duration::hours(1))
            .unwrap(),
        1,
        "only the old applied one goes"
    );
    assert_eq!(store.delete_account_webhooks("a2", &[pending]).unwrap(), 2);
    assert!(store.pending_webhooks().unwrap().is_empty());
}

fn views_export_typed_rows_in_order(f: &Fixture) {
    let mut store = (f.open)();
    store
        .upsert_account(&new("ex1", "tok-ex1-1234"), Utc::now())
        .unwrap();
    store
        .save_observed("ex1", &[observed("hris.Employee", true)])
        .unwrap();
    let mut gone = row("e0", "2026-03-01T09:00:00Z", r#"{"id":"e0"}"#);
    gone.remote_was_deleted = true;
    let rows = [
        row(
            "e2",
            "2026-03-01T09:00:00Z",
            r#"{"id":"e2","first_name":"Grace","modified_at":"2026-03-01T09:00:00Z"}"#,
        ),
        row(
            "e1",
            "2026-03-01T09:00:00Z",
            r#"{"id":"e1","first_name":"Ada"}"#,
        ),
        gone,
    ];
    store
        .write_page("ex1", "hris.Employee", &rows, &progress(None, Utc::now()))
        .unwrap();
    let model = crate::views::catalogue().find("hris.Employee").unwrap();
    let col = |name: &str| model.columns.iter().position(|c| c.name == name).unwrap();
    let (id, first, modified) = (col("id"), col("first_name"), col("modified_at"));
    let mut got = Vec::new();
    let filter = ExportFilter {
        linked_account_id: Some("ex1".into()),
        include_deleted: false,
    };
    let n = store
        .export_view(model, &filter, &mut |cells| {
            got.push((
                cells[id].clone(),
                cells[first].clone(),
                cells[modified].clone(),
            ));
            Ok(())
        })
        .unwrap();
    assert_eq!(n, 2, "the deleted record only with include_deleted");
    assert_eq!(got[0].0, Cell::Text("e1".into()));
    assert_eq!(got[0].1, Cell::Text("Ada".into()));
    assert_eq!(got[1].1, Cell::Text("Grace".into()));
    assert_eq!(got[1].2, Cell::Text("2026-03-01T09:00:00.000000Z".into()));
    let all = ExportFilter {
        linked_account_id: Some("ex1".into()),
        include_deleted: true,
    };
    assert_eq!(store.export_view(model, &all, &mut |_| Ok(())).unwrap(), 3);
}

fn a_failed_transaction_leaves_nothing_behind(f: &Fixture) {
    let mut store = (f.open)();
    let err = store.in_transaction(|tx| -> Result<()> {
        tx.upsert_account(&new("rb1", "tok-rb1-1234"), Utc::now())?;
        tx.enqueue_webhook(b"rolled back", None, Utc::now())?;
        anyhow::bail!("changed my mind")
    });
    assert!(err.is_err());
    assert!(store.account("rb1").unwrap().is_none());
    assert!(store
        .enqueue_webhook(b"rolled back", None, Utc::now())
        .unwrap());
}

fn an_account_lock_excludes_a_second_holder(f: &Fixture) {
    let (mut one, mut two) = ((f.open)(), (f.open)());
    let first = one.try_lock_account("lk1").unwrap();
    assert!(first.is_some());
    assert!(two.try_lock_account("lk1").unwrap().is_none());
    assert!(two.try_lock_account("lk2").unwrap().is_some());
    drop(first);
    assert!(two.try_lock_account("lk1").unwrap().is_some());
}

fn request_times_pass_from_one_lock_holder_to_the_next(f: &Fixture) {
    // Recent times (a backend may forget ones older than the rate-limit window), in ms.
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let at = UNIX_EPOCH + Duration::from_millis(ms - 10_000);
    let mut one = (f.open)();
    {
        let mut lock = one.try_lock_account("rq1").unwrap().unwrap();
        assert!(lock.recent_requests().is_empty());
        lock.save_requests(&[at, at + Duration::from_secs(1)])
            .unwrap();
        let mut journal = lock.journal().unwrap();
        journal(at + Duration::from_secs(2)).unwrap();
    }
    let mut two = (f.open)();
    let mut lock = two.try_lock_account("rq1").unwrap().unwrap();
    let mut got: Vec<SystemTime> = lock.recent_requests();
    got.sort();
    assert_eq!(
        got,
        vec![at, at + Duration::from_secs(1), at + Duration::from_secs(2)]
    );
}

fn run(id: &str, command: &str, started: &str) -> RunRow {
    RunRow {
        run_id: id.into(),
        command: command.into(),
        host: "host-a".into(),
        pid: 4242,
        started_at: t(started),
        ..Default::default()
    }
}

fn runs_are_recorded_listed_and_pruned(f: &Fixture) {
    let mut store = (f.open)();
    let all = |store: &mut Box<dyn Store>, account: Option<&str>| -> Vec<String> {
        store
            .runs(&RunQuery {
                limit: 100,
                account: account.map(str::to_owned),
                ..Default::default()
            })
            .unwrap()
            .into_iter()
            .map(|r| r.run_id)
            .collect()
    };
    store
        .start_run(&run("r1", "poll", "2026-03-01T10:00:00Z"))
        .unwrap();
    let mut fetch = run("r2", "fetch", "2026-03-01T11:00:00Z");
    fetch.accounts = vec!["acc-b".into()];
    store.start_run(&fetch).unwrap();
    store.add_run_account("r1", "acc-a").unwrap();
    store.add_run_account("r1", "acc-a").unwrap();
    // r2 is killed: never finished.
    let mut done = run("r1", "poll", "2026-03-01T10:00:00Z");
    done.finished_at = Some(t("2026-03-01T10:01:00Z"));
    done.outcome = Some("partial".into());
    done.accounts_synced = 1;
    done.accounts_failed = 1;
    done.records_written = 250;
    done.requests = 12;
    done.rate_limited = 2;
    done.retries = 3;
    done.first_error = Some("acc-c: boom".into());
    done.accounts = vec!["acc-c".into()];
    store.finish_run(&done).unwrap();

    let runs = store
        .runs(&RunQuery {
            limit: 10,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0].run_id, "r2", "newest first");
    assert_eq!(runs[0].finished_at, None);
    assert_eq!(runs[0].outcome, None, "a killed run is not a success");
    assert_eq!(runs[0].accounts, vec!["acc-b".to_string()]);
    let r1 = &runs[1];
    assert_eq!(r1.outcome.as_deref(), Some("partial"));
    assert_eq!(
        (r1.accounts_synced, r1.accounts_failed, r1.records_written),
        (1, 1, 250)
    );
    assert_eq!((r1.requests, r1.rate_limited, r1.retries), (12, 2, 3));
    assert_eq!(r1.first_error.as_deref(), Some("acc-c: boom"));
    assert_eq!((r1.host.as_str(), r1.pid), ("host-a", 4242));
    assert_eq!(r1.accounts, vec!["acc-a".to_string(), "acc-c".to_string()]);

    assert_eq!(all(&mut store, Some("acc-a")), ["r1"]);
    assert_eq!(all(&mut store, Some("acc-b")), ["r2"]);
    assert!(all(&mut store, Some("acc-z")).is_empty());
    let ok_polls = store
        .runs(&RunQuery {
            limit: 1,
            command: Some("poll".into()),
            outcomes: vec!["ok".into(), "partial".into()],
            ..Default::default()
        })
        .unwrap();
    assert_eq!(ok_polls.len(), 1);
    assert_eq!(ok_polls[0].run_id, "r1");
    assert!(store
        .runs(&RunQuery {
            limit: 5,
            command: Some("fetch".into()),
            outcomes: vec!["ok".into()],
            ..Default::default()
        })
        .unwrap()
        .is_empty());

    for (i, at) in [
        "2026-03-02T00:00:00Z",
        "2026-03-03T00:00:00Z",
        "2026-03-04T00:00:00Z",
    ]
    .iter()
    .enumerate()
    {
        store.start_run(&run(&format!("n{i}"), "poll", at)).unwrap();
    }
    // Older than a cut-off, then beyond the newest two.
    assert_eq!(store.prune_runs(t("2026-03-01T12:00:00Z"), 100).unwrap(), 2);
    assert_eq!(all(&mut store, None), ["n2", "n1", "n0"]);
    assert_eq!(store.prune_runs(t("2026-01-01T00:00:00Z"), 2).unwrap(), 1);
    assert_eq!(all(&mut store, None), ["n2", "n1"]);
    assert!(
        all(&mut store, Some("acc-a")).is_empty(),
        "accounts go with their run"
    );
}

fn counters_only_grow(f: &Fixture) {
    let mut store = (f.open)();
    let c = |name: &str, label: &str, value: u64| Counter {
        name: name.into(),
        label: label.into(),
        value,
    };
    store
        .add_counters(&[c("requests", "200", 5), c("records_written", "", 100)])
        .unwrap();
    store
        .add_counters(&[c("requests", "200", 2), c("requests", "429", 1)])
        .unwrap();
    assert_eq!(
        store.counters().unwrap(),
        vec![
            c("records_written", "", 100),
            c("requests", "200", 7),
            c("requests", "429", 1)
        ]
    );
}

fn checked_success_and_page_columns_are_kept(f: &Fixture) {
    let mut store = (f.open)();
    store
        .upsert_account(&new("fr1", "tok-fr1-1234"), Utc::now())
        .unwrap();
    let a = store.account("fr1").unwrap().unwrap();
    assert_eq!((a.last_checked_at, a.last_success_at), (None, None));
    store
        .mark_checked("fr1", t("2026-03-02T08:00:00Z"))
        .unwrap();
    store
        .record_account_success("fr1", None, t("2026-03-02T08:01:00Z"))
        .unwrap();
    store
        .record_account_failure(
            "fr1",
            "boom",
            t("2026-03-02T09:00:00Z"),
            t("2026-03-02T08:30:00Z"),
        )
        .unwrap();
    let a = store.account("fr1").unwrap().unwrap();
    assert_eq!(a.last_checked_at, Some(t("2026-03-02T08:00:00Z")));
    assert_eq!(
        a.last_success_at,
        Some(t("2026-03-02T08:01:00Z")),
        "a failure keeps the last success"
    );

    store
        .save_observed("fr1", &[observed("hris.Employee", true)])
        .unwrap();
    let hw = t("2026-03-01T09:30:00Z");
    let page = [row("e1", "2026-03-01T09:00:00Z", "{}")];
    for (cursor, pages) in [("c2", 1), ("c3", 2)] {
        store
            .write_page("fr1", "hris.Employee", &page, &progress(Some(cursor), hw))
            .unwrap();
        assert_eq!(
            store.model_states("fr1").unwrap()[0].cursor_page,
            Some(pages)
        );
    }
    store.clear_cursor("fr1", "hris.Employee").unwrap();
    assert_eq!(store.model_states("fr1").unwrap()[0].cursor_page, None);
    store
        .write_page("fr1", "hris.Employee", &page, &progress(Some("c2"), hw))
        .unwrap();
    store
        .write_page("fr1", "hris.Employee", &page, &progress(None, hw))
        .unwrap();
    assert_eq!(store.model_states("fr1").unwrap()[0].cursor_page, None);
}

fn the_inbox_backlog_counts_unapplied_webhooks(f: &Fixture) {
    let mut store = (f.open)();
    let (n0, _) = store.inbox_backlog().unwrap();
    let early = t("2020-01-01T00:00:00Z");
    assert!(store
        .enqueue_webhook(b"{\"backlog\":1}", None, early)
        .unwrap());
    assert!(store
        .enqueue_webhook(
            b"{\"backlog\":2}",
            None,
            early + chrono::Duration::minutes(5)
        )
        .unwrap());
    let (n, oldest) = store.inbox_backlog().unwrap();
    assert_eq!(n, n0 + 2);
    assert_eq!(oldest, Some(early));
}

#[test]
fn sqlite_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("contract.db");
    let location = Location::Sqlite(path);
    run_all(&Fixture {
        open: Box::new(move || open(&location).unwrap()),
    });
}

#[test]
fn postgres_keeps_the_contract() {
    let db = crate::testing::postgres::database();
    let location = Location::parse(Path::new(db.url()), &|_| None).unwrap();
    run_all(&Fixture {
        open: Box::new(move || open(&location).unwrap()),
    });
}
