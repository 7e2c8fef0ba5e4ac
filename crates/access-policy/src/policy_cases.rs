//! Runs `policies/tests/*.toml`: request → expected decision cases against
//! the compiled policy set, so a policy change that breaks one fails CI.

use super::*;
use serde::Deserialize;
use serde_json::json;
use std::path::PathBuf;

#[derive(Deserialize)]
struct File {
    case: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    principal: CasePrincipal,
    action: String,
    resource: CaseResource,
    #[serde(default)]
    context: toml::Table,
    expect: String,
    policies: Option<Vec<String>>,
    auto_approve: Option<bool>,
    min_approvals: Option<u32>,
    approver_groups: Option<Vec<String>>,
    max_duration_secs: Option<u64>,
    pending_ttl_secs: Option<u64>,
    /// The seat a `use` decision names: "own-seat", "shared-seat" or
    /// "none" (the gateway's `upstream_mode` then decides).
    upstream_mode: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CasePrincipal {
    kind: String,
    subject: String,
    #[serde(default = "issuer")]
    issuer: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    claims: toml::Table,
}

fn issuer() -> String {
    "https://idp.example".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseResource {
    scope: Option<String>,
    request: Option<CaseRequest>,
    #[serde(default)]
    audit: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseRequest {
    requester: String,
    #[serde(default = "issuer")]
    requester_issuer: String,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    approver_groups: Vec<String>,
    #[serde(default = "hour")]
    duration_secs: u64,
    #[serde(default = "approved")]
    status: String,
}

fn hour() -> u64 {
    3600
}

fn approved() -> String {
    "approved".into()
}

/// What the gateway always puts in each action's context.
fn default_context(action: Action) -> Value {
    match action {
        Action::Request => json!({"duration_secs": 3600, "reason": "work", "hour": 10,
                                  "weekday": 1, "client": "test", "models": []}),
        Action::Approve | Action::Deny => json!({"comment": "", "hour": 10, "weekday": 1}),
        Action::Revoke => json!({"hour": 10, "weekday": 1}),
        Action::Renew => json!({"duration_secs": 3600, "hour": 10, "weekday": 1}),
        Action::Use => json!({"endpoint": "/chat/completions", "client": "test"}),
        Action::Exchange => json!({"duration_secs": 900}),
        Action::ReadAudit => json!({}),
    }
}

#[test]
fn every_policy_case_holds() {
    let dir =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("../../policies/tests");
    let engine = Engine::load().expect("the compiled policies load");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("policies/tests exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let mut failures = Vec::new();
    let mut count = 0;
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let parsed: File =
            toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for case in parsed.case {
            count += 1;
            let where_ = format!("{}: {}", file.display(), case.name);
            let action = Action::parse(&case.action)
                .unwrap_or_else(|| panic!("{where_}: unknown action {}", case.action));
            let kind = match case.principal.kind.as_str() {
                "human" => Kind::Human,
                "workload" => Kind::Workload,
                "agent" => Kind::Agent,
                k => panic!("{where_}: unknown kind {k}"),
            };
            let claims = serde_json::to_value(&case.principal.claims).unwrap();
            let principal = Principal {
                kind,
                subject: &case.principal.subject,
                issuer: &case.principal.issuer,
                email: &case.principal.email,
                groups: &case.principal.groups,
                claims: Some(&claims),
            };
            let resource = match (
                &case.resource.scope,
                &case.resource.request,
                case.resource.audit,
            ) {
                (Some(s), None, false) => Resource::Scope(s),
                (None, Some(r), false) => Resource::AccessRequest(RequestFacts {
                    id: "req_case",
                    requester: &r.requester,
                    requester_issuer: &r.requester_issuer,
                    scopes: &r.scopes,
                    approver_groups: &r.approver_groups,
                    duration_secs: r.duration_secs,
                    status: &r.status,
                }),
                (None, None, true) => Resource::AuditTrail,
                _ => panic!("{where_}: resource is one of scope, request, audit"),
            };
            let mut context = default_context(action);
            for (k, v) in &case.context {
                context[k] = serde_json::to_value(v).unwrap();
            }
            let d = engine
                .decide(&principal, action, &resource, context)
                .unwrap_or_else(|e| panic!("{where_}: {e}"));
            let mut wrong = Vec::new();
            let want_allow = match case.expect.as_str() {
                "allow" => true,
                "deny" => false,
                e => panic!("{where_}: expect is allow or deny, not {e}"),
            };
            if d.allowed != want_allow {
                wrong.push(format!("expected {}, got {}", case.expect, d.explain()));
            }
            if !d.errors.is_empty() {
                wrong.push(format!("evaluation errors: {:?}", d.errors));
            }
            if let Some(p) = &case.policies {
                let mut p = p.clone();
                p.sort();
                if p != d.policy_ids {
                    wrong.push(format!("decided by {:?}, expected {p:?}", d.policy_ids));
                }
            }
            let r = &d.requirements;
            if case.auto_approve.is_some_and(|a| a != r.auto_approve) {
                wrong.push(format!("auto_approve is {}", r.auto_approve));
            }
            if case.min_approvals.is_some_and(|m| m != r.min_approvals) {
                wrong.push(format!("min_approvals is {}", r.min_approvals));
            }
            if case
                .approver_groups
                .as_ref()
                .is_some_and(|g| *g != r.approver_groups)
            {
                wrong.push(format!("approver_groups are {:?}", r.approver_groups));
            }
            if case.max_duration_secs.is_some() && case.max_duration_secs != r.max_duration_secs {
                wrong.push(format!("max_duration_secs is {:?}", r.max_duration_secs));
            }
            if case.pending_ttl_secs.is_some() && case.pending_ttl_secs != r.pending_ttl_secs {
                wrong.push(format!("pending_ttl_secs is {:?}", r.pending_ttl_secs));
            }
            if let Some(want) = &case.upstream_mode {
                let got = r.upstream_mode.map_or("none", SeatMode::name);
                if want != got {
                    wrong.push(format!("upstream_mode is {got}"));
                }
            }
            if !wrong.is_empty() {
                failures.push(format!("{where_}: {}", wrong.join("; ")));
            }
        }
    }
    assert!(count > 0, "no policy cases found");
    assert!(
        failures.is_empty(),
        "policy cases failed:\n{}",
        failures.join("\n")
    );
}

#[test]
fn strictest_requirements_win_when_several_permits_apply() {
    let r = requirements(&[
        "developers-request".to_string(),
        "contractors-two-security-approvals".to_string(),
    ]);
    assert!(!r.auto_approve);
    assert_eq!(r.min_approvals, 2);
    assert_eq!(r.approver_groups, vec!["security".to_string()]);
    assert_eq!(r.max_duration_secs, Some(4 * 3600));
    assert_eq!(r.pending_ttl_secs, Some(30 * 60));
    let auto = requirements(&["senior-engineers-auto-approve".to_string()]);
    assert!(auto.auto_approve);
    // One auto-approving policy does not lift another's approvals.
    let mixed = requirements(&[
        "senior-engineers-auto-approve".to_string(),
        "developers-request".to_string(),
    ]);
    assert!(!mixed.auto_approve);
    assert_eq!(mixed.approver_groups, vec!["copilot-approvers".to_string()]);
}

#[test]
fn the_clock_knows_weekdays() {
    assert_eq!(clock(0), (0, 3)); // Thursday
    assert_eq!(clock(1_796_000_000), (0, 0)); // 2026-11-30, a Monday
}

/// The build-time `use` shortcut gives Cedar's answer for every caller it
/// covers: compared over group sets, kinds, scopes and models.
#[test]
fn the_use_shortcut_agrees_with_cedar() {
    let engine = Engine::load().unwrap();
    assert!(
        USE_FAST_PATH.is_some(),
        "the default use policies allow the shortcut"
    );
    let groups = [
        "developers",
        "senior-engineers",
        "contractors",
        "security",
        "copilot-approvers",
        "marketing",
    ];
    let mut checked = 0;
    for mask in 0..(1u32 << groups.len()) {
        let member: Vec<String> = groups
            .iter()
            .enumerate()
            .filter(|(i, _)| mask & (1 << i) != 0)
            .map(|(_, g)| g.to_string())
            .collect();
        for kind in [Kind::Human, Kind::Agent, Kind::Workload] {
            let claims = json!({});
            let who = Principal {
                kind,
                subject: "someone",
                issuer: "https://idp.example",
                email: "",
                groups: &member,
                claims: Some(&claims),
            };
            for scope in ["chat", "completions", "models", "embeddings"] {
                for model in [None, Some("gpt-4o"), Some("gpt-5-preview")] {
                    let mut context = json!({"endpoint": "/chat/completions", "client": "x"});
                    if let Some(m) = model {
                        context["model"] = json!(m);
                    }
                    let fast = engine
                        .decide(&who, Action::Use, &Resource::Scope(scope), context.clone())
                        .unwrap();
                    let full = engine
                        .decide_with_cedar(&who, Action::Use, &Resource::Scope(scope), context)
                        .unwrap();
                    assert_eq!(
                        (fast.allowed, &fast.policy_ids),
                        (full.allowed, &full.policy_ids),
                        "{member:?} {kind:?} {scope} {model:?}"
                    );
                    assert_eq!(
                        fast.requirements.upstream_mode, full.requirements.upstream_mode,
                        "{member:?} {kind:?} {scope} {model:?}"
                    );
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, 64 * 3 * 4 * 3);
}
