//! The admin secret that every JSON-RPC call must present: read by the
//! configuration, checked by the RPC layer (`rpc/auth.rs`).

use std::sync::Arc;

use subtle::ConstantTimeEq;

/// The admin secret; `Debug` never shows it.
#[derive(Clone)]
pub struct AdminSecret(Arc<[u8]>);

/// Shortest accepted admin secret, in bytes.
pub const MIN_SECRET_BYTES: usize = 16;

impl AdminSecret {
    /// Accepts a secret of at least [`MIN_SECRET_BYTES`] bytes (surrounding whitespace trimmed).
    pub fn new(secret: &str, from: &str) -> Result<Self, String> {
        let secret = secret.trim();
        if secret.len() < MIN_SECRET_BYTES {
            return Err(format!(
                "the admin secret from {from} is {} bytes; it must be at least {MIN_SECRET_BYTES}. \
                 Generate one with e.g. `head -c 32 /dev/urandom | base64 > admin.secret`",
                secret.len()
            ));
        }
        Ok(Self(Arc::from(secret.as_bytes())))
    }

    /// The `Authorization` header value that carries this secret, marked
    /// sensitive (never printed by the HTTP client's debug output).
    pub fn authorization(&self) -> http::HeaderValue {
        let mut value = http::HeaderValue::from_bytes(&[b"Bearer ", &*self.0].concat())
            .expect("a secret read from text is a valid header value");
        value.set_sensitive(true);
        value
    }

    /// Constant-time check of an `Authorization` header value.
    pub fn accepts(&self, header: Option<&[u8]>) -> bool {
        let Some(token) = header.and_then(|h| h.strip_prefix(b"Bearer ")) else {
            return false;
        };
        bool::from(token.ct_eq(&self.0))
    }
}

impl std::fmt::Debug for AdminSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminSecret(<redacted>)")
    }
}
