//! Compiles the Cedar policies in `policies/` into the crate: every
//! `*.cedar` file is parsed, each policy must carry an `@id` and only known
//! annotations, and the whole set is validated against
//! `policies/schema.cedarschema` in strict mode. Any error fails the build
//! with Cedar's message at `file:line:column`. The result is the policy set in
//! Cedar's protobuf form plus a table of approval requirements, so no request
//! parses policy text.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use cedar_policy::proto::traits::Protobuf;
use cedar_policy::{
    ActionConstraint, Effect, PolicyId, PolicySet, PrincipalConstraint, ResourceConstraint, Schema,
    ValidationMode, Validator,
};
use miette::Diagnostic;

const ANNOTATIONS: &[&str] = &[
    "id",
    "auto_approve",
    "approver_groups",
    "min_approvals",
    "max_duration",
    "pending_ttl",
    "upstream_mode",
];

const ENTITY_TYPES: &[&str] = &[
    "User",
    "Agent",
    "Workload",
    "Group",
    "Scope",
    "AccessRequest",
    "AuditTrail",
    "Action",
];

const ACTIONS: &[&str] = &[
    "request",
    "approve",
    "deny",
    "revoke",
    "renew",
    "use",
    "exchange",
    "read_audit",
];

fn fail(message: String) -> ! {
    eprintln!("\nerror: {message}\n");
    std::process::exit(1);
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, col)
}

/// Cedar's message with the place it points at.
fn located(file: &Path, text: &str, e: &dyn Diagnostic) -> String {
    let mut out = String::new();
    let at = e
        .labels()
        .and_then(|mut labels| labels.next())
        .map(|l| line_col(text, l.offset()));
    match at {
        Some((line, col)) => {
            let _ = write!(out, "{}:{line}:{col}: {e}", file.display());
        }
        None => {
            let _ = write!(out, "{}: {e}", file.display());
        }
    }
    if let Some(help) = e.help() {
        let _ = write!(out, "\n  help: {help}");
    }
    for r in e.related().into_iter().flatten() {
        let _ = write!(out, "\n{}", located(file, text, r));
    }
    out
}

/// "90s", "15m", "8h", "2d" or plain seconds.
fn seconds(text: &str) -> Option<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let n: u64 = t[..split].parse().ok()?;
    let factor = match &t[split..] {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    n.checked_mul(factor).filter(|s| *s > 0)
}

fn applies_to(policy: &cedar_policy::Policy, action: &str) -> bool {
    match policy.action_constraint() {
        ActionConstraint::Any => true,
        ActionConstraint::Eq(a) => a.id().unescaped() == action,
        ActionConstraint::In(list) => list
            .iter()
            .any(|a| a.id().unescaped() == action || !ACTIONS.contains(&a.id().unescaped())),
    }
}

/// A build-time evaluation of the `use` policies, for the hot path. It holds
/// when (a) one permit applies to every principal and scope without
/// conditions, (b) every forbid names its principals by group
/// (`principal in Group::"g"`), and (c) every other permit that chooses the
/// upstream seat (`@upstream_mode`) applies, without conditions, to every
/// principal of one kind (`principal is Workload`). Then anyone in none of
/// those groups is permitted by the first permit and by the permits of their
/// kind, whatever the context — Groups have no parents, so membership is
/// exactly the caller's groups claim — and the gateway skips Cedar for them.
/// Otherwise `None`: every call asks Cedar.
fn use_fast_path(set: &PolicySet) -> String {
    let mut permit = None;
    let mut groups = Vec::new();
    let mut per_kind = Vec::new();
    for policy in set.policies().filter(|p| applies_to(p, "use")) {
        let unconditional = policy
            .to_json()
            .ok()
            .and_then(|j| {
                j.get("conditions")
                    .map(|c| c.as_array().is_some_and(|a| a.is_empty()))
            })
            .unwrap_or(false);
        match policy.effect() {
            Effect::Permit => {
                let every_scope = match policy.resource_constraint() {
                    ResourceConstraint::Any => true,
                    ResourceConstraint::Is(t) => t.to_string() == "Scope",
                    _ => false,
                };
                match policy.principal_constraint() {
                    PrincipalConstraint::Any
                        if every_scope && unconditional && permit.is_none() =>
                    {
                        permit = Some(policy.id().to_string());
                    }
                    PrincipalConstraint::Is(kind) if every_scope && unconditional => {
                        per_kind.push(format!(
                            "({:?}, {:?})",
                            kind.to_string(),
                            policy.id().to_string()
                        ));
                    }
                    // A conditional choice of the seat: only Cedar knows.
                    _ if policy.annotation("upstream_mode").is_some() => return "None".to_string(),
                    _ => {}
                }
            }
            Effect::Forbid => match policy.principal_constraint() {
                PrincipalConstraint::In(g) if g.type_name().to_string() == "Group" => {
                    groups.push(format!("{:?}", g.id().unescaped()));
                }
                _ => return "None".to_string(),
            },
        }
    }
    match permit {
        Some(id) => format!(
            "Some(UseFastPath {{ permit: {id:?}, forbid_groups: &[{}], per_kind: &[{}] }})",
            groups.join(", "),
            per_kind.join(", ")
        ),
        None => "None".to_string(),
    }
}

fn main() {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    let dir = Path::new(&manifest_dir).join("../../policies");
    let dir = dir.canonicalize().unwrap_or(dir);
    println!("cargo:rerun-if-changed={}", dir.display());
    let schema_path = dir.join("schema.cedarschema");
    println!("cargo:rerun-if-changed={}", schema_path.display());
    let schema_text = std::fs::read_to_string(&schema_path)
        .unwrap_or_else(|e| fail(format!("{}: {e}", schema_path.display())));
    let schema = match Schema::from_cedarschema_str(&schema_text) {
        Ok((schema, _warnings)) => schema,
        Err(e) => fail(located(&schema_path, &schema_text, &e)),
    };

    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| fail(format!("{}: {e}", dir.display())))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "cedar"))
        .collect();
    files.sort();
    if files.is_empty() {
        fail(format!("{}: no *.cedar policy files", dir.display()));
    }

    let mut set = PolicySet::new();
    // Which file and text each policy came from, for validation messages.
    let mut origin: BTreeMap<String, (PathBuf, String)> = BTreeMap::new();
    let mut requirements = String::new();
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
        let text = std::fs::read_to_string(file)
            .unwrap_or_else(|e| fail(format!("{}: {e}", file.display())));
        let parsed = match PolicySet::from_str(&text) {
            Ok(p) => p,
            Err(e) => fail(located(file, &text, &e)),
        };
        for policy in parsed.policies() {
            // The policy's line: where its @id stands (Policy has no public
            // source span), else the file.
            let place = || match policy
                .annotation("id")
                .and_then(|id| text.find(&format!("@id(\"{id}\")")))
            {
                Some(offset) => format!("{}:{}", file.display(), line_col(&text, offset).0),
                None => file.display().to_string(),
            };
            let Some(id) = policy.annotation("id").map(str::to_string) else {
                fail(format!("{}: every policy needs an @id(\"...\")", place()));
            };
            for (key, value) in policy.annotations() {
                if !ANNOTATIONS.contains(&key) {
                    fail(format!(
                        "{}: unknown annotation @{key}; known: {}",
                        place(),
                        ANNOTATIONS.join(", ")
                    ));
                }
                let ok = match key {
                    "auto_approve" => value == "true" || value == "false",
                    "min_approvals" => value.parse::<u32>().is_ok_and(|n| n > 0),
                    "max_duration" | "pending_ttl" => seconds(value).is_some(),
                    "approver_groups" => value.split(',').all(|g| !g.trim().is_empty()),
                    "upstream_mode" => matches!(value, "own-seat" | "shared-seat"),
                    _ => true,
                };
                if !ok {
                    fail(format!("{}: @{key}(\"{value}\") is not valid", place()));
                }
            }
            // The upstream seat is chosen per call: only `use` permits say it.
            if policy.annotation("upstream_mode").is_some()
                && (policy.effect() != Effect::Permit
                    || !matches!(policy.action_constraint(), ActionConstraint::Eq(ref a) if a.id().unescaped() == "use"))
            {
                fail(format!(
                    "{}: @upstream_mode belongs on a permit for action == Action::\"use\" only",
                    place()
                ));
            }
            // A permit that lets people ask must say who approves, unless it
            // approves at once.
            let asks = match policy.action_constraint() {
                ActionConstraint::Any => true,
                ActionConstraint::Eq(a) => matches!(a.id().unescaped(), "request" | "renew"),
                ActionConstraint::In(list) => list
                    .iter()
                    .any(|a| matches!(a.id().unescaped(), "request" | "renew")),
            };
            let auto = policy.annotation("auto_approve") == Some("true");
            if policy.effect() == Effect::Permit
                && asks
                && !auto
                && policy.annotation("approver_groups").is_none()
            {
                fail(format!(
                    "{}: policy {id} permits requests but names no @approver_groups (or @auto_approve(\"true\"))",
                    place()
                ));
            }
            let renamed = policy.new_id(PolicyId::new(&id));
            if set.add(renamed).is_err() {
                fail(format!("{}: policy id {id} is used twice", place()));
            }
            let groups: Vec<String> = policy
                .annotation("approver_groups")
                .map(|g| g.split(',').map(|s| format!("{:?}", s.trim())).collect())
                .unwrap_or_default();
            let opt = |v: Option<u64>| v.map_or("None".to_string(), |n| format!("Some({n})"));
            let _ = writeln!(
                requirements,
                "    ({id:?}, Annotated {{ auto_approve: {}, approver_groups: &[{}], min_approvals: {}, max_duration_secs: {}, pending_ttl_secs: {}, upstream_mode: {} }}),",
                match policy.annotation("auto_approve") {
                    Some("true") => "Some(true)",
                    Some(_) => "Some(false)",
                    None => "None",
                },
                groups.join(", "),
                opt(policy.annotation("min_approvals").and_then(|v| v.parse().ok())),
                opt(policy.annotation("max_duration").and_then(seconds)),
                opt(policy.annotation("pending_ttl").and_then(seconds)),
                policy
                    .annotation("upstream_mode")
                    .map_or("None".to_string(), |m| format!("Some({m:?})")),
            );
            origin.insert(id, (file.clone(), text.clone()));
        }
    }

    let result = Validator::new(schema).validate(&set, ValidationMode::Strict);
    let errors: Vec<String> = result
        .validation_errors()
        .map(|e| {
            let id = e.policy_id().to_string();
            match origin.get(&id) {
                Some((file, text)) => located(file, text, e),
                None => format!("policy {id}: {e}"),
            }
        })
        .collect();
    if !errors.is_empty() {
        fail(format!(
            "the policies do not validate against policies/schema.cedarschema:\n{}",
            errors.join("\n")
        ));
    }

    let out =
        PathBuf::from(std::env::var("OUT_DIR").unwrap_or_else(|_| fail("OUT_DIR unset".into())));
    // One slice per action: a request decodes only the policies that can
    // apply to its action (a Copilot call's `use` slice is two policies, not
    // the whole set). A policy naming an unknown action goes everywhere.
    let mut slices = String::new();
    for action in ACTIONS {
        let mut slice = PolicySet::new();
        for policy in set.policies() {
            let applies = match policy.action_constraint() {
                ActionConstraint::Any => true,
                ActionConstraint::Eq(a) => a.id().unescaped() == *action,
                ActionConstraint::In(list) => list.iter().any(|a| {
                    a.id().unescaped() == *action || !ACTIONS.contains(&a.id().unescaped())
                }),
            };
            if applies && slice.add(policy.clone()).is_err() {
                fail(format!(
                    "policy {} twice in the {action} slice",
                    policy.id()
                ));
            }
        }
        let bytes = slice
            .encode()
            .unwrap_or_else(|e| fail(format!("encoding the {action} policies: {e}")));
        std::fs::write(out.join(format!("policies-{action}.pb")), bytes)
            .unwrap_or_else(|e| fail(format!("writing policies-{action}.pb: {e}")));
        let _ = writeln!(
            slices,
            "    ({action:?}, include_bytes!(concat!(env!(\"OUT_DIR\"), \"/policies-{action}.pb\"))),"
        );
    }
    // The entity type names, ready made: building a name from text at run
    // time starts Cedar's parser (its lexer compiles regexes) in every fresh
    // instance, and so does decoding entities; decoding policies does not.
    // One policy per type, `principal == Type::"_"`, carries each name.
    let text: String = ENTITY_TYPES
        .iter()
        .map(|t| format!("permit (principal == {t}::\"_\", action, resource);\n"))
        .collect();
    let types = PolicySet::from_str(&text)
        .unwrap_or_else(|e| fail(format!("entity types: {e}")))
        .encode()
        .unwrap_or_else(|e| fail(format!("encoding entity types: {e}")));
    std::fs::write(out.join("types.pb"), types)
        .unwrap_or_else(|e| fail(format!("writing types.pb: {e}")));
    let fast_path = use_fast_path(&set);
    std::fs::write(
        out.join("slices.rs"),
        format!(
            "/// The compiled policies that can apply to each action (Cedar protobuf).\npub static SLICES: &[(&str, &[u8])] = &[\n{slices}];\n/// Policies in the whole set.\npub const POLICY_COUNT: usize = {};\n/// `use` decided at build time for callers outside these groups: the permit for everyone and those for each principal kind (see build.rs).\npub static USE_FAST_PATH: Option<UseFastPath> = {fast_path};\n",
            set.policies().count()
        ),
    )
    .unwrap_or_else(|e| fail(format!("writing slices.rs: {e}")));
    std::fs::write(
        out.join("requirements.rs"),
        format!(
            "/// Approval annotations of every policy, by id (generated from policies/*.cedar).\npub static ANNOTATED: &[(&str, Annotated)] = &[\n{requirements}];\n"
        ),
    )
    .unwrap_or_else(|e| fail(format!("writing requirements.rs: {e}")));
}
