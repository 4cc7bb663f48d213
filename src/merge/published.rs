//! What Merge publishes about its API, extracted from Merge's OpenAPI specifications: every
//! `GET` path, and each listed Common Model's fields with their JSON types.
//!
//! `published.json` beside this file is written by the extractor (`tests/openapi_extract.rs`,
//! run by hand against the specs) and committed; the crate never reads the specs themselves.
//! It is independent of `models.json` on purpose: the fake Merge routes by these paths, so a
//! wrong path in the client's catalogue is caught rather than served the same wrong way.

use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

/// The whole extract.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Published {
    /// Which specifications the extract was made from (names and versions, for the record).
    pub sources: Vec<String>,
    /// Every `GET` path, sorted.
    pub paths: Vec<PublishedPath>,
    /// The item schema of every list path, sorted by category and name.
    pub schemas: Vec<PublishedSchema>,
}

/// One `GET` path, as Merge writes it (`/hris/v1/employees`, `/hris/v1/employees/{id}`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PublishedPath {
    pub path: String,
    /// For a list path, the schema of its `results` items (`Employee`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lists: Option<String>,
}

/// The fields of one schema, in the order Merge lists them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PublishedSchema {
    /// The category the schema's list path is under (`hris`).
    pub category: String,
    pub name: String,
    pub fields: Vec<PublishedField>,
}

/// One field: its JSON type as the spec states it, with relations resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PublishedField {
    pub name: String,
    /// `string`, `integer`, `number`, `boolean`, `object` or `array`.
    #[serde(rename = "type")]
    pub json_type: String,
    /// `date-time`, `uuid`, `decimal`, `email`, ... where the spec gives one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub nullable: bool,
    /// For arrays, the items' type and format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items_format: Option<String>,
    /// For a relation (an id, or a list of ids), the schema Merge expands it to, where a spec
    /// names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expands_to: Option<String>,
}

impl Published {
    /// The extract as committed, one path, schema and field per line so diffs stay readable.
    pub fn to_committed_json(&self) -> String {
        let mut out = String::from("{\n\"sources\": [\n");
        push_lines(&mut out, self.sources.iter().map(line));
        out.push_str("],\n\"paths\": [\n");
        push_lines(&mut out, self.paths.iter().map(line));
        out.push_str("],\n\"schemas\": [\n");
        let schemas: Vec<String> = self
            .schemas
            .iter()
            .map(|s| {
                let mut one = format!(
                    "{{\"category\": {}, \"name\": {}, \"fields\": [\n",
                    line(&s.category),
                    line(&s.name)
                );
                push_lines(&mut one, s.fields.iter().map(|f| format!("  {}", line(f))));
                one.push_str("]}");
                one
            })
            .collect();
        push_lines(&mut out, schemas.into_iter());
        out.push_str("]\n}\n");
        out
    }

    /// The list path of `category`'s `path` (below `/{category}/v1/`), if Merge publishes it.
    pub fn list_path(&self, category: &str, path: &str) -> Option<&PublishedPath> {
        let full = format!("/{category}/v1/{path}");
        self.paths
            .binary_search_by(|p| p.path.as_str().cmp(&full))
            .ok()
            .map(|i| &self.paths[i])
    }

    /// The schema named `name` listed under `category`.
    pub fn schema(&self, category: &str, name: &str) -> Option<&PublishedSchema> {
        self.schemas
            .iter()
            .find(|s| s.category == category && s.name == name)
    }
}

fn push_lines(out: &mut String, lines: impl Iterator<Item = String>) {
    let lines: Vec<String> = lines.collect();
    out.push_str(&lines.join(",\n"));
    if !lines.is_empty() {
        out.push('\n');
    }
}

fn line<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("plain data serialises")
}

/// The committed extract.
pub fn published() -> &'static Published {
    static PUBLISHED: OnceLock<Published> = OnceLock::new();
    PUBLISHED.get_or_init(|| {
        serde_json::from_str(include_str!("published.json")).expect("published.json is valid")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_extract_is_in_its_canonical_form() {
        // Sorted paths make `list_path`'s binary search valid; the canonical text keeps the
        // extractor's output and the committed file byte-for-byte comparable.
        let p = published();
        assert!(p.paths.windows(2).all(|w| w[0].path < w[1].path));
        assert_eq!(p.to_committed_json(), include_str!("published.json"));
    }

    #[test]
    fn finds_list_paths_and_their_schemas() {
        let p = published();
        let employees = p.list_path("hris", "employees").unwrap();
        assert_eq!(employees.lists.as_deref(), Some("Employee"));
        let schema = p.schema("hris", "Employee").unwrap();
        let manager = schema.fields.iter().find(|f| f.name == "manager").unwrap();
        assert_eq!(manager.format.as_deref(), Some("uuid"));
        assert_eq!(manager.expands_to.as_deref(), Some("Employee"));
        assert!(p.list_path("hris", "employee").is_none());
    }
}
