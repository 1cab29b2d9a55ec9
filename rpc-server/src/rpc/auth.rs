//! HTTP layer in front of every JSON-RPC call and WebSocket upgrade: answers
//! `GET /health` without auth (200, or 503 with the reason while the ledger
//! fails) and requires `Authorization: Bearer <secret>`
//! for everything else, `GET /backup` (see `backup.rs`) included. The secret is compared in constant time and never logged.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use jsonrpsee::core::BoxError;
use jsonrpsee::server::{HttpBody, HttpRequest, HttpResponse};
use tower::{Layer, Service};

use crate::secret::AdminSecret;
use crate::store::Store;

/// Tower layer wrapping the JSON-RPC service.
#[derive(Clone, Debug)]
pub struct AuthLayer {
    secret: AdminSecret,
    store: Store,
}

impl AuthLayer {
    /// `store` is asked for its health on `GET /health`.
    pub fn new(secret: AdminSecret, store: Store) -> Self {
        Self { secret, store }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Auth<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Auth {
            inner,
            secret: self.secret.clone(),
            store: self.store.clone(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Auth<S> {
    inner: S,
    secret: AdminSecret,
    store: Store,
}

impl<S, B> Service<HttpRequest<B>> for Auth<S>
where
    S: Service<HttpRequest<B>, Response = HttpResponse>,
    S::Error: Into<BoxError> + 'static,
    S::Future: Send + 'static,
{
    type Response = HttpResponse;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: HttpRequest<B>) -> Self::Future {
        if request.method() == http::Method::GET && request.uri().path() == "/health" {
            let response = health(&self.store);
            return Box::pin(async { Ok(response) });
        }
        let header = request
            .headers()
            .get(http::header::AUTHORIZATION)
            .map(|v| v.as_bytes());
        if !self.secret.accepts(header) {
            return Box::pin(async { Ok(unauthorized()) });
        }
        if request.method() == http::Method::GET && request.uri().path() == "/backup" {
            // `?unchecked=1`: for `rpc-server verify`, which checks the snapshot itself.
            let check = !request
                .uri()
                .query()
                .is_some_and(|q| q.split('&').any(|p| p == "unchecked=1"));
            return Box::pin(super::backup::respond(self.store.clone(), check));
        }
        let future = self.inner.call(request);
        Box::pin(async move { future.await.map_err(Into::into) })
    }
}

pub(super) fn json_response(status: http::StatusCode, body: String) -> HttpResponse {
    http::Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::WWW_AUTHENTICATE, "Bearer")
        .body(HttpBody::from(body))
        .expect("static response parts are valid")
}

/// 200 `{"status":"ok"}`, or 503 `{"status":"failing","reason":…}` while the
/// ledger's storage fails or its counters disagree with its rows.
fn health(store: &Store) -> HttpResponse {
    match store.problem() {
        None => {
            let body = serde_json::json!({
                "status": "ok",
                "service": "billing-aggregator",
                "version": env!("CARGO_PKG_VERSION"),
            });
            json_response(http::StatusCode::OK, body.to_string())
        }
        Some(reason) => {
            let body = serde_json::json!({
                "status": "failing",
                "reason": reason,
                "service": "billing-aggregator",
                "version": env!("CARGO_PKG_VERSION"),
            });
            json_response(http::StatusCode::SERVICE_UNAVAILABLE, body.to_string())
        }
    }
}

fn unauthorized() -> HttpResponse {
    let body = serde_json::json!({
        "error": "unauthorized",
        "message": "missing or wrong admin secret: send the header `Authorization: Bearer <secret>` \
                    with the secret the server was started with (--admin-secret-file or BILLING_ADMIN_SECRET)",
    });
    json_response(http::StatusCode::UNAUTHORIZED, body.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_the_exact_bearer_secret() {
        let secret = AdminSecret::new("0123456789abcdef-secret", "test").unwrap();
        assert!(secret.accepts(Some(b"Bearer 0123456789abcdef-secret")));
        assert!(!secret.accepts(Some(b"Bearer 0123456789abcdef-secreT")));
        assert!(!secret.accepts(Some(b"Bearer 0123456789abcdef-secret ")));
        assert!(!secret.accepts(Some(b"0123456789abcdef-secret")));
        assert!(!secret.accepts(Some(b"Basic 0123456789abcdef-secret")));
        assert!(!secret.accepts(None));
    }

    #[test]
    fn refuses_short_secrets_and_redacts_debug() {
        let err = AdminSecret::new("short", "BILLING_ADMIN_SECRET").unwrap_err();
        assert!(
            err.contains("BILLING_ADMIN_SECRET") && err.contains("at least 16"),
            "{err}"
        );
        let secret = AdminSecret::new("0123456789abcdef", "test").unwrap();
        assert!(!format!("{secret:?}").contains("0123"));
    }
}
