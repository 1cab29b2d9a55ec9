//! Replays the committed fuzz inputs of the dashboard's target through the
//! property the fuzz target checks, on stable, in the test command.

use billing_api::fuzzing::replay_corpus;
use tui_admin::fuzzing::server_response;

#[test]
fn server_response_corpus() {
    let mut decoded = 0;
    replay_corpus("server_response", &mut |data| {
        decoded += server_response(data)
    });
    // The seeds hold a well-formed answer of every kind, with hostile text in it.
    assert!(decoded >= 20, "only {decoded} answers of the seeds decoded");
}
