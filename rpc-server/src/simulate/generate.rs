//! The usage batch of one node and hour, and the hour stamps.

use billing_api::otoml::{self, UsageBatch, UsageRecord};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use time::OffsetDateTime;

use super::{SimulateOptions, SimulateReport, user_sid};

/// (resource, unit, quantity per step, cost cents per step, max steps)
pub(super) const RESOURCES: [(&str, &str, f64, i64, u64); 4] = [
    ("vm.cpu", "core-seconds", 3600.0, 3, 16),
    ("vm.mem", "gib-hours", 1.0, 1, 64),
    ("gpu", "gpu-seconds", 3600.0, 45, 4),
    ("storage", "gib-hours", 10.0, 1, 50),
];

pub(super) fn make_batch(
    opts: &SimulateOptions,
    node_index: u32,
    node: &str,
    hour: i64,
    report: &mut SimulateReport,
) -> UsageBatch {
    let stamp = stamp_from_hour(hour);
    let start: toml::value::Datetime = rfc3339_from_hour(hour).parse().expect("valid datetime");
    let end: toml::value::Datetime = rfc3339_from_hour(hour + 1).parse().expect("valid datetime");
    let mut rng = rng_for(opts.seed, node_index, hour);
    let records = (0..opts.records)
        .map(|n| {
            let user = user_sid(rng.random_range(0..opts.users));
            let (resource, unit, step_quantity, step_cost, max_steps) =
                RESOURCES[rng.random_range(0..RESOURCES.len())];
            let steps = rng.random_range(1..=max_steps);
            let cost_cents = step_cost * steps as i64;
            report.records += 1;
            report.total_cost_cents += cost_cents;
            *report.per_user_cost_cents.entry(user.clone()).or_default() += cost_cents;
            UsageRecord {
                idempotency_key: format!("{node}:{stamp}:{n}"),
                user_sid: user,
                node_name: node.to_string(),
                cost_cents,
                resource: Some(resource.to_string()),
                quantity: Some(step_quantity * steps as f64),
                unit: Some(unit.to_string()),
                period_start: Some(start),
                period_end: Some(end),
            }
        })
        .collect();
    UsageBatch {
        version: Some(otoml::OTOML_VERSION),
        records,
    }
}

/// The generator of one node's hour: seeded by the seed, the node and the
/// hour only, so that any run covering that hour writes the same file.
fn rng_for(seed: u64, node_index: u32, hour: i64) -> StdRng {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..12].copy_from_slice(&node_index.to_le_bytes());
    key[12..20].copy_from_slice(&hour.to_le_bytes());
    StdRng::from_seed(key)
}

/// `YYYY-MM-DD-HH` to hours since the epoch; `None` for an impossible date
/// (such as 02-31) or one before 1970, which no usage file may be named after.
pub(super) fn hour_from_stamp(stamp: &str) -> Option<i64> {
    let ms = otoml::usage_hour_start_ms(&format!("usage_{stamp}.otoml"))?;
    i64::try_from(ms / 3_600_000).ok()
}

fn at_hour(hour: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(hour * 3600).expect("simulated hours are in range")
}

pub(super) fn stamp_from_hour(hour: i64) -> String {
    let t = at_hour(hour);
    let (y, m, d, h) = (t.year(), u8::from(t.month()), t.day(), t.hour());
    format!("{y:04}-{m:02}-{d:02}-{h:02}")
}

fn rfc3339_from_hour(hour: i64) -> String {
    let t = at_hour(hour);
    let (y, m, d, h) = (t.year(), u8::from(t.month()), t.day(), t.hour());
    format!("{y:04}-{m:02}-{d:02}T{h:02}:00:00Z")
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    pub(super) fn hour_stamps_round_trip_across_months_and_leap_days() {
        for stamp in [
            "2026-01-01-00",
            "2026-02-28-23",
            "2028-02-29-12",
            "2026-12-31-23",
        ] {
            let hour = hour_from_stamp(stamp).unwrap();
            assert_eq!(stamp_from_hour(hour), stamp);
        }
        let h = hour_from_stamp("2026-12-31-23").unwrap();
        assert_eq!(stamp_from_hour(h + 1), "2027-01-01-00");
        assert_eq!(hour_from_stamp("2026-02-31-00"), None);
        assert_eq!(hour_from_stamp("1970-01-01-01"), Some(1));
        assert_eq!(hour_from_stamp("1969-12-31-23"), None);
        assert_eq!(hour_from_stamp("2026-13-01-00"), None);
    }
}
