//! Log lines on stderr: `[ts LEVEL] msg` for people, one JSON object per line for log
//! shippers. Every line carries a UTC timestamp, fatal errors included.
//!
//! Context travels as `log` key-values: `log::warn!(account = id; "...")`. The JSON format
//! writes `account`, `model` and `run_id` as fields; the text format leaves them out, because
//! the messages already name the account and model. A run that owns the whole process (`poll`,
//! `fetch`) sets its id once with [`set_run_id`]; `serve`'s passes pass `run_id` per line.

use std::io::Write;
use std::sync::{Mutex, OnceLock};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// `[2026-12-03T10:40:55.123Z WARN ] message`
    #[default]
    Text,
    /// `{"ts":"2026-12-03T10:40:55.123Z","level":"warn","msg":"message",...}`
    Json,
}

static FORMAT: OnceLock<LogFormat> = OnceLock::new();
static RUN_ID: Mutex<Option<String>> = Mutex::new(None);

/// Installs the logger for the process with `filter` (env_logger syntax).
pub fn init(format: LogFormat, filter: &str) {
    let _ = FORMAT.set(format);
    env_logger::Builder::new()
        .parse_filters(filter)
        .format(move |buf, record| {
            let mut ctx = Context::default();
            let _ = record.key_values().visit(&mut ctx);
            let line = render(
                format,
                Utc::now(),
                record.level(),
                &record.args().to_string(),
                &ctx,
            );
            writeln!(buf, "{line}")
        })
        .init();
}

/// The format chosen at start-up (text until [`init`] ran).
pub fn format() -> LogFormat {
    FORMAT.get().copied().unwrap_or_default()
}

/// Whether the terminal niceties (progress line, per-model totals) may be written: they are
/// not log lines, and would break a stream of JSON objects.
pub fn is_text() -> bool {
    format() == LogFormat::Text
}

/// The id of the run that owns this process, added to every JSON line that names none.
pub fn set_run_id(run_id: Option<&str>) {
    *RUN_ID.lock().unwrap_or_else(|e| e.into_inner()) = run_id.map(str::to_owned);
}

/// Writes the error that ends the process, whatever the level filter says.
pub fn fatal(msg: &str) {
    fatal_in(format(), msg);
}

/// Like [`fatal`], before [`init`] ran (a command line that did not parse). In text, each
/// line of a multi-line message gets its timestamp; in JSON it is one object.
pub fn fatal_in(format: LogFormat, msg: &str) {
    let now = Utc::now();
    let ctx = Context::default();
    let mut out = String::new();
    match format {
        LogFormat::Json => out.push_str(&render(format, now, log::Level::Error, msg, &ctx)),
        LogFormat::Text => {
            for line in msg.lines() {
                out.push_str(&render(format, now, log::Level::Error, line, &ctx));
                out.push('\n');
            }
            out.pop();
        }
    }
    let _ = writeln!(std::io::stderr().lock(), "{out}");
}

/// The log format a command line asks for when clap could not parse it: the last
/// `--log-format X` / `--log-format=X`, else `env`, else text.
pub fn format_from_args(args: &[String], env: Option<&str>) -> LogFormat {
    let mut chosen = env.map(str::to_owned);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--log-format" {
            chosen = it.next().cloned();
        } else if let Some(v) = a.strip_prefix("--log-format=") {
            chosen = Some(v.to_string());
        }
    }
    match chosen.as_deref().map(str::trim) {
        Some(v) if v.eq_ignore_ascii_case("json") => LogFormat::Json,
        _ => LogFormat::Text,
    }
}

/// Writes a line shown at the default level and above (not at `-q`), at info in the chosen
/// format: what a long-running command tells its operator at start, such as its address.
pub fn notice(msg: &str) {
    if log::max_level() < log::LevelFilter::Warn {
        return;
    }
    let line = render(
        format(),
        Utc::now(),
        log::Level::Info,
        msg,
        &Context::default(),
    );
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// The context fields a line may carry.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct Context {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
}

impl<'kvs> log::kv::VisitSource<'kvs> for Context {
    fn visit_pair(
        &mut self,
        key: log::kv::Key<'kvs>,
        value: log::kv::Value<'kvs>,
    ) -> Result<(), log::kv::Error> {
        let slot = match key.as_str() {
            "account" => &mut self.account,
            "model" => &mut self.model,
            "run_id" => &mut self.run_id,
            _ => return Ok(()),
        };
        // `Option` values arrive as a null when absent: leave the field out.
        let text = value.to_borrowed_str().map(str::to_owned).or_else(|| {
            let s = value.to_string();
            (s != "None").then_some(s)
        });
        if text.is_some() {
            *slot = text;
        }
        Ok(())
    }
}

#[derive(Serialize)]
struct JsonLine<'a> {
    ts: String,
    level: &'a str,
    msg: &'a str,
    #[serde(flatten)]
    ctx: &'a Context,
}

/// One log line, without its newline.
pub fn render(
    format: LogFormat,
    ts: DateTime<Utc>,
    level: log::Level,
    msg: &str,
    ctx: &Context,
) -> String {
    let ts = ts.to_rfc3339_opts(SecondsFormat::Millis, true);
    match format {
        LogFormat::Text => format!("[{ts} {level:<5}] {msg}"),
        LogFormat::Json => {
            let mut ctx = ctx.clone();
            if ctx.run_id.is_none() {
                ctx.run_id = RUN_ID.lock().unwrap_or_else(|e| e.into_inner()).clone();
            }
            let level = level.as_str().to_ascii_lowercase();
            serde_json::to_string(&JsonLine {
                ts,
                level: &level,
                msg,
                ctx: &ctx,
            })
            .unwrap_or_else(|e| format!("{{\"msg\":\"cannot encode a log line: {e}\"}}"))
        }
    }
}

/// A fresh run id: 16 hex digits, unique enough to tell runs apart in logs and history.
pub fn new_run_id() -> String {
    format!("{:016x}", fastrand::u64(..))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at() -> DateTime<Utc> {
        crate::time::parse("2026-12-03T10:40:55.123Z").unwrap()
    }

    #[test]
    fn text_lines_start_with_a_timestamp_and_level() {
        let line = render(
            LogFormat::Text,
            at(),
            log::Level::Warn,
            "la1: slow",
            &Context::default(),
        );
        assert_eq!(line, "[2026-12-03T10:40:55.123Z WARN ] la1: slow");
    }

    #[test]
    fn json_lines_are_one_object_with_ts_level_msg_and_context() {
        let ctx = Context {
            account: Some("la1".into()),
            model: Some("hris.Employee".into()),
            run_id: Some("00ff".into()),
        };
        let line = render(
            LogFormat::Json,
            at(),
            log::Level::Error,
            "quote \" and\nnewline",
            &ctx,
        );
        assert!(!line.contains('\n'), "one line: {line}");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["ts"], "2026-12-03T10:40:55.123Z");
        assert_eq!(v["level"], "error");
        assert_eq!(v["msg"], "quote \" and\nnewline");
        assert_eq!(v["account"], "la1");
        assert_eq!(v["model"], "hris.Employee");
        assert_eq!(v["run_id"], "00ff");
    }

    #[test]
    fn the_format_of_an_unparsed_command_line_is_still_found() {
        let args = |s: &str| -> Vec<String> { s.split(' ').map(str::to_owned).collect() };
        assert_eq!(
            format_from_args(&args("merge-sync poll --log-format json --bogus"), None),
            LogFormat::Json
        );
        assert_eq!(
            format_from_args(&args("merge-sync --log-format=json poll"), Some("text")),
            LogFormat::Json
        );
        assert_eq!(
            format_from_args(&args("merge-sync poll --bogus"), Some("json")),
            LogFormat::Json
        );
        assert_eq!(
            format_from_args(&args("merge-sync poll"), None),
            LogFormat::Text
        );
    }

    #[test]
    fn json_lines_leave_out_context_they_do_not_have() {
        let line = render(
            LogFormat::Json,
            at(),
            log::Level::Info,
            "hello",
            &Context::default(),
        );
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert!(
            v.get("account").is_none() && v.get("model").is_none(),
            "{v}"
        );
    }

    #[test]
    fn key_values_fill_the_context_and_absent_options_stay_absent() {
        let run: Option<&str> = None;
        let kvs: [(&str, log::kv::Value); 3] = [
            ("account", log::kv::Value::from("la1")),
            ("run_id", log::kv::ToValue::to_value(&run)),
            ("other", log::kv::Value::from("x")),
        ];
        let mut ctx = Context::default();
        log::kv::Source::visit(&kvs[..], &mut ctx).unwrap();
        assert_eq!(ctx.account.as_deref(), Some("la1"));
        assert_eq!(ctx.run_id, None);
        assert_eq!(ctx.model, None);
    }
}
