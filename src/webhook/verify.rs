//! Webhook signature verification: HMAC-SHA256 over the raw body, base64url, constant time.
//!
//! Merge signs each delivery with the organisation's webhook key and sends
//! `X-Merge-Webhook-Signature: base64url(HMAC-SHA256(key UTF-8 bytes, raw body bytes))`, padded
//! with `=`. What this module accepts, and why:
//!
//! - **Padding optional.** Some tools strip the `=`; a padded header must be canonically padded
//!   (`…=`, never `…==` for a 32-byte digest), since only a broken signer would produce that.
//! - **Surrounding whitespace ignored.** Proxies and CGI wrappers sometimes leave it.
//! - **base64url alphabet only.** A header using standard base64's `+` or `/` is `Invalid`:
//!   Merge sends base64url, and accepting the other alphabet would only hide a signer that does
//!   not follow the documented algorithm (for example our own fake or a test script).
//! - **Constant time.** The header is decoded to bytes and compared with
//!   [`Mac::verify_slice`]; strings are never compared with `==`.
//! - **Rotation.** The previous secret, when configured, is tried after the current one.

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::secret::Secret;

type HmacSha256 = Hmac<Sha256>;

/// Decodes base64url with or without padding; padding, when present, must be canonical.
const URL_SAFE_PAD_OPTIONAL: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The webhook signature key, and during a rotation the key it replaces.
///
/// `Debug` prints `(redacted)` for both keys.
#[derive(Clone, Debug)]
pub struct WebhookSecrets {
    current: Secret,
    previous: Option<Secret>,
}

impl WebhookSecrets {
    /// An empty `previous` is treated as absent, so an exported-but-empty environment variable
    /// does not add a second key. Rejecting an empty `current` is the configuration's job: an
    /// empty key would make every signature forgeable.
    pub fn new(current: Secret, previous: Option<Secret>) -> Self {
        let previous = previous.filter(|p| !p.expose().is_empty());
        WebhookSecrets { current, previous }
    }

    /// Whether a previous key is configured (a rotation is in progress).
    pub fn has_previous(&self) -> bool {
        self.previous.is_some()
    }
}

/// The outcome of checking a delivery's signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Signed with the current or the previous key.
    Valid,
    /// No signature header, or an empty one.
    Missing,
    /// A signature that is not base64url of the expected HMAC.
    Invalid,
}

impl Verdict {
    pub fn is_valid(self) -> bool {
        self == Verdict::Valid
    }
}

/// Checks `signature_header` against the exact raw `body` bytes, before anything parses them.
pub fn verify(secrets: &WebhookSecrets, body: &[u8], signature_header: Option<&str>) -> Verdict {
    let header = signature_header.map(str::trim).unwrap_or("");
    if header.is_empty() {
        return Verdict::Missing;
    }
    let Ok(signature) = URL_SAFE_PAD_OPTIONAL.decode(header) else {
        return Verdict::Invalid;
    };
    if matches(&secrets.current, body, &signature) {
        return Verdict::Valid;
    }
    if let Some(previous) = &secrets.previous {
        if matches(previous, body, &signature) {
            // Worth knowing during a rotation: Merge still signs with the old key.
            log::debug!("webhook signature matched the previous secret");
            return Verdict::Valid;
        }
    }
    Verdict::Invalid
}

/// The header Merge would send for `body`: padded base64url of HMAC-SHA256. For tests, the
/// demo and the fake server.
pub fn sign(secret: &str, body: &[u8]) -> String {
    URL_SAFE.encode(mac(secret, body).finalize().into_bytes())
}

fn mac(secret: &str, body: &[u8]) -> HmacSha256 {
    let mut mac =
        HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC accepts any key length");
    mac.update(body);
    mac
}

fn matches(secret: &Secret, body: &[u8], signature: &[u8]) -> bool {
    // verify_slice compares in constant time and rejects a wrong length.
    mac(secret.expose(), body).verify_slice(signature).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use serde::Deserialize;

    const VECTORS: &str = include_str!("../../fixtures/signatures/vectors.json");

    #[derive(Deserialize)]
    struct Vectors {
        cases: Vec<Case>,
    }

    #[derive(Deserialize)]
    struct Case {
        name: String,
        secret: String,
        previous_secret: Option<String>,
        body_b64: String,
        header: Option<String>,
        expected: String,
    }

    fn secrets(current: &str, previous: Option<&str>) -> WebhookSecrets {
        WebhookSecrets::new(Secret::new(current), previous.map(Secret::new))
    }

    #[test]
    fn independent_vectors_give_the_expected_verdicts() {
        let vectors: Vectors = serde_json::from_str(VECTORS).unwrap();
        assert!(vectors.cases.len() >= 10);
        for case in &vectors.cases {
            let body = STANDARD.decode(&case.body_b64).unwrap();
            let s = secrets(&case.secret, case.previous_secret.as_deref());
            let expected = match case.expected.as_str() {
                "valid" => Verdict::Valid,
                "missing" => Verdict::Missing,
                "invalid" => Verdict::Invalid,
                other => panic!("unknown verdict {other:?} in case {}", case.name),
            };
            let got = verify(&s, &body, case.header.as_deref());
            assert_eq!(got, expected, "case {:?}", case.name);
        }
    }

    #[test]
    fn sign_matches_the_vectors_that_merge_would_send() {
        let vectors: Vectors = serde_json::from_str(VECTORS).unwrap();
        let known = &vectors.cases[0];
        let body = STANDARD.decode(&known.body_b64).unwrap();
        assert_eq!(sign(&known.secret, &body), known.header.clone().unwrap());
        assert_eq!(
            sign("whsec_test_key_123", &body),
            "woS044CUqpDKd2JkZ4t8xDNpw0TspNlJZMJE_x-r1uM="
        );
    }

    #[test]
    fn sign_and_verify_round_trip_with_tampering() {
        let s = secrets("k1", None);
        let body = b"{\"hook\":{}}";
        let header = sign("k1", body);
        assert!(header.ends_with('='));
        assert_eq!(verify(&s, body, Some(&header)), Verdict::Valid);
        assert_eq!(
            verify(&s, body, Some(header.trim_end_matches('='))),
            Verdict::Valid
        );
        assert_eq!(
            verify(&s, b"{\"hook\":{ }", Some(&header)),
            Verdict::Invalid
        );
        assert_eq!(verify(&s, body, Some(&sign("k2", body))), Verdict::Invalid);
        assert_eq!(verify(&s, body, None), Verdict::Missing);
    }

    #[test]
    fn rotation_accepts_both_keys_and_ignores_an_empty_previous() {
        let body = b"payload";
        let rotating = secrets("new", Some("old"));
        assert!(rotating.has_previous());
        assert_eq!(
            verify(&rotating, body, Some(&sign("old", body))),
            Verdict::Valid
        );
        assert_eq!(
            verify(&rotating, body, Some(&sign("new", body))),
            Verdict::Valid
        );

        let empty_previous = secrets("new", Some(""));
        assert!(!empty_previous.has_previous());
        assert_eq!(
            verify(&empty_previous, body, Some(&sign("", body))),
            Verdict::Invalid
        );
    }

    #[test]
    fn debug_never_shows_the_keys() {
        let s = secrets(
            "whsec_supersecret_current",
            Some("whsec_supersecret_previous"),
        );
        let shown = format!("{s:?}");
        assert!(!shown.contains("supersecret"), "{shown}");
        assert!(shown.contains("(redacted)"));
    }
}
