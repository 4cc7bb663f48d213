//! Runs one model's fetch plan: pages of each window, each written with its cursor.

use anyhow::{anyhow, Result};
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::detect::{FetchPlan, Window};
use crate::merge::models::{RecordHead, RecordPage};
use crate::merge::{AccountApi, ListQuery, MergeError};
use crate::store::{PageProgress, RecordRow, Store};
use crate::time;

/// Merge's largest page.
pub const PAGE_SIZE: u32 = 100;

/// Progress of a running fetch, for a terminal display.
#[derive(Debug, Clone)]
pub struct FetchProgress<'a> {
    pub linked_account_id: &'a str,
    pub model_id: &'a str,
    pub pages: u64,
    pub records: u64,
    /// Records in the page just written.
    pub page_records: u64,
    /// This page was its window's last: nothing of the window is left to resume.
    pub window_done: bool,
}

/// Totals of one model's fetch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FetchTotals {
    pub pages: u64,
    pub records: u64,
    pub windows: u64,
}

/// Fetches every window of `plan` for one account. Errors leave the store at the last
/// committed page, which the next run resumes from.
pub fn fetch_model(
    api: &AccountApi,
    store: &mut dyn Store,
    linked_account_id: &str,
    plan: &FetchPlan,
    clock: &dyn Fn() -> DateTime<Utc>,
    progress: &mut dyn FnMut(&FetchProgress),
) -> Result<FetchTotals> {
    let started_at = clock();
    let mut totals = FetchTotals::default();
    for window in &plan.windows {
        match fetch_window(
            api,
            store,
            linked_account_id,
            plan,
            window,
            started_at,
            clock,
            &mut totals,
            progress,
        ) {
            Err(e) if window.cursor.is_some() && is_rejected_cursor(&e) => {
                // Saved cursors expire; the window's bounds are still right, so read it again
                // from its first page (the upsert absorbs what is read twice).
                log::info!(account = linked_account_id, model = plan.model_id.as_str();
                    "{linked_account_id} {}: Merge rejected the saved cursor; restarting the window",
                    plan.model_id
                );
                store.clear_cursor(linked_account_id, &plan.model_id)?;
                let fresh = Window {
                    cursor: None,
                    ..window.clone()
                };
                fetch_window(
                    api,
                    store,
                    linked_account_id,
                    plan,
                    &fresh,
                    started_at,
                    clock,
                    &mut totals,
                    progress,
                )?;
            }
            other => other?,
        }
        totals.windows += 1;
    }
    Ok(totals)
}

fn is_rejected_cursor(e: &anyhow::Error) -> bool {
    e.downcast_ref::<MergeError>()
        .is_some_and(MergeError::is_rejection)
}

#[allow(clippy::too_many_arguments)]
fn fetch_window(
    api: &AccountApi,
    store: &mut dyn Store,
    linked_account_id: &str,
    plan: &FetchPlan,
    window: &Window,
    started_at: DateTime<Utc>,
    clock: &dyn Fn() -> DateTime<Utc>,
    totals: &mut FetchTotals,
    progress: &mut dyn FnMut(&FetchProgress),
) -> Result<()> {
    let query = ListQuery {
        page_size: PAGE_SIZE,
        include_deleted_data: plan.include_deleted,
        modified_after: window
            .after
            .filter(|_| plan.filtered)
            .map(time::format_query),
        modified_before: Some(window.before)
            .filter(|_| plan.filtered)
            .map(time::format_query),
    };
    // One thread reads pages (HTTP and JSON) while this one writes the previous page, so
    // the network and SQLite overlap. Order and durability are unchanged: pages are written
    // in order, each with its own cursor, and the reader runs at most three pages ahead.
    std::thread::scope(|scope| -> Result<()> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Fetched, MergeError>>(2);
        let first = window.cursor.clone();
        let (query, path, model_id) = (&query, &plan.path, &plan.model_id);
        scope.spawn(move || read_pages(api, path, query, model_id, first, &tx));
        for fetched in rx {
            let Fetched { rows, next } = fetched?;
            store.write_page(
                linked_account_id,
                &plan.model_id,
                &rows,
                &PageProgress {
                    window_after: window.after,
                    window_before: window.before,
                    next_cursor: next.as_deref(),
                    high_water: window.high_water,
                    started_at,
                    now: clock(),
                },
            )?;
            totals.pages += 1;
            totals.records += rows.len() as u64;
            progress(&FetchProgress {
                linked_account_id,
                model_id: &plan.model_id,
                pages: totals.pages,
                records: totals.records,
                page_records: rows.len() as u64,
                window_done: next.is_none(),
            });
            if next.is_none() {
                return Ok(());
            }
        }
        Err(anyhow!(
            "the page reader for {} stopped early",
            plan.model_id
        ))
    })
}

/// One page, parsed, with the cursor of the next one.
struct Fetched {
    rows: Vec<RecordRow>,
    next: Option<String>,
}

/// Reads pages in order until the last one, an error, or the writer hanging up.
fn read_pages(
    api: &AccountApi,
    path: &str,
    query: &ListQuery,
    model_id: &str,
    start: Option<String>,
    tx: &std::sync::mpsc::SyncSender<Result<Fetched, MergeError>>,
) {
    for page in api.pages(path, query, start) {
        let fetched = page.map(|(_, page)| Fetched {
            rows: rows_of(&page, model_id),
            next: page.next,
        });
        if tx.send(fetched).is_err() {
            return;
        }
    }
}

/// Turns a page into rows, keeping each record's JSON exactly as received. An entry that is
/// not an object cannot be mirrored; it is skipped with a warning rather than blocking the
/// model forever.
///
/// A `modified_at` that is not a timestamp is stored as NULL (the record's JSON keeps it as
/// sent): stored as text it would compare above or below every real time, and could stop
/// later versions of the record from ever replacing it.
fn rows_of(page: &RecordPage, model_id: &str) -> Vec<RecordRow> {
    let mut odd_times = Vec::new();
    let rows = page
        .results
        .iter()
        .filter_map(|raw| {
            let head: RecordHead = match serde_json::from_str(raw.get()) {
                Ok(head) => head,
                Err(e) => {
                    log::warn!(model = model_id; "skipping a {model_id} entry from Merge that is not a record ({e})");
                    return None;
                }
            };
            // A few models (ats.Tag, crm.Association) have no Merge id: key them by their
            // remote id, or failing that by their content.
            let id = head
                .id
                .clone()
                .or_else(|| head.remote_id.as_ref().map(|r| format!("remote:{r}")))
                .unwrap_or_else(|| format!("sha256:{:x}", Sha256::digest(raw.get().as_bytes())));
            let modified_at = head.modified_at.as_deref().and_then(|m| {
                let parsed = time::parse(m).map(time::format);
                if parsed.is_none() {
                    odd_times.push(id.clone());
                }
                parsed
            });
            Some(RecordRow {
                id,
                remote_id: head.remote_id,
                created_at: head.created_at.as_deref().map(time::normalize),
                modified_at,
                remote_was_deleted: head.remote_was_deleted.unwrap_or(false),
                data: raw.get().to_string(),
            })
        })
        .collect();
    // One line per page, not per record: a source that sends odd times sends them in bulk.
    if let Some(first) = odd_times.first() {
        log::warn!(
            "{model_id}: {} record(s) with a modified_at that is not a timestamp (first: {first}); \
             stored without one, so later versions still replace them",
            odd_times.len()
        );
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(json: &str) -> RecordPage {
        serde_json::from_str(json).unwrap()
    }

    // Regression (hardening item 2): an odd modified_at was stored as text and blocked every
    // later version of the record.
    #[test]
    fn a_modified_at_that_is_not_a_timestamp_is_stored_as_null() {
        let rows = rows_of(
            &page(
                r#"{"next": null, "results": [
                    {"id": "a", "modified_at": "yesterday-ish"},
                    {"id": "b", "modified_at": "2026-03-02 14:05:22+00"},
                    {"id": "c"}]}"#,
            ),
            "hris.Employee",
        );
        assert_eq!(rows[0].modified_at, None);
        assert!(rows[0].data.contains("yesterday-ish"), "the JSON keeps it");
        assert_eq!(
            rows[1].modified_at.as_deref(),
            Some("2026-03-02T14:05:22.000000Z")
        );
        assert_eq!(rows[2].modified_at, None);
    }
}
