//! `export`: a model's typed view as CSV or JSON Lines, streamed row by row.

use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};

use super::resolve_account;
use crate::cli::{ExportArgs, ExportFormat};
use crate::config::{Config, UsageError};
use crate::store::{self, Cell, ExportFilter};
use crate::views::{Column, Kind, ModelView};

pub fn run(config: &Config, args: &ExportArgs) -> Result<ExitCode> {
    let model = super::schema::find(&args.model)?;
    super::require_state_file(config)?;
    let mut store = store::open(&config.db)?;
    let linked_account_id = match &args.account {
        Some(key) => Some(resolve_account(store.as_mut(), key)?.linked_account_id),
        None => None,
    };
    let filter = ExportFilter {
        linked_account_id,
        include_deleted: args.include_deleted,
    };
    let mut export = |out: &mut dyn Write| -> Result<u64> {
        match args.format {
            ExportFormat::Csv => {
                let mut csv = csv::Writer::from_writer(out);
                csv.write_record(model.columns.iter().map(|c| c.name.as_str()))?;
                let mut fields: Vec<String> = Vec::with_capacity(model.columns.len());
                let n = store.export_view(model, &filter, &mut |cells| {
                    fields.clear();
                    fields.extend(
                        cells
                            .iter()
                            .zip(&model.columns)
                            .map(|(v, c)| csv_field(v, c)),
                    );
                    csv.write_record(&fields)?;
                    Ok(())
                })?;
                csv.flush()?;
                Ok(n)
            }
            ExportFormat::Jsonl => {
                let mut line = String::new();
                let n = store.export_view(model, &filter, &mut |cells| {
                    json_line(&mut line, cells, model);
                    out.write_all(line.as_bytes())?;
                    Ok(())
                })?;
                out.flush()?;
                Ok(n)
            }
        }
    };
    let rows = match &args.output {
        Some(path) => write_atomically(path, &mut export)?,
        None => {
            let stdout = std::io::stdout();
            let mut out = BufWriter::with_capacity(64 * 1024, stdout.lock());
            export(&mut out)?
        }
    };
    log::info!("exported {rows} {} rows", model.model_id);
    Ok(ExitCode::SUCCESS)
}

/// Writes through a temporary file beside `path`, synced and renamed over it at the end: a
/// failed or killed export leaves any previous file whole.
fn write_atomically(
    path: &Path,
    export: &mut dyn FnMut(&mut dyn Write) -> Result<u64>,
) -> Result<u64> {
    let dir = match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(d) => d,
        None => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(UsageError(format!(
            "cannot write {}: directory {} does not exist",
            path.display(),
            dir.display()
        ))
        .into());
    }
    let tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
    let mut out = BufWriter::with_capacity(64 * 1024, tmp);
    let rows = export(&mut out).with_context(|| format!("writing {}", path.display()))?;
    let tmp = out
        .into_inner()
        .map_err(|e| e.into_error())
        .with_context(|| format!("writing {}", path.display()))?;
    tmp.as_file()
        .sync_all()
        .with_context(|| format!("syncing {}", path.display()))?;
    tmp.persist(path)
        .with_context(|| format!("replacing {}", path.display()))?;
    Ok(rows)
}

/// A CSV field: empty for NULL, `true`/`false` for booleans, JSON columns as JSON text.
fn csv_field(cell: &Cell, column: &Column) -> String {
    match (cell, column.kind) {
        (Cell::Null, _) => String::new(),
        (Cell::Integer(v), Kind::Boolean) => (*v != 0).to_string(),
        (Cell::Integer(v), _) => v.to_string(),
        (Cell::Real(v), _) => v.to_string(),
        (Cell::Bool(v), _) => v.to_string(),
        (Cell::Text(t), _) => t.clone(),
    }
}

/// One JSON object per line, keys in the view's column order; JSON columns embedded as JSON.
fn json_line(line: &mut String, cells: &[Cell], model: &ModelView) {
    line.clear();
    line.push('{');
    for (i, (cell, column)) in cells.iter().zip(&model.columns).enumerate() {
        if i > 0 {
            line.push(',');
        }
        line.push_str(&serde_json::to_string(&column.name).expect("a string serialises"));
        line.push(':');
        match (cell, column.kind) {
            (Cell::Null, _) => line.push_str("null"),
            (Cell::Integer(v), Kind::Boolean) => {
                line.push_str(if *v != 0 { "true" } else { "false" })
            }
            (Cell::Integer(v), _) => line.push_str(&v.to_string()),
            (Cell::Real(v), _) if v.is_finite() => line.push_str(&v.to_string()),
            (Cell::Real(_), _) => line.push_str("null"),
            (Cell::Bool(v), _) => line.push_str(&v.to_string()),
            (Cell::Text(t), Kind::Json | Kind::IdList | Kind::Number)
                if serde_json::from_str::<&serde_json::value::RawValue>(t).is_ok() =>
            {
                line.push_str(t)
            }
            (Cell::Text(t), _) => {
                line.push_str(&serde_json::to_string(t).expect("a string serialises"))
            }
        }
    }
    line.push_str("}\n");
}
