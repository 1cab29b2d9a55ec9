//! `list_users` cursors. By `sid`: the sid itself. In the other orders:
//! base64url (no padding) of `{"s": sort, "k": key, "u": sid, "v": version}`,
//! which names its order, so a cursor given to another order is refused.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use billing_api::UserSort;
use billing_api::otoml::MAX_SID_BYTES;
use serde::{Deserialize, Serialize};

use super::{Position, foreign_cursor};
use crate::store::{StoreError, check_identifier};

/// Longest cursor of an order other than `sid` (a sid at its longest,
/// written as JSON with escapes, in base64).
const MAX_KEYED_BYTES: usize = 8 * MAX_SID_BYTES + 128;

#[derive(Serialize, Deserialize)]
struct Keyed {
    #[serde(rename = "s")]
    sort: UserSort,
    #[serde(rename = "k")]
    key: i64,
    #[serde(rename = "u")]
    sid: String,
    #[serde(rename = "v", default, skip_serializing_if = "Option::is_none")]
    version: Option<u64>,
}

/// The cursor that resumes `sort` after `position`.
pub(super) fn encode(sort: UserSort, position: &Position, version: Option<u64>) -> String {
    if sort == UserSort::Sid {
        return position.sid.clone();
    }
    let keyed = Keyed {
        sort,
        key: position.key,
        sid: position.sid.clone(),
        version,
    };
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&keyed).expect("a cursor always serializes"))
}

/// A cursor of an order other than `sid`, if `cursor` is one.
fn keyed(cursor: &str) -> Option<Keyed> {
    if cursor.len() > MAX_KEYED_BYTES {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The position (and, in a balance order, the walk's balance version) that
/// `cursor` resumes `sort` after.
pub(super) fn decode(sort: UserSort, cursor: &str) -> Result<(Position, Option<u64>), StoreError> {
    let found = keyed(cursor);
    if let Some(k) = &found
        && k.sort != sort
    {
        return Err(StoreError::InvalidInput(format!(
            "the cursor was returned by list_users with sort `{}`, but this call asks for sort \
             `{}`; call again with sort `{}` to go on with that walk, or omit the cursor to start \
             a walk by `{}`",
            k.sort.as_str(),
            sort.as_str(),
            k.sort.as_str(),
            sort.as_str()
        )));
    }
    if sort == UserSort::Sid {
        check_identifier("cursor", cursor, MAX_SID_BYTES)?;
        let sid = cursor.to_string();
        return Ok((Position { key: 0, sid }, None));
    }
    let Some(k) = found else {
        return Err(foreign_cursor(
            sort,
            cursor,
            "it may be a cursor of sort `sid`, or it was changed",
        ));
    };
    let wants_version = matches!(sort, UserSort::BalanceAsc | UserSort::BalanceDesc);
    if check_identifier("cursor", &k.sid, MAX_SID_BYTES).is_err()
        || wants_version != k.version.is_some()
    {
        return Err(foreign_cursor(sort, cursor, "it was changed"));
    }
    Ok((
        Position {
            key: k.key,
            sid: k.sid,
        },
        k.version,
    ))
}
