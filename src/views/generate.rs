//! The generator: Merge's published fields + the model catalogue → the view catalogue.
//!
//! Pure and deterministic. Its output is committed as `catalogue.json`; the test below fails
//! when the two disagree (rerun it with `UPDATE_VIEW_CATALOGUE=1` to rewrite the file).

use super::{Column, Kind, ModelView, Source, ViewCatalogue};
use crate::merge::catalog::ModelInfo;
use crate::merge::published::{Published, PublishedField};
use crate::store::records_table;

/// Columns every records table has, in the order a view shows them when Merge's schema does
/// not place them.
const RECORD_COLUMNS: &[(&str, Kind)] = &[
    ("id", Kind::Text),
    ("remote_id", Kind::Text),
    ("created_at", Kind::Timestamp),
    ("modified_at", Kind::Timestamp),
    ("remote_was_deleted", Kind::Boolean),
];

/// Builds the catalogue: one view per model of `models`, in their order.
pub fn generate(published: &Published, models: &[ModelInfo]) -> ViewCatalogue {
    ViewCatalogue {
        models: models.iter().map(|m| model_view(published, m)).collect(),
    }
}

fn model_view(published: &Published, model: &ModelInfo) -> ModelView {
    let table = records_table(&model.model_id).expect("catalogue model ids are valid");
    let schema = published
        .list_path(&model.category, &model.path)
        .and_then(|p| p.lists.as_deref())
        .and_then(|name| published.schema(&model.category, name));
    let mut columns = vec![
        column("linked_account_id", Kind::Text, Source::Record),
        column("end_user_origin_id", Kind::Text, Source::Account),
    ];
    for field in schema.iter().flat_map(|s| &s.fields) {
        if let Some(&(name, kind)) = RECORD_COLUMNS.iter().find(|(n, _)| *n == field.name) {
            columns.push(column(name, kind, Source::Record));
        } else if columns.iter().all(|c| c.name != field.name) {
            columns.push(field_column(field));
        }
    }
    // The records table's columns are always there, whatever the schema lists.
    for &(name, kind) in RECORD_COLUMNS {
        if columns.iter().all(|c| c.name != name) {
            columns.push(column(name, kind, Source::Record));
        }
    }
    ModelView {
        model_id: model.model_id.clone(),
        view: format!("{table}_view"),
        table,
        schema: schema.map(|s| s.name.clone()),
        columns,
    }
}

fn column(name: &str, kind: Kind, from: Source) -> Column {
    Column {
        name: name.to_string(),
        kind,
        from,
        relation: None,
    }
}

/// The column for one of Merge's fields: relations (uuid strings other than `id`) hold ids,
/// nested objects and arrays stay JSON.
fn field_column(field: &PublishedField) -> Column {
    let format = field.format.as_deref();
    let (kind, relation) = match (field.json_type.as_str(), format) {
        ("string", Some("uuid")) => (Kind::Id, field.expands_to.clone()),
        ("string", Some("date-time")) => (Kind::Timestamp, None),
        ("string", Some("decimal")) => (Kind::Number, None),
        ("string", _) => (Kind::Text, None),
        ("integer", _) => (Kind::Integer, None),
        ("number", _) => (Kind::Number, None),
        ("boolean", _) => (Kind::Boolean, None),
        ("array", _)
            if field.items.as_deref() == Some("string")
                && field.items_format.as_deref() == Some("uuid") =>
        {
            (Kind::IdList, field.expands_to.clone())
        }
        _ => (Kind::Json, None),
    };
    Column {
        name: field.name.clone(),
        kind,
        from: Source::Data,
        relation,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merge::{catalog, published::published};
    use crate::views::catalogue;

    #[test]
    fn committed_catalogue_matches_the_generator() {
        let generated = generate(published(), catalog::all()).to_committed_json();
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/views/catalogue.json");
        if std::env::var_os("UPDATE_VIEW_CATALOGUE").is_some() {
            std::fs::write(path, &generated).unwrap();
        }
        let committed = std::fs::read_to_string(path).unwrap();
        assert!(
            committed == generated,
            "src/views/catalogue.json is not what the generator makes from \
             src/merge/published.json and models.json: rerun this test with \
             UPDATE_VIEW_CATALOGUE=1 and review the diff"
        );
        assert_eq!(catalogue().to_committed_json(), committed);
    }

    #[test]
    fn every_catalogue_model_has_a_view() {
        assert_eq!(catalogue().models.len(), catalog::all().len());
        for m in catalog::all() {
            let v = catalogue().find(&m.model_id).unwrap();
            assert_eq!(v.view, format!("{}_view", v.table));
        }
    }

    #[test]
    fn employee_columns_follow_merge_fields() {
        let v = catalogue().find("hris.Employee").unwrap();
        let col = |n: &str| v.columns.iter().find(|c| c.name == n).unwrap();
        let names: Vec<&str> = v.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            &names[..4],
            ["linked_account_id", "end_user_origin_id", "id", "remote_id"]
        );
        assert_eq!(col("first_name").kind, Kind::Text);
        assert_eq!(col("manager").kind, Kind::Id);
        assert_eq!(col("manager").relation.as_deref(), Some("Employee"));
        assert_eq!(col("employments").kind, Kind::IdList);
        assert_eq!(col("start_date").kind, Kind::Timestamp);
        assert_eq!(col("custom_fields").kind, Kind::Json);
        assert_eq!(col("remote_data").kind, Kind::Json);
        assert_eq!(col("field_mappings").kind, Kind::Json);
        assert_eq!(col("remote_was_deleted").from, Source::Record);
        assert_eq!(col("end_user_origin_id").from, Source::Account);
    }

    #[test]
    fn a_model_without_a_published_schema_gets_the_record_columns() {
        let published = Published {
            sources: vec![],
            paths: vec![],
            schemas: vec![],
        };
        let model = catalog::find("hris.Employee").unwrap();
        let v = model_view(&published, model);
        assert_eq!(v.schema, None);
        let names: Vec<&str> = v.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "linked_account_id",
                "end_user_origin_id",
                "id",
                "remote_id",
                "created_at",
                "modified_at",
                "remote_was_deleted"
            ]
        );
    }
}
