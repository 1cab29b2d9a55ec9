//! The grouped decoder against the whole-document TOML parser: for any file
//! the parser reads, both give the same records in the same order, whether the
//! records are `[[records]]` tables or an inline array, across group borders.

use std::ops::ControlFlow;

use billing_api::otoml::{
    BatchError, DecodeLimits, UsageRecord, check_file, decode_batch, decode_groups, validate,
};
use proptest::prelude::*;

/// The records as the whole-document parser sees them (valid ones only).
fn oracle(text: &str, node: &str) -> Vec<Option<UsageRecord>> {
    let mut table: toml::Table = text.parse().expect("the oracle document is valid TOML");
    let Some(toml::Value::Array(items)) = table.remove("records") else {
        return Vec::new();
    };
    items
        .into_iter()
        .map(|v| {
            v.try_into::<UsageRecord>()
                .ok()
                .filter(|r| validate(r, node).is_ok())
        })
        .collect()
}

fn decoded(text: &str, node: &str) -> Vec<Option<UsageRecord>> {
    decode_batch(text.as_bytes(), node)
        .unwrap()
        .records
        .into_iter()
        .map(Result::ok)
        .collect()
}

/// A TOML basic string holding `s`.
fn quoted(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

#[derive(Debug, Clone)]
struct Rec {
    key: String,
    sid: String,
    cost: i64,
    resource: Option<String>,
    wrong_node: bool,
    cost_as_string: bool,
}

fn rec() -> impl Strategy<Value = Rec> {
    (
        "[a-z0-9:\\[\\]{}#=,\"' -]{1,20}",
        "[a-z0-9-]{1,8}",
        -5i64..1_000_000,
        proptest::option::of("[\\PC\n]{0,30}"),
        proptest::bool::weighted(0.1),
        proptest::bool::weighted(0.1),
    )
        .prop_map(
            |(key, sid, cost, resource, wrong_node, cost_as_string)| Rec {
                key,
                sid,
                cost,
                resource,
                wrong_node,
                cost_as_string,
            },
        )
}

fn fields(r: &Rec) -> Vec<(String, String)> {
    let mut f = vec![
        ("idempotency_key".to_string(), quoted(&r.key)),
        ("user_sid".to_string(), quoted(&r.sid)),
        (
            "node_name".to_string(),
            quoted(if r.wrong_node { "other" } else { "n" }),
        ),
        (
            "cost_cents".to_string(),
            if r.cost_as_string {
                quoted(&r.cost.to_string())
            } else {
                r.cost.to_string()
            },
        ),
    ];
    if let Some(res) = &r.resource {
        // Multi-line strings may hold text that looks like a table header.
        f.push((
            "resource".to_string(),
            format!(
                "\"\"\"\n[[records]]\n{}\"\"\"",
                res.replace(['\\', '"'], "")
            ),
        ));
    }
    f
}

fn as_tables(recs: &[Rec], comments: bool) -> String {
    let mut out = String::from("version = 1\n\n");
    for r in recs {
        out.push_str("[[records]]");
        if comments {
            out.push_str("  # [[records]] in a comment");
        }
        out.push('\n');
        for (k, v) in fields(r) {
            out.push_str(&format!("{k} = {v}\n"));
        }
        out.push('\n');
    }
    out
}

fn as_inline(recs: &[Rec], comments: bool) -> String {
    let mut out = String::from("records = [\n");
    for r in recs {
        let body: Vec<String> = fields(r)
            .into_iter()
            .filter(|(k, _)| k != "resource")
            .map(|(k, v)| format!("{k} = {v}"))
            .collect();
        out.push_str(&format!("  {{ {} }},", body.join(", ")));
        if comments {
            out.push_str(" # ] } , a comment");
        }
        out.push('\n');
    }
    out.push_str("]\nversion = 1\n");
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn groups_decode_like_the_whole_document(
        recs in proptest::collection::vec(rec(), 0..400),
        inline in any::<bool>(),
        comments in any::<bool>(),
    ) {
        let text = if inline { as_inline(&recs, comments) } else { as_tables(&recs, comments) };
        let expected = oracle(&text, "n");
        prop_assert_eq!(expected.len(), recs.len());
        prop_assert_eq!(decoded(&text, "n"), expected);
        prop_assert_eq!(check_file(text.as_bytes(), &DecodeLimits::UNLIMITED).unwrap(), recs.len() as u64);
    }
}

#[test]
fn groups_are_bounded_and_in_order() {
    let recs: Vec<Rec> = (0..1000)
        .map(|i| Rec {
            key: format!("k{i}"),
            sid: "u".into(),
            cost: i,
            resource: None,
            wrong_node: false,
            cost_as_string: false,
        })
        .collect();
    let text = as_inline(&recs, false);
    let mut firsts = Vec::new();
    let mut total = 0;
    decode_groups(
        text.as_bytes(),
        "n",
        &DecodeLimits::UNLIMITED,
        &mut |group| {
            assert!(group.records.len() <= 256);
            firsts.push(group.first_index);
            for (i, r) in group.records.iter().enumerate() {
                assert_eq!(
                    r.as_ref().unwrap().cost_cents,
                    (group.first_index as i64) + i as i64
                );
            }
            total += group.records.len();
            ControlFlow::Continue(())
        },
    )
    .unwrap();
    assert_eq!(total, 1000);
    assert_eq!(firsts, vec![0, 256, 512, 768]);
}

#[test]
fn limits_reject_a_file_with_too_many_records_and_costs_over_the_ceiling() {
    let text = "records = [{idempotency_key='a', user_sid='u', node_name='n', cost_cents=5},\
                {idempotency_key='b', user_sid='u', node_name='n', cost_cents=500}, {cost_cents=1}]";
    let limits = DecodeLimits {
        max_records: 2,
        max_record_cents: 100,
    };
    assert!(matches!(
        check_file(text.as_bytes(), &limits),
        Err(BatchError::TooManyRecords { limit: 2 })
    ));
    let limits = DecodeLimits {
        max_records: 3,
        max_record_cents: 100,
    };
    assert_eq!(check_file(text.as_bytes(), &limits).unwrap(), 3);
    let mut records = Vec::new();
    decode_groups(text.as_bytes(), "n", &limits, &mut |g| {
        records.extend(g.records);
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(records[0].as_ref().unwrap().cost_cents, 5);
    let over = records[1].as_ref().unwrap_err();
    assert!(
        over.reason.contains("above the ceiling of 100"),
        "{}",
        over.reason
    );
    assert_eq!(over.idempotency_key.as_deref(), Some("b"));
    assert!(records[2].is_err());
}

#[test]
fn whole_file_errors_name_the_line() {
    let cases: &[(&str, &str)] = &[
        ("records = [ {a=1}, {b=2} \n", "never closed"),
        ("records = [ {a=1} {b=2} ]\n", "expected `,` or `]`"),
        ("[[records]]\na = 1\n[[records]\n", "`]]`"),
        ("records = []\n[[records]]\n", "defined twice"),
        ("x = [1, 2}\n", "mismatched"),
        ("junk = 1 2\n", "invalid"),
        ("[[records]]\n[meta]\n[records.sub]\n", "directly follow"),
    ];
    for (text, expected) in cases {
        let err = check_file(text.as_bytes(), &DecodeLimits::UNLIMITED).unwrap_err();
        let BatchError::Toml(message) = &err else {
            panic!("{text:?}: {err:?}");
        };
        assert!(message.contains(expected), "{text:?}: {message}");
        assert!(message.starts_with("line "), "{message}");
    }
    assert!(matches!(
        check_file(b"records = 3", &DecodeLimits::UNLIMITED),
        Err(BatchError::RecordsNotArray(t)) if t == "integer"
    ));
    assert!(matches!(
        check_file(b"[records]\na = 1", &DecodeLimits::UNLIMITED),
        Err(BatchError::RecordsNotArray(_))
    ));
    assert!(matches!(
        check_file(b"version = 2\nrecords = []", &DecodeLimits::UNLIMITED),
        Err(BatchError::UnsupportedVersion(v)) if v == "2"
    ));
    let huge_other = format!("junk = \"{}\"\n", "x".repeat(70_000));
    assert!(matches!(
        check_file(huge_other.as_bytes(), &DecodeLimits::UNLIMITED),
        Err(BatchError::Toml(m)) if m.contains("over the 65536 bytes")
    ));
}

#[test]
fn sub_tables_of_an_entry_belong_to_it() {
    let text = "[[records]]\nidempotency_key='a'\nuser_sid='u'\nnode_name='n'\ncost_cents=1\n\
                [records.extra]\nnote='x'\n[[records.more]]\ny=1\n\
                [[records]]\nidempotency_key='b'\nuser_sid='u'\nnode_name='n'\ncost_cents=2\n\
                [other]\nz = 3\n";
    let got = decoded(text, "n");
    assert_eq!(got, oracle(text, "n"));
    assert_eq!(got.len(), 2);
}
