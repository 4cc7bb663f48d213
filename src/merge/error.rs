//! Errors from Merge's API, typed where a caller branches on them.

use std::time::Duration;

/// What went wrong talking to Merge. Never carries a secret: paths exclude the query string's
/// tokens (we never put tokens in URLs) and body excerpts are scrubbed of our own secrets.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("account token rejected — relink or update the token (HTTP 401 on {path}: {detail})")]
    Unauthorized { path: String, detail: String },
    #[error("API key rejected — check MERGE_API_KEY (HTTP 401 on {path}: {detail})")]
    ApiKeyRejected { path: String, detail: String },
    #[error("rate limited by Merge on {path}{}", retry_after.map(|d| format!(", retry after {}s", d.as_secs())).unwrap_or_default())]
    RateLimited {
        path: String,
        retry_after: Option<Duration>,
    },
    #[error("Merge refused the request: HTTP {status} on {path}: {detail}{hint}")]
    Rejected {
        status: u16,
        path: String,
        detail: String,
        /// What to check, when the request could not have failed for any other reason.
        hint: String,
    },
    #[error("Merge server error: HTTP {status} on {path}: {excerpt}")]
    Server {
        status: u16,
        path: String,
        excerpt: String,
    },
    #[error(
        "cannot reach Merge at {origin} (GET {path}): {message} (check --api-url / \
         MERGE_API_URL and the network)"
    )]
    Transport {
        /// Scheme, host and port, e.g. `https://api.merge.dev:443`.
        origin: String,
        path: String,
        message: String,
    },
    #[error(
        "Merge answered HTTP {status} on {path}, redirecting to {location}; merge-sync follows \
         no redirect (it would carry the account token there). Check --api-url / MERGE_API_URL"
    )]
    Redirected {
        status: u16,
        path: String,
        location: String,
    },
    #[error(
        "Merge's response on {path} is larger than {}; not read, not retried (a Merge page \
         holds at most 100 records: check --api-url / MERGE_API_URL and any proxy in between)",
        size_text(*limit)
    )]
    TooLarge { path: String, limit: u64 },
    #[error("unexpected response from Merge on {path}: {message}; body starts: {excerpt}")]
    Decode {
        path: String,
        message: String,
        excerpt: String,
    },
}

impl MergeError {
    /// Worth retrying within this run (after a pause).
    ///
    /// A malformed body is retried too: on a 200 it is almost always a proxy or a cut
    /// connection, and GETs are safe to repeat.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            MergeError::Server { .. }
                | MergeError::Transport { .. }
                | MergeError::RateLimited { .. }
                | MergeError::Decode { .. }
        )
    }

    /// Merge rejected a request's parameters (400/404): for a saved cursor, it has expired.
    pub fn is_rejection(&self) -> bool {
        matches!(
            self,
            MergeError::Rejected {
                status: 400 | 404,
                ..
            }
        )
    }
}

/// `33554432` → `32 MiB`; smaller sizes in bytes.
fn size_text(bytes: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else {
        format!("{bytes} bytes")
    }
}

/// The first 200 characters of a body, on one line, with `secrets` replaced.
pub fn excerpt(body: &[u8], secrets: &[&str]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    for s in secrets.iter().filter(|s| s.len() >= 4) {
        one_line = one_line.replace(s, "(redacted)");
    }
    if text.chars().count() > 200 {
        one_line.push('…');
    }
    one_line
}

/// The `detail` of a DRF-style error body (`{"detail": "..."}`), or an excerpt.
pub fn detail(body: &[u8], secrets: &[&str]) -> String {
    #[derive(serde::Deserialize)]
    struct Detail {
        detail: serde_json::Value,
    }
    match serde_json::from_slice::<Detail>(body) {
        Ok(Detail {
            detail: serde_json::Value::String(s),
        }) => excerpt(s.as_bytes(), secrets),
        Ok(Detail { detail }) => excerpt(detail.to_string().as_bytes(), secrets),
        Err(_) => excerpt(body, secrets),
    }
}
