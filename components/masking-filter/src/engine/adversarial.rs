//! Inputs that make many positions look like the start of a secret: the
//! tests check they mask as the reference does, the bench that they cost
//! about what ordinary text costs.

use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

/// (what it is, `len` bytes of it).
pub fn inputs(len: usize) -> Vec<(&'static str, String)> {
    let fill = |unit: &str| unit.repeat(len / unit.len() + 1)[..len].to_string();
    vec![
        ("`eyJ-` repeated", fill("eyJ-")),
        (
            "`eyJ-` then one `.`: a single long first part",
            fill("eyJ-") + ".eyJ",
        ),
        ("JWT parts without a signature", fill("eyJabcdefgh.")),
        (
            "PEM headers without an end",
            fill("-----BEGIN RSA PRIVATE KEY-----\n"),
        ),
        ("PEM openings", fill("-----BEGIN ")),
        ("digit groups", fill("4111 ")),
        ("`@` every few bytes", fill("a@b.")),
        ("host suffixes in one host name", fill(".corp.acme.example")),
        ("password keys", fill("password=")),
        ("token prefixes", fill("ghp_xoxb-AKIAsk_live_")),
    ]
}
