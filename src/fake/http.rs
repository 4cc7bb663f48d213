//! Just enough HTTP/1.1 for the fake server: read a request, write a response, keep-alive.
//!
//! Hand-written on `std::net` rather than a server crate because the fake must misbehave on
//! purpose (close a connection without answering, send half a body), which a well-behaved
//! server library does not allow.

use std::io::{self, BufRead, Read, Write};

/// Largest request head (request line and headers) accepted.
const MAX_HEAD: usize = 64 * 1024;
/// Largest request body accepted; Merge's GETs carry none.
const MAX_BODY: usize = 1024 * 1024;

#[derive(Debug, Clone)]
pub(crate) struct HttpRequest {
    pub method: String,
    /// Percent-decoded path, without the query.
    pub path: String,
    /// Percent-decoded query pairs, in order (`+` is a space, as Django reads it).
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub keep_alive: bool,
}

impl HttpRequest {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The last value of a query parameter, as Django's `QueryDict` returns it.
    pub(crate) fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug)]
pub(crate) enum ReadError {
    Io(io::Error),
    /// The bytes were not an HTTP request we accept; answer 400 and close.
    Bad(&'static str),
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> ReadError {
        ReadError::Io(e)
    }
}

/// Reads one line (up to CRLF or LF) into `buf`, counting against the head budget.
fn read_line(r: &mut impl BufRead, budget: &mut usize) -> Result<Option<String>, ReadError> {
    let mut line = Vec::new();
    let n = r
        .by_ref()
        .take(*budget as u64 + 1)
        .read_until(b'\n', &mut line)?;
    if n == 0 {
        return Ok(None);
    }
    if n > *budget {
        return Err(ReadError::Bad("request head too large"));
    }
    *budget -= n;
    if line.last() != Some(&b'\n') {
        return Err(ReadError::Io(io::ErrorKind::UnexpectedEof.into()));
    }
    while matches!(line.last(), Some(b'\n' | b'\r')) {
        line.pop();
    }
    String::from_utf8(line)
        .map(Some)
        .map_err(|_| ReadError::Bad("request head is not UTF-8"))
}

/// Reads the next request; `Ok(None)` when the client closed the connection between requests.
pub(crate) fn read_request(r: &mut impl BufRead) -> Result<Option<HttpRequest>, ReadError> {
    let mut budget = MAX_HEAD;
    // Tolerate stray blank lines between keep-alive requests (RFC 9112 §2.2).
    let line = loop {
        match read_line(r, &mut budget)? {
            None => return Ok(None),
            Some(l) if l.is_empty() => continue,
            Some(l) => break l,
        }
    };
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ReadError::Bad("malformed request line"));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(ReadError::Bad("unsupported HTTP version"));
    }
    let mut headers = Vec::new();
    loop {
        let Some(h) = read_line(r, &mut budget)? else {
            return Err(ReadError::Io(io::ErrorKind::UnexpectedEof.into()));
        };
        if h.is_empty() {
            break;
        }
        let Some((k, v)) = h.split_once(':') else {
            return Err(ReadError::Bad("malformed header"));
        };
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let find = |name: &str| {
        headers
            .iter()
            .find(|(k, _): &&(String, String)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    if find("transfer-encoding").is_some() {
        return Err(ReadError::Bad("chunked request bodies are not supported"));
    }
    if let Some(len) = find("content-length") {
        let len: usize = len
            .parse()
            .map_err(|_| ReadError::Bad("bad Content-Length"))?;
        if len > MAX_BODY {
            return Err(ReadError::Bad("request body too large"));
        }
        // The fake only serves GETs; a body is read to keep the connection in sync.
        io::copy(&mut r.by_ref().take(len as u64), &mut io::sink())?;
    }
    let connection = find("connection").unwrap_or_default().to_ascii_lowercase();
    let keep_alive = if version == "HTTP/1.0" {
        connection == "keep-alive"
    } else {
        connection != "close"
    };
    let (raw_path, raw_query) = target.split_once('?').unwrap_or((target, ""));
    let query = raw_query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k, true), decode(v, true))
        })
        .collect();
    Ok(Some(HttpRequest {
        method: method.to_string(),
        path: decode(raw_path, false),
        query,
        headers,
        keep_alive,
    }))
}

/// Percent-decodes `s`; invalid escapes are kept as written.
fn decode(s: &str, plus_is_space: bool) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' if plus_is_space => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(crate) fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

/// A response ready to be written.
#[derive(Debug, Clone)]
pub(crate) struct HttpResponse {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The status line and headers, with a `Content-Length` of the whole body.
    pub(crate) fn head(&self, keep_alive: bool) -> Vec<u8> {
        let mut h = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nServer: fake-merge\r\nConnection: {}\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            self.body.len(),
            if keep_alive { "keep-alive" } else { "close" },
        );
        for (k, v) in &self.headers {
            h.push_str(k);
            h.push_str(": ");
            h.push_str(v);
            h.push_str("\r\n");
        }
        h.push_str("\r\n");
        h.into_bytes()
    }

    pub(crate) fn write_to(&self, w: &mut impl Write, keep_alive: bool) -> io::Result<()> {
        let mut bytes = self.head(keep_alive);
        bytes.extend_from_slice(&self.body);
        w.write_all(&bytes)?;
        w.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Result<Option<HttpRequest>, ReadError> {
        read_request(&mut io::BufReader::new(raw.as_bytes()))
    }

    #[test]
    fn parses_a_get_with_query_and_headers() {
        let req = parse(
            "GET /api/hris/v1/employees?page_size=7&modified_after=2026-03-02T14%3A05%3A22%2B00%3A00&x=a+b HTTP/1.1\r\nHost: x\r\nX-Account-Token: tok\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(req.method, "GET");
        assert_eq!(req.path, "/api/hris/v1/employees");
        assert_eq!(req.param("page_size"), Some("7"));
        assert_eq!(
            req.param("modified_after"),
            Some("2026-03-02T14:05:22+00:00")
        );
        assert_eq!(req.param("x"), Some("a b"));
        assert_eq!(req.header("x-account-token"), Some("tok"));
        assert!(req.keep_alive);
    }

    #[test]
    fn rejects_garbage_and_reports_clean_eof() {
        assert!(parse("").unwrap().is_none());
        assert!(matches!(parse("NONSENSE\r\n\r\n"), Err(ReadError::Bad(_))));
        assert!(matches!(
            parse("GET / HTTP/1.1\r\nbad header\r\n\r\n"),
            Err(ReadError::Bad(_))
        ));
        assert_eq!(decode("%zz%4", false), "%zz%4");
        assert_eq!(decode("a%2Fb", false), "a/b");
    }
}
