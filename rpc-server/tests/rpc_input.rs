//! Hostile and malformed JSON-RPC input against a real server on
//! 127.0.0.1:0, over real HTTP: control characters in client text, oversize
//! chunked bodies, notifications and invalid ids (single and in batches), and
//! how much of the input an error quotes back.

mod common;

use billing_api::error_codes;
use billing_api::rpc::BillingApiClient;
use common::*;
use jsonrpsee::core::ClientError;
use jsonrpsee::types::ErrorObjectOwned;
use serde_json::{Value, json};

/// Characters that act on a terminal or reorder text, as (char, code point).
const HOSTILE: &[(char, &str)] = &[
    ('\0', "U+0000"),
    ('\x07', "U+0007"),
    ('\x1b', "U+001B"),
    ('\r', "U+000D"),
    ('\u{9b}', "U+009B"),
    ('\u{202E}', "U+202E"),
    ('\u{2067}', "U+2067"),
];

fn call_error(e: ClientError) -> ErrorObjectOwned {
    match e {
        ClientError::Call(obj) => obj,
        other => panic!("expected a JSON-RPC error, got {other:?}"),
    }
}

/// Asserts an invalid-params error naming `field` and `code_point`, with no
/// unsafe character in its text.
fn assert_refused_char(err: ErrorObjectOwned, field: &str, code_point: &str) {
    let msg = err.message();
    assert_eq!(err.code(), error_codes::INVALID_PARAMS, "{msg}");
    assert!(
        msg.contains(field) && msg.contains(code_point),
        "names the field and code point: {msg}"
    );
    assert!(
        !msg.chars().any(billing_api::text::is_unsafe_char),
        "no raw control character: {msg:?}"
    );
}

fn parse(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

fn payment_call(id: Option<Value>, payment_id: &str) -> Value {
    let mut call = json!({
        "jsonrpc": "2.0",
        "method": "record_payment",
        "params": {"payment_id": payment_id, "user_sid": "u-1", "amount_cents": 500},
    });
    if let Some(id) = id {
        call["id"] = id;
    }
    call
}

async fn started_with_user() -> (NodeRepo, TestServer) {
    let repo = NodeRepo::new();
    let server = TestServer::start(repo.path()).await;
    server
        .client()
        .register_user("u-1".into(), None, None)
        .await
        .unwrap();
    (repo, server)
}

async fn payment_count(server: &TestServer) -> usize {
    let page = server.client().list_payments(None, None, None).await;
    page.unwrap().items.len()
}

#[tokio::test]
async fn control_and_bidi_characters_are_refused_in_every_client_text_field() {
    let (_repo, server) = started_with_user().await;
    let client = server.client();
    for &(c, code_point) in HOSTILE {
        let bad = format!("x{c}[31my");
        let ok = || "fine".to_string();
        let cases = [
            ("user_sid", client.register_user(bad.clone(), None, None)),
            (
                "display_name",
                client.register_user("u-2".into(), Some(bad.clone()), None),
            ),
            (
                "email",
                client.register_user("u-2".into(), None, Some(bad.clone())),
            ),
        ];
        for (field, call) in cases {
            assert_refused_char(call_error(call.await.unwrap_err()), field, code_point);
        }
        let payments = [
            (
                "payment_id",
                client.record_payment(bad.clone(), "u-1".into(), 5, None, None),
            ),
            (
                "user_sid",
                client.record_payment(ok(), bad.clone(), 5, None, None),
            ),
            (
                "kind",
                client.record_payment(ok(), "u-1".into(), 5, Some(bad.clone()), None),
            ),
            (
                "reference",
                client.record_payment(ok(), "u-1".into(), 5, None, Some(bad.clone())),
            ),
        ];
        for (field, call) in payments {
            assert_refused_char(call_error(call.await.unwrap_err()), field, code_point);
        }
    }
    // Nothing was stored: only u-1, no payment.
    let users = client.list_users(None, None, None, None).await.unwrap();
    assert_eq!(users.items.len(), 1, "{:?}", users.items);
    assert_eq!(payment_count(&server).await, 0);
    // Ordinary non-ASCII text still goes in.
    let user = client
        .register_user("u-3".into(), Some("Zoë 漢字".into()), None)
        .await
        .unwrap();
    assert_eq!(user.display_name.as_deref(), Some("Zoë 漢字"));
}

#[tokio::test]
async fn lookups_refuse_malformed_sids_without_quoting_them_raw() {
    let (_repo, server) = started_with_user().await;
    let client = server.client();
    for &(c, code_point) in HOSTILE {
        let bad = format!("u{c}[2J");
        let errors = [
            client.get_balance(bad.clone()).await.unwrap_err(),
            client
                .list_payments(Some(bad.clone()), None, None)
                .await
                .unwrap_err(),
            client
                .list_consumed(Some(bad.clone()), None, None, None, None)
                .await
                .unwrap_err(),
        ];
        for err in errors {
            assert_refused_char(call_error(err), "user_sid", code_point);
        }
    }
    // A 100 KB sid is refused by its length, not quoted back.
    let huge = "u".repeat(100 * 1024);
    let err = call_error(client.get_balance(huge.clone()).await.unwrap_err());
    assert_eq!(err.code(), error_codes::INVALID_PARAMS, "{}", err.message());
    assert!(err.message().len() < 500, "{}", err.message());
    assert!(err.message().contains("user_sid"), "{}", err.message());
}

#[tokio::test]
async fn error_messages_quote_at_most_200_bytes_of_input_with_controls_escaped() {
    let (_repo, server) = started_with_user().await;
    let client = server.client();
    let huge = format!("\x1b[2J{}", "9x".repeat(50 * 1024));
    let errors = [
        client
            .list_payments(None, Some(huge.clone()), None)
            .await
            .unwrap_err(),
        client
            .list_consumed(Some("u-1".into()), Some(huge.clone()), None, None, None)
            .await
            .unwrap_err(),
        client
            .list_consumed(None, Some(huge.clone()), None, None, None)
            .await
            .unwrap_err(),
        client
            .list_rejected(Some(huge.clone()), None)
            .await
            .unwrap_err(),
        client
            .list_runs(Some(huge.clone()), None)
            .await
            .unwrap_err(),
        client
            .list_users(Some(huge.clone()), None, None, None)
            .await
            .unwrap_err(),
    ];
    for err in errors {
        let err = call_error(err);
        let msg = err.message();
        assert_eq!(err.code(), error_codes::INVALID_PARAMS, "{msg}");
        assert!(msg.contains("cursor"), "{msg}");
        // 200 bytes of input plus the sentence around it.
        assert!(msg.len() < 600, "{} bytes: {}", msg.len(), &msg[..600]);
        assert!(!msg.contains('\x1b'), "{msg:?}");
    }
    // A bad seq cursor is quoted, escaped and cut, with its full length.
    let err = call_error(
        client
            .list_payments(None, Some(huge.clone()), None)
            .await
            .unwrap_err(),
    );
    assert!(
        err.message().contains(r"\u{1B}[2J9x9x"),
        "{}",
        err.message()
    );
    assert!(
        err.message()
            .contains(&format!("({} bytes in all)", huge.len())),
        "{}",
        err.message()
    );
}

#[tokio::test]
async fn a_conflict_prints_payment_values_as_a_person_writes_them() {
    let (_repo, server) = started_with_user().await;
    let client = server.client();
    client
        .record_payment(
            "p-1".into(),
            "u-1".into(),
            500,
            None,
            Some("invoice 17".into()),
        )
        .await
        .unwrap();
    let err = call_error(
        client
            .record_payment("p-1".into(), "u-1".into(), 600, None, None)
            .await
            .unwrap_err(),
    );
    let msg = err.message();
    assert_eq!(err.code(), error_codes::CONFLICT, "{msg}");
    assert!(msg.contains("reference `invoice 17`"), "{msg}");
    assert!(msg.contains("no reference"), "{msg}");
    assert!(!msg.contains("Some(") && !msg.contains("None"), "{msg}");
}

#[tokio::test]
async fn an_oversize_body_gets_413_whether_chunked_or_not() {
    let (_repo, server) = started_with_user().await;
    let mut call = payment_call(Some(json!(1)), "p-big");
    call["params"]["reference"] = json!("r".repeat(2 * 1024 * 1024));
    let body = serde_json::to_vec(&call).unwrap();

    // With Content-Length.
    let (status, text) = post_rpc(&server.url, body.clone()).await;
    assert_eq!(status, 413, "{text}");
    assert_eq!(
        parse(&text)["error"]["code"],
        error_codes::REQUEST_TOO_LARGE
    );

    // Chunked: a file body has no length up front.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.json");
    std::fs::write(&path, &body).unwrap();
    let file = tokio::fs::File::open(&path).await.unwrap();
    let (status, text) = post_rpc(&server.url, file).await;
    assert_eq!(status, 413, "{text}");
    let error = &parse(&text)["error"];
    assert_eq!(error["code"], error_codes::REQUEST_TOO_LARGE, "{text}");
    assert!(
        error["message"].as_str().unwrap().contains("1048576 bytes"),
        "{text}"
    );
    assert_eq!(payment_count(&server).await, 0);

    // A chunked body under the limit is served as usual.
    std::fs::write(&path, payment_call(Some(json!(2)), "p-small").to_string()).unwrap();
    let file = tokio::fs::File::open(&path).await.unwrap();
    let (status, text) = post_rpc(&server.url, file).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(parse(&text)["result"]["payment_id"], "p-small", "{text}");
}

#[tokio::test]
async fn notifications_and_invalid_ids_are_refused_with_400_and_nothing_runs() {
    let (_repo, server) = started_with_user().await;

    // A payment sent as a notification.
    let (status, text) = post_rpc(&server.url, payment_call(None, "p-1").to_string()).await;
    assert_eq!(status, 400, "{text}");
    let body = parse(&text);
    assert_eq!(
        body["error"]["code"],
        error_codes::INVALID_REQUEST,
        "{text}"
    );
    assert_eq!(body["id"], Value::Null, "{text}");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("`record_payment`") && msg.contains("notification") && msg.contains("\"id\""),
        "{msg}"
    );

    // Ids JSON-RPC 2.0 does not allow.
    for (id, found) in [
        (json!({"a": 1}), "an object"),
        (json!([1]), "an array"),
        (json!(true), "a boolean"),
        (json!(-1), "a negative number"),
        (json!(1.5), "a fractional"),
    ] {
        let (status, text) = post_rpc(
            &server.url,
            payment_call(Some(id.clone()), "p-1").to_string(),
        )
        .await;
        assert_eq!(status, 400, "id {id}: {text}");
        let body = parse(&text);
        assert_eq!(
            body["error"]["code"],
            error_codes::INVALID_REQUEST,
            "{text}"
        );
        let msg = body["error"]["message"].as_str().unwrap();
        assert!(msg.contains(found) && msg.contains("`id`"), "{msg}");
    }

    // A repeated id would be read as a notification; it is refused too.
    let repeated = r#"{"jsonrpc":"2.0","id":1,"id":2,"method":"record_payment",
        "params":{"payment_id":"p-1","user_sid":"u-1","amount_cents":500}}"#;
    let (status, text) = post_rpc(&server.url, repeated).await;
    assert_eq!(status, 400, "{text}");
    assert_eq!(parse(&text)["error"]["code"], error_codes::INVALID_REQUEST);

    // Read-only methods sent as notifications are refused the same way.
    let (status, text) = post_rpc(
        &server.url,
        json!({"jsonrpc": "2.0", "method": "overview"}).to_string(),
    )
    .await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("`overview`"), "{text}");

    assert_eq!(payment_count(&server).await, 0, "nothing was recorded");

    // String, integer and null ids are answered.
    for (n, id) in [json!("pay-req-7"), json!(7), Value::Null]
        .into_iter()
        .enumerate()
    {
        let call = payment_call(Some(id.clone()), &format!("p-ok-{n}"));
        let (status, text) = post_rpc(&server.url, call.to_string()).await;
        assert_eq!(status, 200, "{text}");
        let body = parse(&text);
        assert_eq!(body["id"], id, "{text}");
        assert_eq!(body["result"]["amount_cents"], 500, "{text}");
    }
    assert_eq!(payment_count(&server).await, 3);
}

#[tokio::test]
async fn a_batch_with_a_notification_or_invalid_id_runs_nothing() {
    let (_repo, server) = started_with_user().await;

    let batch = json!([
        payment_call(Some(json!(1)), "p-1"),
        payment_call(None, "p-2"),
        payment_call(Some(json!({"a": 1})), "p-3"),
    ]);
    let (status, text) = post_rpc(&server.url, batch.to_string()).await;
    assert_eq!(status, 400, "{text}");
    let body = parse(&text);
    assert_eq!(
        body["error"]["code"],
        error_codes::INVALID_REQUEST,
        "{text}"
    );
    assert_eq!(
        body["error"]["data"]["refused_entries"],
        json!([1, 2]),
        "{text}"
    );
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("nothing in it was run")
            && msg.contains("entry 1: `record_payment` was sent as a notification")
            && msg.contains("entry 2: the `id` is an object"),
        "{msg}"
    );
    assert_eq!(
        payment_count(&server).await,
        0,
        "the valid entry did not run either"
    );

    // The same batch with every id given runs whole.
    let batch = json!([
        payment_call(Some(json!(1)), "p-1"),
        payment_call(Some(json!(2)), "p-2"),
        payment_call(Some(json!("three")), "p-3"),
    ]);
    let (status, text) = post_rpc(&server.url, batch.to_string()).await;
    assert_eq!(status, 200, "{text}");
    let answers = parse(&text);
    assert_eq!(answers.as_array().map(Vec::len), Some(3), "{text}");
    assert_eq!(payment_count(&server).await, 3);
}

#[test]
fn openrpc_documents_the_refusals() {
    let doc: Value = serde_json::from_str(include_str!("../../openrpc.json")).unwrap();
    let codes: Vec<i64> = doc["components"]["errors"]
        .as_object()
        .unwrap()
        .values()
        .map(|e| e["code"].as_i64().unwrap())
        .collect();
    for code in [error_codes::INVALID_REQUEST, error_codes::REQUEST_TOO_LARGE] {
        assert!(codes.contains(&i64::from(code)), "{code} in {codes:?}");
    }
    // Every method lists them: they apply to any call.
    for method in doc["methods"].as_array().unwrap() {
        let refs: Vec<&str> = method["errors"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["$ref"].as_str())
            .collect();
        for name in ["invalid_request", "request_too_large"] {
            assert!(
                refs.contains(&format!("#/components/errors/{name}").as_str()),
                "{} lacks {name}",
                method["name"]
            );
        }
    }
    let info = doc["info"]["description"].as_str().unwrap();
    assert!(info.contains("notification"), "{info}");
}

/// Sends each text frame over one raw WebSocket and returns the next frame
/// the server answers with, per message.
async fn ws_answers(server: &TestServer, messages: &[Value]) -> Vec<Value> {
    use jsonrpsee::client_transport::ws::{Url, WsTransportClientBuilder};
    use jsonrpsee::core::client::{ReceivedMessage, TransportReceiverT, TransportSenderT};

    let mut headers = http::HeaderMap::new();
    headers.insert("authorization", format!("Bearer {SECRET}").parse().unwrap());
    let (mut tx, mut rx) = WsTransportClientBuilder::default()
        .set_headers(headers)
        .build(Url::parse(&server.ws_url()).unwrap())
        .await
        .unwrap();
    let mut answers = Vec::new();
    for message in messages {
        tx.send(message.to_string()).await.unwrap();
        let frame = tokio::time::timeout(std::time::Duration::from_secs(10), rx.receive())
            .await
            .unwrap_or_else(|_| panic!("no answer over WebSocket to {message}"))
            .unwrap();
        match frame {
            ReceivedMessage::Text(text) => answers.push(parse(&text)),
            other => panic!("unexpected frame {other:?}"),
        }
    }
    answers
}

#[tokio::test]
async fn websocket_notifications_and_invalid_ids_get_an_error_and_run_nothing() {
    let (_repo, server) = started_with_user().await;
    let answers = ws_answers(
        &server,
        &[
            payment_call(None, "p-1"),
            payment_call(Some(json!({"a": 1})), "p-2"),
            json!([
                payment_call(Some(json!(1)), "p-3"),
                payment_call(None, "p-4")
            ]),
            // A valid call on the same socket is still answered.
            payment_call(Some(json!(9)), "p-5"),
        ],
    )
    .await;
    for answer in &answers[..3] {
        assert_eq!(
            answer["error"]["code"],
            error_codes::INVALID_REQUEST,
            "{answer}"
        );
        assert_eq!(answer["id"], Value::Null, "{answer}");
        let msg = answer["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains("`record_payment`") && msg.contains("`id`"),
            "{msg}"
        );
    }
    assert_eq!(answers[2]["error"]["data"]["refused_entries"], json!([1]));
    assert_eq!(answers[3]["id"], 9, "{}", answers[3]);
    assert_eq!(answers[3]["result"]["payment_id"], "p-5", "{}", answers[3]);
    let page = server
        .client()
        .list_payments(None, None, None)
        .await
        .unwrap();
    let ids: Vec<&str> = page.items.iter().map(|p| p.payment_id.as_str()).collect();
    assert_eq!(ids, ["p-5"], "only the call with an id ran");
}
