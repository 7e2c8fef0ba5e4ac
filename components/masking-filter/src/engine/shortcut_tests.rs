//! The scan's shortcuts against what they stand for: the memo (starts
//! skipped because their detector is known to fail) against the reference,
//! which probes every position with no memo, on texts dense with such
//! starts, whole and in a stream cut at every position; the long tokens'
//! readers, which search, against feeding them byte by byte.

use super::anchored_tests::every;
use super::long::{Jwt, PemBody};
use super::tests::Rng;
use super::*;

/// Pieces that chain into long digit runs and JWT-shaped runs, with the
/// secrets that may still end them.
const UNITS: &[&str] = &[
    "4111 ",
    "4111-",
    "1234",
    "1",
    "0",
    " ",
    "-",
    "  ",
    "4111 1111 1111 1111",
    "4111111111111111",
    "4222222222222",
    "+1 415 555 0100",
    "123-45-6789",
    "eyJ-",
    "eyJ",
    "eyJabcdefgh.",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9P",
    ".",
    "_",
    "x",
    "\n",
];

fn dense_text(rng: &mut Rng, units: usize) -> String {
    (0..rng.below(units) + 1)
        .map(|_| UNITS[rng.below(UNITS.len())])
        .collect()
}

/// Masks `text` as a stream in two pieces, cut at `cut`.
fn cut_once(text: &str, profile: &Profile, cut: usize) -> (String, Findings) {
    let mut masker = StreamMasker::with_profile(profile.clone());
    let mut out = masker.push(&text[..cut]);
    out.push_str(&masker.push(&text[cut..]));
    out.push_str(&masker.finish());
    (out, masker.findings().clone())
}

#[test]
fn dense_digit_and_jwt_runs_mask_as_the_reference_does() {
    let mut rng = Rng(0x6A09_E667_F3BC_C908);
    let profile = Profile::for_groups(&[]).with_fingerprint_key(b"k");
    for _ in 0..3000 {
        let text = dense_text(&mut rng, 40);
        let whole = scan_with(&text, &profile, Direction::Response);
        assert_eq!(
            whole,
            every(&text, &profile, Direction::Response),
            "input {text:?}"
        );
    }
}

#[test]
fn dense_runs_in_a_stream_cut_at_every_position_equal_the_whole_text() {
    let mut rng = Rng(0xBB67_AE85_84CA_A73B);
    let small = Profile::for_groups(&[])
        .with_fingerprint_key(b"k")
        .with_hold_back(MIN_HOLD_BACK);
    for round in 0..150 {
        let text = dense_text(&mut rng, 60);
        let profile = if round % 2 == 0 {
            small.clone()
        } else {
            Profile::for_groups(&[]).with_fingerprint_key(b"k")
        };
        let whole = scan_with(&text, &profile, Direction::Response);
        for cut in 0..=text.len() {
            let (out, findings) = cut_once(&text, &profile, cut);
            assert_eq!(out, whole.text, "input {text:?} cut at {cut}");
            assert_eq!(findings, whole.findings, "input {text:?} cut at {cut}");
        }
    }
}

#[test]
fn a_card_at_the_end_of_a_long_digit_run_is_still_found() {
    // The first start has more than 19 digits ahead, so later starts up to
    // the run's last 19 digits are skipped; the card after them is not.
    let profile = Profile::for_groups(&[]);
    let text = format!("id {}4111 1111 1111 1111 end", "1234 ".repeat(50));
    let whole = scan_with(&text, &profile, Direction::Response);
    assert_eq!(
        whole.text,
        format!("id {}[REDACTED:credit-card] end", "1234 ".repeat(50))
    );
    assert_eq!(whole, every(&text, &profile, Direction::Response));
}

fn pieces_text(rng: &mut Rng, pieces: &[&str], count: usize) -> Vec<u8> {
    (0..rng.below(count) + 1)
        .flat_map(|_| pieces[rng.below(pieces.len())].bytes())
        .collect()
}

#[test]
fn reading_a_pem_body_equals_feeding_it_byte_by_byte() {
    let pieces = [
        "-----END ",
        "PRIVATE KEY-----",
        "-----END RSA PRIVATE KEY-----",
        "-",
        "-----",
        "END",
        " ",
        "PRIVATE",
        " KEY-----",
        "MIIE",
        "\n",
    ];
    let mut rng = Rng(0x3C6E_F372_FE94_F82B);
    for _ in 0..5000 {
        let body = pieces_text(&mut rng, &pieces, 12);
        let mut fed = PemBody::default();
        let by_byte = body
            .iter()
            .position(|b| fed.feed(*b) == Step::EndAfter)
            .map(|k| k + 1)
            .ok_or(fed);
        assert_eq!(
            PemBody::read(&body),
            by_byte,
            "{:?}",
            String::from_utf8_lossy(&body)
        );
    }
}

#[test]
fn reading_a_jwt_equals_feeding_it_byte_by_byte() {
    let pieces = [
        "eyJ",
        "e",
        "y",
        "J",
        "abcdefgh",
        "_-",
        "0123456789abcdef",
        ".",
        " ",
        "=",
    ];
    let mut rng = Rng(0xA54F_F53A_5F1D_36F1);
    for _ in 0..5000 {
        let token = pieces_text(&mut rng, &pieces, 12);
        let mut fed = Jwt::default();
        let by_byte = token.iter().enumerate().find_map(|(k, b)| {
            let step = fed.feed(*b);
            (step != Step::More).then_some((k, step))
        });
        let mut read = Jwt::default();
        assert_eq!(
            read.read(&token),
            by_byte,
            "{:?}",
            String::from_utf8_lossy(&token)
        );
        assert_eq!(read, fed, "{:?}", String::from_utf8_lossy(&token));
    }
}

#[test]
fn a_start_at_a_failed_tokens_claims_masks_as_the_reference_does() {
    // Each first token fails in its signature; the start at its claims
    // reuses what that read, and must decide as a fresh read does.
    let header = "eyJabcdefgh.eyJabcdefgh.";
    let signature = "abcdefghijklmnopqrstu";
    let profile = Profile::for_groups(&[]).with_fingerprint_key(b"k");
    for claims in [
        "eyJabcdefgh.", // a valid part: the second start is a JWT
        "eyJ-.",        // too short to be claims
        "xyJabcdefgh.", // not claims
        "eyJabcdefgh,", // not followed by a signature
        "eyJabcdefgh",  // the text ends in it
    ] {
        for tail in [signature, "", " ", "abc."] {
            let text = format!("{header}{claims}{tail}");
            let whole = scan_with(&text, &profile, Direction::Response);
            assert_eq!(
                whole,
                every(&text, &profile, Direction::Response),
                "input {text:?}"
            );
            for cut in (0..=text.len()).filter(|c| text.is_char_boundary(*c)) {
                let (streamed, findings) = cut_once(&text, &profile, cut);
                assert_eq!(
                    (streamed, findings),
                    (whole.text.clone(), whole.findings.clone()),
                    "input {text:?} cut at {cut}"
                );
            }
        }
    }
    let text = format!("{header}eyJabcdefgh.{signature}");
    assert!(scan_with(&text, &profile, Direction::Response)
        .text
        .starts_with("eyJabcdefgh.[REDACTED:jwt]"));
}
