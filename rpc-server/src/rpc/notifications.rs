//! JSON-RPC middleware answering notifications with an error instead of
//! dropping them, on every transport. Over HTTP the envelope check
//! (`envelope.rs`) refuses them first, with HTTP 400; this catches them on
//! WebSocket, where jsonrpsee reads a call whose `id` it cannot take (an
//! object, a negative number, …) as a notification too. A batch holding one
//! is refused whole and nothing in it runs.

use std::future::Future;

use jsonrpsee::server::MethodResponse;
use jsonrpsee::server::middleware::rpc::{Batch, BatchEntry, Notification, RpcServiceT};
use jsonrpsee::types::{Id, Request};

use super::envelope::Unanswerable;
use super::error::{unanswerable_batch, unanswerable_call};

/// Wraps the RPC service; build with `RpcServiceBuilder::new().layer_fn(RefuseNotifications)`.
#[derive(Clone, Debug)]
pub struct RefuseNotifications<S>(pub S);

fn without_usable_id(method: &str) -> Unanswerable {
    Unanswerable::NoUsableId {
        method: method.to_string(),
    }
}

impl<S> RpcServiceT for RefuseNotifications<S>
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
        self.0.call(request)
    }

    fn batch<'a>(&self, batch: Batch<'a>) -> impl Future<Output = MethodResponse> + Send + 'a {
        let refused: Vec<(usize, Unanswerable)> = batch
            .iter()
            .enumerate()
            .filter_map(|(i, entry)| match entry {
                Ok(BatchEntry::Notification(n)) => Some((i, without_usable_id(n.method_name()))),
                _ => None,
            })
            .collect();
        let inner = self.0.clone();
        async move {
            if refused.is_empty() {
                inner.batch(batch).await
            } else {
                MethodResponse::error(Id::Null, unanswerable_batch(&refused))
            }
        }
    }

    fn notification<'a>(
        &self,
        n: Notification<'a>,
    ) -> impl Future<Output = MethodResponse> + Send + 'a {
        let error = unanswerable_call(&without_usable_id(n.method_name()));
        async move { MethodResponse::error(Id::Null, error) }
    }
}
