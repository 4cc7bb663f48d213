//! The `merge-sync` binary: parse, start logging, run, map errors to exit codes.

use std::process::ExitCode;

use clap::Parser;
use merge_sync::cli::Cli;

fn main() -> ExitCode {
    let dotenv = merge_sync::load_dotenv();
    let cli = Cli::parse();
    let filter = merge_sync::config::log_filter(&cli, std::env::var("RUST_LOG").ok());
    env_logger::Builder::new()
        .parse_filters(&filter)
        .format_target(false)
        .init();
    if let Err(e) = dotenv {
        log::warn!("{e}");
    }
    match merge_sync::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("merge-sync: error: {e:#}");
            merge_sync::exit_code_for(&e)
        }
    }
}
