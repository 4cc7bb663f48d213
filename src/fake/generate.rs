//! Deterministic, realistic Common Model records, written straight to JSON text.
//!
//! A generated record is stored as (model seed, index, version) and rendered on every read, so
//! a million records cost the fake server a few dozen bytes each, and the same seed always
//! gives the same ids and field values. Records are about 1.2 KB of JSON, like real ones.

use std::fmt::Write;

use chrono::{DateTime, SecondsFormat};

/// SplitMix64: a fast, well-mixed hash of one word.
pub(crate) fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

pub(crate) fn mix(a: u64, b: u64) -> u64 {
    splitmix64(a ^ splitmix64(b))
}

/// FNV-1a: stable across runs and platforms, unlike `DefaultHasher`.
pub(crate) fn hash_str(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A version-4-shaped UUID derived from `seed`.
pub(crate) fn uuid(seed: u64) -> String {
    let mut s = String::with_capacity(36);
    push_uuid(&mut s, seed);
    s
}

fn push_uuid(out: &mut String, seed: u64) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&splitmix64(seed).to_be_bytes());
    bytes[8..].copy_from_slice(&splitmix64(seed ^ 0x5851_F42D_4C95_7F2D).to_be_bytes());
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    for (i, b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        out.push(HEX[(b >> 4) as usize] as char);
        out.push(HEX[(b & 15) as usize] as char);
    }
}

/// Formats a timestamp as Merge (Django REST Framework) does: UTC, `Z`, microseconds only when
/// they are not zero (`2026-03-02T14:05:22.123456Z`, `2025-09-15T00:00:00Z`).
pub(crate) fn merge_ts(micros: i64) -> String {
    let mut s = String::with_capacity(27);
    push_merge_ts(&mut s, micros);
    s
}

/// `merge_ts` written straight into `out`: a page carries about 800 timestamps, and going
/// through chrono's formatter (one allocation each) was the bulk of rendering time.
pub(crate) fn push_merge_ts(out: &mut String, micros: i64) {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let (days, sod) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    if !(0..=9999).contains(&y) {
        // Outside what four digits can show; chrono handles the odd cases.
        let t = DateTime::from_timestamp_micros(micros).unwrap_or_default();
        out.push_str(&t.to_rfc3339_opts(SecondsFormat::AutoSi, true));
        return;
    }
    let mut buf = *b"0000-00-00T00:00:00.000000Z";
    let mut put = |at: usize, width: usize, mut v: i64| {
        for i in (0..width).rev() {
            buf[at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, y);
    put(5, 2, m);
    put(8, 2, d);
    put(11, 2, sod / 3600);
    put(14, 2, sod / 60 % 60);
    put(17, 2, sod % 60);
    put(20, 6, frac);
    let text = if frac == 0 {
        buf[19] = b'Z';
        &buf[..20]
    } else {
        &buf[..]
    };
    // Only ASCII digits and separators were written.
    out.push_str(std::str::from_utf8(text).unwrap_or_default());
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Appends `s` as a JSON string literal.
pub(crate) fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Which shape a model's generated records take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Employee,
    Candidate,
    Generic,
}

impl Kind {
    pub(crate) fn for_model(model_id: &str) -> Kind {
        match model_id {
            "hris.Employee" => Kind::Employee,
            "ats.Candidate" => Kind::Candidate,
            _ => Kind::Generic,
        }
    }
}

/// The Merge-side facts of a record, which generated bodies are rendered around.
pub(crate) struct Meta<'a> {
    pub id: &'a str,
    pub created: i64,
    pub modified: i64,
    pub deleted: bool,
}

pub(crate) fn generated_id(model_seed: u64, index: u32) -> String {
    uuid(mix(model_seed, index as u64))
}

fn remote_id(index: u32) -> u64 {
    19_200_000 + index as u64
}

const FIRST: &[&str] = &[
    "Greg", "Shiv", "Roman", "Kendall", "Connor", "Tom", "Gerri", "Karl", "Frank", "Marcia",
    "Willa", "Stewy", "Karolina", "Hugo", "Jess", "Naomi", "Lukas", "Rava", "Colin", "Ewan",
    "Amara", "Bilal", "Chen", "Dagny", "Elif", "Farah", "Goran", "Hana", "Ines", "Jonas", "Keiko",
    "Lena", "Mateo", "Nadia", "Oskar", "Priya", "Quentin", "Rosa", "Sven", "Tariq",
];
const LAST: &[&str] = &[
    "Hirsch",
    "Roy",
    "Wambsgans",
    "Kellman",
    "Raskin",
    "Rhea",
    "Pierce",
    "Muller",
    "Vernon",
    "Novak",
    "Okafor",
    "Lindqvist",
    "Takahashi",
    "Moreau",
    "Castillo",
    "Brennan",
    "Haddad",
    "Ivanova",
    "Jensen",
    "Kowalski",
    "Laine",
    "Mendes",
    "Nakamura",
    "Olsen",
    "Petrov",
    "Quinn",
    "Rossi",
    "Schmidt",
    "Tanaka",
    "Usman",
];
const CITIES: &[&str] = &[
    "New York, NY",
    "San Francisco, CA",
    "Austin, TX",
    "London",
    "Berlin",
    "Lisbon",
    "Toronto",
    "Sydney",
    "Singapore",
    "Dublin",
];
const TITLES: &[&str] = &[
    "Software Engineer",
    "Account Executive",
    "Product Designer",
    "Data Analyst",
    "Customer Success Manager",
    "Recruiter",
    "Site Reliability Engineer",
    "Finance Associate",
];
const WORDS: &[&str] = &[
    "quarterly",
    "review",
    "pipeline",
    "onboarding",
    "renewal",
    "migration",
    "budget",
    "integration",
    "escalation",
    "forecast",
    "roadmap",
    "handoff",
    "audit",
    "contract",
    "launch",
    "regional",
    "priority",
    "customer",
    "vendor",
    "backlog",
    "release",
    "training",
    "policy",
    "compliance",
    "inventory",
    "payroll",
    "benefits",
    "schedule",
    "workspace",
    "support",
];
const TAGS: &[&str] = &[
    "alpha",
    "beta",
    "north-america",
    "emea",
    "apac",
    "enterprise",
    "smb",
    "priority",
    "archived",
    "referral",
];

/// A `{...}` being written field by field.
struct Obj<'a> {
    out: &'a mut String,
    first: bool,
}

impl<'a> Obj<'a> {
    fn open(out: &'a mut String) -> Obj<'a> {
        out.push('{');
        Obj { out, first: true }
    }

    fn key(&mut self, k: &str) -> &mut String {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        self.out.push('"');
        self.out.push_str(k);
        self.out.push_str("\":");
        self.out
    }

    fn str(&mut self, k: &str, v: &str) {
        push_json_str(self.key(k), v);
    }

    fn raw(&mut self, k: &str, v: &str) {
        self.key(k).push_str(v);
    }

    fn null(&mut self, k: &str) {
        self.raw(k, "null");
    }

    fn uuid(&mut self, k: &str, seed: u64) {
        let out = self.key(k);
        out.push('"');
        push_uuid(out, seed);
        out.push('"');
    }

    fn uuids(&mut self, k: &str, seeds: impl Iterator<Item = u64>) {
        let out = self.key(k);
        out.push('[');
        for (i, seed) in seeds.enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push('"');
            push_uuid(out, seed);
            out.push('"');
        }
        out.push(']');
    }

    fn ts(&mut self, k: &str, micros: i64) {
        let out = self.key(k);
        out.push('"');
        push_merge_ts(out, micros);
        out.push('"');
    }

    /// The fields every Common Model starts with.
    fn head(&mut self, meta: &Meta, index: u32) {
        self.str("id", meta.id);
        let _ = write!(self.key("remote_id"), "\"{}\"", remote_id(index));
        self.ts("created_at", meta.created);
        self.ts("modified_at", meta.modified);
    }

    /// The fields every Common Model ends with.
    fn tail(mut self, meta: &Meta) {
        self.raw(
            "remote_was_deleted",
            if meta.deleted { "true" } else { "false" },
        );
        self.raw(
            "field_mappings",
            r#"{"organization_defined_targets":{},"linked_account_defined_targets":{}}"#,
        );
        self.null("remote_data");
        self.out.push('}');
    }
}

const DAY_MICROS: i64 = 86_400_000_000;

/// Midnight of a day between 2012 and 2025, as Merge renders date-only values.
fn day(rng: &mut fastrand::Rng) -> i64 {
    (15_340 + rng.i64(0..5_000)) * DAY_MICROS
}

fn pick<'s>(rng: &mut fastrand::Rng, list: &[&'s str]) -> &'s str {
    list[rng.usize(..list.len())]
}

/// Appends the JSON of generated record `index` at `version` (0 when first written; each
/// scripted update bumps it and changes a few fields).
pub(crate) fn render(
    out: &mut String,
    kind: Kind,
    model_seed: u64,
    model_name: &str,
    index: u32,
    version: u32,
    meta: &Meta,
) {
    // Stable fields come from `rng`, fields an update changes from `vrng`.
    let mut rng = fastrand::Rng::with_seed(mix(model_seed, index as u64));
    let mut vrng = fastrand::Rng::with_seed(mix(mix(model_seed, index as u64), version as u64));
    // Related objects come from small pools, so records share companies, teams and groups.
    let pool = |tag: u64, k: u64| mix(model_seed ^ tag, k);
    let mut o = Obj::open(out);
    o.head(meta, index);
    match kind {
        Kind::Employee => {
            let first = pick(&mut rng, FIRST);
            let last = pick(&mut rng, LAST);
            let _ = write!(o.key("employee_number"), "\"{}\"", index + 1);
            o.uuid("company", pool(1, rng.u64(0..3)));
            o.str("first_name", first);
            o.str("last_name", last);
            if rng.bool() {
                o.str("preferred_name", first);
            } else {
                o.null("preferred_name");
            }
            let _ = write!(o.key("display_full_name"), "\"{first} {last}\"");
            let _ = write!(
                o.key("username"),
                "\"{}{}{}\"",
                first[..1].to_ascii_lowercase(),
                last.to_ascii_lowercase(),
                index
            );
            let groups = rng.u64(1..3);
            let g0 = rng.u64(0..12);
            o.uuids("groups", (0..groups).map(|g| pool(2, (g0 + g) % 12)));
            let _ = write!(
                o.key("work_email"),
                "\"{}.{}{}@acme-corp.example\"",
                first.to_ascii_lowercase(),
                last.to_ascii_lowercase(),
                index
            );
            if rng.bool() {
                let _ = write!(
                    o.key("personal_email"),
                    "\"{}.{}@mail.example\"",
                    first.to_ascii_lowercase(),
                    last.to_ascii_lowercase()
                );
            } else {
                o.null("personal_email");
            }
            let _ = write!(
                o.key("mobile_phone_number"),
                "\"+1555{:07}\"",
                vrng.u32(0..10_000_000)
            );
            o.uuids("employments", std::iter::once(pool(3, index as u64)));
            if rng.u32(0..3) == 0 {
                o.null("home_location");
            } else {
                o.uuid("home_location", pool(4, rng.u64(0..40)));
            }
            o.uuid("work_location", pool(5, vrng.u64(0..6)));
            if index == 0 {
                o.null("manager");
            } else {
                // The manager is another generated employee of the same model.
                o.uuid("manager", mix(model_seed, (index / 8) as u64));
            }
            o.uuid("team", pool(6, rng.u64(0..10)));
            if rng.bool() {
                o.null("pay_group");
            } else {
                o.uuid("pay_group", pool(7, rng.u64(0..3)));
            }
            o.null("ssn");
            o.str(
                "gender",
                pick(&mut rng, &["MALE", "FEMALE", "NON-BINARY", "OTHER"]),
            );
            o.str(
                "ethnicity",
                pick(
                    &mut rng,
                    &[
                        "WHITE",
                        "ASIAN_OR_INDIAN_SUBCONTINENT",
                        "BLACK_OR_AFRICAN_AMERICAN",
                        "HISPANIC_OR_LATINO",
                        "PREFER_NOT_TO_DISCLOSE",
                    ],
                ),
            );
            o.str(
                "marital_status",
                pick(
                    &mut rng,
                    &["SINGLE", "MARRIED_FILING_JOINTLY", "HEAD_OF_HOUSEHOLD"],
                ),
            );
            if rng.bool() {
                o.ts("date_of_birth", day(&mut rng) - 30 * 365 * DAY_MICROS);
            } else {
                o.null("date_of_birth");
            }
            let hire = day(&mut rng);
            o.ts("hire_date", hire);
            o.ts("start_date", hire + DAY_MICROS);
            o.ts("remote_created_at", hire);
            let status = match vrng.u32(0..20) {
                0 => "INACTIVE",
                1 => "PENDING",
                _ => "ACTIVE",
            };
            o.str("employment_status", status);
            if status == "INACTIVE" {
                o.ts("termination_date", hire + vrng.i64(30..2000) * DAY_MICROS);
            } else {
                o.null("termination_date");
            }
            if rng.u32(0..3) == 0 {
                let avatar = o.key("avatar");
                avatar.push_str("\"https://avatars.example.com/");
                push_uuid(avatar, pool(8, index as u64));
                avatar.push_str(".png\"");
            } else {
                o.null("avatar");
            }
            let _ = write!(
                o.key("custom_fields"),
                "{{\"cost_center\":\"CC-{:04}\",\"revision\":{}}}",
                rng.u32(0..10_000),
                version
            );
        }
        Kind::Candidate => {
            let first = pick(&mut rng, FIRST);
            let last = pick(&mut rng, LAST);
            o.str("first_name", first);
            o.str("last_name", last);
            let _ = write!(o.key("company"), "\"{} Labs\"", pick(&mut rng, LAST));
            o.str("title", pick(&mut vrng, TITLES));
            let created = meta.created - rng.i64(1..400) * DAY_MICROS;
            o.ts("remote_created_at", created);
            o.ts(
                "remote_updated_at",
                meta.modified - vrng.i64(0..3_600_000_000),
            );
            o.ts(
                "last_interaction_at",
                meta.modified - vrng.i64(0..7) * DAY_MICROS,
            );
            o.raw(
                "is_private",
                if rng.u32(0..10) == 0 { "true" } else { "false" },
            );
            o.raw("can_email", "true");
            let _ = write!(o.key("locations"), "[\"{}\"]", pick(&mut rng, CITIES));
            let _ = write!(
                o.key("phone_numbers"),
                "[{{\"value\":\"+1555{:07}\",\"phone_number_type\":\"MOBILE\"}},{{\"value\":\"+1555{:07}\",\"phone_number_type\":\"HOME\"}}]",
                rng.u32(0..10_000_000),
                rng.u32(0..10_000_000)
            );
            let (fl, ll) = (first.to_ascii_lowercase(), last.to_ascii_lowercase());
            let _ = write!(
                o.key("email_addresses"),
                "[{{\"value\":\"{fl}.{ll}{index}@mail.example\",\"email_address_type\":\"PERSONAL\"}},{{\"value\":\"{fl}@{ll}-labs.example\",\"email_address_type\":\"WORK\"}}]"
            );
            let _ = write!(
                o.key("urls"),
                "[{{\"value\":\"https://www.linkedin.example/in/{fl}-{ll}-{index}\",\"url_type\":\"SOCIAL_MEDIA\"}}]"
            );
            let _ = write!(
                o.key("tags"),
                "[\"{}\",\"{}\"]",
                pick(&mut rng, TAGS),
                pick(&mut vrng, TAGS)
            );
            let apps = rng.u64(1..3);
            o.uuids(
                "applications",
                (0..apps).map(|a| pool(9, index as u64 * 4 + a)),
            );
            o.uuids(
                "attachments",
                (0..2).map(|a| pool(10, index as u64 * 4 + a)),
            );
            let _ = write!(
                o.key("custom_fields"),
                "{{\"source\":\"{}\",\"desired_salary\":{},\"revision\":{}}}",
                pick(&mut rng, &["Referral", "LinkedIn", "Career Site", "Agency"]),
                rng.u32(60..250) * 1000,
                version
            );
        }
        Kind::Generic => {
            let _ = write!(
                o.key("name"),
                "\"{} {} {} #{}\"",
                model_name,
                pick(&mut rng, WORDS),
                pick(&mut rng, WORDS),
                index + 1
            );
            let d = o.key("description");
            d.push('"');
            for w in 0..56 {
                if w > 0 {
                    d.push(' ');
                }
                d.push_str(pick(&mut vrng, WORDS));
            }
            d.push_str(".\"");
            o.str(
                "status",
                pick(&mut vrng, &["ACTIVE", "ACTIVE", "PENDING", "ARCHIVED"]),
            );
            o.uuid("owner", pool(11, rng.u64(0..25)));
            if index.is_multiple_of(5) {
                o.null("parent");
            } else {
                o.uuid("parent", mix(model_seed, (index / 5 * 5) as u64));
            }
            o.ts(
                "remote_created_at",
                meta.created - rng.i64(1..900) * DAY_MICROS,
            );
            o.ts(
                "remote_updated_at",
                meta.modified - vrng.i64(0..3_600_000_000),
            );
            let _ = write!(
                o.key("tags"),
                "[\"{}\",\"{}\"]",
                pick(&mut rng, TAGS),
                pick(&mut vrng, TAGS)
            );
            let _ = write!(
                o.key("url"),
                "\"https://app.example.com/{}/{}\"",
                model_name.to_ascii_lowercase(),
                remote_id(index)
            );
            let _ = write!(
                o.key("custom_fields"),
                "{{\"region\":\"{}\",\"priority\":{},\"revision\":{}}}",
                pick(
                    &mut rng,
                    &["us-east", "us-west", "eu-central", "ap-southeast"]
                ),
                vrng.u32(1..5),
                version
            );
        }
    }
    o.tail(meta);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(kind: Kind, index: u32, version: u32) -> serde_json::Value {
        let mut s = String::new();
        let id = generated_id(7, index);
        let meta = Meta {
            id: &id,
            created: 1_772_000_000_000_000,
            modified: 1_772_460_322_123_456,
            deleted: false,
        };
        render(&mut s, kind, 7, "Widget", index, version, &meta);
        let len = s.len();
        assert!(
            (900..1600).contains(&len),
            "{kind:?} record is {len} bytes: {s}"
        );
        serde_json::from_str(&s).unwrap_or_else(|e| panic!("{e}: {s}"))
    }

    #[test]
    fn generated_records_are_valid_realistic_json() {
        for kind in [Kind::Employee, Kind::Candidate, Kind::Generic] {
            let v = one(kind, 3, 0);
            assert_eq!(v["modified_at"], "2026-03-02T14:05:22.123456Z");
            assert_eq!(v["created_at"], "2026-02-25T06:13:20Z");
            assert_eq!(v["remote_was_deleted"], false);
            assert!(v["remote_data"].is_null());
            assert_eq!(v["id"].as_str().unwrap().len(), 36);
        }
        let e = one(Kind::Employee, 3, 0);
        assert!(e["work_email"].as_str().unwrap().contains('@'));
    }

    #[test]
    fn generation_is_deterministic_and_versions_change_fields() {
        assert_eq!(one(Kind::Employee, 5, 0), one(Kind::Employee, 5, 0));
        assert_ne!(one(Kind::Employee, 5, 0), one(Kind::Employee, 5, 1));
        assert_eq!(
            one(Kind::Employee, 5, 0)["first_name"],
            one(Kind::Employee, 5, 1)["first_name"]
        );
    }

    #[test]
    fn timestamps_match_chrono_and_drop_zero_fractions() {
        let mut rng = fastrand::Rng::with_seed(3);
        for _ in 0..10_000 {
            let m = rng.i64(-2_000_000_000_000_000..4_000_000_000_000_000);
            let t = DateTime::from_timestamp_micros(m).unwrap();
            let fmt = if m % 1_000_000 == 0 {
                SecondsFormat::Secs
            } else {
                SecondsFormat::Micros
            };
            assert_eq!(merge_ts(m), t.to_rfc3339_opts(fmt, true));
        }
        assert_eq!(merge_ts(1_757_894_400_000_000), "2025-09-15T00:00:00Z");
        assert_eq!(
            merge_ts(1_772_460_322_123_456),
            "2026-03-02T14:05:22.123456Z"
        );
        assert_eq!(merge_ts(951_782_400_000_001), "2000-02-29T00:00:00.000001Z");
    }

    #[test]
    fn json_strings_are_escaped() {
        let mut s = String::new();
        push_json_str(&mut s, "a\"b\\c\n\u{1}");
        assert_eq!(
            serde_json::from_str::<String>(&s).unwrap(),
            "a\"b\\c\n\u{1}"
        );
    }
}
