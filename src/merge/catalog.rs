//! The model catalogue: which Common Models exist, and where each one is listed.
//!
//! The facts come from the `list()` signatures of Merge's Python SDK; `models.json` beside
//! this file holds them, so the crate builds on its own.

use std::sync::OnceLock;

use serde::Deserialize;

/// One listable Common Model.
#[derive(Debug, Clone, Deserialize)]
pub struct ModelInfo {
    /// `"{category}.{InternalModel}"`, as sync-status and webhooks name it.
    pub model_id: String,
    pub category: String,
    /// Path below `{base}/{category}/v1/`, e.g. `employees`.
    pub path: String,
    /// Whether the list endpoint accepts `modified_after` / `modified_before`.
    #[serde(rename = "modified_after")]
    pub supports_modified_filter: bool,
    /// Whether the list endpoint accepts `include_deleted_data`.
    #[serde(rename = "deleted")]
    pub supports_include_deleted: bool,
}

impl ModelInfo {
    /// Nested routes (CRM custom objects) need parent ids we do not have, so they cannot be
    /// mirrored by a plain list call.
    pub fn is_listable(&self) -> bool {
        !self.path.contains('{')
    }
}

/// The categories merge-sync knows how to mirror.
pub const CATEGORIES: &[&str] = &[
    "hris",
    "ats",
    "accounting",
    "crm",
    "ticketing",
    "filestorage",
    "knowledgebase",
    "calendar",
    "chat",
    "email",
];

fn catalog() -> &'static [ModelInfo] {
    static CATALOG: OnceLock<Vec<ModelInfo>> = OnceLock::new();
    CATALOG.get_or_init(|| {
        serde_json::from_str(include_str!("models.json")).expect("models.json is valid")
    })
}

/// Every known model.
pub fn all() -> &'static [ModelInfo] {
    catalog()
}

/// Looks a model up by its id (`hris.Employee`).
pub fn find(model_id: &str) -> Option<&'static ModelInfo> {
    catalog().iter().find(|m| m.model_id == model_id)
}

/// The catalogue's ids closest to an unknown `model_id` (typos, wrong case): those at the
/// smallest edit distance, at most three, none further than three edits away.
pub fn closest(model_id: &str) -> Vec<&'static str> {
    let wanted = model_id.to_ascii_lowercase();
    let mut scored: Vec<(usize, &'static str)> = catalog()
        .iter()
        .map(|m| {
            let d = strsim::damerau_levenshtein(&wanted, &m.model_id.to_ascii_lowercase());
            (d, m.model_id.as_str())
        })
        .filter(|(d, _)| *d <= 3)
        .collect();
    scored.sort();
    let best = scored.first().map(|(d, _)| *d);
    scored
        .into_iter()
        .take_while(|(d, _)| Some(*d) == best)
        .take(3)
        .map(|(_, id)| id)
        .collect()
}

/// The ids of every model in `category`.
pub fn ids_in(category: &str) -> Vec<&'static str> {
    catalog()
        .iter()
        .filter(|m| m.category == category)
        .map(|m| m.model_id.as_str())
        .collect()
}

/// Whether `category` is one merge-sync can mirror.
pub fn is_category(category: &str) -> bool {
    CATEGORIES.contains(&category)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_models_resolve_to_their_list_paths() {
        assert_eq!(find("hris.Employee").unwrap().path, "employees");
        assert_eq!(
            find("hris.TimeOffBalance").unwrap().path,
            "time-off-balances"
        );
        assert_eq!(find("filestorage.FileStorageFile").unwrap().path, "files");
        assert!(find("hris.Nope").is_none());
    }

    #[test]
    fn every_model_belongs_to_a_known_category() {
        for m in all() {
            assert!(is_category(&m.category), "{}", m.model_id);
            assert!(m.model_id.starts_with(&format!("{}.", m.category)));
        }
    }

    #[test]
    fn typos_suggest_the_nearest_ids() {
        assert_eq!(closest("hris.Employe"), ["hris.Employee"]);
        assert_eq!(closest("hris.Locaton")[0], "hris.Location");
        assert_eq!(closest("hris.employee")[0], "hris.Employee");
        assert!(closest("zzz.Nothing").is_empty());
        assert!(ids_in("hris").contains(&"hris.Employee"));
        assert!(!ids_in("hris").contains(&"ats.Candidate"));
    }

    #[test]
    fn nested_crm_routes_are_not_listable() {
        assert!(!find("crm.CustomObject").unwrap().is_listable());
        assert!(find("crm.Contact").unwrap().is_listable());
    }
}
