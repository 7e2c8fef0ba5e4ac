//! What the masking filter found in one call, merged for its audit record,
//! and the bounded prompt and response text the record keeps.

/// How many positions and fingerprints one finding keeps in the audit.
pub const MAX_FINDING_DETAILS: usize = 16;
/// How much prompt or response text an audit record keeps.
pub const MAX_AUDIT_TEXT: usize = 64 * 1024;

/// One detector's matches: never the matched value, only where and a keyed
/// fingerprint (the shape of the WIT `finding`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Finding {
    pub detector: String,
    pub count: u32,
    pub positions: Vec<u64>,
    pub fingerprints: Vec<String>,
}

/// Adds `found` to `into`: one entry per detector, counts summed, details
/// capped so a prompt full of secrets cannot grow the record without bound.
pub fn merge(into: &mut Vec<Finding>, found: impl IntoIterator<Item = Finding>) {
    for f in found {
        match into.iter_mut().find(|x| x.detector == f.detector) {
            Some(x) => {
                x.count = x.count.saturating_add(f.count);
                let room = MAX_FINDING_DETAILS.saturating_sub(x.positions.len());
                x.positions.extend(f.positions.into_iter().take(room));
                let room = MAX_FINDING_DETAILS.saturating_sub(x.fingerprints.len());
                x.fingerprints.extend(f.fingerprints.into_iter().take(room));
            }
            None => into.push(f),
        }
    }
}

/// The detectors that matched, for a refusal naming them.
pub fn detectors(findings: &[Finding]) -> Vec<&str> {
    findings.iter().map(|f| f.detector.as_str()).collect()
}

/// Text for the audit record, collected piece by piece (each prompt text,
/// each masked answer field) and cut at `MAX_AUDIT_TEXT`.
#[derive(Debug, Default)]
pub struct AuditText(String);

impl AuditText {
    pub fn push(&mut self, text: &str) {
        if self.0.len() < MAX_AUDIT_TEXT {
            self.0.push_str(text);
        }
    }

    /// A piece followed by a line break (prompt texts are kept one a line).
    pub fn push_line(&mut self, text: &str) {
        if self.0.len() < MAX_AUDIT_TEXT {
            self.0.push_str(text);
            self.0.push('\n');
        }
    }

    pub fn into_bounded(self) -> String {
        bounded(self.0)
    }
}

/// `text` cut to at most `MAX_AUDIT_TEXT` bytes, on a character boundary.
pub fn bounded(mut text: String) -> String {
    if text.len() > MAX_AUDIT_TEXT {
        let mut cut = MAX_AUDIT_TEXT;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(detector: &str, count: u32, positions: std::ops::Range<u64>) -> Finding {
        Finding {
            detector: detector.into(),
            count,
            fingerprints: positions.clone().map(|p| format!("fp{p}")).collect(),
            positions: positions.collect(),
        }
    }

    #[test]
    fn findings_of_one_detector_merge_and_others_are_added() {
        let mut all = vec![finding("github-token", 1, 0..1)];
        merge(
            &mut all,
            [
                finding("github-token", 2, 10..12),
                finding("email", 1, 5..6),
            ],
        );
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].count, 3);
        assert_eq!(all[0].positions, vec![0, 10, 11]);
        assert_eq!(all[0].fingerprints, vec!["fp0", "fp10", "fp11"]);
        assert_eq!(detectors(&all), vec!["github-token", "email"]);
    }

    #[test]
    fn details_are_capped_but_counts_are_not() {
        let mut all = vec![finding("aws-key", 10, 0..10)];
        merge(&mut all, [finding("aws-key", 10, 100..110)]);
        assert_eq!(all[0].count, 20);
        assert_eq!(all[0].positions.len(), MAX_FINDING_DETAILS);
        assert_eq!(all[0].fingerprints.len(), MAX_FINDING_DETAILS);
        assert_eq!(all[0].positions[..11], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 100]);
    }

    #[test]
    fn audit_text_is_cut_on_a_character_boundary() {
        let text = "é".repeat(MAX_AUDIT_TEXT); // two bytes each
        let cut = bounded(text);
        assert!(cut.len() <= MAX_AUDIT_TEXT && cut.len() > MAX_AUDIT_TEXT - 2);
        assert!(cut.chars().all(|c| c == 'é'));
        assert_eq!(bounded("short".into()), "short");
    }

    #[test]
    fn audit_text_stops_collecting_once_full() {
        let mut prompt = AuditText::default();
        prompt.push_line("system");
        prompt.push_line("user");
        assert_eq!(AuditText::into_bounded(prompt), "system\nuser\n");
        let mut long = AuditText::default();
        long.push(&"a".repeat(MAX_AUDIT_TEXT - 1));
        long.push("bc");
        long.push("never kept");
        let kept = long.into_bounded();
        assert_eq!(kept.len(), MAX_AUDIT_TEXT);
        assert!(kept.ends_with('b'));
    }
}
