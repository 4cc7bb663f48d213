//! The SQL of the views, per store: pure text generation from the catalogue.
//!
//! Every Merge field is read from the record's JSON with the store's JSON functions; a field
//! the record lacks gives NULL, and a value of the wrong JSON type gives NULL rather than an
//! error, so one odd record never breaks a view. Fields Merge adds later stay in `data`.

use sha2::{Digest, Sha256};

use super::{Column, Kind, ModelView, Source, ViewCatalogue};

/// The SQL dialect of a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// The SQL type a column of `kind` has in `dialect` (what `schema` shows).
pub fn sql_type(kind: Kind, dialect: Dialect) -> &'static str {
    match (dialect, kind) {
        (Dialect::Sqlite, Kind::Integer | Kind::Boolean) => "INTEGER",
        (Dialect::Sqlite, Kind::Number) => "REAL",
        (Dialect::Sqlite, _) => "TEXT",
        (Dialect::Postgres, Kind::Text | Kind::Id) => "text",
        (Dialect::Postgres, Kind::Integer) => "bigint",
        (Dialect::Postgres, Kind::Number) => "numeric",
        (Dialect::Postgres, Kind::Boolean) => "boolean",
        (Dialect::Postgres, Kind::Timestamp) => "timestamptz",
        (Dialect::Postgres, Kind::Json | Kind::IdList) => "jsonb",
    }
}

/// Functions the PostgreSQL views use: casts that give NULL instead of failing on a value
/// that does not parse (a record with a malformed date must not make the view unreadable).
pub const POSTGRES_HELPERS: &str = r#"
CREATE OR REPLACE FUNCTION merge_sync_timestamptz(v text) RETURNS timestamptz
    LANGUAGE plpgsql STABLE AS $$
BEGIN RETURN v::timestamptz; EXCEPTION WHEN others THEN RETURN NULL; END $$;
CREATE OR REPLACE FUNCTION merge_sync_bigint(v text) RETURNS bigint
    LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN RETURN v::numeric::bigint; EXCEPTION WHEN others THEN RETURN NULL; END $$;
CREATE OR REPLACE FUNCTION merge_sync_numeric(v text) RETURNS numeric
    LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN RETURN v::numeric; EXCEPTION WHEN others THEN RETURN NULL; END $$;
"#;

/// `CREATE VIEW` for one model (the records table must exist).
pub fn create_view(model: &ModelView, dialect: Dialect) -> String {
    let columns: Vec<String> = model
        .columns
        .iter()
        .map(|c| format!("    {} AS {}", expr(c, dialect), ident(&c.name)))
        .collect();
    format!(
        "CREATE VIEW {view} AS SELECT\n{columns}\nFROM {table} AS r\n\
         LEFT JOIN linked_accounts AS a ON a.linked_account_id = r.linked_account_id",
        view = ident(&model.view),
        table = ident(&model.table),
        columns = columns.join(",\n"),
    )
}

/// `DROP VIEW` for one view name.
pub fn drop_view(view: &str) -> String {
    format!("DROP VIEW IF EXISTS {}", ident(view))
}

/// A digest of every view's SQL in `dialect`: the stores recreate their views when it changes.
pub fn catalogue_hash(catalogue: &ViewCatalogue, dialect: Dialect) -> String {
    let mut h = Sha256::new();
    if dialect == Dialect::Postgres {
        h.update(POSTGRES_HELPERS);
    }
    for m in &catalogue.models {
        h.update(create_view(m, dialect));
        h.update([0]);
    }
    h.finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
}

/// A double-quoted identifier. Names come from the catalogue (Merge's snake_case field
/// names), but quoting keeps words like `type` or `order` valid.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A single-quoted SQL string literal.
fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn expr(c: &Column, dialect: Dialect) -> String {
    match c.from {
        Source::Record => format!("r.{}", ident(&c.name)),
        Source::Account => format!("a.{}", ident(&c.name)),
        Source::Data => match dialect {
            Dialect::Sqlite => sqlite_field(&c.name, c.kind),
            Dialect::Postgres => postgres_field(&c.name, c.kind),
        },
    }
}

fn sqlite_field(name: &str, kind: Kind) -> String {
    let path = literal(&format!("$.\"{}\"", name.replace('"', "\\\"")));
    let value = format!("json_extract(r.data, {path})");
    match kind {
        Kind::Text | Kind::Timestamp => format!("CAST({value} AS TEXT)"),
        // An expanded relation is an object: its id.
        Kind::Id => {
            let id_path = literal(&format!("$.\"{}\".id", name.replace('"', "\\\"")));
            format!("CAST(coalesce(json_extract(r.data, {id_path}), {value}) AS TEXT)")
        }
        Kind::Integer => format!("CAST({value} AS INTEGER)"),
        Kind::Number => format!("CAST({value} AS REAL)"),
        Kind::Boolean => {
            format!("CASE json_type(r.data, {path}) WHEN 'true' THEN 1 WHEN 'false' THEN 0 END")
        }
        // `->` always gives JSON text (json_extract would unwrap a bare string); JSON null is
        // SQL NULL like a missing field.
        Kind::Json | Kind::IdList => format!("nullif(r.data -> {path}, 'null')"),
    }
}

fn postgres_field(name: &str, kind: Kind) -> String {
    let key = literal(name);
    let json = format!("(r.data -> {key})");
    let text = format!("(r.data ->> {key})");
    match kind {
        Kind::Text => text,
        Kind::Id => format!("coalesce({json} ->> 'id', {text})"),
        Kind::Timestamp => format!("merge_sync_timestamptz({text})"),
        Kind::Integer => format!("merge_sync_bigint({text})"),
        Kind::Number => format!("merge_sync_numeric({text})"),
        Kind::Boolean => {
            format!("CASE jsonb_typeof({json}) WHEN 'boolean' THEN {json}::boolean END")
        }
        Kind::Json | Kind::IdList => format!("nullif({json}, 'null'::jsonb)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::views::catalogue;

    #[test]
    fn sqlite_view_reads_each_kind_from_the_json() {
        let sql = create_view(catalogue().find("hris.Employee").unwrap(), Dialect::Sqlite);
        assert!(sql.starts_with("CREATE VIEW \"hris_employee_view\" AS SELECT"));
        assert!(sql
            .contains("CAST(json_extract(r.data, '$.\"first_name\"') AS TEXT) AS \"first_name\""));
        assert!(sql.contains("nullif(r.data -> '$.\"employments\"', 'null') AS \"employments\""));
        assert!(sql.contains("r.\"remote_was_deleted\" AS \"remote_was_deleted\""));
        assert!(sql.contains("a.\"end_user_origin_id\" AS \"end_user_origin_id\""));
        assert!(sql.contains("FROM \"hris_employee\" AS r"));
    }

    #[test]
    fn postgres_view_uses_jsonb_and_safe_casts() {
        let sql = create_view(
            catalogue().find("hris.Employee").unwrap(),
            Dialect::Postgres,
        );
        assert!(sql.contains("(r.data ->> 'first_name') AS \"first_name\""));
        assert!(sql.contains("merge_sync_timestamptz((r.data ->> 'start_date')) AS \"start_date\""));
        assert!(sql.contains("nullif((r.data -> 'custom_fields'), 'null'::jsonb)"));
    }

    #[test]
    fn the_hash_changes_with_the_catalogue() {
        let mut changed = catalogue().clone();
        changed.models[0].columns.pop();
        assert_ne!(
            catalogue_hash(catalogue(), Dialect::Sqlite),
            catalogue_hash(&changed, Dialect::Sqlite)
        );
        assert_ne!(
            catalogue_hash(catalogue(), Dialect::Sqlite),
            catalogue_hash(catalogue(), Dialect::Postgres)
        );
    }

    #[test]
    fn identifiers_and_literals_are_quoted() {
        assert_eq!(ident("type"), "\"type\"");
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(literal("it's"), "'it''s'");
    }
}
