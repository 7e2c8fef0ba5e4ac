//! Where each built-in detector can begin, as byte regexes (no Unicode):
//! the build script compiles these and the organisation's detectors into one
//! reverse DFA (`anchors.rs`). Shared by `build.rs` and the engine.
//!
//! The rule every entry keeps: wherever the detector's matcher could answer
//! anything but "no match", its anchor matches (at that position, or with
//! the context byte before it). An anchor may fire where the matcher then
//! says no; it must never miss.

/// Where a detector's candidate position is, given where its anchor starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// At the anchor's first byte.
    Here,
    /// One byte later: the anchor begins with the byte before the detector
    /// (a left boundary such as "not a digit").
    AfterContext,
    /// The anchor is the `@` of an e-mail address: the candidate is the start
    /// of the run of local-part bytes before it.
    BeforeAt,
    /// The anchor is a host-name suffix: the candidate is the start of the
    /// run of host-name bytes that contains it.
    HostRun,
}

/// (detector, anchor, where the candidate is), in detector order.
pub const BUILTIN_ANCHORS: &[(&str, &str, Start)] = &[
    ("github-token", r"gh[pousr]_|github_pat_", Start::Here),
    ("gitlab-token", r"glpat-", Start::Here),
    ("slack-token", r"xox[bapsr]-", Start::Here),
    ("stripe-key", r"[sr]k_(?:live|test)_", Start::Here),
    ("google-api-key", r"AIza", Start::Here),
    ("npm-token", r"npm_", Start::Here),
    ("aws-access-key-id", r"A[KS]IA", Start::Here),
    (
        "aws-secret-access-key",
        r#"[^A-Za-z0-9_](?i:aws_secret_access_key|secretaccesskey)["' \t]{0,8}[=:]"#,
        Start::AfterContext,
    ),
    ("jwt", r"[^A-Za-z0-9_]eyJ", Start::AfterContext),
    ("private-key", r"-----BEGIN ", Start::Here),
    (
        "password-assignment",
        r#"[^A-Za-z0-9](?i:password|passwd|pwd|secret|api_key|apikey|client_secret|auth_token|access_token)["' \t]{0,8}[=:]"#,
        Start::AfterContext,
    ),
    (
        "credit-card",
        r"[^0-9][0-9](?:[ -]?[0-9]){12}",
        Start::AfterContext,
    ),
    (
        "iban",
        r"[^A-Za-z0-9_][A-Z]{2}[0-9]{2}",
        Start::AfterContext,
    ),
    (
        "us-ssn",
        r"[^0-9-][0-9]{3}-[0-9]{2}-[0-9]{4}",
        Start::AfterContext,
    ),
    ("email", r"@", Start::BeforeAt),
    (
        "phone",
        r"[^A-Za-z0-9]\+[0-9](?:[ -]?[0-9]){7}",
        Start::AfterContext,
    ),
];
