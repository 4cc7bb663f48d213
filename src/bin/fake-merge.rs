//! `fake-merge`: serves a scenario as a fake Merge API on loopback until killed.
//!
//! Prints the API base URL (e.g. `http://127.0.0.1:43121/api`) as the first stdout line, so a
//! script or test can start it with `--listen 127.0.0.1:0` and read where it listens.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use merge_sync::fake::{FakeMerge, Scenario};

/// A stateful fake Merge.dev API for trying merge-sync without a Merge account.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Scenario file (see fixtures/scenarios/).
    #[arg(long)]
    scenario: PathBuf,
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// Milliseconds added to every request (overrides the scenario's latency_ms).
    #[arg(long)]
    latency_ms: Option<u64>,
}

fn main() -> ExitCode {
    env_logger::init();
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fake-merge: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &Args) -> anyhow::Result<()> {
    let mut scenario = Scenario::from_file(&args.scenario)?;
    if let Some(ms) = args.latency_ms {
        scenario.latency_ms = ms;
    }
    let fake = FakeMerge::start_on(&args.listen, scenario)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", fake.base_url())?;
    out.flush()?;
    drop(out);
    fake.with_state(|s| {
        for a in s.accounts() {
            eprintln!(
                "fake-merge: account {} ({}, {} models)",
                a.id,
                a.category,
                a.model_ids().len()
            );
        }
    });
    // Serve until killed; the server runs on its own threads.
    loop {
        std::thread::park_timeout(Duration::from_secs(3600));
    }
}
