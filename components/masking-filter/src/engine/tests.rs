use super::*;
use alloc::vec;
use alloc::vec::Vec;

const GH: &str = "ghp_0123456789abcdefghijABCDEFGHIJ012345";
const AWS: &str = "AKIAIOSFODNN7EXAMPLE";

#[test]
fn github_token_is_redacted_and_counted() {
    let s = scan(&format!("token={GH} ok"), Direction::Response);
    assert_eq!(s.text, "token=[REDACTED:github-token] ok");
    assert_eq!(s.findings.counts(), vec![("github-token", 1)]);
    assert!(!s.blocked);
}

#[test]
fn fine_grained_pat_is_redacted() {
    let pat = format!("github_pat_{}", "A1_b".repeat(20) + "xy");
    assert_eq!(pat.len(), 93);
    let s = scan(&pat, Direction::Prompt);
    assert_eq!(s.text, "[REDACTED:github-token]");
}

#[test]
fn aws_key_id_is_redacted() {
    let s = scan(&format!("id {AWS}."), Direction::Prompt);
    assert_eq!(s.text, "id [REDACTED:aws-access-key-id].");
}

#[test]
fn private_key_blocks_prompts_and_is_redacted_in_responses() {
    let text = "-----BEGIN RSA PRIVATE KEY-----\nMIIE...";
    let prompt = scan(text, Direction::Prompt);
    assert!(prompt.blocked);
    let response = scan(text, Direction::Response);
    assert!(!response.blocked);
    // Cut short: everything after the header is key material.
    assert_eq!(response.text, "[REDACTED:private-key]");
    let block = "key:\n-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIA\nAwEHoUQDQgAE\n-----END EC PRIVATE KEY-----\nafter";
    assert_eq!(
        scan(block, Direction::Response).text,
        "key:\n[REDACTED:private-key]\nafter"
    );
}

#[test]
fn ordinary_code_is_untouched() {
    for text in [
        "let ghp = 1; // gh_ not a token",
        "sha512-3f786850e387550fdab836ed7e6dc881de23001b AKIA short",
        "uuid 123e4567-e89b-12d3-a456-426614174000",
        "-----BEGIN CERTIFICATE-----",
        "ghp_tooshort",
        "héllo wörld ✓",
    ] {
        let s = scan(text, Direction::Response);
        assert_eq!(s.text, text);
        assert!(s.findings.is_empty(), "{text}");
    }
}

fn stream_in_pieces(text: &str, cuts: &[usize]) -> String {
    let mut masker = StreamMasker::default();
    let mut out = String::new();
    let mut last = 0;
    for &cut in cuts {
        if cut <= last || cut >= text.len() || !text.is_char_boundary(cut) {
            continue;
        }
        out.push_str(&masker.push(&text[last..cut]));
        assert!(masker.held_back() < MAX_MATCH_LEN);
        last = cut;
    }
    out.push_str(&masker.push(&text[last..]));
    out.push_str(&masker.finish());
    out
}

#[test]
fn stream_equals_whole_text_for_every_single_cut() {
    let text = format!("a {GH} b {AWS} -----BEGIN EC PRIVATE KEY----- é ghp_x AKIA1");
    let whole = scan(&text, Direction::Response).text;
    for cut in 0..text.len() {
        assert_eq!(stream_in_pieces(&text, &[cut]), whole, "cut at {cut}");
    }
}

#[test]
fn stream_equals_whole_text_byte_by_byte() {
    let text = format!("{GH}{GH} x {AWS}");
    let cuts: Vec<usize> = (1..text.len()).collect();
    assert_eq!(
        stream_in_pieces(&text, &cuts),
        scan(&text, Direction::Response).text
    );
}

#[test]
fn text_that_cannot_start_a_match_is_released_at_once() {
    let mut masker = StreamMasker::default();
    assert_eq!(masker.push("hello world "), "hello world ");
    assert_eq!(masker.push("see gh"), "see ");
    assert_eq!(masker.held_back(), 2);
}

fn masked_as(text: &str) -> Vec<(&'static str, u32)> {
    scan(text, Direction::Response).findings.counts()
}

#[test]
fn every_detector_finds_its_secret() {
    let pem = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjE=\n-----END OPENSSH PRIVATE KEY-----";
    let cases = [
        ("gitlab-token", "glpat-abcdefghij0123456789"),
        ("slack-token", "xoxb-123456789012-abcdefGHIJ"),
        ("stripe-key", "sk_live_abcdefghijklmnopqrstuvwx"),
        ("google-api-key", "AIzaSyA-abcdefghijklmnopqrstuvwxyz01234"),
        ("npm-token", "npm_abcdefghijklmnopqrstuvwxyz0123456789"),
        ("aws-secret-access-key", "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
        ("jwt", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"),
        ("private-key", pem),
        ("password-assignment", "password = \"hunter2hunter2\""),
        ("password-assignment", "DB_PASSWORD: s3cr3t-value"),
        ("credit-card", "card 4111 1111 1111 1111 ok"),
        ("credit-card", "4242-4242-4242-4242"),
        ("iban", "pay to DE89370400440532013000 now"),
        ("us-ssn", "ssn 123-45-6789."),
        ("email", "mail alice.smith+ci@example.co.uk."),
        ("phone", "call +44 20 7946 0958 today"),
    ];
    for (name, text) in cases {
        let found = masked_as(text);
        assert!(
            found.iter().any(|(d, _)| *d == name),
            "{name} not found in {text:?}: {found:?}"
        );
        assert!(scan(text, Direction::Response)
            .text
            .contains(&format!("[REDACTED:{name}]")));
    }
    // Assignments keep their key; only the value goes.
    assert_eq!(
        scan("password=hunter2hunter2;", Direction::Prompt).text,
        "password=[REDACTED:password-assignment];"
    );
}

#[test]
fn ordinary_code_and_data_are_left_alone() {
    for text in [
        "let id = \"123e4567-e89b-12d3-a456-426614174000\";",
        "integrity sha512-Fo8HPo0ZpBtQlKQ8a7ZNOgh1RZ8DFs1FzxXwEq5pVvX4TZ5GwdSC7i0GkJMZj9qUFbXGJB2WPCq1w==",
        "\"resolved\": \"https://registry.npmjs.org/x/-/x-1.0.0.tgz#3f786850e387550fdab836ed7e6dc881de23001b\"",
        "<img src=\"data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==\">",
        "for i in 0..1234567890123 { total += i }",
        "timestamp 1700000000123, port 8080, version 1.2.3",
        "let password = read_password(); // no literal here",
        "if (secret == null) return;",
        "git@github.com:org/repo.git",
        "user@localhost",
        "4111 1111 1111 1112",
        "GB00WEST12345698765432 is not a valid IBAN checksum",
        "000-12-3456 and 123-00-4567 are not issued",
        "x = 1 + 44207946",
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
        "eyJ-not-a-token",
    ] {
        let s = scan(text, Direction::Response);
        assert_eq!(s.text, text, "{:?}", s.findings);
    }
}

/// A tiny deterministic generator: the property test needs no crate.
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub(super) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn streamed_output_equals_whole_text_for_random_inputs_and_splits() {
    let pieces = [
        "ghp_0123456789abcdefghijABCDEFGHIJ012345",
        "AKIAIOSFODNN7EXAMPLE",
        "glpat-abcdefghij0123456789",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9P",
        "password: hunter2hunter2",
        "4111 1111 1111 1111",
        "DE89370400440532013000",
        "123-45-6789",
        "bob@example.com",
        "+1 415 555 0100",
        "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----",
        "-----BEGIN ",
        "ghp_",
        "eyJ",
        "+",
        "4111 ",
        "pass",
        "@",
        ".",
        " ",
        "\n",
        "é✓",
        "code()",
        "x = 42;",
        "AKIA",
        "xoxb-",
        "sk_live_",
    ];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..400 {
        let mut text = String::new();
        for _ in 0..rng.below(12) + 1 {
            text.push_str(pieces[rng.below(pieces.len())]);
        }
        let whole = scan(&text, Direction::Response).text;
        let mut masker = StreamMasker::default();
        let mut streamed = String::new();
        let mut rest = text.as_str();
        while !rest.is_empty() {
            let mut cut = (rng.below(rest.len()) + 1).min(rest.len());
            while !rest.is_char_boundary(cut) {
                cut += 1;
            }
            streamed.push_str(&masker.push(&rest[..cut]));
            assert!(masker.held_back() <= MAX_MATCH_LEN);
            rest = &rest[cut..];
        }
        streamed.push_str(&masker.finish());
        assert_eq!(streamed, whole, "input {text:?}");
    }
}

#[test]
fn organisation_detectors_come_from_the_policy_file() {
    let s = scan(
        "Status: Confidential. See Project NIGHTINGALE on build7.corp.acme.example.",
        Direction::Response,
    );
    assert_eq!(
        s.text,
        "Status: [REDACTED:confidential-marker]. See [REDACTED:project-codename] on [REDACTED:internal-hostname]."
    );
    // The marker blocks prompts; other hosts are untouched.
    assert!(scan("this is CONFIDENTIAL", Direction::Prompt).blocked);
    let other = "see build7.corp.acme.example.com and corp.acme.example";
    assert_eq!(scan(other, Direction::Response).text, other);
}

#[test]
fn groups_vary_the_actions() {
    let text = "mail bob@example.com about CONFIDENTIAL plans";
    let everyone = scan_with(text, &Profile::for_groups(&[]), Direction::Prompt);
    assert!(everyone.blocked);
    assert!(everyone.text.contains("[REDACTED:email]"));
    let security = scan_with(
        text,
        &Profile::for_groups(&["developers", "security-team"]),
        Direction::Prompt,
    );
    assert!(
        !security.blocked,
        "the marker only redacts for the security team"
    );
    assert!(
        security.text.contains("bob@example.com"),
        "e-mail is allowed for them: {}",
        security.text
    );
    assert!(security.text.contains("[REDACTED:confidential-marker]"));
    // Secrets stay redacted for everyone.
    let gh = "ghp_0123456789abcdefghijABCDEFGHIJ012345";
    assert!(!scan_with(
        gh,
        &Profile::for_groups(&["security-team"]),
        Direction::Prompt
    )
    .text
    .contains("ghp_"));
    // A streamed response follows the same profile.
    let mut m = StreamMasker::with_profile(Profile::for_groups(&["security-team"]));
    let mut out = m.push("write to bob@exam");
    out.push_str(&m.push("ple.com now"));
    out.push_str(&m.finish());
    assert_eq!(out, "write to bob@example.com now");
}

#[test]
fn the_hold_back_is_configurable_and_streams_still_equal_whole_text() {
    let jwt = format!(
        "eyJhbGciOiJSUzI1NiJ9.eyJ{}.{}",
        "a".repeat(600),
        "s".repeat(64)
    );
    let text = format!("token {jwt} end");
    let small = Profile::for_groups(&[]).with_hold_back(300);
    // Longer than the window: not matched whole, and never held longer.
    let whole = scan_with(&text, &small, Direction::Response).text;
    let mut m = StreamMasker::with_profile(small);
    let mut out = String::new();
    for piece in text.as_bytes().chunks(5) {
        out.push_str(&m.push(core::str::from_utf8(piece).unwrap()));
        assert!(m.held_back() <= 300);
    }
    out.push_str(&m.finish());
    assert_eq!(out, whole);
    // The default window takes it whole.
    assert_eq!(
        scan(&text, Direction::Response).text,
        "token [REDACTED:jwt] end"
    );
    assert_eq!(
        Profile::for_groups(&[]).with_hold_back(1).hold_back,
        MIN_HOLD_BACK
    );
}

#[test]
fn findings_carry_positions_and_keyed_fingerprints_not_values() {
    let gh = "ghp_0123456789abcdefghijABCDEFGHIJ012345";
    let text = format!("a {gh} b {gh} password=hunter2hunter2");
    let profile = Profile::for_groups(&[]).with_fingerprint_key(b"k1");
    let s = scan_with(&text, &profile, Direction::Response);
    let found: Vec<(&str, &Finding)> = s.findings.iter().collect();
    let (_, gh_finding) = found.iter().find(|(d, _)| *d == "github-token").unwrap();
    assert_eq!(gh_finding.count, 2);
    assert_eq!(gh_finding.positions, vec![2, 45]);
    assert_eq!(gh_finding.fingerprints.len(), 2);
    assert_eq!(
        gh_finding.fingerprints[0], gh_finding.fingerprints[1],
        "same secret, same fingerprint"
    );
    let (_, pw) = found
        .iter()
        .find(|(d, _)| *d == "password-assignment")
        .unwrap();
    assert_eq!(
        pw.positions,
        vec![text.find("hunter2").unwrap() as u64],
        "the value, not the key"
    );
    assert_ne!(pw.fingerprints[0], gh_finding.fingerprints[0]);
    // Another key, other fingerprints; no key, none.
    let other = scan_with(
        &text,
        &Profile::for_groups(&[]).with_fingerprint_key(b"k2"),
        Direction::Response,
    );
    assert_ne!(
        other.findings.iter().next().unwrap().1.fingerprints,
        gh_finding.fingerprints
    );
    assert!(scan(&text, Direction::Response)
        .findings
        .iter()
        .all(|(_, f)| f.fingerprints.is_empty()));
    // Nothing in a finding spells the value.
    let rendered = format!("{:?}", s.findings);
    assert!(!rendered.contains("ghp_") && !rendered.contains("hunter2"));
    // A stream reports the same positions as the whole text.
    let mut m = StreamMasker::with_profile(profile.clone());
    let mut streamed = Findings::default();
    for chunk in text.as_bytes().chunks(7) {
        m.push(core::str::from_utf8(chunk).unwrap());
    }
    m.finish();
    streamed.0 = m.findings().0.clone();
    assert_eq!(streamed, s.findings);
}
