//! Merge's endpoints: routing, authentication, and the JSON each one answers.
//!
//! Shapes follow Merge's SDK types; list and retrieve routes follow Merge's published paths
//! (`merge::published`); errors are Django REST Framework style `{"detail": "..."}`.

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{json, Value};

use super::generate::push_json_str;
use super::http::{HttpRequest, HttpResponse};
use super::state::{FakeState, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
use super::store::{decode_token, encode_token, Cursor, PageQuery, Record, RenderCtx};
use crate::merge::catalog::{self, ModelInfo};
use crate::merge::published;

/// A handler's answer; list pages are rendered after the state lock is released.
pub(crate) struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: ReplyBody,
}

pub(crate) enum ReplyBody {
    Json(Vec<u8>),
    /// Boxed to keep `Reply` small: it is the error type of every handler helper.
    Page(Box<PageBody>),
}

pub(crate) struct PageBody {
    next: Option<String>,
    previous: Option<String>,
    ctx: RenderCtx,
    items: Vec<Record>,
}

impl Reply {
    pub(crate) fn json(status: u16, v: &Value) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: ReplyBody::Json(v.to_string().into_bytes()),
        }
    }

    pub(crate) fn detail(status: u16, message: &str) -> Reply {
        Reply::json(status, &json!({ "detail": message }))
    }

    fn not_found() -> Reply {
        Reply::detail(404, "Not found.")
    }

    fn bad_request(message: &str) -> Reply {
        Reply::detail(400, message)
    }

    /// The bytes on the wire. Pages are written as text directly: records are stored (or
    /// generated) as JSON text, so re-parsing them would only cost time.
    pub(crate) fn into_response(self) -> HttpResponse {
        let body = match self.body {
            ReplyBody::Json(bytes) => bytes,
            ReplyBody::Page(page) => {
                let PageBody {
                    next,
                    previous,
                    ctx,
                    items,
                } = *page;
                let mut s = String::with_capacity(96 + items.len() * 1400);
                s.push_str("{\"next\":");
                push_opt_str(&mut s, next.as_deref());
                s.push_str(",\"previous\":");
                push_opt_str(&mut s, previous.as_deref());
                s.push_str(",\"results\":[");
                for (i, rec) in items.iter().enumerate() {
                    if i > 0 {
                        s.push(',');
                    }
                    ctx.render(rec, &mut s);
                }
                s.push_str("]}");
                s.into_bytes()
            }
        };
        HttpResponse {
            status: self.status,
            content_type: "application/json",
            headers: self.headers,
            body,
        }
    }
}

fn push_opt_str(s: &mut String, v: Option<&str>) {
    match v {
        Some(v) => push_json_str(s, v),
        None => s.push_str("null"),
    }
}

enum Route<'a> {
    SyncStatus,
    AccountDetails,
    AccountToken(&'a str),
    List(&'static ModelInfo),
    Retrieve(&'static ModelInfo, &'a str),
}

struct Routed<'a> {
    category: &'a str,
    route: Route<'a>,
}

impl Routed<'_> {
    fn needs_account(&self) -> bool {
        !matches!(self.route, Route::AccountToken(_))
    }
}

/// Maps `/api/{category}/v1/{rest}` to an endpoint; `None` is a 404.
fn route(path: &str) -> Option<Routed<'_>> {
    let rest = path.strip_prefix("/api/")?;
    let (category, rest) = rest.split_once('/')?;
    let rest = rest.strip_prefix("v1/")?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if !catalog::is_category(category) {
        return None;
    }
    let route = match rest {
        "sync-status" => Route::SyncStatus,
        "account-details" => Route::AccountDetails,
        _ => {
            if let Some(token) = rest.strip_prefix("account-token/") {
                if token.is_empty() || token.contains('/') {
                    return None;
                }
                Route::AccountToken(token)
            } else {
                list_or_retrieve(category, rest)?
            }
        }
    };
    Some(Routed { category, route })
}

/// A model's list or retrieve route. Where Merge publishes the category's paths, only those
/// are served, and the model is the one named by the path's schema, never looked up by the
/// client catalogue's path: a wrong path in that catalogue gets a 404 here, as from Merge.
fn list_or_retrieve<'a>(category: &str, rest: &'a str) -> Option<Route<'a>> {
    let published = published::published();
    let prefix = format!("/{category}/v1/");
    if !published.paths.iter().any(|p| p.path.starts_with(&prefix)) {
        // No spec we read covers this category (calendar, email): route by the catalogue.
        return catalogue_route(category, rest);
    }
    if let Some(schema) = published
        .list_path(category, rest)
        .and_then(|p| p.lists.as_deref())
    {
        return Some(Route::List(model_for_schema(category, schema)?));
    }
    let (list, id) = rest.rsplit_once('/')?;
    if id.is_empty()
        || published
            .list_path(category, &format!("{list}/{{id}}"))
            .is_none()
    {
        return None;
    }
    let schema = published.list_path(category, list)?.lists.as_deref()?;
    Some(Route::Retrieve(model_for_schema(category, schema)?, id))
}

/// The model a published schema holds: the same name (`Employee`), or, as Merge names models
/// whose schema name another category also uses, the name with its category's prefix
/// (`FileStorageFile` for `File`, `TicketingTeam` for `Team`).
fn model_for_schema(category: &str, schema: &str) -> Option<&'static ModelInfo> {
    const PREFIXES: &[&str] = &["Accounting", "Ticketing", "FileStorage", "KnowledgeBase"];
    let in_category = || catalog::all().iter().filter(|m| m.category == category);
    let name = |m: &ModelInfo| {
        m.model_id
            .split_once('.')
            .map_or("", |(_, n)| n)
            .to_string()
    };
    in_category().find(|m| name(m) == schema).or_else(|| {
        in_category().find(|m| {
            PREFIXES
                .iter()
                .any(|p| name(m).strip_prefix(p) == Some(schema))
        })
    })
}

fn catalogue_route<'a>(category: &str, rest: &'a str) -> Option<Route<'a>> {
    let listable = catalog::all()
        .iter()
        .filter(|m| m.category == category && m.is_listable());
    for m in listable {
        if rest == m.path {
            return Some(Route::List(m));
        }
        if let Some(id) = rest
            .strip_prefix(m.path.as_str())
            .and_then(|r| r.strip_prefix('/'))
        {
            if !id.is_empty() && !id.contains('/') {
                return Some(Route::Retrieve(m, id));
            }
        }
    }
    None
}

/// Checks the API key and, where the endpoint needs one, the account token; returns the
/// account's index.
fn authenticate(
    state: &FakeState,
    req: &HttpRequest,
    routed: &Routed,
) -> Result<Option<usize>, Reply> {
    let Some(auth) = req.header("authorization") else {
        return Err(Reply::detail(
            401,
            "Authentication credentials were not provided.",
        ));
    };
    let key = auth.strip_prefix("Bearer ").map(str::trim);
    if key != Some(state.api_key()) {
        return Err(Reply::detail(401, "Invalid API key."));
    }
    if !routed.needs_account() {
        return Ok(None);
    }
    let Some(token) = req.header("x-account-token") else {
        return Err(Reply::detail(
            401,
            "Missing X-Account-Token header: this endpoint needs a linked account's token.",
        ));
    };
    let Some(acct) = state.account_index_by_token(token) else {
        return Err(Reply::detail(401, "Invalid account token."));
    };
    if state.account_at(acct).category != routed.category {
        return Err(Reply::not_found());
    }
    Ok(Some(acct))
}

/// Whether the request carries valid credentials for its endpoint (recorded per request).
pub(crate) fn is_authorized(state: &FakeState, req: &HttpRequest) -> bool {
    match route(&req.path) {
        Some(routed) => authenticate(state, req, &routed).is_ok(),
        None => req
            .header("authorization")
            .and_then(|a| a.strip_prefix("Bearer "))
            .is_some_and(|k| k.trim() == state.api_key()),
    }
}

/// Answers one request from the current state.
pub(crate) fn handle(state: &FakeState, req: &HttpRequest) -> Reply {
    let Some(routed) = route(&req.path) else {
        return Reply::not_found();
    };
    let acct = match authenticate(state, req, &routed) {
        Ok(a) => a,
        Err(reply) => return reply,
    };
    if req.method != "GET" {
        return Reply::detail(405, &format!("Method \"{}\" not allowed.", req.method));
    }
    let result = match (routed.route, acct) {
        (Route::AccountToken(public), _) => account_token(state, public),
        (Route::SyncStatus, Some(a)) => sync_status(state, a, req),
        (Route::AccountDetails, Some(a)) => {
            Ok(Reply::json(200, &state.account_at(a).details_json()))
        }
        (Route::List(info), Some(a)) => list(state, a, info, req),
        (Route::Retrieve(info, id), Some(a)) => retrieve(state, a, info, id),
        // authenticate() returns an account for every route that needs one.
        (_, None) => Err(Reply::not_found()),
    };
    result.unwrap_or_else(|reply| reply)
}

fn page_size(req: &HttpRequest, default: usize) -> Result<usize, Reply> {
    match req.param("page_size") {
        None | Some("") => Ok(default),
        Some(s) => match s.parse::<usize>() {
            Ok(n) if n > MAX_PAGE_SIZE => Err(Reply::bad_request(&format!(
                "page_size must be at most {MAX_PAGE_SIZE}."
            ))),
            Ok(n) if n > 0 => Ok(n),
            _ => Err(Reply::bad_request("page_size must be a positive integer.")),
        },
    }
}

fn cursor_param(req: &HttpRequest) -> Option<&str> {
    req.param("cursor").filter(|c| !c.is_empty())
}

fn invalid_cursor() -> Reply {
    Reply::bad_request("Invalid cursor")
}

fn sync_status(state: &FakeState, acct: usize, req: &HttpRequest) -> Result<Reply, Reply> {
    let size = page_size(req, state.sync_status_page_size)?.min(state.sync_status_max_page_size);
    let offset = match cursor_param(req) {
        None => 0,
        Some(c) => decode_token(c)
            .and_then(|p| p.strip_prefix("s|").and_then(|n| n.parse::<usize>().ok()))
            .ok_or_else(invalid_cursor)?,
    };
    let models = &state.account_at(acct).models;
    let results: Vec<Value> = models
        .iter()
        .skip(offset)
        .take(size)
        .map(|m| m.sync.to_json())
        .collect();
    let next =
        (offset + size < models.len()).then(|| encode_token(&format!("s|{}", offset + size)));
    let previous =
        (offset > 0).then(|| encode_token(&format!("s|{}", offset.saturating_sub(size))));
    Ok(Reply::json(
        200,
        &json!({"next": next, "previous": previous, "results": results}),
    ))
}

/// A filter timestamp: RFC 3339, naive (UTC) or a bare date (midnight UTC).
fn time_param(req: &HttpRequest, name: &str) -> Result<Option<DateTime<Utc>>, Reply> {
    let Some(s) = req.param(name).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    crate::time::parse_exact(s)
        .or_else(|| {
            NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc())
        })
        .map(Some)
        .ok_or_else(|| Reply::bad_request(&format!("{name}: Enter a valid date/time.")))
}

fn bool_param(req: &HttpRequest, name: &str) -> Result<bool, Reply> {
    match req.param(name).map(str::to_ascii_lowercase).as_deref() {
        None | Some("") | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") => Ok(true),
        Some(_) => Err(Reply::bad_request(&format!(
            "{name}: Must be true or false."
        ))),
    }
}

/// `t` < m  ⇔  m ≥ floor(t) + 1µs, on Merge's microsecond clock.
fn after_micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros() + 1
}

/// m < `t`  ⇔  m < ceil(t) in microseconds.
fn before_micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros() + i64::from(!t.timestamp_subsec_nanos().is_multiple_of(1000))
}

fn list(
    state: &FakeState,
    acct: usize,
    info: &'static ModelInfo,
    req: &HttpRequest,
) -> Result<Reply, Reply> {
    let page_size = page_size(req, DEFAULT_PAGE_SIZE)?;
    let modified_after = time_param(req, "modified_after")?;
    let modified_before = time_param(req, "modified_before")?;
    let created_after = time_param(req, "created_after")?;
    let created_before = time_param(req, "created_before")?;
    let include_deleted = bool_param(req, "include_deleted_data")?;
    let cursor = match cursor_param(req) {
        None => None,
        Some(c) => Some(Cursor::decode(c).ok_or_else(invalid_cursor)?),
    };
    // Endpoints without these filters ignore them, as Django ignores unknown parameters.
    let (modified_after, modified_before) = if info.supports_modified_filter {
        (modified_after, modified_before)
    } else {
        (None, None)
    };
    let Some(model) = state.model(acct, &info.model_id) else {
        // A model the scenario does not set up simply has no data.
        return Ok(Reply::json(
            200,
            &json!({"next": null, "previous": null, "results": []}),
        ));
    };
    let page = model.store.page(&PageQuery {
        page_size,
        modified_from: modified_after.map(after_micros),
        modified_until: modified_before.map(before_micros),
        created_from: created_after.map(after_micros),
        created_until: created_before.map(before_micros),
        include_deleted: include_deleted || !info.supports_include_deleted,
        cursor,
    });
    Ok(Reply {
        status: 200,
        headers: Vec::new(),
        body: ReplyBody::Page(Box::new(PageBody {
            next: page.next.map(|c| c.encode()),
            previous: page.previous.map(|c| c.encode()),
            ctx: model.store.ctx.clone(),
            items: page.items,
        })),
    })
}

fn retrieve(
    state: &FakeState,
    acct: usize,
    info: &'static ModelInfo,
    id: &str,
) -> Result<Reply, Reply> {
    let model = state
        .model(acct, &info.model_id)
        .ok_or_else(Reply::not_found)?;
    let rec = model.store.get(id).ok_or_else(Reply::not_found)?;
    Ok(Reply {
        status: 200,
        headers: Vec::new(),
        body: ReplyBody::Json({
            let mut s = String::new();
            model.store.ctx.render(rec, &mut s);
            s.into_bytes()
        }),
    })
}

fn account_token(state: &FakeState, public: &str) -> Result<Reply, Reply> {
    let a = state
        .accounts()
        .iter()
        .find(|a| a.public_token.as_deref() == Some(public))
        .ok_or_else(Reply::not_found)?;
    Ok(Reply::json(
        200,
        &json!({
            "account_token": a.account_token,
            "integration": {
                "name": a.integration,
                "abbreviated_name": null,
                "categories": [a.category],
                "image": format!("https://merge-api-production.s3.amazonaws.com/media/{}.png", a.integration_slug),
                "square_image": format!("https://merge-api-production.s3.amazonaws.com/media/{}_square.png", a.integration_slug),
                "color": "#7B61FF",
                "slug": a.integration_slug,
                "api_endpoints_to_documentation_urls": {},
                "webhook_setup_guide_url": null,
                "category_beta_status": {},
            },
            "id": a.id,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_known_endpoints_only() {
        let ok = |p: &str| route(p).is_some();
        assert!(ok("/api/hris/v1/employees"));
        assert!(ok("/api/hris/v1/employees/"));
        assert!(ok("/api/hris/v1/employees/abc"));
        assert!(ok("/api/hris/v1/sync-status"));
        assert!(ok("/api/ats/v1/account-token/pub-1"));
        assert!(ok("/api/filestorage/v1/files"));
        assert!(!ok("/api/hris/v1/candidates"));
        assert!(!ok("/api/nope/v1/employees"));
        assert!(!ok("/api/hris/v2/employees"));
        assert!(!ok("/hris/v1/employees"));
        assert!(!ok("/api/hris/v1/employees/a/b"));
    }

    fn listed_model(path: &str) -> Option<&'static str> {
        match route(path)?.route {
            Route::List(m) => Some(m.model_id.as_str()),
            _ => None,
        }
    }

    #[test]
    fn every_catalogue_model_list_path_is_published_and_serves_that_model() {
        let published = published::published();
        let mut unpublished = std::collections::BTreeSet::new();
        for m in catalog::all() {
            let covered = published
                .paths
                .iter()
                .any(|p| p.path.starts_with(&format!("/{}/v1/", m.category)));
            if !covered {
                unpublished.insert(m.category.as_str());
                continue;
            }
            let entry = published.list_path(&m.category, &m.path);
            assert!(
                entry.is_some_and(|p| p.lists.is_some()),
                "{}: Merge publishes no list path /{}/v1/{}",
                m.model_id,
                m.category,
                m.path
            );
            if m.is_listable() {
                let path = format!("/api/{}/v1/{}", m.category, m.path);
                assert_eq!(listed_model(&path), Some(m.model_id.as_str()), "{path}");
            }
        }
        // The specs we extract from cover every category but these; a new spec should be
        // extracted rather than silently routed by the client's own catalogue.
        assert_eq!(
            unpublished.into_iter().collect::<Vec<_>>(),
            ["calendar", "email"]
        );
    }

    #[test]
    fn a_path_merge_does_not_publish_is_not_found_even_for_a_known_model() {
        // `hris.Employee` lists at `employees`; a catalogue saying `employee` would 404.
        assert_eq!(listed_model("/api/hris/v1/employee"), None);
        // Models are found by the path's schema, not by the catalogue's path.
        assert_eq!(listed_model("/api/hris/v1/teams"), Some("hris.Team"));
        assert_eq!(
            listed_model("/api/filestorage/v1/files"),
            Some("filestorage.FileStorageFile")
        );
        assert_eq!(
            listed_model("/api/ticketing/v1/teams"),
            Some("ticketing.TicketingTeam")
        );
    }

    #[test]
    fn filter_bounds_are_strict_on_microseconds() {
        let t = crate::time::parse("2026-03-02T14:05:22.123456Z").unwrap();
        assert_eq!(after_micros(t), t.timestamp_micros() + 1);
        assert_eq!(before_micros(t), t.timestamp_micros());
        let t = crate::time::parse_exact("2026-03-02T14:05:22.1234565Z").unwrap();
        assert_eq!(after_micros(t), t.timestamp_micros() + 1);
        assert_eq!(before_micros(t), t.timestamp_micros() + 1);
    }
}
