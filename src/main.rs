//! The `merge-sync` binary: parse, start logging, run, map errors to exit codes.

use std::process::ExitCode;

use clap::Parser;
use merge_sync::cli::Cli;

fn main() -> ExitCode {
    let dotenv = merge_sync::load_dotenv();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if e.use_stderr() => {
            // A usage error is a fatal error too: timestamped, in the log format asked for.
            let args: Vec<String> = std::env::args().collect();
            let format = merge_sync::logging::format_from_args(
                &args,
                std::env::var("MERGE_SYNC_LOG_FORMAT").ok().as_deref(),
            );
            merge_sync::logging::fatal_in(format, e.render().to_string().trim_end());
            return ExitCode::from(2);
        }
        Err(e) => e.exit(),
    };
    if !matches!(
        cli.command,
        merge_sync::cli::Command::Serve(_) | merge_sync::cli::Command::Demo
    ) {
        // `merge-sync status | head` should end quietly, as other Unix tools do, not panic
        // on a closed pipe. `serve` keeps Rust's default (ignore), as a server must, and so
        // does `demo`, which sees the write fail and deletes its temporary directory.
        #[cfg(unix)]
        // SAFETY: called once at start-up, before any thread exists.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let filter = merge_sync::config::log_filter(&cli, std::env::var("RUST_LOG").ok());
    merge_sync::logging::init(cli.log_format, &filter);
    if let Err(e) = dotenv {
        log::warn!("{e}");
    }
    match merge_sync::run(cli) {
        Ok(code) => code,
        Err(e) => {
            merge_sync::logging::fatal(&format!("merge-sync: error: {e:#}"));
            merge_sync::exit_code_for(&e)
        }
    }
}
