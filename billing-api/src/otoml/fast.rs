//! The fast path of decoding a well-formed batch: the TOML parser's document
//! tree (`DeTable`) read field by field, instead of through serde.
//!
//! Going through serde costs about a third of a file's decoding: the
//! deserializer walks the same tree again, and it hands each datetime to its
//! visitor as text that is then parsed a second time. Here a record is taken
//! only when every field has exactly the type serde would accept without a
//! conversion; anything else (a missing or mistyped field, an integer where a
//! float goes) answers `None`, and the caller decodes the text through serde,
//! which gives its precise reasons. So this path changes speed, never results.

use toml::de::{DeTable, DeValue};
use toml::value::Datetime;

use super::{UsageBatch, UsageRecord};

/// The batch serde would decode from `text`, or `None` to let serde decide.
pub(super) fn parse_batch(text: &str) -> Option<UsageBatch> {
    let doc = DeTable::parse(text).ok()?.into_inner();
    let mut version = None;
    let mut records = Vec::new();
    for (key, value) in doc {
        match key.get_ref().as_ref() {
            "version" => version = Some(integer(value.get_ref())?),
            "records" => {
                let DeValue::Array(items) = value.into_inner() else {
                    return None;
                };
                records.reserve(items.len());
                for item in items {
                    let DeValue::Table(fields) = item.into_inner() else {
                        return None;
                    };
                    records.push(record(fields)?);
                }
            }
            _ => {}
        }
    }
    Some(UsageBatch { version, records })
}

fn record(fields: DeTable<'_>) -> Option<UsageRecord> {
    let (mut key, mut sid, mut node, mut cost) = (None, None, None, None);
    let mut rec = UsageRecord {
        idempotency_key: String::new(),
        user_sid: String::new(),
        node_name: String::new(),
        cost_cents: 0,
        resource: None,
        quantity: None,
        unit: None,
        period_start: None,
        period_end: None,
    };
    for (name, value) in fields {
        let value = value.into_inner();
        match name.get_ref().as_ref() {
            "idempotency_key" => key = Some(string(value)?),
            "user_sid" => sid = Some(string(value)?),
            "node_name" => node = Some(string(value)?),
            "cost_cents" => cost = Some(integer(&value)?),
            "resource" => rec.resource = Some(string(value)?),
            "quantity" => rec.quantity = Some(float(&value)?),
            "unit" => rec.unit = Some(string(value)?),
            "period_start" => rec.period_start = Some(datetime(value)?),
            "period_end" => rec.period_end = Some(datetime(value)?),
            _ => {}
        }
    }
    rec.idempotency_key = key?;
    rec.user_sid = sid?;
    rec.node_name = node?;
    rec.cost_cents = cost?;
    Some(rec)
}

fn string(value: DeValue<'_>) -> Option<String> {
    match value {
        DeValue::String(s) => Some(s.into_owned()),
        _ => None,
    }
}

fn integer(value: &DeValue<'_>) -> Option<i64> {
    match value {
        DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix()).ok(),
        _ => None,
    }
}

/// A float as serde reads it; infinities and NaN (rare) are left to serde.
fn float(value: &DeValue<'_>) -> Option<f64> {
    match value {
        DeValue::Float(f) => f.as_str().parse::<f64>().ok().filter(|f| f.is_finite()),
        _ => None,
    }
}

fn datetime(value: DeValue<'_>) -> Option<Datetime> {
    match value {
        DeValue::Datetime(d) => Some(d),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every answer of the fast path is what serde decodes from the same text.
    fn same_as_serde(text: &str) -> Option<UsageBatch> {
        let fast = parse_batch(text);
        if let Some(batch) = &fast {
            assert_eq!(
                Some(batch),
                toml::from_str::<UsageBatch>(text).ok().as_ref(),
                "{text}"
            );
        }
        fast
    }

    #[test]
    fn a_well_formed_batch_is_read_as_serde_reads_it() {
        let text = r#"
version = 1
other = "ignored"

[[records]]
idempotency_key = "n1:2026-01-01-00:0"
user_sid = "u-1"
node_name = "n1"
cost_cents = 0x30
resource = "gpu"
quantity = 7_200.5
unit = "gpu-seconds"
period_start = 2026-01-01T00:00:00Z
period_end = 2026-01-01T01:00:00.25+02:00
extra = { nested = [1, 2] }

[[records]]
idempotency_key = 'literal \n'
user_sid = """u-2"""
node_name = "n1"
cost_cents = 7
period_start = 2026-01-01
"#;
        let batch = same_as_serde(text).expect("the fast path reads a well-typed batch");
        assert_eq!(batch.version, Some(1));
        assert_eq!(batch.records.len(), 2);
        assert_eq!(batch.records[0].cost_cents, 48);
        assert_eq!(batch.records[0].quantity, Some(7200.5));
        assert_eq!(batch.records[1].idempotency_key, "literal \\n");
        let inline = "records = [{idempotency_key = \"k\", user_sid = \"u\", node_name = \"n\", cost_cents = 1}]";
        assert_eq!(same_as_serde(inline).unwrap().records.len(), 1);
        assert_eq!(same_as_serde("").unwrap().records.len(), 0);
    }

    #[test]
    fn anything_unusual_is_left_to_serde() {
        let base = "idempotency_key = \"k\"\nuser_sid = \"u\"\nnode_name = \"n\"\n";
        for tail in [
            "cost_cents = 1\nquantity = 3",     // serde converts the integer
            "cost_cents = 1\nquantity = inf",   // kept for serde
            "cost_cents = 1\nquantity = nan",   // kept for serde
            "cost_cents = \"1\"",               // mistyped
            "cost_cents = 9223372036854775808", // out of range
            "",                                 // missing cost
            "cost_cents = 1\nperiod_start = \"2026\"", // a string, not a datetime
            "cost_cents = 1\nresource = 3",
        ] {
            let text = format!("[[records]]\n{base}{tail}\n");
            assert_eq!(same_as_serde(&text), None, "{text}");
        }
        for text in [
            "version = \"1\"",
            "records = 3",
            "records = [1]",
            "records = [",
            "version = 1\nversion = 2",
        ] {
            assert_eq!(same_as_serde(text), None, "{text}");
        }
    }
}
