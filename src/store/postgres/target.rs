//! Where a PostgreSQL store lives: the libpq URL (`postgres://` or `postgresql://`) completed
//! from the standard `PG*` environment variables, what may be shown of it (host, port,
//! database, schema: never the password), and how to connect (TLS, keepalives, timeouts).

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use percent_encoding::percent_decode_str;
use postgres::config::{Host, SslMode};
use rustls::pki_types::pem::PemObject;

/// A parsed PostgreSQL location. `Debug` and `Display` name host, port, database and schema.
#[derive(Clone)]
pub struct PgTarget {
    config: postgres::Config,
    pub host: String,
    pub port: u16,
    pub database: String,
    /// The schema the tables live in, from `options=-csearch_path=…` (`None`: the server's
    /// default, normally `public`).
    pub schema: Option<String>,
    tls: TlsPolicy,
}

/// How the server's certificate is checked when TLS is used.
#[derive(Clone, Debug, PartialEq)]
enum TlsPolicy {
    /// `sslmode=prefer|require`: encrypted, certificate not verified (as libpq does).
    Encrypt,
    /// `sslmode=verify-ca|verify-full`: verified against `sslrootcert` or the public roots.
    Verify { root_cert: Option<PathBuf> },
}

/// Whether `db` names a PostgreSQL database rather than an SQLite file.
pub fn is_url(db: &str) -> bool {
    db.starts_with("postgres://") || db.starts_with("postgresql://")
}

impl PgTarget {
    /// Parses `url`, taking what it leaves out from `PGHOST`, `PGPORT`, `PGUSER`,
    /// `PGPASSWORD`, `PGDATABASE`, `PGSSLMODE`, `PGSSLROOTCERT`, `PGOPTIONS`,
    /// `PGCONNECT_TIMEOUT` and `PGAPPNAME` (the URL wins, as with libpq). Errors never repeat
    /// the URL: it may hold a password.
    pub fn parse(url: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<PgTarget, String> {
        let env = |k: &str| env(k).filter(|v| !v.is_empty());
        // sslmode values and sslrootcert the client library does not know are taken out here.
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut kept = Vec::new();
        let mut sslmode = None;
        let mut root_cert = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode_str(v).decode_utf8_lossy().to_string();
            match k {
                "sslmode" => sslmode = Some(value),
                "sslrootcert" => root_cert = Some(PathBuf::from(value)),
                _ => kept.push(pair),
            }
        }
        let base = with_env_port(base, &env)?;
        let cleaned = if kept.is_empty() {
            base
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        let mut config: postgres::Config = cleaned.parse().map_err(|e: postgres::Error| {
            let detail = std::error::Error::source(&e)
                .map(|s| format!(": {s}"))
                .unwrap_or_default();
            format!("not a valid PostgreSQL URL{detail}; expected postgres://user@host:port/database?sslmode=require")
        })?;

        if config.get_hosts().is_empty() {
            match env("PGHOST") {
                Some(h) => {
                    config.host(&h);
                }
                None => {
                    config.host("localhost");
                }
            }
        }
        if config.get_ports().is_empty() {
            if let Some(port) = env("PGPORT").and_then(|p| p.parse::<u16>().ok()) {
                config.port(port);
            }
        }
        if config.get_user().is_none() {
            let user = env("PGUSER")
                .or_else(|| env("USER"))
                .or_else(|| env("LOGNAME"))
                .ok_or("no PostgreSQL user: put one in the --db URL (postgres://USER@host/db) or set PGUSER")?;
            config.user(&user);
        }
        if config.get_password().is_none() {
            if let Some(p) = env("PGPASSWORD") {
                config.password(p);
            }
        }
        if config.get_dbname().is_none() {
            let db =
                env("PGDATABASE").unwrap_or_else(|| config.get_user().unwrap_or("").to_string());
            config.dbname(&db);
        }
        if config.get_options().is_none() {
            if let Some(o) = env("PGOPTIONS") {
                config.options(&o);
            }
        }
        if config.get_application_name().is_none() {
            config.application_name(env("PGAPPNAME").as_deref().unwrap_or("merge-sync"));
        }
        if config.get_connect_timeout().is_none() {
            let secs = env("PGCONNECT_TIMEOUT")
                .and_then(|s| s.parse::<u64>().ok())
                .filter(|s| *s > 0)
                .unwrap_or(10);
            config.connect_timeout(Duration::from_secs(secs));
        }
        // A host that dies or drops off the network must not hold its account locks for long:
        // the client notices a dead server, and the server a dead client (see `session_setup`).
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(10));
        config.keepalives_interval(Duration::from_secs(5));
        config.keepalives_retries(3);
        if config.get_tcp_user_timeout().is_none() {
            config.tcp_user_timeout(Duration::from_secs(30));
        }

        let sslmode = sslmode.or_else(|| env("PGSSLMODE"));
        let root_cert = root_cert.or_else(|| env("PGSSLROOTCERT").map(PathBuf::from));
        let tls = match sslmode.as_deref() {
            None | Some("prefer") => {
                config.ssl_mode(SslMode::Prefer);
                TlsPolicy::Encrypt
            }
            Some("disable") | Some("allow") => {
                config.ssl_mode(SslMode::Disable);
                TlsPolicy::Encrypt
            }
            Some("require") => {
                config.ssl_mode(SslMode::Require);
                TlsPolicy::Encrypt
            }
            Some("verify-ca") | Some("verify-full") => {
                config.ssl_mode(SslMode::Require);
                TlsPolicy::Verify { root_cert }
            }
            Some(other) => {
                return Err(format!(
                    "sslmode {other:?} is not one of disable, allow, prefer, require, verify-ca, verify-full"
                ))
            }
        };

        let schema = schema_from_options(config.get_options().unwrap_or(""))?;
        let host = match &config.get_hosts()[0] {
            Host::Tcp(h) => h.clone(),
            #[cfg(unix)]
            Host::Unix(p) => p.display().to_string(),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let database = config.get_dbname().unwrap_or_default().to_string();
        Ok(PgTarget {
            config,
            host,
            port,
            database,
            schema,
            tls,
        })
    }

    /// Connects, with TLS as the URL asks.
    pub fn connect(&self) -> Result<postgres::Client> {
        let connector = self.tls_connector()?;
        self.config
            .connect(connector)
            .map_err(|e| connect_error(self, e))
    }

    fn tls_connector(&self) -> Result<tokio_postgres_rustls::MakeRustlsConnect> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .context("setting up TLS")?;
        let config = match &self.tls {
            TlsPolicy::Encrypt => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
                .with_no_client_auth(),
            TlsPolicy::Verify { root_cert } => {
                let mut roots = rustls::RootCertStore::empty();
                match root_cert {
                    Some(path) => {
                        let pem = std::fs::read(path)
                            .with_context(|| format!("reading sslrootcert {}", path.display()))?;
                        for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
                            let cert = cert.with_context(|| {
                                format!("reading a certificate from {}", path.display())
                            })?;
                            roots.add(cert).with_context(|| {
                                format!("using a certificate from {}", path.display())
                            })?;
                        }
                    }
                    None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
                }
                builder.with_root_certificates(roots).with_no_client_auth()
            }
        };
        Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
    }
}

/// `base` (a URL without its query) with `PGPORT` filled in when it names one host and no
/// port: the client library would otherwise assume 5432.
fn with_env_port(base: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let Some(port) = env("PGPORT") else {
        return Ok(base.to_string());
    };
    port.parse::<u16>()
        .map_err(|_| format!("PGPORT {port:?} is not a port number"))?;
    let (scheme, rest) = base.split_once("://").unwrap_or(("", base));
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let (userinfo, hosts) = match authority.rfind('@') {
        Some(i) => (&authority[..=i], &authority[i + 1..]),
        None => ("", authority),
    };
    let has_port = hosts
        .rsplit_once(':')
        .is_some_and(|(_, p)| !p.contains(']'));
    if hosts.is_empty() || hosts.contains(',') || has_port {
        return Ok(base.to_string());
    }
    Ok(format!("{scheme}://{userinfo}{hosts}:{port}{path}"))
}

/// The schema named by the first entry of `search_path` in the server options, if any.
fn schema_from_options(options: &str) -> Result<Option<String>, String> {
    let mut words = options.split_whitespace().peekable();
    while let Some(w) = words.next() {
        let setting = if w == "-c" || w == "--" {
            words.next().unwrap_or("")
        } else if let Some(rest) = w.strip_prefix("-c").or_else(|| w.strip_prefix("--")) {
            rest
        } else {
            continue;
        };
        let Some((name, value)) = setting.split_once('=') else {
            continue;
        };
        if name.replace('-', "_") != "search_path" {
            continue;
        }
        let first = value
            .split(',')
            .next()
            .unwrap_or("")
            .trim()
            .trim_matches('"');
        let valid = first
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
            && first
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            return Err(format!(
                "search_path schema {first:?} in the --db options is not a plain lower-case name (letters, digits, _)"
            ));
        }
        return Ok(Some(first.to_string()));
    }
    Ok(None)
}

/// Explains a failed connection naming host, port and database; the client library's errors
/// never carry the password.
fn connect_error(target: &PgTarget, e: postgres::Error) -> anyhow::Error {
    let code = e.code().map(|c| c.code().to_string());
    let cause = match std::error::Error::source(&e) {
        Some(s) => s.to_string(),
        None => e.to_string(),
    };
    match code.as_deref() {
        // invalid_password, invalid_authorization_specification
        Some("28P01") | Some("28000") => super::super::StoreError::PgRejected {
            target: target.to_string(),
            reason: format!("{cause}. Check the user and password (in the --db URL or PGPASSWORD)"),
        }
        .into(),
        // invalid_catalog_name: no such database
        Some("3D000") => super::super::StoreError::PgRejected {
            target: target.to_string(),
            reason: format!(
                "{cause}. Create it (createdb {}) or fix the --db URL",
                target.database
            ),
        }
        .into(),
        _ if cause.contains("invalid peer certificate") => super::super::StoreError::PgRejected {
            target: target.to_string(),
            reason: format!(
                "{cause}: the server's certificate is not trusted (sslmode=verify-ca/verify-full). \
                 Point sslrootcert at the CA that signed it, or use sslmode=require"
            ),
        }
        .into(),
        _ if cause.contains("does not support TLS") => super::super::StoreError::PgRejected {
            target: target.to_string(),
            reason: format!(
                "{cause}, and the --db URL asks for it (sslmode). Enable ssl on the server, or \
                 use sslmode=prefer or disable"
            ),
        }
        .into(),
        _ => anyhow::anyhow!(
            "cannot connect to {target}: {cause}. Is the server running and reachable, and the \
             --db URL's host and port right?"
        ),
    }
}

impl fmt::Display for PgTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PostgreSQL database {:?} on {}:{}",
            self.database, self.host, self.port
        )?;
        if let Some(schema) = &self.schema {
            write!(f, " (schema {schema})")?;
        }
        Ok(())
    }
}

impl fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl PartialEq for PgTarget {
    fn eq(&self, other: &Self) -> bool {
        (
            &self.host,
            self.port,
            &self.database,
            &self.schema,
            &self.tls,
        ) == (
            &other.host,
            other.port,
            &other.database,
            &other.schema,
            &other.tls,
        ) && self.config.get_user() == other.config.get_user()
    }
}

impl Eq for PgTarget {}

/// `sslmode=require` semantics: encrypt, accept the server's certificate unchecked (libpq
/// does the same; `verify-full` checks it). Signatures are still verified, so the session
/// key belongs to whoever presented the certificate.
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn parse(url: &str, env: &[(&str, &str)]) -> Result<PgTarget, String> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        PgTarget::parse(url, &|k| env.get(k).cloned())
    }

    #[test]
    fn a_url_names_host_port_database_and_never_the_password() {
        let t = parse(
            "postgres://app:s3cr3t-pw@db.internal:6543/mirror?sslmode=require",
            &[],
        )
        .unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.database.as_str()),
            ("db.internal", 6543, "mirror")
        );
        let shown = format!("{t} {t:?}");
        assert!(
            shown.contains("db.internal:6543") && shown.contains("mirror"),
            "{shown}"
        );
        assert!(!shown.contains("s3cr3t"), "{shown}");
    }

    #[test]
    fn pg_variables_fill_what_the_url_leaves_out_and_the_url_wins() {
        let env = [
            ("PGHOST", "envhost"),
            ("PGPORT", "7777"),
            ("PGUSER", "envuser"),
            ("PGDATABASE", "envdb"),
            ("PGPASSWORD", "envpw"),
        ];
        let t = parse("postgresql://", &env).unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.database.as_str()),
            ("envhost", 7777, "envdb")
        );
        assert_eq!(t.config.get_password(), Some(&b"envpw"[..]));
        let t = parse("postgresql://urluser:urlpw@urlhost/urldb", &env).unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.database.as_str()),
            ("urlhost", 7777, "urldb")
        );
        assert_eq!(t.config.get_password(), Some(&b"urlpw"[..]));
        assert_eq!(t.config.get_user(), Some("urluser"));
    }

    #[test]
    fn the_schema_comes_from_search_path_in_the_options() {
        for (url, want) in [
            (
                "postgres://u@h/d?options=-csearch_path%3Dmerge",
                Some("merge"),
            ),
            (
                "postgres://u@h/d?options=-c%20search_path%3Dmirror,public",
                Some("mirror"),
            ),
            ("postgres://u@h/d?options=--search_path%3Dm2", Some("m2")),
            ("postgres://u@h/d", None),
        ] {
            assert_eq!(parse(url, &[]).unwrap().schema.as_deref(), want, "{url}");
        }
        assert!(parse("postgres://u@h/d?options=-csearch_path%3DBad-Name", &[]).is_err());
    }

    #[test]
    fn malformed_urls_are_refused_without_echoing_them() {
        for url in [
            "postgres://u:hunter2@h:notaport/d",
            "postgres://u:hunter2@h/d?sslmode=sometimes",
            "postgres://u:hunter2@h/d?frobnicate=1",
        ] {
            let err = parse(url, &[]).unwrap_err();
            assert!(!err.contains("hunter2"), "{err}");
        }
        assert!(parse("postgres://u@h/d?sslmode=verify-full", &[]).is_ok());
    }
}
