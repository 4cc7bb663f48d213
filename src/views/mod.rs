//! Typed views of the mirrored records: one `<table>_view` per Common Model, with a column per
//! Merge field.
//!
//! `catalogue.json` beside this file is generated (by [`generate`]) from the committed extract
//! of Merge's OpenAPI specs (`merge::published`) and the model catalogue, and committed so a
//! review sees every column change; a unit test fails when it and the generator disagree. The
//! SQL for each store ([`ddl`]) is derived from it; records' raw JSON stays the source of truth.

pub mod ddl;
pub mod generate;

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

/// Every model's view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ViewCatalogue {
    pub models: Vec<ModelView>,
}

/// One model's view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelView {
    /// `hris.Employee`.
    pub model_id: String,
    /// The records table (`hris_employee`).
    pub table: String,
    /// The view (`hris_employee_view`).
    pub view: String,
    /// Merge's schema for the model's list path; `None` when no spec we read publishes the
    /// path, and the view has only the columns every record has.
    pub schema: Option<String>,
    pub columns: Vec<Column>,
}

/// One column of a view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: Kind,
    pub from: Source,
    /// For relations, the model the id points at (Merge's schema name), where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relation: Option<String>,
}

/// The SQL type family of a column; each store maps it to its own type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Text,
    Integer,
    /// Floating point, or Merge's decimal strings.
    Number,
    Boolean,
    Timestamp,
    /// Nested objects and arrays, as JSON.
    Json,
    /// A relation: the id it holds.
    Id,
    /// A to-many relation: a JSON array of ids.
    IdList,
}

impl Kind {
    /// The name `schema` shows.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Text => "text",
            Kind::Integer => "integer",
            Kind::Number => "number",
            Kind::Boolean => "boolean",
            Kind::Timestamp => "timestamp",
            Kind::Json => "json",
            Kind::Id => "id",
            Kind::IdList => "id_list",
        }
    }
}

/// Where a column's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The records table's own column of that name.
    Record,
    /// The `linked_accounts` row of the record's account.
    Account,
    /// The record's JSON (`data`), at the field of that name.
    Data,
}

impl ViewCatalogue {
    /// The committed catalogue as text: one column per line, so diffs stay readable.
    pub fn to_committed_json(&self) -> String {
        let mut out = String::from("{\"models\": [\n");
        let models: Vec<String> = self
            .models
            .iter()
            .map(|m| {
                let columns: Vec<String> = m
                    .columns
                    .iter()
                    .map(|c| format!("  {}", serde_json::to_string(c).expect("plain data")))
                    .collect();
                format!(
                    "{{\"model_id\": {}, \"table\": {}, \"view\": {}, \"schema\": {}, \"columns\": [\n{}\n]}}",
                    json(&m.model_id),
                    json(&m.table),
                    json(&m.view),
                    serde_json::to_string(&m.schema).expect("plain data"),
                    columns.join(",\n")
                )
            })
            .collect();
        out.push_str(&models.join(",\n"));
        out.push_str("\n]}\n");
        out
    }

    /// The view of `model_id`.
    pub fn find(&self, model_id: &str) -> Option<&ModelView> {
        self.models.iter().find(|m| m.model_id == model_id)
    }
}

fn json(s: &str) -> String {
    serde_json::to_string(s).expect("a string serialises")
}

/// The committed catalogue.
pub fn catalogue() -> &'static ViewCatalogue {
    static CATALOGUE: OnceLock<ViewCatalogue> = OnceLock::new();
    CATALOGUE.get_or_init(|| {
        serde_json::from_str(include_str!("catalogue.json")).expect("catalogue.json is valid")
    })
}
