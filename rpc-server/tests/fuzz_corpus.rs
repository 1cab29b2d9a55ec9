//! Replays the committed fuzz inputs of the server's targets through the
//! properties the fuzz targets check, on stable, in the test command.

use billing_api::fuzzing::replay_corpus;
use billing_server::fuzzing::{RpcFixture, forge_answer};

#[test]
fn forge_answer_corpus() {
    replay_corpus("forge_answer", &mut |data| forge_answer(data));
}

#[test]
fn rpc_call_corpus() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = RpcFixture::new(dir.path());
    // In name order, as a fuzzing run meets them: registrations before payments and reads.
    let (mut results, mut errors) = (0, 0);
    replay_corpus("rpc_call", &mut |data| match fixture.call(data) {
        Some(answer) if answer.get("error").is_some() => errors += 1,
        Some(_) => results += 1,
        None => {}
    });
    // The seeds are calls that succeed and calls that are refused.
    assert!(
        results >= 10 && errors >= 10,
        "{results} results, {errors} errors"
    );
}
