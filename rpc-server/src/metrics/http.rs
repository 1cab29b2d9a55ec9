//! `GET /metrics` on its own port (`--metrics-listen`): the API port needs
//! the secret, a Prometheus scraper should not.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;

use anyhow::Context;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::aggregate::Aggregator;

/// The Prometheus text format's content type.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Binds `addr` for the metrics endpoint.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| {
        format!(
            "cannot listen for metrics on {addr}; is another process using it? pick another \
             --metrics-listen address"
        )
    })
}

/// Serves `GET /metrics` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    aggregator: Aggregator,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let aggregator = aggregator.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        answer(aggregator.clone(), request)
                    });
                    // A scraper that hangs up early is not an error of ours.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            () = &mut shutdown => break,
        }
    }
}

async fn answer<B>(
    aggregator: Aggregator,
    request: Request<B>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path();
    let response = match (request.method(), path) {
        (&Method::GET, "/metrics") => {
            let body = super::scrape::scrape(&aggregator).await;
            Response::builder()
                .header(header::CONTENT_TYPE, TEXT_FORMAT)
                .body(Full::new(Bytes::from(body)))
        }
        (_, "/metrics") => Response::builder()
            .status(StatusCode::METHOD_NOT_ALLOWED)
            .header(header::ALLOW, "GET")
            .body(Full::new(Bytes::from_static(b"use GET /metrics\n"))),
        _ => Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(Full::new(Bytes::from(format!(
                "{path} is not served here; the metrics are at GET /metrics\n"
            )))),
    };
    Ok(response.expect("a response built from valid parts"))
}

/// The address a bound metrics listener serves on.
pub fn local_addr(listener: &TcpListener) -> anyhow::Result<SocketAddr> {
    listener
        .local_addr()
        .context("the metrics listener has no address")
}
