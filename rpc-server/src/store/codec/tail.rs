//! Optional trailing fields of rows: how a row gains a field without a new
//! ledger format.

use serde::Deserialize;

use super::super::StoreError;
use super::{append, undecodable};

/// Writes `tail` after a row's postcard bytes, only when there is one.
///
/// This is how a row gains an optional field without a new ledger format:
/// rows written before the field existed have no tail and decode as `None`,
/// and an older binary reads the head and ignores the tail (postcard reads a
/// prefix).
pub(super) fn encode_tail(tail: Option<&str>, buf: &mut Vec<u8>) -> Result<(), StoreError> {
    match tail {
        Some(tail) => append(tail, buf),
        None => Ok(()),
    }
}

/// Reads a row written by [`encode_tail`]: its head, then its optional tail.
pub(super) fn decode_with_tail<'a, T: Deserialize<'a>>(
    bytes: &'a [u8],
    what: &'static str,
) -> Result<(T, Option<&'a str>), StoreError> {
    let (head, rest) = postcard::take_from_bytes::<T>(bytes).map_err(|e| undecodable(what, e))?;
    if rest.is_empty() {
        return Ok((head, None));
    }
    let (tail, rest) = postcard::take_from_bytes::<&str>(rest).map_err(|e| undecodable(what, e))?;
    if !rest.is_empty() {
        return Err(undecodable(
            what,
            format_args!("{} bytes after its last field", rest.len()),
        ));
    }
    Ok((head, Some(tail)))
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Head<'a> {
        key: &'a str,
        cost: i64,
    }

    fn encoded(head: &Head<'_>, tail: Option<&str>) -> Vec<u8> {
        let mut buf = Vec::new();
        super::super::encode(head, &mut buf).unwrap();
        encode_tail(tail, &mut buf).unwrap();
        buf
    }

    #[test]
    fn a_row_without_a_tail_is_the_old_encoding_and_reads_as_none() {
        let head = Head { key: "k", cost: 42 };
        let old = postcard::to_allocvec(&head).unwrap();
        assert_eq!(encoded(&head, None), old);
        let (read, tail) = decode_with_tail::<Head>(&old, "test").unwrap();
        assert_eq!((read, tail), (Head { key: "k", cost: 42 }, None));
    }

    #[test]
    fn a_tail_round_trips_and_older_readers_see_the_head() {
        let head = Head { key: "k", cost: -7 };
        let bytes = encoded(&head, Some("vm.cpu"));
        let (read, tail) = decode_with_tail::<Head>(&bytes, "test").unwrap();
        assert_eq!((read, tail), (Head { key: "k", cost: -7 }, Some("vm.cpu")));
        // What a binary from before the tail does: read the head, ignore the rest.
        let before: Head = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(before, head);
        let empty_tail = encoded(&head, Some(""));
        let (_, empty) = decode_with_tail::<Head>(&empty_tail, "test").unwrap();
        assert_eq!(empty, Some(""));
    }

    #[test]
    fn bytes_after_the_tail_or_a_torn_tail_are_damage() {
        let head = Head { key: "k", cost: 1 };
        let mut extra = encoded(&head, Some("gpu"));
        extra.push(0);
        let err = decode_with_tail::<Head>(&extra, "test")
            .unwrap_err()
            .to_string();
        assert!(err.contains("1 bytes after its last field"), "{err}");
        let mut torn = encoded(&head, Some("gpu"));
        torn.pop();
        let err = decode_with_tail::<Head>(&torn, "test")
            .unwrap_err()
            .to_string();
        assert!(err.contains("stored test row cannot be decoded"), "{err}");
    }
}
