//! One signed delivery attempt: a JSON POST with the Standard Webhooks headers.

use std::time::Duration;

use reqwest::Url;
use reqwest::header::CONTENT_TYPE;

use super::sign::{HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, WebhookSecret};

/// The `user-agent` of every delivery.
pub const USER_AGENT: &str = concat!("billing-aggregator/", env!("CARGO_PKG_VERSION"));

/// At most this much of a receiver's answer is read (then dropped).
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// The receiver answered 2xx: the event is delivered.
    Delivered { status: u16 },
    /// The receiver answered something else (redirects are not followed).
    Refused { status: u16 },
    /// No answer: cannot connect, timed out, or the exchange broke. `reason`
    /// is one line, without the URL's credentials and without the secret.
    Unreachable { reason: String },
}

impl SendOutcome {
    pub fn is_delivered(&self) -> bool {
        matches!(self, Self::Delivered { .. })
    }

    /// The receiver's status, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Delivered { status } | Self::Refused { status } => Some(*status),
            Self::Unreachable { .. } => None,
        }
    }
}

/// Signs and posts events; cheap to share (`reqwest::Client` pools connections).
#[derive(Debug, Clone)]
pub struct Sender {
    client: reqwest::Client,
    secret: WebhookSecret,
    timeout: Duration,
}

impl Sender {
    /// `timeout` bounds each whole attempt, connecting included.
    pub fn new(secret: WebhookSecret, timeout: Duration) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(USER_AGENT)
            .build()?;
        Ok(Self {
            client,
            secret,
            timeout,
        })
    }

    /// POSTs `body` (JSON) to `url`, signed for `id` at `timestamp` (unix
    /// seconds; a fresh one per attempt, the same `id` on every retry).
    pub async fn send(&self, url: &Url, id: &str, timestamp: u64, body: &[u8]) -> SendOutcome {
        let request = self
            .client
            .post(url.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(HEADER_ID, id)
            .header(HEADER_TIMESTAMP, timestamp.to_string())
            .header(HEADER_SIGNATURE, self.secret.sign(id, timestamp, body))
            .body(body.to_vec());
        let mut response = match request.send().await {
            Ok(response) => response,
            Err(e) => {
                return SendOutcome::Unreachable {
                    reason: unreachable_reason(e, url, self.timeout),
                };
            }
        };
        let status = response.status();
        // The answer's content does not matter; reading some of it lets the
        // connection be reused. A broken answer body still counts as answered.
        let mut read = 0;
        while read < MAX_ANSWER_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => read += chunk.len(),
                Ok(None) | Err(_) => break,
            }
        }
        let status_code = status.as_u16();
        if status.is_success() {
            SendOutcome::Delivered {
                status: status_code,
            }
        } else {
            SendOutcome::Refused {
                status: status_code,
            }
        }
    }
}

fn unreachable_reason(e: reqwest::Error, url: &Url, timeout: Duration) -> String {
    let kind = if e.is_timeout() {
        format!("timed out after {}", humantime::format_duration(timeout))
    } else if e.is_connect() {
        "cannot connect".to_string()
    } else if e.is_builder() {
        "invalid request".to_string()
    } else {
        "request failed".to_string()
    };
    let e = e.without_url();
    let mut reason = format!("{kind}: {}", billing_api::text::error_chain(&e));
    // `without_url` is the guarantee; this catches a URL echoed by a cause.
    for credential in [url.password().unwrap_or(""), url.username()] {
        if credential.len() >= 3 {
            reason = reason.replace(credential, "***");
        }
    }
    reason
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_report_status_and_delivery() {
        assert!(SendOutcome::Delivered { status: 204 }.is_delivered());
        assert_eq!(SendOutcome::Refused { status: 500 }.status(), Some(500));
        let down = SendOutcome::Unreachable {
            reason: "cannot connect".into(),
        };
        assert!(!down.is_delivered());
        assert_eq!(down.status(), None);
    }

    #[tokio::test]
    async fn an_unreachable_reason_has_no_credentials() {
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let sender = Sender::new(secret, Duration::from_secs(2)).unwrap();
        // Bind then drop, so the port is (almost certainly) closed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = Url::parse(&format!("http://alice:hunter2-pass@127.0.0.1:{port}/hook")).unwrap();
        let outcome = sender.send(&url, "msg_1", 1_700_000_000, b"{}").await;
        let SendOutcome::Unreachable { reason } = outcome else {
            panic!("expected unreachable, got {outcome:?}");
        };
        assert!(reason.starts_with("cannot connect"), "{reason}");
        for hidden in ["alice", "hunter2", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"] {
            assert!(!reason.contains(hidden), "{reason}");
        }
    }
}
