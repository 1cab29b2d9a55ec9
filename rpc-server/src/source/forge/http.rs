//! The forge client's requests: one GET with its timeout, retried with
//! exponential backoff and jitter on 429, 5xx, timeouts and connection
//! errors, honouring `Retry-After`; the answer decoded as JSON.

use std::time::Duration;

use rand::RngExt as _;
use reqwest::header::{AUTHORIZATION, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use serde::de::DeserializeOwned;

use super::Inner;
use crate::source::SourceError;

/// One attempt's outcome that the retry loop acts on.
pub(super) enum Attempt {
    Done(Vec<u8>),
    NotFound,
    Retry {
        why: String,
        after: Option<Duration>,
    },
    Fail(SourceError),
}

impl Inner {
    /// GETs and decodes JSON; `Ok(None)` on 404.
    pub(super) async fn get_json<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
        what: &str,
    ) -> Result<Option<T>, SourceError> {
        let url = self.url(segments, query);
        let Some(body) = self.get_with_retries(&url, what).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&body).map(Some).map_err(|e| {
            let start = String::from_utf8_lossy(&body[..body.len().min(60)]).into_owned();
            self.error(format!(
                "reading {what}: GET {} returned a body that is not the expected JSON ({e}; \
                 {} bytes, starting {start:?}); the answer was cut or came from something that is \
                 not the forge API (proxy, login page): check --forge-url",
                url.path(),
                body.len()
            ))
        })
    }

    pub(super) async fn get_with_retries(
        &self,
        url: &Url,
        what: &str,
    ) -> Result<Option<Vec<u8>>, SourceError> {
        let max_attempts = self.options.max_attempts.max(1);
        let mut attempt = 1;
        loop {
            let (why, after) = match self.attempt(url, what).await {
                Attempt::Done(body) => return Ok(Some(body)),
                Attempt::NotFound => return Ok(None),
                Attempt::Fail(e) => return Err(e),
                Attempt::Retry { why, after } => (why, after),
            };
            if attempt >= max_attempts {
                return Err(self.error(format!(
                    "reading {what}: GET {} failed after {attempt} attempts, last: {why}; \
                     check that the forge is reachable and healthy, the next pass retries",
                    url.path()
                )));
            }
            let delay = match after {
                Some(after) if after > self.options.retry_after_max => {
                    return Err(self.error(format!(
                        "reading {what}: the forge asks to wait {}s (Retry-After) which is more \
                         than the {}s allowed; the next pass retries",
                        after.as_secs(),
                        self.options.retry_after_max.as_secs()
                    )));
                }
                Some(after) => after,
                None => self.backoff(attempt),
            };
            tracing::debug!(path = url.path(), attempt, %why, ?delay, "retrying forge request");
            tokio::time::sleep(delay).await;
            self.stats.retried();
            attempt += 1;
        }
    }

    /// The wait before retry `attempt` (1-based), with random jitter.
    pub(super) fn backoff(&self, attempt: u32) -> Duration {
        let unit = rand::rng().random::<f64>();
        backoff_delay(
            self.options.backoff_base,
            self.options.backoff_max,
            attempt,
            unit,
        )
    }

    pub(super) async fn attempt(&self, url: &Url, what: &str) -> Attempt {
        let mut request = self
            .client
            .get(url.clone())
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(auth) = &self.auth {
            request = request.header(AUTHORIZATION, auth.clone());
        }
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                self.stats.failed();
                return Attempt::Retry {
                    why: transport(&e),
                    after: None,
                };
            }
        };
        let status = response.status();
        self.stats.answered(status.as_u16());
        if status.is_success() {
            return match response.bytes().await {
                Ok(body) => Attempt::Done(body.to_vec()),
                // A body cut by a dropped connection or a timeout is transient.
                Err(e) => Attempt::Retry {
                    why: format!("the answer body was cut: {}", transport(&e)),
                    after: None,
                },
            };
        }
        let after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(retry_after);
        let message = forge_message(response).await;
        let path = url.path();
        match status {
            StatusCode::NOT_FOUND => Attempt::NotFound,
            // A forge without the batch blob endpoint may refuse the method there.
            StatusCode::METHOD_NOT_ALLOWED if path.ends_with("/git/blobs") => Attempt::NotFound,
            // Forgejo answers an unknown tree or blob sha with 400 ("sha not found").
            StatusCode::BAD_REQUEST if path.contains("/git/trees/") || path.contains("/git/blobs/") => {
                Attempt::NotFound
            }
            s if s == StatusCode::TOO_MANY_REQUESTS
                || s == StatusCode::REQUEST_TIMEOUT
                || s.is_server_error() =>
            {
                Attempt::Retry {
                    why: format!("{status}{message}"),
                    after,
                }
            }
            StatusCode::UNAUTHORIZED => Attempt::Fail(self.error(format!(
                "reading {what}: the forge rejected the credentials (401 Unauthorized on GET {path}{message}); {}",
                if self.auth.is_some() {
                    "check that the token in --forge-token-file or BILLING_FORGE_TOKEN is valid and not expired"
                } else {
                    "no token is configured: set --forge-token-file or BILLING_FORGE_TOKEN"
                }
            ))),
            StatusCode::FORBIDDEN => Attempt::Fail(self.error(format!(
                "reading {what}: access denied (403 Forbidden on GET {path}{message}); check that \
                 the token's user can read the repository and the token has the read:repository scope"
            ))),
            _ => Attempt::Fail(self.error(format!(
                "reading {what}: GET {path} answered {status}{message}"
            ))),
        }
    }
}

/// A `Retry-After` value: seconds, or an HTTP date (as a proxy may send);
/// a date in the past means now.
fn retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// `: <message>` from a forge error body, bounded, or nothing.
async fn forge_message(response: reqwest::Response) -> String {
    let Ok(body) = response.bytes().await else {
        return String::new();
    };
    let message = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| {
            v.get("message")
                .and_then(|m| m.as_str())
                .map(str::to_string)
        });
    match message {
        Some(m) if !m.is_empty() => format!(": {}", m.chars().take(200).collect::<String>()),
        _ => String::new(),
    }
}

fn transport(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else if e.is_body() || e.is_decode() {
        "body error"
    } else {
        "request error"
    };
    format!("{kind}: {}", billing_api::text::error_chain(e))
}

/// Exponential backoff with jitter: d = base * 2^(attempt-1), at most `max`,
/// and the delay is d/2 + `unit` * d/2 for a random `unit` in [0, 1), so in
/// [d/2, d].
fn backoff_delay(base: Duration, max: Duration, attempt: u32, unit: f64) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
    let half = exp.min(max) / 2;
    half + half.mul_f64(unit.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::backoff_delay;
    use std::time::Duration;

    #[test]
    fn backoff_doubles_from_the_base_up_to_the_cap_with_jitter_in_the_upper_half() {
        let (base, max) = (Duration::from_millis(500), Duration::from_secs(30));
        let ms = |attempt, unit| backoff_delay(base, max, attempt, unit).as_millis();
        // Full delay d = 500 ms, 1 s, 2 s, 4 s … 30 s; the delay lies in [d/2, d].
        assert_eq!((ms(1, 0.0), ms(1, 1.0)), (250, 500));
        assert_eq!((ms(2, 0.0), ms(2, 1.0)), (500, 1000));
        assert_eq!((ms(3, 0.5), ms(4, 0.5)), (1500, 3000));
        assert_eq!((ms(7, 0.0), ms(7, 1.0)), (15_000, 30_000), "capped at 30 s");
        assert_eq!(ms(40, 1.0), 30_000, "no overflow for large attempt numbers");
        assert_eq!(ms(0, 1.0), 500, "attempt 0 counts as the first");
    }
}
