//! Reading the trail back: which records a query selects, which day
//! partitions it lists, and how stored lines (spool entries included) parse.

use copilot_jit_audit_log::record::Record;
use serde_json::Value;

use crate::claim;

/// An audit query, as the API takes it.
#[derive(Clone, Debug, Default)]
pub struct Query {
    pub grant_id: Option<String>,
    pub subject: Option<String>,
    pub since: Option<u64>,
    pub until: Option<u64>,
    pub limit: u32,
}

/// Whether `r` answers `q` (grant, subject, time range in seconds).
pub fn matches(r: &Record, q: &Query) -> bool {
    let unmapped = r.event.get("unmapped");
    let subject = r
        .event
        .get("actor")
        .and_then(|a| a.get("user"))
        .and_then(|u| u.get("uid"))
        .and_then(Value::as_str);
    let time_s = r.time_ms() / 1000;
    q.grant_id.as_ref().is_none_or(|g| {
        unmapped
            .and_then(|u| u.get("grant_id"))
            .and_then(Value::as_str)
            == Some(g.as_str())
    }) && q
        .subject
        .as_ref()
        .is_none_or(|s| subject == Some(s.as_str()))
        && q.since.is_none_or(|t| time_s >= t)
        && q.until.is_none_or(|t| time_s <= t)
}

/// The records `q` selects, in time order (ids are time-ordered), each
/// once, the newest `limit` (1..=10,000).
pub fn select(mut records: Vec<Record>, q: &Query) -> Vec<Record> {
    records.retain(|r| matches(r, q));
    records.sort_by(|a, b| a.id().cmp(b.id()));
    records.dedup_by(|a, b| a.id() == b.id());
    let limit = q.limit.clamp(1, 10_000) as usize;
    let skip = records.len().saturating_sub(limit);
    records.into_iter().skip(skip).collect()
}

/// Parses stored lines (one record each; a spool entry may be claimed by a
/// flusher, see `claim`) into `out`.
pub fn parse_lines(bytes: &[u8], out: &mut Vec<Record>) -> Result<(), String> {
    for line in String::from_utf8_lossy(bytes).lines() {
        let entry = claim::parse(line.as_bytes());
        let line = String::from_utf8_lossy(entry.payload);
        if line.trim().is_empty() {
            continue;
        }
        let record: Record =
            serde_json::from_str(&line).map_err(|e| format!("unreadable audit record: {e}"))?;
        out.push(record);
    }
    Ok(())
}

/// The day partitions to list for a query (`dt=YYYY-MM-DD`), or `None` for
/// the whole prefix (no start, or more than 400 days).
pub fn days_to_list(q: &Query, now_ms: u64) -> Option<Vec<String>> {
    let since = q.since?;
    let until = q.until.unwrap_or(now_ms / 1000);
    let (first, last) = (since / 86_400, until / 86_400);
    if last < first || last - first > 400 {
        return None;
    }
    Some(
        (first..=last)
            .map(|d| copilot_jit_audit_log::time::day_of_ms(d * 86_400_000))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use copilot_jit_audit_log::layout::record_id;
    use copilot_jit_audit_log::record::AuditKey;
    use serde_json::json;

    fn records(n: u64) -> Vec<Record> {
        let key = AuditKey::new([9; 32]);
        (1..=n)
            .map(|i| {
                let time = 1_764_000_000_000u64 + i * 1000;
                let Value::Object(event) = json!({
                    "time": time,
                    "metadata": {"uid": record_id(time, &[i as u8; 8])},
                    "actor": {"user": {"uid": if i % 2 == 0 { "alice" } else { "bob" }}},
                    "unmapped": {"grant_id": format!("req_{}", i % 3)},
                }) else {
                    return Err("not an object");
                };
                key.seal(event).map_err(|_| "seal")
            })
            .collect::<Result<_, _>>()
            .unwrap_or_default()
    }

    #[test]
    fn a_query_selects_by_grant_subject_and_time_newest_last() {
        let all = records(9);
        assert_eq!(all.len(), 9);
        let q = Query {
            subject: Some("alice".into()),
            limit: 100,
            ..Query::default()
        };
        let n = |r: &Record| r.time_ms() / 1000 - 1_764_000_000;
        let seqs: Vec<u64> = select(all.clone(), &q).iter().map(n).collect();
        assert_eq!(seqs, vec![2, 4, 6, 8]);
        let q = Query {
            grant_id: Some("req_0".into()),
            since: Some(1_764_000_004),
            limit: 1,
            ..Query::default()
        };
        let seqs: Vec<u64> = select(all, &q).iter().map(n).collect();
        assert_eq!(seqs, vec![9], "the newest of 6 and 9");
    }

    #[test]
    fn a_record_listed_twice_counts_once() {
        let all = records(3);
        let twice: Vec<Record> = all.iter().chain(all.iter()).cloned().collect();
        let q = Query {
            limit: 100,
            ..Query::default()
        };
        assert_eq!(select(twice, &q).len(), 3);
    }

    #[test]
    fn stored_lines_parse_with_or_without_a_claim() {
        let all = records(2);
        let plain = all[0].to_line().unwrap_or_default();
        let claimed = claim::claimed(5, "w", all[1].to_line().unwrap_or_default().as_bytes());
        let mut bytes = format!("{plain}\n\n").into_bytes();
        bytes.extend_from_slice(&claimed);
        let mut out = Vec::new();
        assert_eq!(parse_lines(&bytes, &mut out), Ok(()));
        let ids: Vec<&str> = out.iter().map(Record::id).collect();
        assert_eq!(ids, vec![all[0].id(), all[1].id()]);
        assert!(parse_lines(b"{not json", &mut out).is_err());
    }

    #[test]
    fn days_are_listed_only_for_bounded_ranges() {
        let q = |since, until| Query {
            since,
            until,
            ..Query::default()
        };
        let day = 86_400;
        assert_eq!(days_to_list(&q(None, None), 0), None);
        let days = days_to_list(&q(Some(20_000 * day), Some(20_002 * day)), 0);
        assert_eq!(days.map(|d| d.len()), Some(3));
        assert_eq!(
            days_to_list(&q(Some(20_000 * day), Some(19_999 * day)), 0),
            None
        );
        assert_eq!(days_to_list(&q(Some(0), Some(401 * day)), 0), None);
    }
}
