//! The access-request state machine. Pure: storage and clocks are the caller's.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pending,
    Approved,
    Denied,
    Expired,
    Revoked,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DecisionKind {
    Approve,
    Deny,
    Revoke,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub subject: String,
    pub issuer: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub kind: DecisionKind,
    pub by: Actor,
    pub comment: String,
    pub at: u64,
    /// Unique to the call that wrote it: makes every stored value unique to
    /// its writer, so a swap reported failed can be read back and
    /// recognised (Spin's Redis store reports applied swaps as failed).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub write_id: String,
}

/// The stored request. `requester` is kept as the verified principal (opaque JSON
/// here) so that policy and audit see exactly what authentication produced.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub id: String,
    pub requester: Actor,
    pub requester_principal: serde_json::Value,
    pub scopes: Vec<String>,
    pub models: Vec<String>,
    pub repository: Option<String>,
    pub reason: String,
    pub duration_secs: u64,
    pub status: Status,
    pub created_at: u64,
    pub pending_expires_at: u64,
    pub required_approvals: u32,
    pub approver_groups: Vec<String>,
    pub decisions: Vec<Decision>,
    pub granted_at: Option<u64>,
    pub expires_at: Option<u64>,
    /// Records written before this field existed were renewable.
    #[serde(default = "renewable_by_default")]
    pub renewable: bool,
    #[serde(default)]
    pub policy_ids: Vec<String>,
    #[serde(default)]
    pub renew_of: Option<String>,
    /// When the IdP vouched for the requester's groups; records written
    /// before this field existed captured them at `created_at`.
    #[serde(default)]
    pub groups_confirmed_at: Option<u64>,
    /// What calls keep beside the grant (`CallCache`).
    #[serde(default)]
    pub call_cache: CallCache,
    pub version: u64,
}

/// What calls on a grant keep beside it so that a healthy call reads
/// nothing else: a copy of the shared seat's cached upstream token and
/// whether the grant's last audit record was spooled. Not part of the
/// grant's state: changing it leaves the version alone.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallCache {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_upstream: Option<String>,
    #[serde(default, skip_serializing_if = "core::ops::Not::not")]
    pub audit_spooled: bool,
    /// The last writer's id: keeps every written value unique (cas.rs).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub w: String,
}

impl CallCache {
    /// This cache with the given fields replaced, or `None` when it holds
    /// them already (nothing to write).
    pub fn with(
        &self,
        shared_upstream: Option<&str>,
        audit_spooled: Option<bool>,
    ) -> Option<CallCache> {
        let upstream_same =
            shared_upstream.is_none_or(|u| self.shared_upstream.as_deref() == Some(u));
        let spooled_same = audit_spooled.is_none_or(|a| self.audit_spooled == a);
        if upstream_same && spooled_same {
            return None;
        }
        Some(CallCache {
            shared_upstream: shared_upstream
                .map(str::to_string)
                .or_else(|| self.shared_upstream.clone()),
            audit_spooled: audit_spooled.unwrap_or(self.audit_spooled),
            w: String::new(),
        })
    }
}

fn renewable_by_default() -> bool {
    true
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LifecycleError {
    InvalidState(String),
    Forbidden(String),
}

impl Request {
    /// The status as of `now`: pending requests and grants expire without a write.
    pub fn status_at(&self, now: u64) -> Status {
        match self.status {
            Status::Pending if now >= self.pending_expires_at => Status::Expired,
            Status::Approved if self.expires_at.is_some_and(|e| now >= e) => Status::Expired,
            s => s,
        }
    }

    /// A view with the status brought up to `now`.
    pub fn as_of(mut self, now: u64) -> Self {
        self.status = self.status_at(now);
        self
    }

    fn approvals(&self) -> usize {
        self.decisions
            .iter()
            .filter(|d| d.kind == DecisionKind::Approve)
            .count()
    }

    fn grant(&mut self, now: u64) {
        self.status = Status::Approved;
        self.granted_at = Some(now);
        self.expires_at = Some(now.saturating_add(self.duration_secs));
    }

    /// Applies one decision, returning the new state (version bumped).
    pub fn decide(
        &self,
        kind: DecisionKind,
        actor: &Actor,
        comment: &str,
        now: u64,
    ) -> Result<Request, LifecycleError> {
        let status = self.status_at(now);
        let mut next = self.clone();
        next.status = status;
        let is_requester = *actor == self.requester;
        match kind {
            DecisionKind::Approve | DecisionKind::Deny => {
                if status != Status::Pending {
                    return Err(LifecycleError::InvalidState(format!(
                        "request is {}, not pending",
                        status.as_str()
                    )));
                }
                if is_requester {
                    return Err(LifecycleError::Forbidden(
                        "requesters cannot decide their own request".into(),
                    ));
                }
                if self
                    .decisions
                    .iter()
                    .any(|d| d.by == *actor && d.kind != DecisionKind::Revoke)
                {
                    return Err(LifecycleError::Forbidden(
                        "each approver decides once".into(),
                    ));
                }
            }
            DecisionKind::Revoke => {
                if status != Status::Approved {
                    return Err(LifecycleError::InvalidState(format!(
                        "only an active grant can be revoked; this one is {}",
                        status.as_str()
                    )));
                }
            }
        }
        next.decisions.push(Decision {
            kind,
            by: actor.clone(),
            comment: comment.to_string(),
            at: now,
            write_id: String::new(),
        });
        match kind {
            DecisionKind::Approve => {
                if next.approvals() >= next.required_approvals.max(1) as usize {
                    next.grant(now);
                }
            }
            DecisionKind::Deny => next.status = Status::Denied,
            DecisionKind::Revoke => {
                next.status = Status::Revoked;
                next.expires_at = Some(now.min(next.expires_at.unwrap_or(now)));
            }
        }
        next.version += 1;
        Ok(next)
    }
}

/// The outcome of one decision call against the stored state.
#[derive(Debug, PartialEq, Eq)]
pub enum Decided {
    /// Store this state.
    Next(Request),
    /// The call's own decision (`write_id`) is already stored: this is the
    /// state to answer with, and nothing more is written.
    AlreadyStored(Request),
}

impl Request {
    /// `decide`, made idempotent for one call: the decision carries the
    /// call's `write_id`, and a state already holding it is left alone.
    pub fn decide_once(
        &self,
        kind: DecisionKind,
        actor: &Actor,
        comment: &str,
        now: u64,
        write_id: &str,
    ) -> Result<Decided, LifecycleError> {
        if !write_id.is_empty() && self.decisions.iter().any(|d| d.write_id == write_id) {
            return Ok(Decided::AlreadyStored(self.clone().as_of(now)));
        }
        let mut next = self.decide(kind, actor, comment, now)?;
        if let Some(last) = next.decisions.last_mut() {
            last.write_id = write_id.to_string();
        }
        Ok(Decided::Next(next))
    }
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Approved => "approved",
            Status::Denied => "denied",
            Status::Expired => "expired",
            Status::Revoked => "revoked",
        }
    }
}

pub struct NewRequest {
    pub id: String,
    pub requester: Actor,
    pub requester_principal: serde_json::Value,
    pub scopes: Vec<String>,
    pub models: Vec<String>,
    pub repository: Option<String>,
    pub reason: String,
    pub duration_secs: u64,
    pub required_approvals: u32,
    pub approver_groups: Vec<String>,
    pub pending_ttl_secs: u64,
    pub auto_approve: bool,
    pub renewable: bool,
    pub policy_ids: Vec<String>,
    pub renew_of: Option<String>,
    /// None: the groups were vouched for now.
    pub groups_confirmed_at: Option<u64>,
}

pub fn create(new: NewRequest, now: u64) -> Request {
    let mut request = Request {
        id: new.id,
        requester: new.requester,
        requester_principal: new.requester_principal,
        scopes: new.scopes,
        models: new.models,
        repository: new.repository,
        reason: new.reason,
        duration_secs: new.duration_secs,
        status: Status::Pending,
        created_at: now,
        pending_expires_at: now.saturating_add(new.pending_ttl_secs.max(1)),
        required_approvals: new.required_approvals.max(1),
        approver_groups: new.approver_groups,
        decisions: Vec::new(),
        granted_at: None,
        expires_at: None,
        renewable: new.renewable,
        policy_ids: new.policy_ids,
        renew_of: new.renew_of,
        // Never later than the request itself.
        groups_confirmed_at: Some(new.groups_confirmed_at.unwrap_or(now).min(now)),
        call_cache: CallCache::default(),
        version: 1,
    };
    if new.auto_approve {
        request.grant(now);
    }
    request
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_cache_changes_only_the_fields_given_and_only_when_they_differ() {
        let empty = CallCache::default();
        assert_eq!(empty.with(None, None), None);
        assert_eq!(empty.with(None, Some(false)), None);
        let spooled = empty.with(None, Some(true)).expect("a change");
        assert!(spooled.audit_spooled && spooled.shared_upstream.is_none());
        let both = spooled.with(Some("{}"), None).expect("a change");
        assert_eq!(
            (both.shared_upstream.as_deref(), both.audit_spooled),
            (Some("{}"), true)
        );
        assert_eq!(both.with(Some("{}"), Some(true)), None);
        let cleared = both.with(None, Some(false)).expect("a change");
        assert_eq!(
            (cleared.shared_upstream.as_deref(), cleared.audit_spooled),
            (Some("{}"), false)
        );
        // Old records, written before the cache existed, read as empty.
        let old: CallCache = serde_json::from_str("{}").unwrap();
        assert_eq!(old, CallCache::default());
    }

    fn actor(s: &str) -> Actor {
        Actor {
            subject: s.into(),
            issuer: "idp".into(),
        }
    }

    fn request(required: u32, auto: bool) -> Request {
        create(
            NewRequest {
                id: "r1".into(),
                requester: actor("alice"),
                requester_principal: serde_json::json!({}),
                scopes: vec!["chat".into()],
                models: vec![],
                repository: None,
                reason: "work".into(),
                duration_secs: 600,
                required_approvals: required,
                approver_groups: vec!["approvers".into()],
                pending_ttl_secs: 3600,
                auto_approve: auto,
                renewable: true,
                policy_ids: vec!["p".into()],
                renew_of: None,
                groups_confirmed_at: None,
            },
            1000,
        )
    }

    #[test]
    fn single_approval_starts_the_clock_at_approval() {
        let r = request(1, false);
        let r = r
            .decide(DecisionKind::Approve, &actor("bob"), "ok", 1500)
            .unwrap();
        assert_eq!(r.status, Status::Approved);
        assert_eq!(r.granted_at, Some(1500));
        assert_eq!(r.expires_at, Some(2100));
        assert_eq!(r.status_at(2099), Status::Approved);
        assert_eq!(r.status_at(2100), Status::Expired);
        assert_eq!(r.version, 2);
    }

    #[test]
    fn self_approval_and_double_votes_are_refused() {
        let r = request(2, false);
        assert!(matches!(
            r.decide(DecisionKind::Approve, &actor("alice"), "", 1100),
            Err(LifecycleError::Forbidden(_))
        ));
        let r = r
            .decide(DecisionKind::Approve, &actor("bob"), "", 1100)
            .unwrap();
        assert_eq!(r.status, Status::Pending);
        assert!(matches!(
            r.decide(DecisionKind::Approve, &actor("bob"), "", 1101),
            Err(LifecycleError::Forbidden(_))
        ));
        let r = r
            .decide(DecisionKind::Approve, &actor("carol"), "", 1102)
            .unwrap();
        assert_eq!(r.status, Status::Approved);
    }

    #[test]
    fn pending_requests_expire_and_cannot_be_approved_late() {
        let r = request(1, false);
        assert_eq!(r.status_at(4600), Status::Expired);
        assert!(matches!(
            r.decide(DecisionKind::Approve, &actor("bob"), "", 4600),
            Err(LifecycleError::InvalidState(_))
        ));
    }

    #[test]
    fn revoke_ends_an_active_grant_only() {
        let r = request(1, true);
        assert_eq!(r.status, Status::Approved);
        let revoked = r
            .decide(DecisionKind::Revoke, &actor("bob"), "leak", 1200)
            .unwrap();
        assert_eq!(revoked.status_at(1200), Status::Revoked);
        assert_eq!(revoked.expires_at, Some(1200));
        assert!(revoked
            .decide(DecisionKind::Revoke, &actor("bob"), "", 1201)
            .is_err());
        let pending = request(1, false);
        assert!(pending
            .decide(DecisionKind::Revoke, &actor("bob"), "", 1100)
            .is_err());
    }

    #[test]
    fn deny_is_final() {
        let r = request(2, false);
        let r = r
            .decide(DecisionKind::Deny, &actor("bob"), "no", 1100)
            .unwrap();
        assert_eq!(r.status, Status::Denied);
        assert!(r
            .decide(DecisionKind::Approve, &actor("carol"), "", 1101)
            .is_err());
    }

    #[test]
    fn a_decision_already_stored_by_the_same_call_is_not_applied_twice() {
        let r = request(2, false);
        let bob = actor("bob");
        let Ok(Decided::Next(once)) = r.decide_once(DecisionKind::Approve, &bob, "ok", 1100, "w1")
        else {
            panic!("first decision refused");
        };
        // Read back after a swap reported failed: the same call sees its own
        // decision and answers with it instead of "each approver decides once".
        assert_eq!(
            once.decide_once(DecisionKind::Approve, &bob, "ok", 1101, "w1"),
            Ok(Decided::AlreadyStored(once.clone().as_of(1101)))
        );
        // Another call by the same approver is still refused.
        assert!(matches!(
            once.decide_once(DecisionKind::Approve, &bob, "ok", 1101, "w2"),
            Err(LifecycleError::Forbidden(_))
        ));
        assert_eq!(once.decisions[0].write_id, "w1");
    }
}
