//! Listing requests newest first without enumerating the store: each
//! request's id is appended to the index of the UTC day it was created on,
//! and a listing walks the days backwards from today, each day's ids from
//! its newest. A cursor is the position where a page stopped.

/// How far back a listing reaches. Pending requests expire within hours and
/// grants within a working day; older history is the audit trail's.
pub const LISTED_DAYS: u64 = 31;
/// Ids one listing call examines at most; the caller gets a cursor to go on.
pub const EXAMINED_MAX: usize = 2_000;

/// Where a walk stands: the ids `..next` of `day`'s index remain, the last
/// of them examined next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub day: u64,
    pub next: usize,
}

impl Position {
    /// The newest end of `today`.
    pub fn newest(today: u64) -> Position {
        Position {
            day: today,
            next: usize::MAX,
        }
    }

    /// A cursor as `format` wrote it; anything else is refused.
    pub fn parse(cursor: &str) -> Option<Position> {
        let (day, next) = cursor.strip_prefix('d')?.split_once('.')?;
        let all_digits =
            |s: &str| !s.is_empty() && s.len() <= 12 && s.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(day) || !all_digits(next) {
            return None;
        }
        Some(Position {
            day: day.parse().ok()?,
            next: next.parse().ok()?,
        })
    }

    pub fn format(&self) -> String {
        format!("d{}.{}", self.day, self.next)
    }
}

/// The UTC day of a Unix time.
pub fn day_of(unix_secs: u64) -> u64 {
    unix_secs / 86_400
}

/// Walks ids newest first from `from` back to `oldest_day`, reading each
/// day's index with `day_ids`, until `visit` has accepted `limit` ids or
/// `EXAMINED_MAX` were examined. Returns where a next page would start, or
/// `None` when nothing older is left.
pub fn walk<E>(
    from: Position,
    oldest_day: u64,
    limit: usize,
    mut day_ids: impl FnMut(u64) -> Result<Vec<String>, E>,
    mut visit: impl FnMut(&str) -> Result<bool, E>,
) -> Result<Option<Position>, E> {
    let (mut taken, mut examined) = (0usize, 0usize);
    let mut day = from.day;
    let mut start = from.next;
    while day >= oldest_day {
        let ids = day_ids(day)?;
        let mut next = start.min(ids.len());
        while next > 0 {
            if taken >= limit || examined >= EXAMINED_MAX {
                return Ok(Some(Position { day, next }));
            }
            next -= 1;
            examined += 1;
            if visit(&ids[next])? {
                taken += 1;
            }
        }
        if day == 0 {
            break;
        }
        day -= 1;
        start = usize::MAX;
        if (taken >= limit || examined >= EXAMINED_MAX) && day >= oldest_day {
            return Ok(Some(Position::newest(day)));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn days() -> HashMap<u64, Vec<String>> {
        HashMap::from([
            (10, vec!["a".into(), "b".into(), "c".into()]),
            (8, vec!["x".into(), "y".into()]),
        ])
    }

    fn page(
        d: &HashMap<u64, Vec<String>>,
        from: Position,
        limit: usize,
        keep: impl Fn(&str) -> bool,
    ) -> (Vec<String>, Option<Position>) {
        let mut seen = Vec::new();
        let next = walk::<()>(
            from,
            10 - LISTED_DAYS.min(10),
            limit,
            |day| Ok(d.get(&day).cloned().unwrap_or_default()),
            |id| {
                let k = keep(id);
                if k {
                    seen.push(id.to_string());
                }
                Ok(k)
            },
        )
        .expect("walk");
        (seen, next)
    }

    #[test]
    fn pages_go_newest_first_and_meet_every_id_once() {
        let d = days();
        let (mut all, mut cursor) = (Vec::new(), Some(Position::newest(10)));
        while let Some(from) = cursor {
            let (ids, next) = page(&d, from, 2, |_| true);
            let parsed = next.map(|p| Position::parse(&p.format()).expect("round trip"));
            assert_eq!(parsed, next);
            all.extend(ids);
            cursor = next;
        }
        assert_eq!(all, ["c", "b", "a", "y", "x"]);
    }

    #[test]
    fn filters_apply_before_the_limit() {
        let (ids, _) = page(&days(), Position::newest(10), 1, |id| id == "x");
        assert_eq!(ids, ["x"]);
    }

    #[test]
    fn ids_appended_after_a_cursor_do_not_shift_it() {
        let mut d = days();
        let (first, cursor) = page(&d, Position::newest(10), 1, |_| true);
        assert_eq!(first, ["c"]);
        d.get_mut(&10).expect("day").push("d".into());
        let (next, _) = page(&d, cursor.expect("more"), 1, |_| true);
        assert_eq!(next, ["b"]);
    }

    #[test]
    fn cursors_other_than_ours_are_refused() {
        for bad in [
            "",
            "d",
            "d1",
            "d1.",
            "x1.2",
            "d1.2.3",
            "d-1.2",
            "d1.99999999999999",
        ] {
            assert_eq!(Position::parse(bad), None, "{bad}");
        }
    }
}
