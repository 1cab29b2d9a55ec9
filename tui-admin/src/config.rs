//! Connection settings shared by the dashboard and the CLI subcommands: where
//! the server is, which admin secret to send, and the clients built from them.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use jsonrpsee::http_client::{HeaderMap, HeaderValue, HttpClient, HttpClientBuilder};
use jsonrpsee::ws_client::{WsClient, WsClientBuilder};

/// Env var holding the admin secret itself; it wins over `--secret-file`.
pub const SECRET_ENV: &str = "BILLING_ADMIN_SECRET";

/// How long one RPC call may take before it counts as failed, so a stuck
/// server shows up as an error instead of an endless spinner.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a ledger check (`R`, `V`) may take: a reconcile of millions of
/// records, after a running pass, takes far longer than a read.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(600);

/// What to check when the server cannot be reached, said by the CLI's error
/// and by the dashboard while it lasts.
pub const UNREACHABLE_ADVICE: &str = "check that rpc-server is running and --url is right";

/// The admin secret and where it came from (for error messages).
#[derive(Clone)]
pub struct Secret {
    value: String,
    /// `env BILLING_ADMIN_SECRET` or `file ./demo-data/admin.secret`.
    pub source: String,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret itself.
        f.debug_struct("Secret")
            .field("source", &self.source)
            .finish()
    }
}

impl Secret {
    /// Reads the secret from `env_value` if set, else from `file`.
    pub fn resolve(env_value: Option<String>, file: &Path) -> anyhow::Result<Self> {
        if let Some(value) = env_value.filter(|v| !v.trim().is_empty()) {
            return Ok(Self {
                value: value.trim().to_string(),
                source: format!("env {SECRET_ENV}"),
            });
        }
        let text = std::fs::read_to_string(file).with_context(|| {
            format!(
                "cannot read the admin secret from {}; pass --secret-file <path> or set {SECRET_ENV} \
                 (`rpc-server demo` writes one to ./demo-data/admin.secret)",
                file.display()
            )
        })?;
        let value = text.trim().to_string();
        if value.is_empty() {
            bail!(
                "the admin secret file {} is empty; write the server's admin secret into it or set {SECRET_ENV}",
                file.display()
            );
        }
        Ok(Self {
            value,
            source: format!("file {}", file.display()),
        })
    }

    /// A secret given directly (tests).
    pub fn literal(value: &str, source: &str) -> Self {
        Self {
            value: value.to_string(),
            source: source.to_string(),
        }
    }

    fn headers(&self) -> anyhow::Result<HeaderMap> {
        let mut headers = HeaderMap::new();
        let value =
            HeaderValue::from_str(&format!("Bearer {}", self.value)).with_context(|| {
                format!(
                    "the admin secret from {} contains characters not allowed in an HTTP header; \
                 use the secret exactly as the server generated it",
                    self.source
                )
            })?;
        headers.insert("authorization", value);
        Ok(headers)
    }
}

/// Everything needed to talk to the server.
#[derive(Debug, Clone)]
pub struct Connection {
    /// `http://host:port` as given by `--url`.
    pub url: String,
    pub secret: Secret,
}

impl Connection {
    pub fn http_client(&self) -> anyhow::Result<HttpClient> {
        self.http_client_with(REQUEST_TIMEOUT)
    }

    /// A client whose calls may take up to `timeout`.
    pub fn http_client_with(&self, timeout: Duration) -> anyhow::Result<HttpClient> {
        HttpClientBuilder::default()
            .set_headers(self.secret.headers()?)
            .request_timeout(timeout)
            .build(&self.url)
            .with_context(|| {
                format!(
                    "cannot build an HTTP client for --url {}; use http://host:port",
                    self.url
                )
            })
    }

    /// The WebSocket URL on the same port (`http` → `ws`, `https` → `wss`).
    pub fn ws_url(&self) -> String {
        if let Some(rest) = self.url.strip_prefix("https://") {
            format!("wss://{rest}")
        } else if let Some(rest) = self.url.strip_prefix("http://") {
            format!("ws://{rest}")
        } else {
            self.url.clone()
        }
    }

    pub async fn ws_client(&self) -> anyhow::Result<WsClient> {
        let url = self.ws_url();
        WsClientBuilder::default()
            .set_headers(self.secret.headers()?)
            .request_timeout(REQUEST_TIMEOUT)
            .connection_timeout(Duration::from_secs(5))
            .build(&url)
            .await
            .with_context(|| format!("cannot open a WebSocket to {url}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_secret_wins_over_file() {
        let secret = Secret::resolve(
            Some("s3cret-s3cret-s3cret".into()),
            Path::new("/nonexistent"),
        )
        .unwrap();
        assert_eq!(secret.source, "env BILLING_ADMIN_SECRET");
    }

    #[test]
    fn missing_file_says_what_to_do() {
        let err = Secret::resolve(None, Path::new("/nonexistent/admin.secret")).unwrap_err();
        let text = format!("{err:#}");
        assert!(text.contains("/nonexistent/admin.secret"), "{text}");
        assert!(text.contains("--secret-file"), "{text}");
    }

    #[test]
    fn ws_url_follows_http_scheme() {
        let conn = Connection {
            url: "http://127.0.0.1:8787".into(),
            secret: Secret::literal("x", "test"),
        };
        assert_eq!(conn.ws_url(), "ws://127.0.0.1:8787");
    }

    #[test]
    fn debug_hides_the_secret() {
        let secret = Secret::literal("do-not-print-me", "test");
        assert!(!format!("{secret:?}").contains("do-not-print-me"));
    }
}
