//! Compiles `policies/detectors.toml` into static tables (OUT_DIR/detectors.rs):
//! the component carries the organisation's detectors and per-group actions
//! as data, so no request parses anything. An invalid file fails the build.

use std::collections::BTreeSet;
use std::fmt::Write as _;

#[path = "src/engine/anchor_spec.rs"]
#[allow(dead_code)]
mod anchor_spec;
use anchor_spec::{Start, BUILTIN_ANCHORS};

const BUILTIN: &[&str] = &[
    "github-token",
    "gitlab-token",
    "slack-token",
    "stripe-key",
    "google-api-key",
    "npm-token",
    "aws-access-key-id",
    "aws-secret-access-key",
    "jwt",
    "private-key",
    "password-assignment",
    "credit-card",
    "iban",
    "us-ssn",
    "email",
    "phone",
];

fn fail(msg: String) -> ! {
    panic!("policies/detectors.toml: {msg}");
}

fn action(v: Option<&toml::Value>, what: &str) -> &'static str {
    match v.map(|v| v.as_str()) {
        None => "Action::Redact",
        Some(Some("block")) => "Action::Block",
        Some(Some("redact")) => "Action::Redact",
        Some(Some("allow")) => "Action::Allow",
        _ => fail(format!(
            "{what}: action must be \"block\", \"redact\" or \"allow\""
        )),
    }
}

/// The stack of this component's instance: what its deepest path needs, with
/// room to spare (tests/tests/deep_paths.rs drives it; a stack too small
/// traps). A 3.5 MB prompt full of keys ran in 16 KiB: the scan is iterative.
/// Not Rust's default 1 MiB: Spin rewrites each memory's first 2 MiB when a
/// request's instance is released, so every byte of stack is reset on every
/// request.
const STACK_BYTES: u32 = 64 * 1024;

fn main() {
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("wasm32") {
        println!("cargo:rustc-link-arg-cdylib=-zstack-size={STACK_BYTES}");
    }
    // Read at run time, not `env!`: a build script compiled for a clone
    // elsewhere may be reused from a shared target directory.
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    let path = std::path::Path::new(&manifest_dir).join("../../policies/detectors.toml");
    println!("cargo:rerun-if-changed={}", path.display());
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| fail(format!("cannot read: {e}")));
    let doc: toml::Table = toml::from_str(&text).unwrap_or_else(|e| fail(e.to_string()));
    let mut names: BTreeSet<String> = BUILTIN.iter().map(|s| s.to_string()).collect();
    let mut out = String::new();
    let mut actions = Vec::new();
    let mut org = String::new();
    // The organisation's anchors: markers start where they are found, host
    // names where their run of host bytes starts.
    let mut org_anchors: Vec<(String, Start)> = Vec::new();
    for (kind, field, check) in [
        ("marker", "literal", "Literal"),
        ("hostname", "suffix", "HostSuffix"),
    ] {
        let Some(list) = doc.get(kind) else { continue };
        let list = list
            .as_array()
            .unwrap_or_else(|| fail(format!("[[{kind}]] must be a list of tables")));
        for entry in list {
            let name = entry
                .get("name")
                .and_then(|v| v.as_str())
                .unwrap_or_else(|| fail(format!("a {kind} needs a name")));
            let value = entry
                .get(field)
                .and_then(|v| v.as_str())
                .unwrap_or_else(|| fail(format!("{name}: needs {field}")));
            if !names.insert(name.to_string()) {
                fail(format!("detector name {name} is used twice"));
            }
            if value.is_empty() || value.len() > 128 || !value.is_ascii() {
                fail(format!("{name}: {field} must be 1 to 128 ASCII characters"));
            }
            if kind == "hostname" && !value.starts_with('.') {
                fail(format!("{name}: a hostname suffix starts with '.'"));
            }
            writeln!(
                org,
                "    Detector {{ name: {name:?}, check: Check::{check}({value:?}.as_bytes()), starts: any_byte }},"
            )
            .ok();
            actions.push((
                name.to_string(),
                action(entry.get("prompt"), name),
                action(entry.get("response"), name),
            ));
            let start = if kind == "hostname" {
                Start::HostRun
            } else {
                Start::Here
            };
            org_anchors.push((format!("(?i:{})", regex_syntax::escape(value)), start));
        }
    }
    let builtin = doc
        .get("builtin")
        .and_then(|b| b.as_table())
        .unwrap_or_else(|| fail("[builtin] must list the default detectors".into()));
    for (name, v) in builtin {
        if !BUILTIN.contains(&name.as_str()) {
            fail(format!("[builtin] names unknown detector {name}"));
        }
        actions.push((
            name.clone(),
            action(v.get("prompt"), name),
            action(v.get("response"), name),
        ));
    }
    // Every default detector is listed, so none disappears by omission.
    if let Some(missing) = BUILTIN.iter().find(|b| !builtin.contains_key(**b)) {
        fail(format!(
            "[builtin] must list {missing} (set \"allow\" to turn it off)"
        ));
    }
    let mut groups = String::new();
    if let Some(table) = doc.get("groups").and_then(|g| g.as_table()) {
        for (group, overrides) in table {
            let overrides = overrides
                .as_table()
                .unwrap_or_else(|| fail(format!("[groups.{group}] must be a table")));
            for (name, v) in overrides {
                if !names.contains(name) {
                    fail(format!("[groups.{group}] names unknown detector {name}"));
                }
                writeln!(
                    groups,
                    "    ({group:?}, {name:?}, {}, {}),",
                    action(v.get("prompt"), name),
                    action(v.get("response"), name)
                )
                .ok();
            }
        }
    }
    writeln!(
        out,
        "/// The organisation's detectors (policies/detectors.toml)."
    )
    .ok();
    writeln!(out, "const ORG_DETECTORS: &[Detector] = &[\n{org}];").ok();
    writeln!(
        out,
        "/// Actions that differ from redact-everywhere: (detector, prompt, response)."
    )
    .ok();
    writeln!(out, "const BASE_ACTIONS: &[(&str, Action, Action)] = &[").ok();
    for (name, p, r) in actions {
        writeln!(out, "    ({name:?}, {p}, {r}),").ok();
    }
    writeln!(out, "];").ok();
    writeln!(
        out,
        "/// Per-group overrides: (group, detector, prompt, response)."
    )
    .ok();
    writeln!(
        out,
        "const GROUP_ACTIONS: &[(&str, &str, Action, Action)] = &[\n{groups}];"
    )
    .ok();
    let out_dir = std::env::var("OUT_DIR").unwrap_or_else(|_| fail("OUT_DIR unset".into()));
    let out_dir = std::path::Path::new(&out_dir);
    write_anchors(&org_anchors, &mut out, out_dir);
    std::fs::write(out_dir.join("detectors.rs"), out)
        .unwrap_or_else(|e| fail(format!("writing tables: {e}")));
}

/// The most bytes one anchor can match.
fn anchor_len(re: &str) -> usize {
    regex_syntax::ParserBuilder::new()
        .unicode(false)
        .utf8(false)
        .build()
        .parse(re)
        .ok()
        .and_then(|hir| hir.properties().maximum_len())
        .unwrap_or_else(|| fail(format!("anchor {re} must have a bounded length")))
}

/// Every detector's anchors as one reverse DFA (all matches, unanchored),
/// serialised for zero-copy loading: a reverse scan's match ends are the
/// forward positions where a detector can begin.
fn write_anchors(org: &[(String, Start)], out: &mut String, out_dir: &std::path::Path) {
    use regex_automata::dfa::{dense, Automaton, StartKind};
    use regex_automata::nfa::thompson;
    use regex_automata::util::syntax;
    use regex_automata::{Anchored, MatchKind};
    let anchors: Vec<(String, Start)> = BUILTIN_ANCHORS
        .iter()
        .map(|(_, re, start)| (re.to_string(), *start))
        .chain(org.iter().cloned())
        .collect();
    let patterns: Vec<&str> = anchors.iter().map(|(re, _)| re.as_str()).collect();
    let dfa = dense::Builder::new()
        .configure(
            dense::Config::new()
                .match_kind(MatchKind::All)
                .start_kind(StartKind::Unanchored)
                .minimize(true)
                .accelerate(false),
        )
        .syntax(syntax::Config::new().unicode(false).utf8(false))
        .thompson(thompson::Config::new().reverse(true).utf8(false))
        .build_many(&patterns)
        .unwrap_or_else(|e| fail(format!("anchors do not compile: {e}")));
    if dfa.universal_start_state(Anchored::No).is_none() {
        fail("anchors must not use look-around".into());
    }
    // The longest anchor bounds how far from a buffer's end an anchor can be
    // incomplete; e-mail and host anchors are handled by their runs instead.
    let longest = anchors
        .iter()
        .filter(|(_, start)| matches!(start, Start::Here | Start::AfterContext))
        .map(|(re, _)| anchor_len(re))
        .max()
        .unwrap_or(1);
    // Every anchor, runs included: how far past a candidate its anchor may end.
    let widest = anchors
        .iter()
        .map(|(re, _)| anchor_len(re))
        .max()
        .unwrap_or(1);
    write_match_starts(&dfa, &anchors, out);
    let (bytes, padding) = dfa.to_bytes_little_endian();
    std::fs::write(out_dir.join("anchors.dfa"), &bytes[padding..])
        .unwrap_or_else(|e| fail(format!("writing anchors: {e}")));
    writeln!(
        out,
        "/// Where each anchor pattern's candidate is, by pattern id."
    )
    .ok();
    writeln!(out, "#[cfg_attr(not(test), allow(dead_code))]").ok();
    writeln!(out, "const ANCHOR_STARTS: &[Start] = &[").ok();
    for (_, start) in &anchors {
        writeln!(out, "    Start::{start:?},").ok();
    }
    writeln!(out, "];").ok();
    writeln!(
        out,
        "/// The longest anchor: nearer a stream buffer's end than this, an anchor may be cut short."
    )
    .ok();
    writeln!(out, "const LONGEST_ANCHOR: usize = {longest};").ok();
    writeln!(out, "/// The longest anchor of any kind.").ok();
    writeln!(out, "const WIDEST_ANCHOR: usize = {widest};").ok();
}

/// For each match state of the DFA (by index: state id >> stride2), the
/// detectors whose candidate is where the match starts, one byte after it,
/// before its `@`, or at its host run's start: the scan reads one entry per
/// match instead of walking the state's patterns.
fn write_match_starts(
    dfa: &regex_automata::dfa::dense::DFA<Vec<u32>>,
    anchors: &[(String, Start)],
    out: &mut String,
) {
    use regex_automata::dfa::Automaton;
    use regex_automata::util::primitives::StateID;
    use regex_automata::Anchored;
    let Some(start) = dfa.universal_start_state(Anchored::No) else {
        fail("anchors must not use look-around".into());
    };
    // Every state reachable from the start, by any byte or the text's end.
    let mut seen = std::collections::BTreeSet::from([start]);
    let mut todo = vec![start];
    let mut rows: std::collections::BTreeMap<usize, [u64; 4]> = Default::default();
    while let Some(state) = todo.pop() {
        let next = (0..=255u8)
            .map(|b| dfa.next_state(state, b))
            .chain([dfa.next_eoi_state(state)]);
        for n in next.collect::<Vec<StateID>>() {
            if seen.insert(n) {
                todo.push(n);
            }
        }
        if !dfa.is_match_state(state) {
            continue;
        }
        let row = rows.entry(state.as_usize() >> dfa.stride2()).or_default();
        for m in 0..dfa.match_len(state) {
            let pattern = dfa.match_pattern(state, m).as_usize();
            let bit = if pattern < 64 {
                1u64 << pattern
            } else {
                u64::MAX
            };
            let column = match anchors[pattern].1 {
                Start::Here => 0,
                Start::AfterContext => 1,
                Start::BeforeAt => 2,
                Start::HostRun => 3,
            };
            row[column] |= bit;
        }
    }
    let len = rows.keys().max().map_or(0, |k| k + 1);
    if len > 4096 {
        fail(format!(
            "the anchors DFA's match states are not first ({len})"
        ));
    }
    writeln!(
        out,
        "/// Per match state (id >> stride2): detectors whose candidate is [here, after the context byte, before the `@`, at the host run]."
    )
    .ok();
    writeln!(out, "const MATCH_STARTS: &[[u64; 4]] = &[").ok();
    for index in 0..len {
        let row = rows.get(&index).copied().unwrap_or_default();
        writeln!(out, "    {row:?},").ok();
    }
    writeln!(out, "];").ok();
}
