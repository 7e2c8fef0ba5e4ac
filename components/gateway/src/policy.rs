//! The access policy of the walking skeleton: group-based and read from Spin
//! variables. It decides who may request what, who approves, and how long a
//! grant may last. Invalid configuration is an error, never a default allow.

use serde::Deserialize;

pub const KNOWN_SCOPES: &[&str] = &["chat", "completions", "models", "embeddings"];
const MAX_REASON_CHARS: usize = 1000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub approver_groups: Vec<String>,
    pub auditor_groups: Vec<String>,
    pub auto_approve_groups: Vec<String>,
    pub required_approvals: u32,
    pub max_duration_secs: u64,
    pub default_duration_secs: u64,
    pub pending_ttl_secs: u64,
}

/// What a caller asks for in `POST /v1/access-requests`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessAsk {
    pub scopes: Vec<String>,
    #[serde(default)]
    pub models: Vec<String>,
    #[serde(default)]
    pub duration: Option<Duration>,
    pub reason: String,
    #[serde(default)]
    pub repository: Option<String>,
}

/// A duration as seconds (`900`) or text (`"15m"`, `"1h"`, `"90s"`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Duration {
    Seconds(u64),
    Text(String),
}

impl Duration {
    pub fn seconds(&self) -> Option<u64> {
        match self {
            Duration::Seconds(s) => Some(*s),
            Duration::Text(t) => {
                let t = t.trim();
                let (number, unit) =
                    t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
                let n: u64 = number.parse().ok()?;
                let factor = match unit {
                    "" | "s" => 1,
                    "m" => 60,
                    "h" => 3600,
                    _ => return None,
                };
                n.checked_mul(factor)
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub auto_approve: bool,
    pub required_approvals: u32,
    pub approver_groups: Vec<String>,
    pub duration_secs: u64,
    pub pending_ttl_secs: u64,
}

/// A refusal, naming the rule that refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub rule: &'static str,
    pub message: String,
}

fn deny(rule: &'static str, message: impl Into<String>) -> Denial {
    Denial {
        rule,
        message: message.into(),
    }
}

fn list(value: Option<String>) -> Vec<String> {
    value
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn intersects(a: &[String], b: &[String]) -> bool {
    a.iter().any(|x| b.contains(x))
}

impl Policy {
    /// Builds the policy from variables; `get` returns a variable's value.
    pub fn from_variables(get: impl Fn(&str) -> Option<String>) -> Result<Policy, String> {
        let number = |name: &str, default: u64| -> Result<u64, String> {
            match get(name) {
                None => Ok(default),
                Some(v) if v.trim().is_empty() => Ok(default),
                Some(v) => v
                    .trim()
                    .parse()
                    .map_err(|_| format!("variable {name} must be a whole number")),
            }
        };
        let policy = Policy {
            approver_groups: list(get("approver_groups")),
            auditor_groups: list(get("auditor_groups")),
            auto_approve_groups: list(get("auto_approve_groups")),
            required_approvals: number("required_approvals", 1)? as u32,
            max_duration_secs: number("max_grant_secs", 8 * 3600)?,
            default_duration_secs: number("default_grant_secs", 3600)?,
            pending_ttl_secs: number("pending_ttl_secs", 3600)?,
        };
        if policy.approver_groups.is_empty() {
            return Err("variable approver_groups names no group".into());
        }
        if policy.required_approvals == 0 || policy.max_duration_secs == 0 {
            return Err("required_approvals and max_grant_secs must be positive".into());
        }
        Ok(policy)
    }

    pub fn plan(&self, groups: &[String], ask: &AccessAsk) -> Result<Plan, Denial> {
        if ask.scopes.is_empty() {
            return Err(deny("scopes", "ask for at least one scope"));
        }
        if let Some(bad) = ask
            .scopes
            .iter()
            .find(|s| !KNOWN_SCOPES.contains(&s.as_str()))
        {
            return Err(deny(
                "scopes",
                format!(
                    "unknown scope {bad:?}; known scopes: {}",
                    KNOWN_SCOPES.join(", ")
                ),
            ));
        }
        let reason = ask.reason.trim();
        if reason.is_empty() || reason.chars().count() > MAX_REASON_CHARS {
            return Err(deny(
                "reason",
                format!("give a reason of 1 to {MAX_REASON_CHARS} characters"),
            ));
        }
        let duration_secs = match &ask.duration {
            None => self.default_duration_secs.min(self.max_duration_secs),
            Some(d) => d.seconds().filter(|s| *s > 0).ok_or_else(|| {
                deny(
                    "duration",
                    "duration must be seconds or text like \"15m\" or \"2h\"",
                )
            })?,
        };
        if duration_secs > self.max_duration_secs {
            return Err(deny(
                "max-duration",
                format!(
                    "at most {} seconds may be requested",
                    self.max_duration_secs
                ),
            ));
        }
        Ok(Plan {
            auto_approve: intersects(groups, &self.auto_approve_groups),
            required_approvals: self.required_approvals,
            approver_groups: self.approver_groups.clone(),
            duration_secs,
            pending_ttl_secs: self.pending_ttl_secs,
        })
    }

    pub fn may_decide(&self, groups: &[String], request_approver_groups: &[String]) -> bool {
        intersects(groups, request_approver_groups)
    }

    pub fn may_read_audit(&self, groups: &[String]) -> bool {
        intersects(groups, &self.auditor_groups)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy::from_variables(|name| match name {
            "approver_groups" => Some("copilot-approvers, security".into()),
            "auditor_groups" => Some("auditors".into()),
            "auto_approve_groups" => Some("staff-engineers".into()),
            "max_grant_secs" => Some("7200".into()),
            _ => None,
        })
        .unwrap()
    }

    fn ask(json: serde_json::Value) -> AccessAsk {
        serde_json::from_value(json).unwrap()
    }

    fn groups(g: &[&str]) -> Vec<String> {
        g.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn plans_follow_groups_and_limits() {
        let p = policy();
        let plan = p
            .plan(
                &groups(&["dev"]),
                &ask(serde_json::json!({"scopes": ["chat"], "reason": "x", "duration": "30m"})),
            )
            .unwrap();
        assert!(!plan.auto_approve);
        assert_eq!(plan.duration_secs, 1800);
        assert_eq!(
            plan.approver_groups,
            groups(&["copilot-approvers", "security"])
        );
        let auto = p
            .plan(
                &groups(&["staff-engineers"]),
                &ask(serde_json::json!({"scopes": ["chat"], "reason": "x"})),
            )
            .unwrap();
        assert!(auto.auto_approve);
        assert_eq!(auto.duration_secs, 3600);
    }

    #[test]
    fn bad_asks_are_denied_with_the_rule() {
        let p = policy();
        let rule = |j| p.plan(&[], &ask(j)).unwrap_err().rule;
        assert_eq!(
            rule(serde_json::json!({"scopes": ["root"], "reason": "x"})),
            "scopes"
        );
        assert_eq!(
            rule(serde_json::json!({"scopes": [], "reason": "x"})),
            "scopes"
        );
        assert_eq!(
            rule(serde_json::json!({"scopes": ["chat"], "reason": " "})),
            "reason"
        );
        assert_eq!(
            rule(serde_json::json!({"scopes": ["chat"], "reason": "x", "duration": "3h"})),
            "max-duration"
        );
        assert_eq!(
            rule(serde_json::json!({"scopes": ["chat"], "reason": "x", "duration": "soon"})),
            "duration"
        );
        assert_eq!(
            rule(serde_json::json!({"scopes": ["chat"], "reason": "x", "duration": 0})),
            "duration"
        );
    }

    #[test]
    fn configuration_fails_closed() {
        assert!(Policy::from_variables(|_| None).is_err());
        assert!(Policy::from_variables(|n| match n {
            "approver_groups" => Some("a".into()),
            "max_grant_secs" => Some("lots".into()),
            _ => None,
        })
        .is_err());
    }

    #[test]
    fn approvers_and_auditors() {
        let p = policy();
        assert!(p.may_decide(&groups(&["security"]), &p.approver_groups));
        assert!(!p.may_decide(&groups(&["dev"]), &p.approver_groups));
        assert!(p.may_read_audit(&groups(&["auditors"])));
        assert!(!p.may_read_audit(&groups(&["security"])));
    }
}

/// Which GitHub Actions runs may exchange their OIDC token, for what and how
/// long. Empty `repositories` allows none: exchange is off until configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionsPolicy {
    /// `org/repo` or `org/*`.
    pub repositories: Vec<String>,
    /// Required `repository_owner` values; empty means any owner the repositories allow.
    pub owners: Vec<String>,
    /// Required `job_workflow_ref` patterns (`org/repo/.github/workflows/ci.yml@*`); empty means any.
    pub workflows: Vec<String>,
    /// Exact refs, or prefixes ending in `*` (`refs/tags/v*`).
    pub refs: Vec<String>,
    /// Required deployment environments; empty means none is required.
    pub environments: Vec<String>,
    pub events: Vec<String>,
    pub scopes: Vec<String>,
    pub token_secs: u64,
}

/// `*` matches any run of characters (including `/`); everything else is literal.
fn matches_pattern(pattern: &str, value: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = value.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

impl ActionsPolicy {
    pub fn from_variables(get: impl Fn(&str) -> Option<String>) -> Result<ActionsPolicy, String> {
        let or = |name: &str, default: &str| {
            list(Some(get(name).unwrap_or_else(|| default.to_string())))
        };
        let policy = ActionsPolicy {
            repositories: list(get("actions_repositories")),
            owners: list(get("actions_owners")),
            workflows: list(get("actions_workflows")),
            refs: or("actions_refs", "refs/heads/main"),
            environments: list(get("actions_environments")),
            events: or("actions_events", "push,workflow_dispatch,schedule"),
            scopes: or("actions_scopes", "completions"),
            token_secs: match get("actions_token_secs") {
                None => 900,
                Some(v) => v.trim().parse().map_err(|_| {
                    "variable actions_token_secs must be a whole number".to_string()
                })?,
            },
        };
        if let Some(bad) = policy
            .scopes
            .iter()
            .find(|s| !KNOWN_SCOPES.contains(&s.as_str()))
        {
            return Err(format!("variable actions_scopes names unknown scope {bad}"));
        }
        Ok(policy)
    }

    /// Checks a verified Actions token's claims; the denial names the rule.
    pub fn check(&self, claims: &serde_json::Value) -> Result<(), Denial> {
        let claim = |k: &str| claims.get(k).and_then(|v| v.as_str()).unwrap_or("");
        let repository = claim("repository");
        if !self
            .repositories
            .iter()
            .any(|p| matches_pattern(p, repository))
        {
            return Err(deny(
                "actions-repository",
                format!("repository {repository:?} may not exchange tokens"),
            ));
        }
        let owner = claim("repository_owner");
        if !self.owners.is_empty() && !self.owners.iter().any(|o| o == owner) {
            return Err(deny(
                "actions-owner",
                format!("owner {owner:?} may not exchange tokens"),
            ));
        }
        let workflow = claim("job_workflow_ref");
        if !self.workflows.is_empty()
            && !self.workflows.iter().any(|p| matches_pattern(p, workflow))
        {
            return Err(deny(
                "actions-workflow",
                format!("workflow {workflow:?} may not exchange tokens"),
            ));
        }
        let git_ref = claim("ref");
        if !self.refs.iter().any(|p| matches_pattern(p, git_ref)) {
            return Err(deny(
                "actions-ref",
                format!("ref {git_ref:?} may not exchange tokens"),
            ));
        }
        let environment = claim("environment");
        if !self.environments.is_empty() && !self.environments.iter().any(|e| e == environment) {
            return Err(deny(
                "actions-environment",
                format!("environment {environment:?} is not allowed"),
            ));
        }
        let event = claim("event_name");
        if !self.events.iter().any(|e| e == event) {
            return Err(deny(
                "actions-event",
                format!("event {event:?} may not exchange tokens"),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod actions_tests {
    use super::*;

    fn policy() -> ActionsPolicy {
        ActionsPolicy::from_variables(|n| match n {
            "actions_repositories" => Some("acme/app, acme/lib-*".into()),
            "actions_refs" => Some("refs/heads/main,refs/tags/v*".into()),
            "actions_environments" => Some("production".into()),
            "actions_owners" => Some("acme".into()),
            "actions_workflows" => Some("acme/*/.github/workflows/release.yml@*".into()),
            _ => None,
        })
        .unwrap()
    }

    fn run(repo: &str, git_ref: &str, env: &str, event: &str) -> Result<(), &'static str> {
        let owner = repo.split('/').next().unwrap_or("");
        policy()
            .check(&serde_json::json!({
                "repository": repo, "repository_owner": owner, "ref": git_ref, "environment": env,
                "event_name": event, "job_workflow_ref": format!("{repo}/.github/workflows/release.yml@{git_ref}")
            }))
            .map_err(|d| d.rule)
    }

    #[test]
    fn runs_are_checked_on_repository_ref_environment_and_event() {
        assert_eq!(
            run("acme/app", "refs/heads/main", "production", "push"),
            Ok(())
        );
        assert_eq!(
            run(
                "acme/lib-core",
                "refs/tags/v1.2",
                "production",
                "workflow_dispatch"
            ),
            Ok(())
        );
        assert_eq!(
            run("evil/app", "refs/heads/main", "production", "push"),
            Err("actions-repository")
        );
        assert_eq!(
            run("acme/app", "refs/heads/feature", "production", "push"),
            Err("actions-ref")
        );
        assert_eq!(
            run("acme/app", "refs/heads/main", "staging", "push"),
            Err("actions-environment")
        );
        assert_eq!(
            run(
                "acme/app",
                "refs/heads/main",
                "production",
                "pull_request_target"
            ),
            Err("actions-event")
        );
    }

    #[test]
    fn patterns_match_like_globs() {
        assert!(matches_pattern("acme/app", "acme/app"));
        assert!(!matches_pattern("acme/app", "acme/app2"));
        assert!(matches_pattern("acme/*", "acme/app"));
        assert!(!matches_pattern("acme/*", "acmex/app"));
        assert!(matches_pattern("refs/tags/v*", "refs/tags/v1.2"));
        assert!(matches_pattern(
            "acme/*/.github/workflows/ci.yml@*",
            "acme/app/.github/workflows/ci.yml@refs/heads/main"
        ));
        assert!(!matches_pattern(
            "acme/*/.github/workflows/ci.yml@*",
            "acme/app/.github/workflows/cd.yml@refs/heads/main"
        ));
        assert!(matches_pattern("*", "anything"));
        assert!(!matches_pattern("a*b", "ab-"));
        assert!(matches_pattern("a*b*c", "abbc"));
    }

    #[test]
    fn exchange_is_off_until_repositories_are_named() {
        let off = ActionsPolicy::from_variables(|_| None).unwrap();
        assert!(off.check(&serde_json::json!({"repository": "acme/app", "ref": "refs/heads/main", "event_name": "push"})).is_err());
        assert!(ActionsPolicy::from_variables(
            |n| (n == "actions_scopes").then(|| "root".to_string())
        )
        .is_err());
    }
}
