//! Command-line syntax (clap derive). Doc comments are the help text.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const AFTER_HELP: &str = "\
Exit codes:
  0  success
  1  the run finished but at least one account failed (or a webhook signature was invalid,
     `check` found a problem, or `health` found one)
  2  usage or configuration error (bad flag, missing MERGE_API_KEY, unknown account or model,
     a state file that does not exist, is empty or unreadable)

A `poll` that finds every due account held by another merge-sync exits 0 after one warning.
Configuration is read from flags, then the environment, then a .env file in the current
directory (real environment variables win over .env).";

/// The heading the options every command accepts are listed under, after its own.
const GLOBAL: &str = "Global options";

// What each command reads from the environment (or ./.env), shown under its --help.
const ENV_SYNC: &str = "\
Environment (or ./.env):
  MERGE_API_KEY                        required: Merge dashboard → API keys
  MERGE_API_URL                        Merge API base URL, like --api-url
  MERGE_SYNC_DB                        the state file, like --db
  MERGE_SYNC_ON_INITIAL_SYNC_COMPLETE  like --on-initial-sync-complete
  MERGE_SYNC_RUN_HISTORY_DAYS          run history kept this many days (default 30)
  MERGE_SYNC_RUN_HISTORY_MAX           and at most this many runs (default 10000)";
const ENV_ADD: &str = "\
Environment (or ./.env):
  MERGE_API_KEY  required, except with --account-token and --linked-account-id
  MERGE_API_URL  Merge API base URL, like --api-url
  MERGE_SYNC_DB  the state file, like --db (created if it does not exist)";
const ENV_DB: &str = "\
Environment (or ./.env):
  MERGE_SYNC_DB  the state file, like --db (it must exist: `accounts add` creates it)";
const ENV_VERIFY: &str = "\
Environment (or ./.env):
  MERGE_WEBHOOK_SECRET           required: Merge dashboard → Webhooks → Security
  MERGE_WEBHOOK_SECRET_PREVIOUS  also accepted, while rotating the secret
  HTTP_X_MERGE_WEBHOOK_SIGNATURE the signature, under CGI (or --signature)
  GATEWAY_INTERFACE              set by a CGI server: answer with a CGI response
  MERGE_SYNC_DB                  the state file, like --db (with --enqueue)";
const ENV_SERVE: &str = "\
Environment (or ./.env):
  MERGE_WEBHOOK_SECRET                 required to accept webhooks (without it: 500s)
  MERGE_WEBHOOK_SECRET_PREVIOUS        also accepted, while rotating the secret
  MERGE_API_KEY                        required, for the fetches webhooks trigger
  MERGE_API_URL                        Merge API base URL, like --api-url
  MERGE_SYNC_DB                        the state file, like --db
  MERGE_SYNC_ON_INITIAL_SYNC_COMPLETE  like --on-initial-sync-complete
  MERGE_SYNC_RUN_HISTORY_DAYS          run history kept this many days (default 30)
  MERGE_SYNC_RUN_HISTORY_MAX           and at most this many runs (default 10000)";
const ENV_CHECK: &str = "\
Environment (or ./.env):
  MERGE_API_KEY         needed to ask Merge about each account
  MERGE_API_URL         Merge API base URL, like --api-url
  MERGE_WEBHOOK_SECRET  reported as set or not
  MERGE_SYNC_DB         the state file, like --db";
const ENV_DEMO: &str = "\
Needs no API key. MERGE_SYNC_DB or --db names a new state file to keep; without either the
demo uses a temporary one and deletes it.";

/// Keeps a local SQLite mirror of Merge.dev Common Model data for every linked account.
#[derive(Debug, Parser)]
#[command(name = "merge-sync", version, after_help = AFTER_HELP)]
pub struct Cli {
    /// The state file (SQLite) [default: merge-sync.db in the current directory]. Only
    /// `accounts add` creates it; every other command refuses one that does not exist.
    #[arg(long, global = true, env = "MERGE_SYNC_DB", help_heading = GLOBAL)]
    pub db: Option<PathBuf>,

    /// Merge API base URL, including `/api` [env: MERGE_API_URL] [default: `https://api.merge.dev/api`]
    #[arg(long, global = true, conflicts_with = "region", help_heading = GLOBAL)]
    pub api_url: Option<String>,

    /// Merge region, instead of --api-url.
    #[arg(long, global = true, value_enum, help_heading = GLOBAL)]
    pub region: Option<Region>,

    /// More log output (-v info, -vv debug). Logs go to stderr.
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet", help_heading = GLOBAL)]
    pub verbose: u8,

    /// Errors only.
    #[arg(short, long, global = true, help_heading = GLOBAL)]
    pub quiet: bool,

    /// How log lines on stderr look: text for people, json (one object per line) for log
    /// shippers.
    #[arg(
        long,
        global = true,
        value_enum,
        env = "MERGE_SYNC_LOG_FORMAT",
        help_heading = GLOBAL,
        default_value = "text"
    )]
    pub log_format: crate::logging::LogFormat,

    /// Command run once per account when its initial sync completes (through `sh -c`, with
    /// MERGE_LINKED_ACCOUNT_ID, MERGE_END_USER_ORIGIN_ID and MERGE_CATEGORY set).
    #[arg(long, global = true, env = "MERGE_SYNC_ON_INITIAL_SYNC_COMPLETE", help_heading = GLOBAL)]
    pub on_initial_sync_complete: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Region {
    Us,
    Eu,
    Ap,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Register, list, enable, disable or remove linked accounts.
    #[command(subcommand)]
    Accounts(AccountsCommand),
    /// The cron job: one pass over every due account, fetching what is ready, then exit.
    #[command(after_help = ENV_SYNC)]
    Poll(PollArgs),
    /// Sync one account now, regardless of schedule.
    #[command(after_help = ENV_SYNC)]
    Fetch(FetchArgs),
    /// Per-model sync state of every account.
    #[command(after_help = ENV_DB)]
    Status(StatusArgs),
    /// Verify a webhook's signature (body on stdin or --body-file); works as a CGI program.
    #[command(after_help = ENV_VERIFY)]
    VerifyWebhook(VerifyWebhookArgs),
    /// Receive Merge webhooks over HTTP and apply them in the background.
    #[command(after_help = ENV_SERVE)]
    Serve(ServeArgs),
    /// The typed views: every model with its table and view, or one model's columns.
    Schema(SchemaArgs),
    /// Write a model's typed view as CSV or JSON Lines, to stdout or a file.
    #[command(after_help = ENV_DB)]
    Export(ExportArgs),
    /// Recent runs of `poll`, `fetch` and `serve` passes, newest first.
    #[command(after_help = ENV_DB)]
    Runs(RunsArgs),
    /// For cron and monitoring checks: exit 0 when healthy, 1 with one line per problem.
    #[command(after_help = ENV_DB)]
    Health(HealthArgs),
    /// Copy this SQLite state file (--db) into an empty PostgreSQL database, to continue there.
    CopyState(CopyStateArgs),
    /// Run the whole life cycle against a built-in fake Merge, in a temporary state file.
    #[command(after_help = ENV_DEMO)]
    Demo,
    /// Check configuration and connectivity; changes nothing.
    #[command(after_help = ENV_CHECK)]
    Check,
    /// Print shell completions.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
pub enum AccountsCommand {
    /// Register a linked account (or relink one: a new token keeps its state).
    #[command(after_help = ENV_ADD)]
    Add(AddArgs),
    /// List registered accounts.
    #[command(after_help = ENV_DB)]
    List {
        /// JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Stop syncing an account (its data and state are kept).
    #[command(after_help = ENV_DB)]
    Disable {
        /// Merge's linked account id, or your end_user_origin_id for the account.
        account: String,
    },
    /// Resume syncing a disabled account.
    #[command(after_help = ENV_DB)]
    Enable {
        /// Merge's linked account id, or your end_user_origin_id for the account.
        account: String,
    },
    /// Forget an account; its mirrored records are kept unless --purge.
    #[command(after_help = ENV_DB)]
    Remove {
        /// Merge's linked account id, or your end_user_origin_id for the account.
        account: String,
        /// Also delete the account's mirrored records.
        #[arg(long)]
        purge: bool,
    },
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("token").required(true).args(["account_token", "public_token"])))]
pub struct AddArgs {
    /// The linked account's token (X-Account-Token).
    #[arg(long)]
    pub account_token: Option<String>,
    /// A Merge Link public token, exchanged with Merge for the account token.
    #[arg(long, conflicts_with_all = ["linked_account_id"])]
    pub public_token: Option<String>,
    /// hris, ats, accounting, crm, ticketing, filestorage, ...
    #[arg(long)]
    pub category: String,
    /// Merge's linked account id; with it, Merge is not asked for account details.
    #[arg(long)]
    pub linked_account_id: Option<String>,
    /// Your id for the customer (end_user_origin_id).
    #[arg(long)]
    pub end_user_origin_id: Option<String>,
    /// Mirror only these models (comma-separated), e.g. hris.Employee,hris.Employment.
    #[arg(long, value_delimiter = ',')]
    pub models: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PollArgs {
    /// Only this account (linked account id or end_user_origin_id); repeatable.
    #[arg(long = "account")]
    pub accounts: Vec<String>,
    /// Ignore schedule and backoff.
    #[arg(long)]
    pub force: bool,
    /// Accounts handled at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub jobs: u32,
    /// Requests per minute per linked account (Merge's Launch plan allows 100).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit: u32,
    /// Write Prometheus metrics to this file at the end of the run, atomically (for
    /// node_exporter's textfile collector).
    #[arg(long, value_name = "PATH")]
    pub metrics_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct FetchArgs {
    /// The account (linked account id or end_user_origin_id).
    #[arg(long)]
    pub account: String,
    /// Only this model (e.g. hris.Employee); repeatable.
    #[arg(long = "model")]
    pub models: Vec<String>,
    /// Re-read everything up to the latest finished sync (a reconciliation pass).
    #[arg(long)]
    pub full: bool,
    /// Requests per minute for this account.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit: u32,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Only this account.
    #[arg(long)]
    pub account: Option<String>,
    /// JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RunsArgs {
    /// How many runs to show.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: u32,
    /// Only runs that worked on this account (linked account id or end_user_origin_id).
    #[arg(long)]
    pub account: Option<String>,
    /// JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct HealthArgs {
    /// How far behind Merge's last finished sync a model may be, e.g. 2h, 90m, 1d
    /// [default: one and a half of Merge's sync intervals for the account, plus 30m].
    #[arg(long, value_parser = parse_duration)]
    pub max_lag: Option<std::time::Duration>,
    /// Failed passes in a row before an account is a problem.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_failures: u32,
    /// JSON instead of one line per problem.
    #[arg(long)]
    pub json: bool,
}

fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    match humantime::parse_duration(s.trim()) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err("must be longer than zero".into()),
        Err(e) => Err(format!("{e}; write a duration like 90m, 2h or 1d")),
    }
}

#[derive(Debug, Args)]
pub struct VerifyWebhookArgs {
    /// The X-Merge-Webhook-Signature value [env: HTTP_X_MERGE_WEBHOOK_SIGNATURE]
    // base64url signatures may start with '-': never read one as a flag.
    #[arg(long, allow_hyphen_values = true)]
    pub signature: Option<String>,
    /// Read the body from this file instead of stdin.
    #[arg(long)]
    pub body_file: Option<PathBuf>,
    /// Store a valid webhook in the state file for the next poll to apply.
    #[arg(long)]
    pub enqueue: bool,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Requests per minute per linked account for background fetches.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit: u32,
}

#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// One model (e.g. hris.Employee): its view's columns and their types.
    pub model: Option<String>,
    /// JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The model to export (e.g. hris.Employee); `merge-sync schema` lists them.
    #[arg(long)]
    pub model: String,
    /// Only this account (linked account id or end_user_origin_id).
    #[arg(long)]
    pub account: Option<String>,
    /// csv (with a header row) or jsonl (one JSON object per line).
    #[arg(long, value_enum, default_value_t = ExportFormat::Csv)]
    pub format: ExportFormat,
    /// Also records Merge reports deleted (remote_was_deleted).
    #[arg(long)]
    pub include_deleted: bool,
    /// Write to this file (replaced atomically when the export is complete) instead of stdout.
    #[arg(long)]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CopyStateArgs {
    /// The empty PostgreSQL database to copy into: postgres://USER@HOST:PORT/DATABASE
    /// (the PG* environment variables fill in what the URL leaves out, PGPASSWORD included).
    #[arg(long, value_name = "URL")]
    pub to: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    Csv,
    Jsonl,
}
