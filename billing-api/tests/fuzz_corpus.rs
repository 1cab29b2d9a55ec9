//! Replays the committed fuzz inputs of the billing-api targets through the
//! properties the fuzz targets check, on stable, in the test command.

use billing_api::fuzzing::{otoml_decode, replay_corpus, usage_path};

#[test]
fn otoml_decode_corpus() {
    replay_corpus("otoml_decode", &mut |data| otoml_decode(data));
}

#[test]
fn usage_path_corpus() {
    replay_corpus("usage_path", &mut |data| usage_path(data));
}
