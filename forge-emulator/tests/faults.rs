//! Random faults: a real emulator on loopback, driven over HTTP like the smoke
//! script drives it, and its fault control in-process for seeding.

use forge_emulator::faults::{Control, Fault, FaultKind};
use forge_emulator::{EmulatorConfig, EmulatorHandle, ForgeRepo};
use serde_json::{Value, json};

async fn emulator() -> (tempfile::TempDir, EmulatorHandle) {
    let dir = tempfile::tempdir().unwrap();
    let repo = ForgeRepo::open_or_init(&dir.path().join("billing.git")).unwrap();
    let config = EmulatorConfig::new("owner/billing", None).unwrap();
    let emu = EmulatorHandle::start(config, repo).await.unwrap();
    (dir, emu)
}

#[tokio::test]
async fn probability_faults_hit_about_that_share_of_requests() {
    let (_dir, emu) = emulator().await;
    let client = reqwest::Client::new();
    let base = emu.base_url();
    const DRAWS: usize = 1000;
    for probability in [0.2, 0.5, 0.9] {
        client
            .delete(format!("{base}/_emulator/faults"))
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap();
        client
            .post(format!("{base}/_emulator/stats/reset"))
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap();
        let added = client
            .post(format!("{base}/_emulator/faults"))
            .json(&json!({
                "endpoint": "user",
                "kind": "status",
                "status": 503,
                "probability": probability,
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(added.status(), 200, "{}", added.text().await.unwrap());
        let mut hit = 0;
        for _ in 0..DRAWS {
            let status = client
                .get(format!("{base}/api/v1/user"))
                .send()
                .await
                .unwrap()
                .status();
            if status == 503 {
                hit += 1;
            }
        }
        let stats: Value = client
            .get(format!("{base}/_emulator/stats"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(stats["faults_injected"], json!(hit), "{stats}");
        assert_eq!(stats["requests"]["user"], json!(DRAWS), "{stats}");
        let share = hit as f64 / DRAWS as f64;
        // Binomial standard deviation over 1000 draws is at most 0.016.
        assert!(
            (share - probability).abs() <= 0.05,
            "probability {probability}: {hit} of {DRAWS} requests were hit"
        );
    }
}

fn draws(control: &Control, n: usize) -> Vec<bool> {
    (0..n)
        .map(|_| control.on_request("blobs", "/api/v1/x").is_some())
        .collect()
}

#[test]
fn the_same_seed_gives_the_same_faults_and_another_seed_others() {
    let control = Control::default();
    control.add_fault(Fault {
        endpoint: Some("blobs".into()),
        kind: FaultKind::Truncate,
        times: None,
        probability: Some(0.5),
        path_contains: None,
    });
    control.seed(7);
    let first = draws(&control, 200);
    control.seed(7);
    assert_eq!(draws(&control, 200), first, "seed 7 replayed");
    control.seed(8);
    assert_ne!(draws(&control, 200), first, "seed 8 differs from seed 7");
    let hits = first.iter().filter(|h| **h).count();
    assert!((70..=130).contains(&hits), "{hits} of 200 at 0.5");
}

#[tokio::test]
async fn a_probability_outside_0_to_1_is_refused() {
    let (_dir, emu) = emulator().await;
    let client = reqwest::Client::new();
    let base = emu.base_url();
    for probability in [1.5, -0.1] {
        let answer = client
            .post(format!("{base}/_emulator/faults"))
            .json(&json!([
                {"endpoint": "user", "kind": "truncate"},
                {"endpoint": "user", "kind": "truncate", "probability": probability},
            ]))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 422);
        let body: Value = answer.json().await.unwrap();
        let message = body["message"].as_str().unwrap_or_default();
        assert!(message.contains("probability"), "{body}");
        assert!(message.contains(&probability.to_string()), "{body}");
        assert!(message.contains("between 0 and 1"), "{body}");
    }
    // Nothing of a refused list is installed.
    assert!(emu.emulator.control.faults().is_empty());
    let user = client.get(format!("{base}/api/v1/user")).send().await;
    assert_eq!(user.unwrap().status(), 200);
}

#[tokio::test]
async fn a_set_field_fault_replaces_one_field_of_the_answer() {
    let (_dir, emu) = emulator().await;
    let client = reqwest::Client::new();
    let base = emu.base_url();
    let added = client
        .post(format!("{base}/_emulator/faults"))
        .json(&json!({
            "endpoint": "user", "kind": "set_field", "field": "login", "value": null, "times": 1,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), 200, "{}", added.text().await.unwrap());
    let get = || async {
        let answer = client.get(format!("{base}/api/v1/user")).send().await;
        answer.unwrap().json::<Value>().await.unwrap()
    };
    let hit = get().await;
    assert_eq!(hit["login"], Value::Null, "{hit}");
    let normal = get().await;
    assert!(normal["login"].is_string(), "{normal}");
    assert_eq!(hit["id"], normal["id"], "the other fields are kept");
}
