//! Mirrored records: one table per model, written a page at a time with the fetch's cursor.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};

use super::{Store, StoreError};
use crate::time;

/// One record, ready to upsert. `data` is the record's JSON exactly as Merge sent it.
#[derive(Debug, Clone)]
pub struct RecordRow {
    pub id: String,
    pub remote_id: Option<String>,
    pub created_at: Option<String>,
    /// Normalised to the stored timestamp format, so it compares as text.
    pub modified_at: Option<String>,
    pub remote_was_deleted: bool,
    pub data: String,
}

/// Where one page of a window stands once it is written.
#[derive(Debug, Clone)]
pub struct PageProgress<'a> {
    pub window_after: Option<DateTime<Utc>>,
    pub window_before: DateTime<Utc>,
    /// The cursor of the next page; `None` when this was the window's last page.
    pub next_cursor: Option<&'a str>,
    /// Our clock when this fetch started.
    pub started_at: DateTime<Utc>,
    pub now: DateTime<Utc>,
}

/// The records table of a model: `hris.TimeOffBalance` → `hris_time_off_balance`.
/// Anything not shaped like `category.Model` is rejected, so a table name is never built from
/// arbitrary text.
pub fn records_table(model_id: &str) -> Result<String, StoreError> {
    let invalid = || StoreError::InvalidModelId(model_id.to_string());
    let (category, model) = model_id.split_once('.').ok_or_else(invalid)?;
    let category_ok = !category.is_empty() && category.bytes().all(|b| b.is_ascii_lowercase());
    let model_ok = !model.is_empty() && model.bytes().all(|b| b.is_ascii_alphanumeric());
    if !category_ok || !model_ok {
        return Err(invalid());
    }
    let mut table = String::with_capacity(model_id.len() + 8);
    table.push_str(category);
    table.push('_');
    let chars: Vec<char> = model.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_uppercase() {
            // A new word starts at an upper-case letter after a lower-case letter or digit,
            // or at the last capital of an acronym run (`CRMAccount` → `crm_account`).
            let prev = i.checked_sub(1).map(|p| chars[p]);
            let next = chars.get(i + 1);
            let boundary = match prev {
                None => false,
                Some(p) if p.is_ascii_lowercase() || p.is_ascii_digit() => true,
                Some(p) => p.is_ascii_uppercase() && next.is_some_and(|n| n.is_ascii_lowercase()),
            };
            if boundary {
                table.push('_');
            }
            table.push(c.to_ascii_lowercase());
        } else {
            table.push(c);
        }
    }
    Ok(table)
}

fn ensure_table(tx: &rusqlite::Transaction, table: &str) -> Result<()> {
    tx.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS \"{table}\" (
            linked_account_id  TEXT NOT NULL,
            id                 TEXT NOT NULL,
            remote_id          TEXT,
            created_at         TEXT,
            modified_at        TEXT,
            remote_was_deleted INTEGER NOT NULL DEFAULT 0,
            data               TEXT NOT NULL,
            fetched_at         TEXT NOT NULL,
            PRIMARY KEY (linked_account_id, id)
        )"
    ))
    .with_context(|| format!("creating table {table}"))
}

impl Store {
    /// Writes one page in one transaction: the records, and where the window stands. The
    /// window's new bound is stored only with its last page, so a crash at any instant
    /// leaves either the old state or the new one, and a resumed run continues from the
    /// cursor saved with the last page that committed.
    pub fn write_page(
        &mut self,
        linked_account_id: &str,
        model_id: &str,
        rows: &[RecordRow],
        progress: &PageProgress,
    ) -> Result<usize> {
        let table = records_table(model_id)?;
        let fetched_at = time::format(progress.now);
        self.write(|tx| {
            ensure_table(tx, &table)?;
            let mut written = 0;
            {
                // An older copy never replaces a newer one: pages of overlapping windows and
                // late retries arrive out of order.
                let mut stmt = tx.prepare_cached(&format!(
                    "INSERT INTO \"{table}\" (linked_account_id, id, remote_id, created_at,
                        modified_at, remote_was_deleted, data, fetched_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                     ON CONFLICT (linked_account_id, id) DO UPDATE SET
                        remote_id = excluded.remote_id, created_at = excluded.created_at,
                        modified_at = excluded.modified_at,
                        remote_was_deleted = excluded.remote_was_deleted,
                        data = excluded.data, fetched_at = excluded.fetched_at
                     WHERE excluded.modified_at IS NULL OR \"{table}\".modified_at IS NULL
                        OR excluded.modified_at >= \"{table}\".modified_at"
                ))?;
                for r in rows {
                    written += stmt
                        .execute(params![
                            linked_account_id,
                            r.id,
                            r.remote_id,
                            r.created_at,
                            r.modified_at,
                            r.remote_was_deleted as i64,
                            r.data,
                            fetched_at
                        ])
                        .with_context(|| format!("writing {model_id} record {}", r.id))?;
                }
            }
            match progress.next_cursor {
                Some(cursor) => tx.execute(
                    "UPDATE model_sync_state SET cursor = ?3, window_after = ?4, window_before = ?5
                     WHERE linked_account_id = ?1 AND model_id = ?2",
                    params![
                        linked_account_id,
                        model_id,
                        cursor,
                        progress.window_after.map(time::format),
                        time::format(progress.window_before)
                    ],
                )?,
                None => tx.execute(
                    "UPDATE model_sync_state SET cursor = NULL, window_after = NULL,
                        window_before = NULL, last_error = NULL,
                        merge_last_sync_finished = CASE
                            WHEN merge_last_sync_finished IS NULL OR merge_last_sync_finished < ?3
                            THEN ?3 ELSE merge_last_sync_finished END,
                        last_synced_at = ?4, last_fetched_at = ?5
                     WHERE linked_account_id = ?1 AND model_id = ?2",
                    params![
                        linked_account_id,
                        model_id,
                        time::format(progress.window_before),
                        time::format(progress.started_at),
                        fetched_at
                    ],
                )?,
            };
            Ok(written)
        })
    }

    /// How many records of `model_id` the mirror holds for an account (0 before the first page).
    pub fn record_count(&self, linked_account_id: &str, model_id: &str) -> Result<i64> {
        let Ok(table) = records_table(model_id) else {
            return Ok(0);
        };
        let exists = self
            .conn
            .query_row(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [&table],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
        if !exists {
            return Ok(0);
        }
        self.conn
            .query_row(
                &format!("SELECT COUNT(*) FROM \"{table}\" WHERE linked_account_id = ?1"),
                [linked_account_id],
                |r| r.get(0),
            )
            .with_context(|| format!("counting records in {table}"))
    }

    /// The names of every records table in the file.
    pub fn record_tables(&self) -> Result<Vec<String>> {
        let mut stmt = self.conn.prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT IN
               ('linked_accounts', 'model_sync_state', 'webhook_inbox', 'sqlite_sequence')",
        )?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<Vec<String>>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;
    use crate::store::{NewAccount, ObservedStatus};

    #[test]
    fn table_names_are_snake_case_of_the_model_id() {
        let cases = [
            ("hris.Employee", "hris_employee"),
            ("hris.TimeOffBalance", "hris_time_off_balance"),
            (
                "filestorage.FileStorageFile",
                "filestorage_file_storage_file",
            ),
            ("crm.CRMAccount", "crm_crm_account"),
            ("accounting.Invoices", "accounting_invoices"),
            ("ats.EEOC", "ats_eeoc"),
            ("hris.Employee2Group", "hris_employee2_group"),
        ];
        for (id, table) in cases {
            assert_eq!(records_table(id).unwrap(), table, "{id}");
        }
    }

    #[test]
    fn model_ids_that_are_not_category_dot_model_are_rejected() {
        for bad in [
            "",
            "hris",
            "hris.",
            ".Employee",
            "HRIS.Employee",
            "hris.Employee; DROP TABLE linked_accounts",
            "hris.Emp-loyee",
            "hris.Employee.x",
            "hr is.Employee",
            "hris.Employé",
        ] {
            assert!(records_table(bad).is_err(), "{bad:?} accepted");
        }
    }

    fn row(id: &str, modified: &str, data: &str) -> RecordRow {
        RecordRow {
            id: id.into(),
            remote_id: None,
            created_at: None,
            modified_at: Some(time::normalize(modified)),
            remote_was_deleted: false,
            data: data.into(),
        }
    }

    #[test]
    fn an_older_copy_never_replaces_a_newer_one() {
        let mut store = Store::open_in_memory().unwrap();
        let now = Utc::now();
        store
            .upsert_account(
                &NewAccount {
                    linked_account_id: "a1".into(),
                    end_user_origin_id: None,
                    category: "hris".into(),
                    integration_slug: None,
                    account_token: Secret::new("t"),
                    models: None,
                },
                now,
            )
            .unwrap();
        store
            .save_observed(
                "a1",
                &[ObservedStatus {
                    model_id: "hris.Employee".into(),
                    status: "DONE".into(),
                    last_sync_result: None,
                    is_initial_sync: false,
                    ready: true,
                    last_sync_start: None,
                    next_sync_start: None,
                    last_sync_finished: None,
                }],
            )
            .unwrap();
        let progress = PageProgress {
            window_after: None,
            window_before: now,
            next_cursor: None,
            started_at: now,
            now,
        };
        let newer = row("e1", "2026-03-02T10:00:00Z", "new");
        let older = row("e1", "2026-03-01T10:00:00Z", "old");
        store
            .write_page("a1", "hris.Employee", &[newer], &progress)
            .unwrap();
        store
            .write_page("a1", "hris.Employee", &[older], &progress)
            .unwrap();
        let data: String = store
            .conn
            .query_row("SELECT data FROM hris_employee WHERE id = 'e1'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(data, "new");
        assert_eq!(store.record_count("a1", "hris.Employee").unwrap(), 1);
    }
}
