//! JSON-RPC middleware counting and timing every answered call, by method and
//! result, for `billing_rpc_requests_total` and
//! `billing_rpc_request_duration_seconds`. Calls inside a batch count one by
//! one. A method name that is not registered is counted as `other`, so a
//! caller cannot make up label values.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use jsonrpsee::core::server::BatchResponseBuilder;
use jsonrpsee::server::MethodResponse;
use jsonrpsee::server::middleware::rpc::{Batch, BatchEntry, Notification, RpcServiceT};
use jsonrpsee::types::Request;

use crate::metrics::Metrics;

/// Label of calls to methods that are not registered.
const OTHER: &str = "other";

#[derive(Clone)]
pub struct CountCalls<S> {
    inner: S,
    metrics: Metrics,
    methods: Arc<HashSet<&'static str>>,
    max_response_bytes: usize,
}

impl<S> CountCalls<S> {
    pub fn new(
        inner: S,
        metrics: Metrics,
        methods: Arc<HashSet<&'static str>>,
        max_response_bytes: usize,
    ) -> Self {
        Self {
            inner,
            metrics,
            methods,
            max_response_bytes,
        }
    }
}

impl<S> RpcServiceT for CountCalls<S>
where
    S: RpcServiceT<
            MethodResponse = MethodResponse,
            BatchResponse = MethodResponse,
            NotificationResponse = MethodResponse,
        > + Clone
        + Send
        + Sync
        + 'static,
{
    type MethodResponse = MethodResponse;
    type NotificationResponse = MethodResponse;
    type BatchResponse = MethodResponse;

    fn call<'a>(&self, request: Request<'a>) -> impl Future<Output = MethodResponse> + Send + 'a {
        let method = self
            .methods
            .get(request.method_name())
            .copied()
            .unwrap_or(OTHER);
        let metrics = self.metrics.clone();
        let started = Instant::now();
        let answer = self.inner.call(request);
        async move {
            let response = answer.await;
            metrics.rpc_answered(method, response.is_success(), started.elapsed());
            response
        }
    }

    /// Each call of the batch goes through [`Self::call`], as the server's
    /// own batch handling would send it to the method.
    fn batch<'a>(&self, batch: Batch<'a>) -> impl Future<Output = MethodResponse> + Send + 'a {
        let this = self.clone();
        async move {
            let mut answers = BatchResponseBuilder::new_with_limit(this.max_response_bytes);
            for entry in batch.into_iter() {
                let answer = match entry {
                    Ok(BatchEntry::Call(request)) => this.call(request).await,
                    Ok(BatchEntry::Notification(n)) => {
                        // Refused before this layer (`notifications.rs`); answered as it answers.
                        this.inner.notification(n).await;
                        continue;
                    }
                    Err(e) => {
                        let (e, id) = e.into_parts();
                        MethodResponse::error(id, e)
                    }
                };
                if let Err(too_large) = answers.append(answer) {
                    return too_large;
                }
            }
            MethodResponse::from_batch(answers.finish())
        }
    }

    fn notification<'a>(
        &self,
        n: Notification<'a>,
    ) -> impl Future<Output = MethodResponse> + Send + 'a {
        self.inner.notification(n)
    }
}
