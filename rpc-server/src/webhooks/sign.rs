//! Standard Webhooks signatures: `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`,
//! keyed with the base64-decoded part of a `whsec_…` secret.

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header carrying the message id, the same on every retry of one event.
pub const HEADER_ID: &str = "webhook-id";
/// The header carrying the attempt's time, in unix seconds.
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";
/// The header carrying `v1,<signature>`.
pub const HEADER_SIGNATURE: &str = "webhook-signature";

/// How to make a secret, quoted by every parse error.
const HOW_TO: &str = "make one with: echo \"whsec_$(head -c 32 /dev/urandom | base64)\"";

/// Standard base64, padded or not (both are seen in the wild).
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A webhook signing key. `Debug` shows its length only, never the key.
#[derive(Clone)]
pub struct WebhookSecret {
    key: Vec<u8>,
}

/// Why the text of a `--webhook-secret-file` is not a usable secret. The
/// messages never repeat the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("the webhook secret is empty; {HOW_TO}")]
    Empty,
    #[error("the webhook secret must start with \"whsec_\"; {HOW_TO}")]
    MissingPrefix,
    #[error("the webhook secret after \"whsec_\" is not valid base64 ({0}); {HOW_TO}")]
    NotBase64(String),
    #[error(
        "the webhook secret's key is {0} bytes, at least {min} are needed; {HOW_TO}",
        min = WebhookSecret::MIN_KEY_BYTES
    )]
    TooShort(usize),
}

impl WebhookSecret {
    /// The prefix of the text form.
    pub const PREFIX: &str = "whsec_";
    /// The shortest key accepted (the specification's example has 24).
    pub const MIN_KEY_BYTES: usize = 24;

    /// Parses `whsec_<base64 key>`, surrounding whitespace ignored.
    pub fn parse(text: &str) -> Result<Self, SecretError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(SecretError::Empty);
        }
        let encoded = text
            .strip_prefix(Self::PREFIX)
            .ok_or(SecretError::MissingPrefix)?;
        let key = LENIENT
            .decode(encoded)
            .map_err(|e| SecretError::NotBase64(describe(&e, Self::PREFIX.len())))?;
        if key.len() < Self::MIN_KEY_BYTES {
            return Err(SecretError::TooShort(key.len()));
        }
        Ok(Self { key })
    }

    /// The `webhook-signature` header value for one attempt: `v1,<base64>`.
    pub fn sign(&self, id: &str, timestamp: u64, body: &[u8]) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes keys of any length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

impl FromStr for WebhookSecret {
    type Err = SecretError;

    fn from_str(text: &str) -> Result<Self, SecretError> {
        Self::parse(text)
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WebhookSecret(<{} bytes, redacted>)", self.key.len())
    }
}

/// A decode error without the offending character (it is part of the secret).
fn describe(e: &base64::DecodeError, skipped: usize) -> String {
    use base64::DecodeError::*;
    match *e {
        InvalidByte(at, _) => format!("invalid character at position {}", at + skipped + 1),
        InvalidLength(_) => "its length is not that of base64 text".to_string(),
        InvalidLastSymbol(at, _) => {
            format!("invalid last character at position {}", at + skipped + 1)
        }
        InvalidPadding => "invalid padding".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Published by the Standard Webhooks reference libraries ("sign function
    /// works" in libraries/javascript/src/webhook.test.ts, testSignFunctionWorks
    /// in libraries/php/tests/WebhookTest.php).
    #[test]
    fn signs_the_specification_example() {
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        assert_eq!(
            secret.sign(
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    /// The reference Rust library's own vector (crate `standardwebhooks` 1.0.1, `test_sign`).
    #[test]
    fn signs_the_rust_reference_example() {
        let secret = WebhookSecret::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
        assert_eq!(
            secret.sign(
                "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
                1649367553,
                br#"{"email":"test@example.com","username":"test_user"}"#
            ),
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
        );
    }

    #[test]
    fn every_signed_part_changes_the_signature() {
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let base = secret.sign("msg_1", 1_700_000_000, b"{\"a\":1}");
        assert_ne!(base, secret.sign("msg_2", 1_700_000_000, b"{\"a\":1}"));
        assert_ne!(base, secret.sign("msg_1", 1_700_000_001, b"{\"a\":1}"));
        assert_ne!(base, secret.sign("msg_1", 1_700_000_000, b"{\"a\":2}"));
        let other = WebhookSecret::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
        assert_ne!(base, other.sign("msg_1", 1_700_000_000, b"{\"a\":1}"));
        assert_eq!(base, secret.sign("msg_1", 1_700_000_000, b"{\"a\":1}"));
    }

    #[test]
    fn parses_file_text_padded_or_not() {
        let padded = "whsec_ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+f4CBgoM=\n";
        assert!(WebhookSecret::parse(padded).is_ok());
        assert!(WebhookSecret::parse(padded.trim().trim_end_matches('=')).is_ok());
        assert!(WebhookSecret::parse("  whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw  ").is_ok());
    }

    #[test]
    fn rejects_bad_secrets_with_a_how_to_and_without_the_text() {
        let cases = [
            ("", SecretError::Empty),
            (" \n", SecretError::Empty),
            (
                "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                SecretError::MissingPrefix,
            ),
            (
                "whsec_MfKQ9r8GKYqr-wjUPD8ILPZIo2LaLaSw",
                SecretError::NotBase64(String::new()),
            ),
            ("whsec_c2hvcnQ=", SecretError::TooShort(5)),
        ];
        for (text, expected) in cases {
            let err = WebhookSecret::parse(text).unwrap_err();
            assert_eq!(
                std::mem::discriminant(&err),
                std::mem::discriminant(&expected),
                "{text:?}: {err}"
            );
            let message = err.to_string();
            assert!(
                message.contains("head -c 32 /dev/urandom | base64"),
                "{message}"
            );
            if let Some(key) = text.trim().strip_prefix("whsec_") {
                assert!(!message.contains(key), "{message}");
            }
        }
        assert_eq!(
            WebhookSecret::parse("whsec_MfKQ9r8GKYqr-wjUPD8ILPZIo2LaLaSw").unwrap_err(),
            SecretError::NotBase64("invalid character at position 19".into())
        );
    }

    #[test]
    fn debug_never_shows_the_key() {
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let shown = format!("{secret:?}");
        assert_eq!(shown, "WebhookSecret(<24 bytes, redacted>)");
    }
}
