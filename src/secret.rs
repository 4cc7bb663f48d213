//! Secrets (API key, account tokens, webhook secrets) in a type that never prints itself.

use std::fmt;

/// A secret string. `Debug` and `Display` print `(redacted)`; read it with [`Secret::expose`]
/// only where it is sent, and show it to people with [`Secret::masked`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for an HTTP header or an HMAC key. Never log the result.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The last 4 characters behind a mask (`••••abcd`), the only form shown to people.
    /// Secrets of 8 characters or fewer are masked entirely, so the tail never gives away
    /// most of a short token.
    pub fn masked(&self) -> String {
        let chars: Vec<char> = self.0.chars().collect();
        if chars.len() <= 8 {
            return "••••".to_string();
        }
        let tail: String = chars[chars.len() - 4..].iter().collect();
        format!("••••{tail}")
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(redacted)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(redacted)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let s = Secret::new("sk_live_supersecret_1234");
        assert_eq!(format!("{s:?}"), "(redacted)");
        assert_eq!(format!("{s}"), "(redacted)");
        assert!(!format!("{:?}", Some(&s)).contains("supersecret"));
    }

    #[test]
    fn masked_shows_only_the_last_four_characters() {
        assert_eq!(Secret::new("tok_abcdefgh1234").masked(), "••••1234");
        assert_eq!(Secret::new("short").masked(), "••••");
    }
}
