//! The access policy: Cedar policies from `policies/`, validated against the
//! schema and compiled in by `build.rs`. At run time the policy set is
//! decoded from Cedar's binary (protobuf) form — no policy text is parsed —
//! and each decision says which policies decided and, for permits, the
//! approval requirements their annotations state.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::OnceLock;

use cedar_policy::proto::traits::Protobuf;
use cedar_policy::{
    Authorizer, Context, Decision as CedarDecision, Entities, Entity, EntityId, EntityTypeName,
    EntityUid, PolicySet, PrincipalConstraint, Request, RestrictedExpression,
};
use serde_json::Value;

/// Approval annotations of one policy, as written.
#[derive(Debug, Clone, Copy)]
pub struct Annotated {
    pub auto_approve: Option<bool>,
    pub approver_groups: &'static [&'static str],
    pub min_approvals: Option<u32>,
    pub max_duration_secs: Option<u64>,
    pub pending_ttl_secs: Option<u64>,
    /// `@upstream_mode` on a `use` permit: whose Copilot seat the call uses.
    pub upstream_mode: Option<&'static str>,
}

include!(concat!(env!("OUT_DIR"), "/requirements.rs"));

/// `use` as the build evaluated it (see build.rs): for callers in none of
/// `forbid_groups`, `permit` and the permits of their kind (`per_kind`:
/// entity type, policy id) decide.
pub struct UseFastPath {
    pub permit: &'static str,
    pub forbid_groups: &'static [&'static str],
    pub per_kind: &'static [(&'static str, &'static str)],
}

include!(concat!(env!("OUT_DIR"), "/slices.rs"));

/// One policy per entity type the model uses (`principal == Type::"_"`, Cedar
/// protobuf), so that type names never go through Cedar's text parser at run
/// time (see build.rs).
static TYPES: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/types.pb"));

/// What the permitting policies require, merged strictest-first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Requirements {
    pub auto_approve: bool,
    pub approver_groups: Vec<String>,
    pub min_approvals: u32,
    pub max_duration_secs: Option<u64>,
    pub pending_ttl_secs: Option<u64>,
    /// The seat a Copilot call uses, when a permitting `use` policy names
    /// one (`@upstream_mode`); the caller's own wins over the shared one.
    pub upstream_mode: Option<SeatMode>,
}

/// Whose Copilot seat a call is made with upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeatMode {
    /// The caller's own GitHub account, linked to their identity.
    OwnSeat,
    /// The one GitHub account the gateway holds (service identities).
    SharedSeat,
}

impl SeatMode {
    pub fn parse(text: &str) -> Option<SeatMode> {
        match text.trim() {
            "own-seat" => Some(SeatMode::OwnSeat),
            "shared-seat" => Some(SeatMode::SharedSeat),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SeatMode::OwnSeat => "own-seat",
            SeatMode::SharedSeat => "shared-seat",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// The policies that decided: the permits for an allow, the forbids for
    /// an explicit deny, none for "nothing permits".
    pub policy_ids: Vec<String>,
    /// Policies that could not be evaluated (they count as not applying).
    pub errors: Vec<String>,
    pub requirements: Requirements,
}

impl Decision {
    /// Human words for a denial.
    pub fn explain(&self) -> String {
        if self.allowed {
            format!("permitted by {}", self.policy_ids.join(", "))
        } else if self.policy_ids.is_empty() {
            "no policy permits this".to_string()
        } else {
            format!("forbidden by {}", self.policy_ids.join(", "))
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Request,
    Approve,
    Deny,
    Revoke,
    Renew,
    Use,
    Exchange,
    ReadAudit,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Request => "request",
            Action::Approve => "approve",
            Action::Deny => "deny",
            Action::Revoke => "revoke",
            Action::Renew => "renew",
            Action::Use => "use",
            Action::Exchange => "exchange",
            Action::ReadAudit => "read_audit",
        }
    }

    pub fn parse(name: &str) -> Option<Action> {
        [
            Action::Request,
            Action::Approve,
            Action::Deny,
            Action::Revoke,
            Action::Renew,
            Action::Use,
            Action::Exchange,
            Action::ReadAudit,
        ]
        .into_iter()
        .find(|a| a.name() == name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Human,
    Workload,
    Agent,
}

/// Who asks.
#[derive(Debug, Clone)]
pub struct Principal<'a> {
    pub kind: Kind,
    pub subject: &'a str,
    pub issuer: &'a str,
    pub email: &'a str,
    pub groups: &'a [String],
    /// A workload's token claims (repository, ref, environment, …).
    pub claims: Option<&'a Value>,
}

/// An access request or grant, as policies see it.
#[derive(Debug, Clone)]
pub struct RequestFacts<'a> {
    pub id: &'a str,
    pub requester: &'a str,
    pub requester_issuer: &'a str,
    pub scopes: &'a [String],
    pub approver_groups: &'a [String],
    pub duration_secs: u64,
    pub status: &'a str,
}

#[derive(Debug, Clone)]
pub enum Resource<'a> {
    Scope(&'a str),
    AccessRequest(RequestFacts<'a>),
    AuditTrail,
}

#[derive(Debug)]
pub enum PolicyError {
    /// The compiled policy set could not be loaded (a broken build).
    Load(String),
    /// The question could not be put to Cedar (bad ids, context shape).
    Query(String),
}

impl std::fmt::Display for PolicyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PolicyError::Load(e) => write!(f, "policy set: {e}"),
            PolicyError::Query(e) => write!(f, "policy query: {e}"),
        }
    }
}

/// The compiled policies, decoded per action on first use.
pub struct Engine {
    slices: [OnceLock<Result<PolicySet, String>>; 8],
    types: OnceLock<Result<HashMap<String, EntityTypeName>, String>>,
}

fn principal_type(kind: Kind) -> &'static str {
    match kind {
        Kind::Human => "User",
        Kind::Workload => "Workload",
        Kind::Agent => "Agent",
    }
}

fn string(v: &str) -> RestrictedExpression {
    RestrictedExpression::new_string(v.to_string())
}

fn strings(v: &[String]) -> RestrictedExpression {
    RestrictedExpression::new_set(v.iter().map(|s| string(s)))
}

/// A context value from JSON, built directly (Cedar's JSON reader is
/// heavier): strings, whole numbers, booleans, arrays as sets, objects as
/// records.
fn expression(v: &Value) -> Result<RestrictedExpression, PolicyError> {
    Ok(match v {
        Value::String(s) => string(s),
        Value::Bool(b) => RestrictedExpression::new_bool(*b),
        Value::Number(n) => RestrictedExpression::new_long(
            n.as_i64()
                .ok_or_else(|| PolicyError::Query(format!("{n} is not a whole number")))?,
        ),
        Value::Array(items) => RestrictedExpression::new_set(
            items
                .iter()
                .map(expression)
                .collect::<Result<Vec<_>, _>>()?,
        ),
        Value::Object(map) => RestrictedExpression::new_record(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), expression(v)?)))
                .collect::<Result<Vec<_>, PolicyError>>()?,
        )
        .map_err(|e| PolicyError::Query(e.to_string()))?,
        Value::Null => return Err(PolicyError::Query("null has no Cedar value".into())),
    })
}

fn entity(
    uid: EntityUid,
    attrs: Vec<(&str, RestrictedExpression)>,
    parents: HashSet<EntityUid>,
) -> Result<Entity, PolicyError> {
    let attrs: HashMap<String, RestrictedExpression> =
        attrs.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    Entity::new(uid, attrs, parents).map_err(|e| PolicyError::Query(e.to_string()))
}

fn principal_entity(
    p: &Principal<'_>,
    uid: EntityUid,
    groups: &HashSet<EntityUid>,
) -> Result<Entity, PolicyError> {
    let mut attrs = vec![
        ("subject", string(p.subject)),
        ("issuer", string(p.issuer)),
        ("groups", strings(p.groups)),
    ];
    match p.kind {
        Kind::Human => attrs.push(("email", string(p.email))),
        Kind::Agent => {}
        Kind::Workload => {
            let claim = |k: &str| {
                string(
                    p.claims
                        .and_then(|c| c.get(k))
                        .and_then(Value::as_str)
                        .unwrap_or(""),
                )
            };
            attrs.push(("repository", claim("repository")));
            attrs.push(("repository_owner", claim("repository_owner")));
            attrs.push(("ref", claim("ref")));
            attrs.push(("environment", claim("environment")));
            attrs.push(("workflow", claim("job_workflow_ref")));
            attrs.push(("event", claim("event_name")));
        }
    }
    entity(uid, attrs, groups.clone())
}

/// Merges the annotations of the permitting policies, strictest first.
pub fn requirements(policy_ids: &[String]) -> Requirements {
    let annotated: Vec<&Annotated> = policy_ids
        .iter()
        .filter_map(|id| ANNOTATED.iter().find(|(k, _)| k == id).map(|(_, a)| a))
        .collect();
    let says_auto = |a: &&Annotated| a.auto_approve == Some(true);
    let auto_approve = !annotated.is_empty() && annotated.iter().all(says_auto);
    let min_approvals = annotated
        .iter()
        .filter(|a| !says_auto(a))
        .filter_map(|a| {
            a.min_approvals
                .or((!a.approver_groups.is_empty()).then_some(1))
        })
        .max()
        .unwrap_or(1);
    // Approvers: those of the policies that ask for the most approvals.
    let mut groups = BTreeSet::new();
    for a in annotated.iter().filter(|a| !says_auto(a)) {
        if a.min_approvals.unwrap_or(1) == min_approvals {
            groups.extend(a.approver_groups.iter().map(|g| g.to_string()));
        }
    }
    Requirements {
        auto_approve,
        approver_groups: groups.into_iter().collect(),
        min_approvals,
        max_duration_secs: annotated.iter().filter_map(|a| a.max_duration_secs).min(),
        pending_ttl_secs: annotated.iter().filter_map(|a| a.pending_ttl_secs).min(),
        upstream_mode: {
            let modes: Vec<SeatMode> = annotated
                .iter()
                .filter_map(|a| a.upstream_mode.and_then(SeatMode::parse))
                .collect();
            if modes.contains(&SeatMode::OwnSeat) {
                Some(SeatMode::OwnSeat)
            } else {
                modes.first().copied()
            }
        },
    }
}

impl Engine {
    /// Ready to decide; each action's compiled policies are decoded (not
    /// parsed) the first time that action is asked about.
    pub fn load() -> Result<Engine, PolicyError> {
        Ok(Engine {
            slices: Default::default(),
            types: OnceLock::new(),
        })
    }

    fn uid(&self, kind: &str, id: &str) -> Result<EntityUid, PolicyError> {
        let types = self
            .types
            .get_or_init(|| {
                Ok(PolicySet::decode_unchecked(TYPES)
                    .map_err(|e| format!("entity types: {e}"))?
                    .policies()
                    .filter_map(|p| match p.principal_constraint() {
                        PrincipalConstraint::Eq(uid) => {
                            let name = uid.type_name().clone();
                            Some((name.to_string(), name))
                        }
                        _ => None,
                    })
                    .collect())
            })
            .as_ref()
            .map_err(|e| PolicyError::Load(e.clone()))?;
        let name = types
            .get(kind)
            .ok_or_else(|| PolicyError::Query(format!("unknown entity type {kind}")))?;
        Ok(EntityUid::from_type_name_and_id(
            name.clone(),
            EntityId::new(id),
        ))
    }

    fn slice(&self, action: Action) -> Result<&PolicySet, PolicyError> {
        let index = SLICES
            .iter()
            .position(|(name, _)| *name == action.name())
            .ok_or_else(|| {
                PolicyError::Load(format!("no policies compiled for {}", action.name()))
            })?;
        let cell = self
            .slices
            .get(index)
            .ok_or_else(|| PolicyError::Load("policy slice out of range".into()))?;
        cell.get_or_init(|| PolicySet::decode_unchecked(SLICES[index].1).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| PolicyError::Load(e.clone()))
    }

    /// Decodes every action's policies and puts one throw-away question of
    /// each kind to Cedar, so that its lazily built tables (the extension
    /// registry, whose names go through Cedar's parser) exist. Run when the
    /// gateway is pre-initialised at build time: the memory image then holds
    /// them, and no request pays for them. Reads nothing from outside
    /// (no clock, no variables): whatever it touches ends up in the artifact.
    pub fn warm_up(&self) {
        const ACTIONS: [Action; 8] = [
            Action::Request,
            Action::Approve,
            Action::Deny,
            Action::Revoke,
            Action::Renew,
            Action::Use,
            Action::Exchange,
            Action::ReadAudit,
        ];
        let groups = ["warm-up".to_string()];
        let scopes = ["chat".to_string()];
        let claims = serde_json::json!({"repository": "warm/up"});
        let facts = RequestFacts {
            id: "req_warm_up",
            requester: "warm-up",
            requester_issuer: "warm-up",
            scopes: &scopes,
            approver_groups: &groups,
            duration_secs: 60,
            status: "pending",
        };
        for kind in [Kind::Human, Kind::Workload] {
            let principal = Principal {
                kind,
                subject: "warm-up",
                issuer: "warm-up",
                email: "warm-up@example.invalid",
                groups: &groups,
                claims: (kind == Kind::Workload).then_some(&claims),
            };
            for action in ACTIONS {
                let resource = match action {
                    Action::Use | Action::Exchange => Resource::Scope("chat"),
                    Action::ReadAudit => Resource::AuditTrail,
                    _ => Resource::AccessRequest(facts.clone()),
                };
                let context = serde_json::json!({"hour": 12, "weekday": 2, "model": "warm-up",
                    "duration_secs": 60, "reason": "warm-up"});
                // Only the side effects count; a question a policy does not
                // expect is as good as any.
                let _ = self.decide_with_cedar(&principal, action, &resource, context);
            }
        }
    }

    /// How many policies were compiled in.
    pub fn len(&self) -> usize {
        POLICY_COUNT
    }

    pub fn is_empty(&self) -> bool {
        POLICY_COUNT == 0
    }

    pub fn decide(
        &self,
        principal: &Principal<'_>,
        action: Action,
        resource: &Resource<'_>,
        context: Value,
    ) -> Result<Decision, PolicyError> {
        // Every Copilot call asks about `use`; where the build proved the
        // answer for this caller's groups, Cedar is not started at all (in
        // a fresh instance that alone costs ~0.4 ms: its extension tables
        // initialise through its parser).
        if let (Action::Use, Some(fast)) = (action, &USE_FAST_PATH) {
            if !principal
                .groups
                .iter()
                .any(|g| fast.forbid_groups.contains(&g.as_str()))
            {
                let kind = principal_type(principal.kind);
                let mut policy_ids: Vec<String> = std::iter::once(fast.permit)
                    .chain(
                        fast.per_kind
                            .iter()
                            .filter(|(k, _)| *k == kind)
                            .map(|(_, id)| *id),
                    )
                    .map(str::to_string)
                    .collect();
                policy_ids.sort();
                return Ok(Decision {
                    allowed: true,
                    requirements: requirements(&policy_ids),
                    policy_ids,
                    errors: Vec::new(),
                });
            }
        }
        self.decide_with_cedar(principal, action, resource, context)
    }

    /// The decision as Cedar evaluates it, without the build-time shortcut.
    pub fn decide_with_cedar(
        &self,
        principal: &Principal<'_>,
        action: Action,
        resource: &Resource<'_>,
        context: Value,
    ) -> Result<Decision, PolicyError> {
        let set = self.slice(action)?;
        let groups: HashSet<EntityUid> = principal
            .groups
            .iter()
            .map(|g| self.uid("Group", g))
            .collect::<Result<_, _>>()?;
        let principal_uid = self.uid(principal_type(principal.kind), principal.subject)?;
        let mut entities = vec![principal_entity(principal, principal_uid.clone(), &groups)?];
        for g in &groups {
            entities.push(Entity::new_no_attrs(g.clone(), HashSet::new()));
        }
        let resource_uid = match resource {
            Resource::Scope(name) => self.uid("Scope", name)?,
            Resource::AccessRequest(r) => {
                let id = self.uid("AccessRequest", r.id)?;
                entities.push(entity(
                    id.clone(),
                    vec![
                        ("requester", string(r.requester)),
                        ("requester_issuer", string(r.requester_issuer)),
                        ("scopes", strings(r.scopes)),
                        ("approver_groups", strings(r.approver_groups)),
                        (
                            "duration_secs",
                            RestrictedExpression::new_long(
                                i64::try_from(r.duration_secs).unwrap_or(i64::MAX),
                            ),
                        ),
                        ("status", string(r.status)),
                    ],
                    HashSet::new(),
                )?);
                id
            }
            Resource::AuditTrail => self.uid("AuditTrail", "main")?,
        };
        let entities = Entities::from_entities(entities, None)
            .map_err(|e| PolicyError::Query(e.to_string()))?;
        let pairs = match &context {
            Value::Object(map) => map
                .iter()
                .map(|(k, v)| Ok((k.clone(), expression(v)?)))
                .collect::<Result<Vec<_>, PolicyError>>()?,
            Value::Null => Vec::new(),
            _ => return Err(PolicyError::Query("the context is not an object".into())),
        };
        let context = Context::from_pairs(pairs).map_err(|e| PolicyError::Query(e.to_string()))?;
        let request = Request::new(
            principal_uid,
            self.uid("Action", action.name())?,
            resource_uid,
            context,
            None,
        )
        .map_err(|e| PolicyError::Query(e.to_string()))?;
        let response = Authorizer::new().is_authorized(&request, set, &entities);
        let allowed = response.decision() == CedarDecision::Allow;
        let mut policy_ids: Vec<String> = response
            .diagnostics()
            .reason()
            .map(|id| id.to_string())
            .collect();
        policy_ids.sort();
        let errors = response
            .diagnostics()
            .errors()
            .map(|e| e.to_string())
            .collect();
        let requirements = if allowed {
            requirements(&policy_ids)
        } else {
            Requirements::default()
        };
        Ok(Decision {
            allowed,
            policy_ids,
            errors,
            requirements,
        })
    }
}

/// UTC hour (0–23) and weekday (0 = Monday) of a Unix time, for contexts.
pub fn clock(unix_secs: u64) -> (i64, i64) {
    let hour = (unix_secs % 86_400 / 3600) as i64;
    // 1970-01-01 was a Thursday (3 when Monday is 0).
    let weekday = ((unix_secs / 86_400 + 3) % 7) as i64;
    (hour, weekday)
}

#[cfg(test)]
mod policy_cases;
