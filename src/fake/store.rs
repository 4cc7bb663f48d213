//! One model's records, kept in `(modified_at, id)` order for keyset pagination.
//!
//! Records are never removed (Merge soft-deletes), so a record's slot in `slots` is stable;
//! `order` maps each record's current key to its slot and is updated whenever a write
//! restamps `modified_at`.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};

use super::generate::{self, merge_ts, Kind, Meta};

/// What a record's JSON is made of.
#[derive(Debug, Clone)]
pub(crate) enum Body {
    /// Rendered on demand from the model seed; `version` counts scripted updates.
    Generated { index: u32, version: u32 },
    /// Stored JSON text (explicit and upserted records), kept in step with the meta fields.
    Json(Arc<str>),
}

#[derive(Debug, Clone)]
pub(crate) struct Record {
    pub id: Arc<str>,
    /// Microseconds since the epoch, Merge's `created_at`.
    pub created: i64,
    /// Microseconds since the epoch, Merge's `modified_at`.
    pub modified: i64,
    pub deleted: bool,
    pub body: Body,
}

/// Position in the `(modified_at, id)` order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Key {
    pub modified: i64,
    pub id: Arc<str>,
}

/// What rendering a record needs besides the record, cheap to clone out of the lock.
#[derive(Debug, Clone)]
pub(crate) struct RenderCtx {
    pub kind: Kind,
    pub seed: u64,
    pub model_name: Arc<str>,
}

impl RenderCtx {
    pub(crate) fn render(&self, rec: &Record, out: &mut String) {
        match &rec.body {
            Body::Json(text) => out.push_str(text),
            Body::Generated { index, version } => {
                let meta = Meta {
                    id: &rec.id,
                    created: rec.created,
                    modified: rec.modified,
                    deleted: rec.deleted,
                };
                generate::render(
                    out,
                    self.kind,
                    self.seed,
                    &self.model_name,
                    *index,
                    *version,
                    &meta,
                );
            }
        }
    }

    pub(crate) fn to_value(&self, rec: &Record) -> serde_json::Value {
        let mut s = String::new();
        self.render(rec, &mut s);
        // Both body kinds are valid JSON by construction.
        serde_json::from_str(&s).unwrap_or(serde_json::Value::Null)
    }
}

/// Which way a cursor pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dir {
    Next,
    Prev,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cursor {
    pub dir: Dir,
    pub key: Key,
}

const CURSOR_SALT: &str = "fake-merge-cursor-v1|";

/// Wraps a cursor payload into an opaque token: URL-safe base64 of the payload plus a short
/// checksum, so a garbled token is rejected instead of paging from a wrong place.
pub(crate) fn encode_token(payload: &str) -> String {
    let sum = Sha256::digest(format!("{CURSOR_SALT}{payload}").as_bytes());
    let mut text = String::with_capacity(payload.len() + 13);
    text.push_str(payload);
    text.push('|');
    for b in &sum[..6] {
        text.push_str(&format!("{b:02x}"));
    }
    URL_SAFE_NO_PAD.encode(text)
}

pub(crate) fn decode_token(token: &str) -> Option<String> {
    let bytes = URL_SAFE_NO_PAD.decode(token.trim_end_matches('=')).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (payload, _checksum) = text.rsplit_once('|')?;
    // Re-encoding reproduces the token only when the checksum matches the payload.
    (encode_token(payload) == token.trim_end_matches('=')).then(|| payload.to_string())
}

impl Cursor {
    pub(crate) fn encode(&self) -> String {
        let d = match self.dir {
            Dir::Next => 'n',
            Dir::Prev => 'p',
        };
        encode_token(&format!("{d}|{}|{}", self.key.modified, self.key.id))
    }

    pub(crate) fn decode(token: &str) -> Option<Cursor> {
        let payload = decode_token(token)?;
        let mut parts = payload.splitn(3, '|');
        let dir = match parts.next()? {
            "n" => Dir::Next,
            "p" => Dir::Prev,
            _ => return None,
        };
        let modified = parts.next()?.parse().ok()?;
        let id = parts.next()?;
        Some(Cursor {
            dir,
            key: Key {
                modified,
                id: id.into(),
            },
        })
    }
}

/// A list request, bounds already in microseconds.
#[derive(Debug, Clone, Default)]
pub(crate) struct PageQuery {
    pub page_size: usize,
    /// Smallest `modified_at` included.
    pub modified_from: Option<i64>,
    /// First `modified_at` excluded.
    pub modified_until: Option<i64>,
    pub created_from: Option<i64>,
    pub created_until: Option<i64>,
    pub include_deleted: bool,
    pub cursor: Option<Cursor>,
}

impl PageQuery {
    fn matches(&self, r: &Record) -> bool {
        (self.include_deleted || !r.deleted)
            && self.created_from.is_none_or(|c| r.created >= c)
            && self.created_until.is_none_or(|c| r.created < c)
    }
}

pub(crate) struct Page {
    pub items: Vec<Record>,
    pub next: Option<Cursor>,
    pub previous: Option<Cursor>,
}

fn key_at(modified: i64) -> Key {
    // The empty id sorts before every real id (ids are never empty).
    Key {
        modified,
        id: Arc::from(""),
    }
}

/// Whether `BTreeMap::range` accepts these bounds (it panics on inverted ones).
fn range_ok(start: &Bound<Key>, end: &Bound<Key>) -> bool {
    match (start, end) {
        (Bound::Unbounded, _) | (_, Bound::Unbounded) => true,
        (Bound::Included(a), Bound::Included(b)) => a <= b,
        (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) => a < b,
    }
}

pub(crate) struct ModelStore {
    pub ctx: RenderCtx,
    slots: Vec<Record>,
    by_id: HashMap<Arc<str>, u32>,
    order: BTreeMap<Key, u32>,
    next_index: u32,
}

impl ModelStore {
    pub(crate) fn new(model_id: &str, model_name: &str, seed: u64) -> ModelStore {
        ModelStore {
            ctx: RenderCtx {
                kind: Kind::for_model(model_id),
                seed,
                model_name: model_name.into(),
            },
            slots: Vec::new(),
            by_id: HashMap::new(),
            order: BTreeMap::new(),
            next_index: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    pub(crate) fn get(&self, id: &str) -> Option<&Record> {
        self.by_id.get(id).map(|&s| &self.slots[s as usize])
    }

    /// Every record in `(modified_at, id)` order, deleted ones included.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Record> {
        self.order.values().map(|&s| &self.slots[s as usize])
    }

    /// A fresh id no record has yet.
    pub(crate) fn new_id(&mut self) -> (u32, Arc<str>) {
        loop {
            let index = self.next_index;
            self.next_index += 1;
            let id: Arc<str> = generate::generated_id(self.ctx.seed, index).into();
            if !self.by_id.contains_key(&id) {
                return (index, id);
            }
        }
    }

    /// Adds a generated record; returns its id.
    pub(crate) fn create_generated(
        &mut self,
        created: i64,
        modified: i64,
        deleted: bool,
    ) -> Arc<str> {
        let (index, id) = self.new_id();
        self.put(Record {
            id: id.clone(),
            created,
            modified,
            deleted,
            body: Body::Generated { index, version: 0 },
        });
        id
    }

    /// Inserts or replaces the record with `rec.id`.
    pub(crate) fn put(&mut self, rec: Record) {
        let key = Key {
            modified: rec.modified,
            id: rec.id.clone(),
        };
        match self.by_id.get(&rec.id) {
            Some(&slot) => {
                let old = &mut self.slots[slot as usize];
                self.order.remove(&Key {
                    modified: old.modified,
                    id: old.id.clone(),
                });
                *old = rec;
                self.order.insert(key, slot);
            }
            None => {
                let slot = self.slots.len() as u32;
                self.by_id.insert(rec.id.clone(), slot);
                self.slots.push(rec);
                self.order.insert(key, slot);
            }
        }
    }

    /// A random record that is not deleted, for scripted updates and deletes.
    pub(crate) fn random_live(&self, rng: &mut fastrand::Rng) -> Option<Arc<str>> {
        if self.slots.is_empty() {
            return None;
        }
        for _ in 0..16 {
            let r = &self.slots[rng.usize(..self.slots.len())];
            if !r.deleted {
                return Some(r.id.clone());
            }
        }
        let start = rng.usize(..self.slots.len());
        (0..self.slots.len())
            .map(|i| &self.slots[(start + i) % self.slots.len()])
            .find(|r| !r.deleted)
            .map(|r| r.id.clone())
    }

    /// Restamps a record as written at `at` (never backwards), optionally deleting it, and
    /// changes its content (a new version for generated records).
    pub(crate) fn touch(&mut self, id: &str, at: i64, delete: bool) -> bool {
        let Some(old) = self.get(id).cloned() else {
            return false;
        };
        let modified = at.max(old.modified);
        let deleted = old.deleted || delete;
        let body = match old.body {
            Body::Generated { index, version } => Body::Generated {
                index,
                version: if delete { version } else { version + 1 },
            },
            Body::Json(text) => Body::Json(restamp_json(&text, modified, deleted)),
        };
        self.put(Record {
            modified,
            deleted,
            body,
            ..old
        });
        true
    }

    /// One page of a list request.
    pub(crate) fn page(&self, q: &PageQuery) -> Page {
        let lo = match q.modified_from {
            Some(m) => Bound::Included(key_at(m)),
            None => Bound::Unbounded,
        };
        let hi = match q.modified_until {
            Some(m) => Bound::Excluded(key_at(m)),
            None => Bound::Unbounded,
        };
        let size = q.page_size.max(1);
        match &q.cursor {
            Some(c) if c.dir == Dir::Prev => {
                let end = match &hi {
                    Bound::Excluded(h) if *h <= c.key => hi.clone(),
                    _ => Bound::Excluded(c.key.clone()),
                };
                let mut items = Vec::with_capacity(size);
                let mut more = false;
                if range_ok(&lo, &end) {
                    let mut it = self
                        .order
                        .range((lo, end))
                        .rev()
                        .map(|(_, &s)| &self.slots[s as usize])
                        .filter(|r| q.matches(r));
                    items.extend(it.by_ref().take(size).cloned());
                    more = it.next().is_some();
                }
                items.reverse();
                Page {
                    previous: more.then(|| cursor_at(Dir::Prev, items.first())).flatten(),
                    next: cursor_at(Dir::Next, items.last()),
                    items,
                }
            }
            cursor => {
                let start = match (cursor, &lo) {
                    (Some(c), Bound::Included(l)) if c.key < *l => lo.clone(),
                    (Some(c), _) => Bound::Excluded(c.key.clone()),
                    (None, _) => lo,
                };
                let mut items = Vec::with_capacity(size);
                let mut more = false;
                if range_ok(&start, &hi) {
                    let mut it = self
                        .order
                        .range((start, hi))
                        .map(|(_, &s)| &self.slots[s as usize])
                        .filter(|r| q.matches(r));
                    items.extend(it.by_ref().take(size).cloned());
                    more = it.next().is_some();
                }
                let previous = cursor.as_ref().map(|c| match items.first() {
                    Some(first) => Cursor {
                        dir: Dir::Prev,
                        key: key_of(first),
                    },
                    // Past the end: going back starts just after the cursor position.
                    None => Cursor {
                        dir: Dir::Prev,
                        key: Key {
                            modified: c.key.modified,
                            id: format!("{}\u{10FFFF}", c.key.id).into(),
                        },
                    },
                });
                Page {
                    next: if more {
                        cursor_at(Dir::Next, items.last())
                    } else {
                        None
                    },
                    previous,
                    items,
                }
            }
        }
    }
}

fn key_of(r: &Record) -> Key {
    Key {
        modified: r.modified,
        id: r.id.clone(),
    }
}

fn cursor_at(dir: Dir, r: Option<&Record>) -> Option<Cursor> {
    r.map(|r| Cursor {
        dir,
        key: key_of(r),
    })
}

/// Rewrites a stored JSON record's `modified_at` and `remote_was_deleted`.
fn restamp_json(text: &str, modified: i64, deleted: bool) -> Arc<str> {
    let mut v: serde_json::Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(_) => return text.into(),
    };
    if let Some(obj) = v.as_object_mut() {
        obj.insert("modified_at".into(), merge_ts(modified).into());
        obj.insert("remote_was_deleted".into(), deleted.into());
    }
    v.to_string().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(n: i64) -> ModelStore {
        let mut s = ModelStore::new("hris.Employee", "Employee", 9);
        for i in 0..n {
            // Pairs share a modified_at, so the id tie-break matters.
            s.create_generated(0, 1_000 + i / 2, i % 10 == 0);
        }
        s
    }

    fn walk(s: &ModelStore, mut q: PageQuery) -> Vec<Arc<str>> {
        let mut seen = Vec::new();
        loop {
            let page = s.page(&q);
            seen.extend(page.items.iter().map(|r| r.id.clone()));
            match page.next {
                Some(c) => q.cursor = Some(c),
                None => return seen,
            }
        }
    }

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = Cursor {
            dir: Dir::Next,
            key: Key {
                modified: 1_772_460_322_123_456,
                id: "0958cbc6-6040-430a-848e-aafacbadf4ae".into(),
            },
        };
        let token = c.encode();
        assert!(!token.contains('/') && !token.contains('+'));
        assert_eq!(Cursor::decode(&token), Some(c));
        let mut garbled = token.clone();
        garbled.replace_range(3..4, if &token[3..4] == "A" { "B" } else { "A" });
        assert_eq!(Cursor::decode(&garbled), None);
        assert_eq!(Cursor::decode("not a cursor!"), None);
        assert_eq!(Cursor::decode(""), None);
    }

    #[test]
    fn keyset_pages_visit_every_record_once_in_order() {
        let s = store(53);
        let all = walk(
            &s,
            PageQuery {
                page_size: 7,
                include_deleted: true,
                ..Default::default()
            },
        );
        assert_eq!(all.len(), 53);
        let expected: Vec<_> = s.iter().map(|r| r.id.clone()).collect();
        assert_eq!(all, expected);
        let live = walk(
            &s,
            PageQuery {
                page_size: 4,
                ..Default::default()
            },
        );
        assert_eq!(live.len(), 53 - 6);
    }

    #[test]
    fn previous_cursor_returns_the_page_before() {
        let s = store(20);
        let q = PageQuery {
            page_size: 5,
            include_deleted: true,
            ..Default::default()
        };
        let p1 = s.page(&q);
        let p2 = s.page(&PageQuery {
            cursor: p1.next.clone(),
            ..q.clone()
        });
        let back = s.page(&PageQuery {
            cursor: p2.previous.clone(),
            ..q.clone()
        });
        let ids = |p: &Page| p.items.iter().map(|r| r.id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&back), ids(&p1));
        assert!(back.previous.is_none());
    }

    #[test]
    fn inverted_bounds_give_an_empty_page_not_a_panic() {
        let s = store(10);
        let page = s.page(&PageQuery {
            page_size: 5,
            modified_from: Some(2_000),
            modified_until: Some(1_000),
            ..Default::default()
        });
        assert!(page.items.is_empty() && page.next.is_none());
    }
}
