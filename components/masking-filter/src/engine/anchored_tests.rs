//! The anchored scan against the reference that probes every position, and
//! tokens longer than a stream's window.

use super::tests::Rng;
use super::*;
use alloc::vec;

pub(super) fn every(text: &str, profile: &Profile, direction: Direction) -> Scan {
    scan_whole(text, profile, direction, Positions::Every)
}

fn stream(
    text: &str,
    profile: &Profile,
    positions: Positions,
    cuts: &mut Rng,
) -> (String, Findings) {
    let mut masker = StreamMasker::with_profile(profile.clone());
    masker.positions = positions;
    let mut out = String::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut cut = (cuts.below(rest.len().min(512)) + 1).min(rest.len());
        while !rest.is_char_boundary(cut) {
            cut += 1;
        }
        out.push_str(&masker.push(&rest[..cut]));
        assert!(
            masker.held_back() <= profile.hold_back,
            "held {}",
            masker.held_back()
        );
        rest = &rest[cut..];
    }
    out.push_str(&masker.finish());
    (out, masker.findings().clone())
}

#[test]
fn embedded_dfa_is_valid() {
    let (dfa, _) = regex_automata::dfa::dense::DFA::from_bytes(anchors::anchors_dfa_bytes())
        .expect("the embedded anchors DFA validates");
    use regex_automata::dfa::Automaton;
    assert!(dfa
        .universal_start_state(regex_automata::Anchored::No)
        .is_some());
}

#[test]
fn every_builtin_detector_has_an_anchor() {
    let named: Vec<&str> = anchor_spec::BUILTIN_ANCHORS
        .iter()
        .map(|(n, _, _)| *n)
        .collect();
    let detectors: Vec<&str> = BUILTIN_DETECTORS.iter().map(|d| d.name).collect();
    assert_eq!(named, detectors);
    assert_eq!(
        ANCHOR_STARTS.len(),
        BUILTIN_DETECTORS.len() + ORG_DETECTORS.len()
    );
}

/// Secrets, their pieces, and the bytes around them that decide boundaries.
const PIECES: &[&str] = &[
    "ghp_0123456789abcdefghijABCDEFGHIJ012345",
    "github_pat_",
    "AKIAIOSFODNN7EXAMPLE",
    "glpat-abcdefghij0123456789",
    "xoxb-123456789012-abcdefGHIJ",
    "sk_live_abcdefghijklmnopqrstuvwx",
    "AIzaSyA-abcdefghijklmnopqrstuvwxyz01234",
    "npm_abcdefghijklmnopqrstuvwxyz0123456789",
    "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9P",
    "password: hunter2hunter2",
    "DB_PASSWORD=\"s3cr3t-value\"",
    "4111 1111 1111 1111",
    "4242-4242-4242-4242",
    // The shortest of each shape: an anchor one byte too strict misses them.
    "4222222222222",
    "4-2-2-2-2-2-2-2-2-2-2-2-2",
    "NO9386011117947",
    "+12345678",
    "+1-2-3-4-5-6-7-8",
    "glpat-abcdefghij0123456789",
    "xoxb-1234567890",
    "sk_test_abcdefghijklmnopqrstuvwx",
    "eyJabcdefgh.eyJabcdefgh.0123456789abcdef",
    "pwd\t\t\t\t\t\t\t\t=secret-ish",
    "secretaccesskey:wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "a@b.co",
    "x.corp.acme.example",
    // Every alternative of every anchor.
    "gho_0123456789abcdefghijABCDEFGHIJ012345",
    "ghu_0123456789abcdefghijABCDEFGHIJ012345",
    "ghs_0123456789abcdefghijABCDEFGHIJ012345",
    "ghr_0123456789abcdefghijABCDEFGHIJ012345",
    "xoxa-1234567890",
    "xoxp-1234567890",
    "xoxr-1234567890",
    "xoxs-1234567890",
    "rk_live_abcdefghijklmnopqrstuvwx",
    "rk_test_abcdefghijklmnopqrstuvwx",
    "ASIAIOSFODNN7EXAMPLE",
    "passwd=hunter2hunter2",
    "PWD = 'hunter2hunter2'",
    "Secret: hunter2hunter2",
    "api_key=abcdef123456",
    "APIKEY: abcdef123456",
    "client_secret = abcdef123456",
    "auth_token=abcdef123456",
    "access_token='abcdef123456'",
    "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Bl\n-----END OPENSSH PRIVATE KEY-----",
    "confidential",
    "project nightingale",
    "BUILD.CORP.ACME.EXAMPLE",
    "DE89370400440532013000",
    "123-45-6789",
    "bob@example.com",
    "alice.smith+ci@example.co.uk",
    "+1 415 555 0100",
    "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----",
    "CONFIDENTIAL",
    "Project Nightingale",
    "build7.corp.acme.example",
    ".corp.acme.example",
    "-----BEGIN ",
    "ghp_",
    "eyJ",
    "eyJ-",
    "+",
    "4111 ",
    "12345",
    "pass",
    "secret",
    "=",
    "@",
    ".",
    "-",
    "_",
    " ",
    "\n",
    "\"",
    "é✓",
    "code()",
    "x = 42;",
    "AKIA",
    "xoxb-",
    "sk_live_",
    "DE89",
    "a",
    "Z9",
];

fn random_text(rng: &mut Rng, pieces: usize) -> String {
    let mut text = String::new();
    for _ in 0..rng.below(pieces) + 1 {
        text.push_str(PIECES[rng.below(PIECES.len())]);
    }
    text
}

#[test]
fn anchored_scan_equals_probing_every_position() {
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let profiles = [
        Profile::for_groups(&[]).with_fingerprint_key(b"k"),
        Profile::for_groups(&["security-team"]).with_fingerprint_key(b"k"),
    ];
    for round in 0..3000 {
        let text = random_text(&mut rng, 16);
        let profile = &profiles[round % 2];
        for direction in [Direction::Prompt, Direction::Response] {
            let anchored = scan_with(&text, profile, direction);
            assert_eq!(anchored, every(&text, profile, direction), "input {text:?}");
        }
    }
}

#[test]
fn anchored_stream_equals_probing_every_position_and_the_whole_text() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let profile = Profile::for_groups(&[])
        .with_fingerprint_key(b"k")
        .with_hold_back(MIN_HOLD_BACK);
    for _ in 0..1500 {
        let text = random_text(&mut rng, 16);
        let whole = scan_with(&text, &profile, Direction::Response);
        let mut cuts = Rng(rng.next());
        let anchored = stream(&text, &profile, Positions::Anchored, &mut Rng(cuts.0));
        let reference = stream(&text, &profile, Positions::Every, &mut cuts);
        assert_eq!(anchored, reference, "input {text:?}");
        assert_eq!(anchored.0, whole.text, "input {text:?}");
        assert_eq!(anchored.1, whole.findings, "input {text:?}");
    }
}

#[test]
fn adversarial_inputs_mask_as_the_reference_does() {
    let profile = Profile::for_groups(&[]).with_fingerprint_key(b"k");
    for (name, text) in adversarial::inputs(20_000) {
        let anchored = scan_with(&text, &profile, Direction::Response);
        assert_eq!(
            anchored,
            every(&text, &profile, Direction::Response),
            "{name}"
        );
        let (streamed, _) = stream(&text, &profile, Positions::Anchored, &mut Rng(7));
        assert!(
            streamed.len() <= text.len() + 64 * 1024,
            "{name}: the stream output stays bounded"
        );
    }
}

fn long_jwt(claims: usize) -> String {
    format!(
        "eyJhbGciOiJSUzI1NiJ9.eyJ{}.{}",
        "Z3JvdXBz".repeat(claims / 8),
        "s".repeat(64)
    )
}

#[test]
fn a_whole_text_redacts_a_jwt_of_any_length() {
    let jwt = long_jwt(12_000);
    let small = Profile::for_groups(&[]).with_hold_back(MIN_HOLD_BACK);
    for profile in [small, Profile::default()] {
        let s = scan_with(&format!("Bearer {jwt} end"), &profile, Direction::Prompt);
        assert_eq!(s.text, "Bearer [REDACTED:jwt] end");
        assert_eq!(s.findings.counts(), vec![("jwt", 1)]);
    }
}

#[test]
fn a_stream_redacts_a_token_longer_than_its_window_from_where_it_began() {
    let jwt = long_jwt(6_000);
    let pem = format!(
        "-----BEGIN RSA PRIVATE KEY-----\n{}\n-----END RSA PRIVATE KEY-----",
        "TUlJRXBRSUJBQUtDQVFFQTJ\n".repeat(400)
    );
    let profile = Profile::for_groups(&[])
        .with_fingerprint_key(b"k")
        .with_hold_back(MIN_HOLD_BACK);
    for (secret, name) in [(jwt, "jwt"), (pem, "private-key")] {
        let text = format!("before {secret} after");
        let whole = scan_with(&text, &profile, Direction::Response);
        assert_eq!(whole.text, format!("before [REDACTED:{name}] after"));
        for piece in [1, 7, 100, 4096] {
            let mut masker = StreamMasker::with_profile(profile.clone());
            let mut out = String::new();
            for chunk in text.as_bytes().chunks(piece) {
                let released = masker.push(core::str::from_utf8(chunk).unwrap());
                assert!(masker.held_back() <= MIN_HOLD_BACK);
                out.push_str(&released);
                // Nothing of the secret's body is ever released.
                assert!(
                    !out.contains("Z3JvdXBz") && !out.contains("TUlJRXBR"),
                    "{name}"
                );
            }
            out.push_str(&masker.finish());
            assert_eq!(out, whole.text, "{name} in pieces of {piece}");
            assert_eq!(
                masker.findings(),
                &whole.findings,
                "{name} in pieces of {piece}"
            );
        }
    }
}

#[test]
fn a_stream_never_releases_a_long_token_shaped_run_even_if_it_is_no_token() {
    // Fail closed: once the window is full of what could still be a JWT,
    // the stream redacts it; the whole text, seeing its end, does not.
    let run = format!("eyJ{}", "A".repeat(1000));
    let text = format!("x {run} y");
    let profile = Profile::for_groups(&[]).with_hold_back(MIN_HOLD_BACK);
    assert_eq!(scan_with(&text, &profile, Direction::Response).text, text);
    let mut masker = StreamMasker::with_profile(profile);
    let mut out = masker.push(&text);
    out.push_str(&masker.finish());
    assert_eq!(out, "x [REDACTED:jwt] y");
}

/// This repository's own Rust sources: real code, with the secrets its
/// tests spell out.
fn repository_sources() -> String {
    extern crate std;
    use std::path::Path;
    fn walk(dir: &Path, out: &mut String) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let mut paths: Vec<_> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        for path in paths {
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push_str(&std::fs::read_to_string(&path).unwrap_or_default());
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut text = String::new();
    for dir in ["components", "crates", "cli", "tests"] {
        walk(&root.join(dir), &mut text);
    }
    text
}

#[test]
fn findings_on_real_sources_equal_the_reference() {
    let sources = repository_sources();
    assert!(sources.len() > 200_000, "the sources were read");
    let profile = Profile::for_groups(&[]).with_fingerprint_key(b"k");
    for direction in [Direction::Prompt, Direction::Response] {
        let anchored = scan_with(&sources, &profile, direction);
        assert!(
            !anchored.findings.is_empty(),
            "the tests' secrets are found"
        );
        assert_eq!(anchored, every(&sources, &profile, direction));
    }
}

/// Texts of several candidate blocks, so that anchors straddle the blocks'
/// and the interleaved scans' boundaries, whole and in large stream pieces.
#[test]
fn anchored_scan_equals_the_reference_across_blocks() {
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let profile = Profile::for_groups(&[]).with_fingerprint_key(b"k");
    for _ in 0..12 {
        let text = random_text(&mut rng, 4000);
        let whole = scan_with(&text, &profile, Direction::Response);
        assert_eq!(
            whole,
            every(&text, &profile, Direction::Response),
            "input of {} bytes",
            text.len()
        );
        let mut masker = StreamMasker::with_profile(profile.clone());
        let mut out = String::new();
        let mut rest = text.as_str();
        while !rest.is_empty() {
            let mut cut = (rng.below(20_000) + 1).min(rest.len());
            while !rest.is_char_boundary(cut) {
                cut += 1;
            }
            out.push_str(&masker.push(&rest[..cut]));
            rest = &rest[cut..];
        }
        out.push_str(&masker.finish());
        assert_eq!(out, whole.text);
        assert_eq!(masker.findings(), &whole.findings);
    }
}
