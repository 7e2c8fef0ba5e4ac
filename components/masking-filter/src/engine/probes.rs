//! The detectors' matchers: one function per secret shape, each looking at
//! the text from one position (`At`) and answering a `Probe`.

use super::bytes::{find_byte, is_host, is_local, is_token_char, is_value, run_len};
use super::long::{Jwt, Long, PemBody, Step, PEM_TAIL};
use super::{matched, At, Probe};

pub(super) fn probe_literal(at: &At, literal: &[u8]) -> Probe {
    let t = at.text;
    let known = t.len().min(literal.len());
    if !t[..known].eq_ignore_ascii_case(&literal[..known]) {
        return Probe::NoMatch;
    }
    if t.len() < literal.len() {
        return Probe::NeedMore;
    }
    matched(literal.len())
}

/// `name.corp.example` for suffix `.corp.example`: a whole host name (no
/// host character before it) with at least one label before the suffix.
pub(super) fn probe_host_suffix(at: &At, suffix: &[u8]) -> Probe {
    let t = at.text;
    if at.prev.is_some_and(is_host) || !t.first().is_some_and(|b| b.is_ascii_alphanumeric()) {
        return Probe::NoMatch;
    }
    let run = run_len(t, 254, is_host);
    if run == t.len() && run < 254 {
        return Probe::NeedMore;
    }
    let mut end = run;
    while end > 0 && t[end - 1] == b'.' {
        end -= 1;
    }
    let host = &t[..end];
    if host.len() > suffix.len() && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix) {
        matched(end)
    } else {
        Probe::NoMatch
    }
}

/// Matches `prefix` followed by exactly `len` bytes accepted by `class`.
pub(super) fn probe_fixed(text: &[u8], prefix: &[u8], len: usize, class: fn(u8) -> bool) -> Probe {
    match probe_run(text, prefix, len, len, class) {
        // A longer run is another kind of string, not this token; and until
        // the next byte arrives nobody knows.
        Probe::Match { len: n, .. } => match text.get(n) {
            None => Probe::NeedMore,
            Some(b) if class(*b) => Probe::NoMatch,
            Some(_) => matched(n),
        },
        other => other,
    }
}

/// `prefix` then a run of `min..=max` bytes in `class`; the run must end
/// (or reach `max`) before the detector decides.
pub(super) fn probe_run(
    text: &[u8],
    prefix: &[u8],
    min: usize,
    max: usize,
    class: fn(u8) -> bool,
) -> Probe {
    let known = text.len().min(prefix.len());
    if text[..known] != prefix[..known] {
        return Probe::NoMatch;
    }
    if text.len() < prefix.len() {
        return Probe::NeedMore;
    }
    let body = &text[prefix.len()..];
    let run = run_len(body, max, class);
    if run == body.len() && run < max {
        return Probe::NeedMore;
    }
    if run < min {
        return Probe::NoMatch;
    }
    matched(prefix.len() + run)
}

/// The first match among alternatives; otherwise undecided if any is.
pub(super) fn any_of(probes: &[Probe]) -> Probe {
    if let Some(m) = probes.iter().find(|p| matches!(p, Probe::Match { .. })) {
        return *m;
    }
    if probes.contains(&Probe::NeedMore) {
        Probe::NeedMore
    } else {
        Probe::NoMatch
    }
}

pub(super) fn is_alnum(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

pub(super) fn is_alnum_underscore(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

pub(super) fn is_upper_alnum(b: u8) -> bool {
    b.is_ascii_uppercase() || b.is_ascii_digit()
}

pub(super) fn is_base64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'+' || b == b'/'
}

pub(super) fn starts_word(at: &At) -> bool {
    !at.prev
        .is_some_and(|p| p.is_ascii_alphanumeric() || p == b'_')
}

pub(super) fn probe_github_token(at: &At) -> Probe {
    let t = at.text;
    let p = |prefix: &[u8]| probe_fixed(t, prefix, 36, is_alnum);
    any_of(&[
        p(b"ghp_"),
        p(b"gho_"),
        p(b"ghu_"),
        p(b"ghs_"),
        p(b"ghr_"),
        probe_fixed(t, b"github_pat_", 82, is_alnum_underscore),
    ])
}

pub(super) fn probe_slack(at: &At) -> Probe {
    let p = |prefix: &[u8]| probe_run(at.text, prefix, 10, 72, is_token_char);
    any_of(&[
        p(b"xoxb-"),
        p(b"xoxa-"),
        p(b"xoxp-"),
        p(b"xoxr-"),
        p(b"xoxs-"),
    ])
}

pub(super) fn probe_stripe(at: &At) -> Probe {
    let p = |prefix: &[u8]| probe_run(at.text, prefix, 24, 99, is_alnum);
    any_of(&[
        p(b"sk_live_"),
        p(b"rk_live_"),
        p(b"sk_test_"),
        p(b"rk_test_"),
    ])
}

pub(super) fn probe_aws_access_key_id(at: &At) -> Probe {
    let t = at.text;
    any_of(&[
        probe_fixed(t, b"AKIA", 16, is_upper_alnum),
        probe_fixed(t, b"ASIA", 16, is_upper_alnum),
    ])
}

/// Case-insensitive `key`, then blanks or quotes, `=` or `:`, blanks: the
/// length of that lead-in and whether the value opens with a quote.
pub(super) fn lead_in(text: &[u8], key: &[u8]) -> Result<(usize, bool), Probe> {
    let known = text.len().min(key.len());
    if !text[..known].eq_ignore_ascii_case(&key[..known]) {
        return Err(Probe::NoMatch);
    }
    if text.len() < key.len() {
        return Err(Probe::NeedMore);
    }
    let mut i = key.len();
    while i < text.len() && i < key.len() + 8 && b"\"' \t".contains(&text[i]) {
        i += 1;
    }
    if i >= text.len() {
        return Err(Probe::NeedMore);
    }
    if text[i] != b'=' && text[i] != b':' {
        return Err(Probe::NoMatch);
    }
    i += 1;
    while i < text.len() && i < key.len() + 16 && b" \t".contains(&text[i]) {
        i += 1;
    }
    if i >= text.len() {
        return Err(Probe::NeedMore);
    }
    let quoted = text[i] == b'"' || text[i] == b'\'';
    if quoted {
        i += 1;
    }
    Ok((i, quoted))
}

/// `aws_secret_access_key = <40 base64 chars>`: the value only is redacted.
pub(super) fn probe_aws_secret(at: &At) -> Probe {
    if !starts_word(at) {
        return Probe::NoMatch;
    }
    let mut outcome = Probe::NoMatch;
    for key in [&b"aws_secret_access_key"[..], b"secretaccesskey"] {
        match lead_in(at.text, key) {
            Err(Probe::NeedMore) => outcome = Probe::NeedMore,
            Err(_) => {}
            Ok((keep, _)) => match probe_fixed(&at.text[keep..], b"", 40, is_base64) {
                Probe::Match { len, .. } => {
                    return Probe::Match {
                        len: keep + len,
                        keep,
                    }
                }
                Probe::NeedMore => outcome = Probe::NeedMore,
                Probe::NoMatch | Probe::Long { .. } => {}
            },
        }
    }
    outcome
}

/// `password = value` and friends (6–128 bytes): the value is redacted. Keys
/// may end an identifier (`DB_PASSWORD`). A quoted value is a literal; an
/// unquoted one must not look like code (an identifier, a dotted path, a call).
pub(super) fn probe_assignment(at: &At) -> Probe {
    const KEYS: [&[u8]; 9] = [
        b"password",
        b"passwd",
        b"pwd",
        b"secret",
        b"api_key",
        b"apikey",
        b"client_secret",
        b"auth_token",
        b"access_token",
    ];
    // Not in the middle of a longer word (`passwordless`, `secretary` fail at `=`).
    if at.prev.is_some_and(|p| p.is_ascii_alphanumeric()) {
        return Probe::NoMatch;
    }
    let mut outcome = Probe::NoMatch;
    for key in KEYS {
        match lead_in(at.text, key) {
            Err(Probe::NeedMore) => outcome = Probe::NeedMore,
            Err(_) => {}
            Ok((keep, quoted)) => match probe_run(&at.text[keep..], b"", 6, 128, is_value) {
                Probe::Match { len, .. } => {
                    let v = &at.text[keep..keep + len];
                    let code_like = v
                        .iter()
                        .all(|b| b.is_ascii_alphabetic() || *b == b'_' || *b == b'.')
                        || at.text.get(keep + len) == Some(&b'(');
                    if quoted || !code_like {
                        return Probe::Match {
                            len: keep + len,
                            keep,
                        };
                    }
                }
                Probe::NeedMore => outcome = Probe::NeedMore,
                Probe::NoMatch | Probe::Long { .. } => {}
            },
        }
    }
    outcome
}

/// `eyJ….eyJ….<signature>` (`long::Jwt`). A whole text is read to the
/// token's end however long it is; a stream window that fills up first
/// hands the token on (`Probe::Long`) instead of letting it pass.
pub(super) fn probe_jwt(at: &At) -> Probe {
    if !starts_word(at) {
        return Probe::NoMatch;
    }
    // A start at an earlier token's claims reads that token's claims as its
    // header (checked the same way) and its signature's run as its claims:
    // only the claims' prefix and the byte after the run are new.
    let (mut jwt, from) = match at.memo.jwt_read_from(at.pos) {
        Some((signature, end)) => {
            let (signature, end) = (signature - at.pos, end - at.pos);
            let t = at.text;
            let claims_ok = t[signature..].starts_with(b"eyJ")
                && end - signature >= b"eyJ".len() + 8
                && t.get(end) == Some(&b'.');
            if !claims_ok {
                jwt_failed(at, end);
                return Probe::NoMatch;
            }
            (Jwt::at_signature(), end + 1)
        }
        None => (Jwt::default(), 0),
    };
    match jwt.read(&at.text[from..]) {
        None => unfinished(at, Long::Jwt(jwt)),
        Some((k, Step::Fail)) => {
            jwt_failed(at, from + k);
            Probe::NoMatch
        }
        Some((k, _)) => matched(from + k),
    }
}

/// What a JWT that failed at `k` tells later starts, so that each byte is
/// read a bounded number of times.
fn jwt_failed(at: &At, k: usize) {
    if k < b"eyJ".len() {
        return;
    }
    // Every later start inside the first part ends where this one did and
    // fails the same way.
    let first_part_end = find_byte(&at.text[..k], b'.').unwrap_or(k);
    at.memo.jwt_fails_before(at.pos + first_part_end);
    // Failed in the signature: the claims were a valid part and the
    // signature a run of token bytes up to `k`.
    let claims = first_part_end + 1;
    if let Some(dot) = at.text.get(claims..k).and_then(|t| find_byte(t, b'.')) {
        let signature = claims + dot + 1;
        at.memo
            .jwt_failed_in_signature(at.pos + claims, at.pos + signature, at.pos + k);
    }
}

/// The text ran out before a `long` recognition ended: wait for more, or,
/// once the stream window is full, hand it on to continue as it streams.
fn unfinished(at: &At, long: Long) -> Probe {
    if at.text.len() > at.limit {
        Probe::Long { keep: 0, long }
    } else {
        Probe::NeedMore
    }
}

/// A PEM private key: from `-----BEGIN … PRIVATE KEY-----` to the matching
/// END line (`long::PemBody`). A complete text cut short is key material to
/// its end.
pub(super) fn probe_private_key(at: &At) -> Probe {
    const HEAD: &[u8] = b"-----BEGIN ";
    const MAX_LABEL: usize = 40;
    let t = at.text;
    let known = t.len().min(HEAD.len());
    if t[..known] != HEAD[..known] {
        return Probe::NoMatch;
    }
    if t.len() < HEAD.len() {
        return Probe::NeedMore;
    }
    // The label: capitals and spaces, then `PRIVATE KEY-----`; one pass.
    let mut k = HEAD.len();
    let header_end = loop {
        if k - HEAD.len() > MAX_LABEL {
            return Probe::NoMatch;
        }
        let rest = &t[k..];
        let known = rest.len().min(PEM_TAIL.len());
        if rest[..known] == PEM_TAIL[..known] {
            if known == PEM_TAIL.len() {
                break k + PEM_TAIL.len();
            }
            return Probe::NeedMore;
        }
        match rest.first() {
            Some(b) if b.is_ascii_uppercase() || *b == b' ' => k += 1,
            _ => return Probe::NoMatch,
        }
    };
    match PemBody::read(&t[header_end..]) {
        Ok(len) => matched(header_end + len),
        // The sentinel is not part of the key.
        Err(_) if at.complete => matched(t.len() - 1),
        Err(body) => unfinished(at, Long::Pem(body)),
    }
}

pub(super) fn luhn_ok(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            let d = u32::from(*d);
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// 13–19 digits, optionally in groups split by single spaces or dashes,
/// passing the Luhn check, not inside a longer number.
pub(super) fn probe_card(at: &At) -> Probe {
    let t = at.text;
    if at.prev.is_some_and(|p| p.is_ascii_digit()) || !t.first().is_some_and(u8::is_ascii_digit) {
        return Probe::NoMatch;
    }
    let mut digits = [0u8; 19];
    let mut count = 0;
    let mut i = 0;
    while i < t.len() {
        let b = t[i];
        if b.is_ascii_digit() {
            if count == digits.len() {
                remember_long_digit_run(at, i);
                return Probe::NoMatch;
            }
            digits[count] = b - b'0';
            count += 1;
            i += 1;
        } else if (b == b' ' || b == b'-') && t.get(i + 1).is_some_and(u8::is_ascii_digit) {
            i += 1;
        } else if (b == b' ' || b == b'-') && i + 1 == t.len() {
            return Probe::NeedMore;
        } else {
            break;
        }
    }
    if i == t.len() {
        return Probe::NeedMore;
    }
    if t[i].is_ascii_alphanumeric() || count < 13 || !luhn_ok(&digits[..count]) {
        return Probe::NoMatch;
    }
    // Trailing separators are not part of the number.
    matched(i)
}

/// A card's digits run on past 19 from `at` (`from` is the 20th): a later
/// start in the run with 20 or more digits still ahead of it fails the same
/// way, so the memo skips every start before the run's last 19 digits (or
/// the last 19 this text holds: a run cut off by its end has more).
fn remember_long_digit_run(at: &At, from: usize) {
    let t = at.text;
    let in_run = |k: usize| {
        t[k].is_ascii_digit()
            || (t[k] == b' ' || t[k] == b'-') && t.get(k + 1).is_some_and(u8::is_ascii_digit)
    };
    let mut end = from;
    while end < t.len() && in_run(end) {
        end += 1;
    }
    let mut digits = 0;
    let mut last_19 = end;
    while digits < 19 {
        last_19 -= 1;
        digits += usize::from(t[last_19].is_ascii_digit());
    }
    at.memo.card_fails_before(at.pos + last_19);
}

/// Two letters, two check digits, 11–30 alphanumerics; ISO 13616 mod 97.
pub(super) fn probe_iban(at: &At) -> Probe {
    let t = at.text;
    if !starts_word(at) {
        return Probe::NoMatch;
    }
    let shape = |i: usize, b: u8| match i {
        0 | 1 => b.is_ascii_uppercase(),
        2 | 3 => b.is_ascii_digit(),
        _ => is_upper_alnum(b),
    };
    let run = t
        .iter()
        .enumerate()
        .take(34)
        .take_while(|(i, b)| shape(*i, **b))
        .count();
    if run == t.len() && run < 34 {
        return Probe::NeedMore;
    }
    if run < 15 || t.get(run).is_some_and(|b| b.is_ascii_alphanumeric()) {
        return Probe::NoMatch;
    }
    let iban = &t[..run];
    let rearranged = iban[4..].iter().chain(&iban[..4]);
    let mut remainder: u32 = 0;
    for b in rearranged {
        let value = if b.is_ascii_digit() {
            u32::from(b - b'0')
        } else {
            u32::from(b - b'A') + 10
        };
        remainder = if value >= 10 {
            (remainder * 100 + value) % 97
        } else {
            (remainder * 10 + value) % 97
        };
    }
    if remainder == 1 {
        matched(run)
    } else {
        Probe::NoMatch
    }
}

/// `AAA-GG-SSSS` with the rules SSA applies: no 000, 666 or 9xx area,
/// no 00 group, no 0000 serial; not inside a longer number.
pub(super) fn probe_ssn(at: &At) -> Probe {
    let t = at.text;
    if at.prev.is_some_and(|p| p.is_ascii_digit() || p == b'-') {
        return Probe::NoMatch;
    }
    let shape = b"ddd-dd-dddd";
    for (i, kind) in shape.iter().enumerate() {
        let Some(b) = t.get(i) else {
            return Probe::NeedMore;
        };
        let ok = if *kind == b'd' {
            b.is_ascii_digit()
        } else {
            *b == b'-'
        };
        if !ok {
            return Probe::NoMatch;
        }
    }
    match t.get(shape.len()) {
        None => return Probe::NeedMore,
        Some(b) if b.is_ascii_digit() || *b == b'-' => return Probe::NoMatch,
        Some(_) => {}
    }
    let (area, group, serial) = (&t[0..3], &t[4..6], &t[7..11]);
    if area == b"000" || area == b"666" || area[0] == b'9' || group == b"00" || serial == b"0000" {
        return Probe::NoMatch;
    }
    matched(shape.len())
}

/// `local@domain.tld` (local ≤ 64, domain ≤ 255, alphabetic TLD ≥ 2).
pub(super) fn probe_email(at: &At) -> Probe {
    let t = at.text;
    if at.prev.is_some_and(is_local) || !t.first().is_some_and(|b| b.is_ascii_alphanumeric()) {
        return Probe::NoMatch;
    }
    let local = run_len(t, 65, is_local);
    if local == t.len() && local <= 64 {
        return Probe::NeedMore;
    }
    if local > 64 || t[local] != b'@' {
        return Probe::NoMatch;
    }
    email_domain(t, local + 1)
}

/// The rest of `probe_email` once `t` has shown its local part and `@`
/// (`domain_start` is just past it). It reads only `t`, so the candidates'
/// scan asks it too.
pub(super) fn email_domain(t: &[u8], domain_start: usize) -> Probe {
    let domain = run_len(&t[domain_start..], 256, is_host);
    if domain_start + domain == t.len() && domain <= 255 {
        return Probe::NeedMore;
    }
    // `git@github.com:org/repo` is an scp-style address, not a mailbox.
    if t.get(domain_start + domain) == Some(&b':') {
        return Probe::NoMatch;
    }
    // A trailing dot ends a sentence, not the domain.
    let mut end = domain_start + domain;
    while end > domain_start && t[end - 1] == b'.' {
        end -= 1;
    }
    // The letters after the last dot, with a label before that dot.
    let tld = t[domain_start..end]
        .iter()
        .rev()
        .take_while(|b| b.is_ascii_alphabetic())
        .count();
    let dot = end - tld - 1;
    if tld < 2 || dot <= domain_start || t[dot] != b'.' {
        return Probe::NoMatch;
    }
    matched(end)
}

/// International numbers only (`+` and 8–15 digits, single spaces or dashes
/// between groups): local formats collide with too much ordinary code.
pub(super) fn probe_phone(at: &At) -> Probe {
    let t = at.text;
    if at.prev.is_some_and(|p| p.is_ascii_alphanumeric()) {
        return Probe::NoMatch;
    }
    match t.first() {
        None => return Probe::NeedMore,
        Some(b'+') => {}
        Some(_) => return Probe::NoMatch,
    }
    let mut digits = 0;
    let mut i = 1;
    while i < t.len() {
        let b = t[i];
        if b.is_ascii_digit() {
            digits += 1;
            if digits > 15 {
                return Probe::NoMatch;
            }
            i += 1;
        } else if (b == b' ' || b == b'-')
            && digits > 0
            && t.get(i + 1).is_some_and(u8::is_ascii_digit)
        {
            i += 1;
        } else if (b == b' ' || b == b'-') && i + 1 == t.len() {
            return Probe::NeedMore;
        } else {
            break;
        }
    }
    if i == t.len() {
        return Probe::NeedMore;
    }
    if t[i].is_ascii_alphanumeric() || digits < 8 {
        return Probe::NoMatch;
    }
    matched(i)
}
