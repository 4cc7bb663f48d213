//! `schema`: the typed views, so users find fields without reading Merge's docs.

use std::process::ExitCode;

use anyhow::Result;
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use serde_json::json;

use crate::cli::SchemaArgs;
use crate::config::{Config, UsageError};
use crate::store::Location;
use crate::views::ddl::{self, Dialect};
use crate::views::{catalogue, ModelView};

pub fn run(config: &Config, args: &SchemaArgs) -> Result<ExitCode> {
    let dialect = match config.db {
        Location::Sqlite(_) => Dialect::Sqlite,
        Location::Postgres(_) => Dialect::Postgres,
    };
    match &args.model {
        None if args.json => {
            let models: Vec<_> = catalogue()
                .models
                .iter()
                .map(|m| {
                    json!({"model_id": m.model_id, "table": m.table, "view": m.view,
                           "columns": m.columns.len()})
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&models)?);
        }
        None => {
            let mut table = Table::new();
            table.load_preset(UTF8_FULL_CONDENSED);
            table.set_header(["model", "view", "records table", "columns"]);
            for m in &catalogue().models {
                table.add_row([
                    m.model_id.clone(),
                    m.view.clone(),
                    m.table.clone(),
                    m.columns.len().to_string(),
                ]);
            }
            println!("{table}");
        }
        Some(model_id) => {
            let model = find(model_id)?;
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&model_json(model, dialect))?
                );
            } else {
                println!(
                    "{} — view {} (records table {})",
                    model.model_id, model.view, model.table
                );
                let mut table = Table::new();
                table.load_preset(UTF8_FULL_CONDENSED);
                table.set_header(["column", "type", "SQL type", "refers to"]);
                for c in &model.columns {
                    table.add_row([
                        c.name.clone(),
                        c.kind.as_str().to_string(),
                        ddl::sql_type(c.kind, dialect).to_string(),
                        c.relation.clone().unwrap_or_default(),
                    ]);
                }
                println!("{table}");
                if model.schema.is_none() {
                    println!(
                        "Merge publishes no schema for this model in the specs merge-sync was \
                         built from: only the columns every record has. The record's JSON is \
                         in the records table's `data` column."
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The model `model_id` names, or a usage error that says where to look.
pub(super) fn find(model_id: &str) -> Result<&'static ModelView> {
    // A typo gets the closest ids, as everywhere else a model id is taken.
    super::known_model(model_id, None)
        .map_err(|e| UsageError(format!("{}; `merge-sync schema` lists every model", e.0)))?;
    catalogue().find(model_id).ok_or_else(|| {
        UsageError(format!(
            "unknown model {model_id:?}: `merge-sync schema` lists every model (ids look like \
             hris.Employee)"
        ))
        .into()
    })
}

fn model_json(model: &ModelView, dialect: Dialect) -> serde_json::Value {
    let columns: Vec<_> = model
        .columns
        .iter()
        .map(|c| {
            json!({"name": c.name, "type": c.kind.as_str(),
                   "sql_type": ddl::sql_type(c.kind, dialect), "relation": c.relation})
        })
        .collect();
    json!({"model_id": model.model_id, "table": model.table, "view": model.view,
           "merge_schema": model.schema, "columns": columns})
}
