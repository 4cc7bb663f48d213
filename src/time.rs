//! Timestamps: lenient parsing of Merge's, one fixed format for ours.
//!
//! Every timestamp merge-sync stores is UTC with exactly six fractional digits
//! (`2026-03-02T14:05:22.123456Z`), so SQL can compare them as strings.

use chrono::{DateTime, NaiveDateTime, SecondsFormat, SubsecRound, Utc};

/// Parses a timestamp as Merge sends it: RFC 3339 with or without fractional seconds, `Z`
/// or an offset; a missing zone is taken as UTC. `None` when it is not a timestamp.
///
/// Precision is cut to microseconds (Merge's own), so a bound we store and the bound we send
/// are the same instant.
pub fn parse(s: &str) -> Option<DateTime<Utc>> {
    parse_any(s.trim()).map(|t| t.trunc_subsecs(6))
}

/// Like [`parse`], keeping every fractional digit given (the fake Merge compares exactly).
pub fn parse_exact(s: &str) -> Option<DateTime<Utc>> {
    parse_any(s.trim())
}

fn parse_any(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for f in ["%Y-%m-%dT%H:%M:%S%.f%#z", "%Y-%m-%d %H:%M:%S%.f%#z"] {
        if let Ok(t) = DateTime::parse_from_str(s, f) {
            return Some(t.with_timezone(&Utc));
        }
    }
    for f in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Some(t.and_utc());
        }
    }
    None
}

/// Formats a timestamp the way merge-sync stores and sends it.
pub fn format(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Formats a timestamp for a query parameter as Merge writes its own: UTC, `Z`, and only as
/// many fractional digits as it has (`2026-03-02T14:05:22Z`, `…22.123456Z`).
pub fn format_query(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Normalises a timestamp string from Merge to the stored format; keeps it as given when it
/// cannot be parsed, so nothing is lost.
pub fn normalize(s: &str) -> String {
    parse(s).map(format).unwrap_or_else(|| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_merge_timestamp_variants() {
        let a = parse("2026-03-02T14:05:22Z").unwrap();
        let b = parse("2026-03-02T14:05:22.000000Z").unwrap();
        let c = parse("2026-03-02T16:05:22+02:00").unwrap();
        let d = parse("2026-03-02T14:05:22").unwrap();
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert_eq!(a, d);
        assert_eq!(a, parse("2026-03-02T14:05:22+0000").unwrap());
        assert_eq!(a, parse("2026-03-02T14:05:22.000000+00").unwrap());
        assert_eq!(
            format(parse("2026-03-02T14:05:22.1234567Z").unwrap()),
            "2026-03-02T14:05:22.123456Z"
        );
        assert!(parse("yesterday").is_none());
    }

    #[test]
    fn stored_format_sorts_as_text() {
        let early = format(parse("2026-03-02T14:05:22.5Z").unwrap());
        let late = format(parse("2026-03-02T14:05:22.123456+00:00").unwrap());
        assert_eq!(early, "2026-03-02T14:05:22.500000Z");
        assert!(late < early);
    }
}
