//! The JSON-RPC server: HTTP and WebSocket on one port, behind the auth layer.

mod api;
mod auth;
mod backup;
pub mod discover;
mod envelope;
mod error;
mod metrics;
mod notifications;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;

use billing_api::rpc::BillingApiServer;
use jsonrpsee::RpcModule;
use jsonrpsee::server::middleware::rpc::RpcServiceBuilder;
use jsonrpsee::server::{Server, ServerConfig, ServerHandle};

pub use crate::secret::{AdminSecret, MIN_SECRET_BYTES};
pub use api::BillingRpc;

use crate::aggregate::Aggregator;

/// Largest accepted request body.
const MAX_REQUEST_BYTES: u32 = 1024 * 1024;
/// Largest answer (jsonrpsee's default).
const MAX_RESPONSE_BYTES: u32 = 10 * 1024 * 1024;

/// The registered methods, for the server and for in-process tests.
pub fn module(aggregator: Aggregator) -> RpcModule<BillingRpc> {
    BillingRpc::new(aggregator).into_rpc()
}

/// Starts serving on `listener` and returns its address and a handle to stop it.
pub async fn start(
    listener: std::net::TcpListener,
    aggregator: Aggregator,
    secret: AdminSecret,
) -> anyhow::Result<(SocketAddr, ServerHandle)> {
    listener.set_nonblocking(true)?;
    // Auth first: nothing of an unauthorized request's body is read.
    let http = tower::ServiceBuilder::new()
        .layer(auth::AuthLayer::new(secret, aggregator.store().clone()))
        .layer(envelope::EnvelopeLayer::new(MAX_REQUEST_BYTES));
    let config = ServerConfig::builder()
        .max_request_body_size(MAX_REQUEST_BYTES)
        .max_response_body_size(MAX_RESPONSE_BYTES)
        .max_connections(1024)
        .build();
    let module = module(aggregator.clone());
    let methods: Arc<HashSet<&'static str>> = Arc::new(module.method_names().collect());
    let counted = aggregator.metrics().clone();
    let rpc = RpcServiceBuilder::new()
        .layer_fn(notifications::RefuseNotifications)
        .layer_fn(move |service| {
            metrics::CountCalls::new(
                service,
                counted.clone(),
                methods.clone(),
                MAX_RESPONSE_BYTES as usize,
            )
        });
    let server = Server::builder()
        .set_config(config)
        .set_http_middleware(http)
        .set_rpc_middleware(rpc)
        .build_from_tcp(listener)?;
    let addr = server.local_addr()?;
    let handle = server.start(module);
    Ok((addr, handle))
}
