//! The usage batch of one node and hour, and the hour stamps.

use billing_api::otoml::{self, UsageBatch, UsageRecord};

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
    let mut rng = SplitMix64::new(opts.seed);
    rng.mix(u64::from(node_index));
    rng.mix(hour as u64);
    let records = (0..opts.records)
        .map(|n| {
            let user = user_sid(rng.below(u64::from(opts.users)) as u32);
            let (resource, unit, step_quantity, step_cost, max_steps) =
                RESOURCES[rng.below(RESOURCES.len() as u64) as usize];
            let steps = 1 + rng.below(max_steps);
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

/// A small, well-mixed PRNG: enough for realistic-looking, reproducible data.
pub(super) struct SplitMix64(u64);

impl SplitMix64 {
    pub(super) fn new(seed: u64) -> Self {
        let mut rng = SplitMix64(seed);
        rng.next_u64();
        rng
    }

    pub(super) fn mix(&mut self, value: u64) {
        self.0 ^= value.wrapping_mul(0xD6E8_FEB8_6659_FD93);
        self.next_u64();
    }

    pub(super) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(super) fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

// Hours are counted from the Unix epoch; calendar conversion after
// Howard Hinnant's `days_from_civil` / `civil_from_days`.

pub(super) fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

pub(super) fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `YYYY-MM-DD-HH` to hours since the epoch; `None` for an impossible date.
pub(super) fn hour_from_stamp(stamp: &str) -> Option<i64> {
    let field = |range: std::ops::Range<usize>| stamp.get(range)?.parse::<i64>().ok();
    let (y, m, d, h) = (field(0..4)?, field(5..7)?, field(8..10)?, field(11..13)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || !(0..=23).contains(&h) {
        return None;
    }
    let days = days_from_civil(y, m, d);
    // Reject dates such as 02-31 that would silently roll over.
    (civil_from_days(days) == (y, m, d)).then_some(days * 24 + h)
}

pub(super) fn stamp_from_hour(hour: i64) -> String {
    let (y, m, d) = civil_from_days(hour.div_euclid(24));
    format!("{y:04}-{m:02}-{d:02}-{:02}", hour.rem_euclid(24))
}

pub(super) fn rfc3339_from_hour(hour: i64) -> String {
    let (y, m, d) = civil_from_days(hour.div_euclid(24));
    format!("{y:04}-{m:02}-{d:02}T{:02}:00:00Z", hour.rem_euclid(24))
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
    }
}
