//! `fake-merge` with a request log a benchmark can read: the same in-process fake Merge
//! (`merge_sync::fake::FakeMerge`), driven over stdin.
//!
//! Prints the API base URL as its first stdout line, then reads commands from stdin, one a
//! line, answering each with `ok` (or `error: …`) on stdout:
//!
//! - `log PATH`: writes every request received since start (or the last `clear`) to PATH, one
//!   a line, tab-separated: seconds since this program started (arrival), method, path,
//!   HTTP status, account token (`-` when none);
//! - `clear`: forgets the requests received so far.
//!
//! It exits when stdin closes.
//!
//! ```sh
//! cargo run --release --example bench_fake -- --scenario S.json --latency-ms 50
//! ```
//!
//! Part of `bench/run.sh`; never run by `cargo test`.

use std::io::{BufRead, BufWriter, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use clap::Parser;
use merge_sync::fake::{FakeMerge, Scenario};

#[derive(Parser)]
struct Args {
    #[arg(long)]
    scenario: PathBuf,
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// Milliseconds added to every request (overrides the scenario's latency_ms).
    #[arg(long)]
    latency_ms: Option<u64>,
}

fn write_log(fake: &FakeMerge, origin: Instant, path: &str) -> Result<usize> {
    let requests = fake.requests();
    let mut out = BufWriter::new(std::fs::File::create(path)?);
    for r in &requests {
        let at = r.at.saturating_duration_since(origin).as_secs_f64();
        writeln!(
            out,
            "{at:.6}\t{}\t{}\t{}\t{}",
            r.method,
            r.path,
            r.status,
            r.account_token.as_deref().unwrap_or("-")
        )?;
    }
    out.flush()?;
    Ok(requests.len())
}

fn main() -> Result<()> {
    let origin = Instant::now();
    let args = Args::parse();
    let mut scenario = Scenario::from_file(&args.scenario)?;
    if let Some(ms) = args.latency_ms {
        scenario.latency_ms = ms;
    }
    let fake = FakeMerge::start_on(&args.listen, scenario)?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", fake.base_url())?;
    stdout.flush()?;
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let line = line.trim();
        let reply = if let Some(path) = line.strip_prefix("log ") {
            match write_log(&fake, origin, path.trim()) {
                Ok(n) => format!("ok {n}"),
                Err(e) => format!("error: {e:#}"),
            }
        } else if line == "clear" {
            fake.clear_requests();
            "ok".to_string()
        } else if line.is_empty() {
            continue;
        } else {
            format!("error: unknown command {line:?}")
        };
        writeln!(stdout, "{reply}")?;
        stdout.flush()?;
    }
    Ok(())
}
