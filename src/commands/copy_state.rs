//! `copy-state`: moves an SQLite state file into an empty PostgreSQL database, so the next
//! `poll` there continues where the file left off.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;

use crate::cli::CopyStateArgs;
use crate::config::{Config, UsageError};
use crate::store::{self, Location};

pub fn run(
    config: &Config,
    args: &CopyStateArgs,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<ExitCode> {
    let Location::Sqlite(source) = &config.db else {
        return Err(UsageError(format!(
            "copy-state copies an SQLite state file, but --db / MERGE_SYNC_DB is {}; point it \
             at the state file to copy and give the PostgreSQL database as --to",
            config.db
        ))
        .into());
    };
    super::require_state_file(config)?;
    let target = match Location::parse(Path::new(&args.to), env) {
        Ok(Location::Postgres(target)) => target,
        Ok(Location::Sqlite(_)) => {
            return Err(UsageError(
                "--to must be a PostgreSQL URL (postgres://USER@HOST:PORT/DATABASE or \
                 postgresql://…); copy-state moves a state file into PostgreSQL"
                    .into(),
            )
            .into())
        }
        Err(e) => return Err(UsageError(format!("--to: {e}")).into()),
    };

    let terminal = std::io::stderr().is_terminal();
    let mut progress = |table: &str, rows: u64| {
        if terminal {
            eprint!("\r\x1b[Kcopying {table}: {rows} rows");
            let _ = std::io::stderr().flush();
        }
    };
    let copied = store::copy::sqlite_to_postgres(source, &target, &mut progress);
    if terminal {
        eprint!("\r\x1b[K");
    }
    let copied = copied?;

    let mut out = std::io::stdout().lock();
    writeln!(out, "copied {} into {target}:", source.display())?;
    let width = copied.iter().map(|t| t.table.len()).max().unwrap_or(0);
    for t in &copied {
        writeln!(out, "  {:<width$}  {:>9} rows", t.table, t.rows)?;
    }
    writeln!(
        out,
        "Point --db / MERGE_SYNC_DB at the PostgreSQL URL: the next poll continues where the \
         state file left off. Stop using the file, or it will drift from the database."
    )?;
    Ok(ExitCode::SUCCESS)
}
