//! The grant-store component: access requests and grants in `wasi:keyvalue`.
//! Every state change is a compare-and-swap (`copilot_jit_common::cas`,
//! correct also on Spin's Redis store), so concurrent approvers and a
//! racing revoke never lose an update or double-count.

pub mod lifecycle;
pub mod listing;

#[cfg(target_arch = "wasm32")]
mod bindings {
    use super::lifecycle::{self, Actor, Decided, LifecycleError, Request, Status};
    use super::listing::{self, Position};
    use copilot_jit_common::unix_now as now;

    wit_bindgen::generate!({
        path: "../../wit",
        world: "grant-store",
        generate_all,
    });

    use copilot_jit::gateway::types::{Principal, PrincipalKind};
    use copilot_jit_common::cas::{update, Step, UpdateError};
    use exports::copilot_jit::gateway::grants::{
        AccessRequest, CallCache, Decision, DecisionKind, Guest, ListFilter, NewRequest,
        RequestPage, RequestStatus, StoreError,
    };
    use wasi::keyvalue::store::{self, Bucket};

    copilot_jit_common::kv_cas_store!(KvCas);

    const KEY_PREFIX: &str = "grant-request:";
    /// A person's request ids, oldest first (`copilot_jit_common::person_key`).
    const PERSON_INDEX_PREFIX: &str = "grants-of:";
    /// The request ids created on one UTC day (`listing::day_of`), oldest
    /// first: what listings walk instead of the store's keys.
    const DAY_INDEX_PREFIX: &str = "grants-on-day:";
    /// Ids one day's index keeps (its oldest fall out beyond that).
    const DAY_INDEX_MAX: usize = 50_000;
    /// Genuine conflicts retried (with jittered pauses) before the caller
    /// is told to retry.
    const CAS_ATTEMPTS: u32 = 16;

    fn storage(e: store::Error) -> StoreError {
        StoreError::Storage(match e {
            store::Error::NoSuchStore => "no such store".into(),
            store::Error::AccessDenied => "access denied".into(),
            store::Error::Other(m) => m,
        })
    }

    fn bucket() -> Result<Bucket, StoreError> {
        store::open("default").map_err(storage)
    }

    fn decode(bytes: &[u8]) -> Result<Request, StoreError> {
        serde_json::from_slice(bytes)
            .map_err(|e| StoreError::Storage(format!("corrupt record: {e}")))
    }

    fn encode(r: &Request) -> Result<Vec<u8>, StoreError> {
        serde_json::to_vec(r).map_err(|e| StoreError::Storage(e.to_string()))
    }

    fn kind_str(k: PrincipalKind) -> &'static str {
        match k {
            PrincipalKind::Human => "human",
            PrincipalKind::Workload => "workload",
            PrincipalKind::Agent => "agent",
        }
    }

    fn principal_to_json(p: &Principal) -> serde_json::Value {
        serde_json::json!({
            "kind": kind_str(p.kind),
            "issuer": p.issuer,
            "subject": p.subject,
            "email": p.email,
            "name": p.name,
            "groups": p.groups,
            "claims": serde_json::from_str::<serde_json::Value>(&p.claims_json).unwrap_or_default(),
        })
    }

    fn principal_from_json(v: &serde_json::Value) -> Principal {
        let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
        Principal {
            kind: match v.get("kind").and_then(|k| k.as_str()) {
                Some("workload") => PrincipalKind::Workload,
                Some("agent") => PrincipalKind::Agent,
                _ => PrincipalKind::Human,
            },
            issuer: s("issuer").unwrap_or_default(),
            subject: s("subject").unwrap_or_default(),
            email: s("email"),
            name: s("name"),
            groups: v
                .get("groups")
                .and_then(|g| g.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
            claims_json: v
                .get("claims")
                .map(|c| c.to_string())
                .unwrap_or_else(|| "{}".into()),
        }
    }

    fn actor(p: &Principal) -> Actor {
        Actor {
            subject: p.subject.clone(),
            issuer: p.issuer.clone(),
        }
    }

    fn status_to_wit(s: Status) -> RequestStatus {
        match s {
            Status::Pending => RequestStatus::Pending,
            Status::Approved => RequestStatus::Approved,
            Status::Denied => RequestStatus::Denied,
            Status::Expired => RequestStatus::Expired,
            Status::Revoked => RequestStatus::Revoked,
        }
    }

    fn kind_to_lifecycle(k: DecisionKind) -> lifecycle::DecisionKind {
        match k {
            DecisionKind::Approve => lifecycle::DecisionKind::Approve,
            DecisionKind::Deny => lifecycle::DecisionKind::Deny,
            DecisionKind::Revoke => lifecycle::DecisionKind::Revoke,
        }
    }

    fn kind_to_wit(k: lifecycle::DecisionKind) -> DecisionKind {
        match k {
            lifecycle::DecisionKind::Approve => DecisionKind::Approve,
            lifecycle::DecisionKind::Deny => DecisionKind::Deny,
            lifecycle::DecisionKind::Revoke => DecisionKind::Revoke,
        }
    }

    fn to_wit(r: Request) -> AccessRequest {
        AccessRequest {
            requester: principal_from_json(&r.requester_principal),
            id: r.id,
            scopes: r.scopes,
            models: r.models,
            repository: r.repository,
            reason: r.reason,
            duration_secs: r.duration_secs,
            status: status_to_wit(r.status),
            created_at: r.created_at,
            pending_expires_at: r.pending_expires_at,
            required_approvals: r.required_approvals,
            approver_groups: r.approver_groups,
            decisions: r
                .decisions
                .into_iter()
                .map(|d| Decision {
                    kind: kind_to_wit(d.kind),
                    by_subject: d.by.subject,
                    by_issuer: d.by.issuer,
                    comment: d.comment,
                    at: d.at,
                })
                .collect(),
            granted_at: r.granted_at,
            expires_at: r.expires_at,
            renewable: r.renewable,
            policy_ids: r.policy_ids,
            renew_of: r.renew_of,
            groups_confirmed_at: r.groups_confirmed_at.unwrap_or(r.created_at),
            call_cache: CallCache {
                shared_upstream: r.call_cache.shared_upstream,
                audit_spooled: r.call_cache.audit_spooled,
            },
            version: r.version,
        }
    }

    fn random_hex() -> Result<String, StoreError> {
        let mut bytes = [0u8; 12];
        getrandom::fill(&mut bytes).map_err(|e| StoreError::Storage(e.to_string()))?;
        Ok(hex::encode(bytes))
    }

    fn new_id() -> Result<String, StoreError> {
        Ok(format!("req_{}", random_hex()?))
    }

    /// Marks this call's decision (see `Decision::write_id`).
    fn new_write_id() -> Result<String, StoreError> {
        random_hex()
    }

    fn load(bucket: &Bucket, id: &str) -> Result<Request, StoreError> {
        if !id.starts_with("req_") || id.len() > 64 {
            return Err(StoreError::NotFound);
        }
        match bucket.get(&format!("{KEY_PREFIX}{id}")).map_err(storage)? {
            Some(bytes) => decode(&bytes),
            None => Err(StoreError::NotFound),
        }
    }

    /// Ids a person's index keeps: their newest requests. A grant whose id
    /// fell out is older than this many requests, long ended in practice.
    const PERSON_INDEX_MAX: usize = 64;

    #[derive(serde::Serialize, serde::Deserialize, Default)]
    struct IdIndex {
        ids: Vec<String>,
        /// The last writer's id: keeps every written value unique (cas.rs).
        #[serde(default)]
        w: String,
    }

    fn person_index_key(issuer: &str, subject: &str) -> String {
        format!(
            "{PERSON_INDEX_PREFIX}{}",
            copilot_jit_common::person_key(issuer, subject)
        )
    }

    fn decode_index(bytes: &[u8]) -> Result<IdIndex, StoreError> {
        serde_json::from_slice(bytes)
            .map_err(|e| StoreError::Storage(format!("corrupt person index: {e}")))
    }

    /// Adds `id` to its requester's index, so that a sign-in finds the
    /// person's grants with two reads instead of a scan.
    fn index_for_person(bucket: &Bucket, who: &Principal, id: &str) -> Result<(), StoreError> {
        append_to_index(
            bucket,
            &person_index_key(&who.issuer, &who.subject),
            id,
            PERSON_INDEX_MAX,
        )
    }

    /// Adds `id` to the index of the day it was created on, for listings.
    fn index_for_day(bucket: &Bucket, created_at: u64, id: &str) -> Result<(), StoreError> {
        let key = format!("{DAY_INDEX_PREFIX}{}", listing::day_of(created_at));
        append_to_index(bucket, &key, id, DAY_INDEX_MAX)
    }

    fn day_ids(bucket: &Bucket, day: u64) -> Result<Vec<String>, StoreError> {
        match bucket
            .get(&format!("{DAY_INDEX_PREFIX}{day}"))
            .map_err(storage)?
        {
            Some(bytes) => Ok(decode_index(&bytes)?.ids),
            None => Ok(Vec::new()),
        }
    }

    /// Appends `id` to the index at `key` (once), keeping its newest `max`.
    fn append_to_index(bucket: &Bucket, key: &str, id: &str, max: usize) -> Result<(), StoreError> {
        let write_id = new_write_id()?;
        let added = update(&KvCas(bucket), key, CAS_ATTEMPTS, |current| {
            let mut index = match current {
                Some(bytes) => decode_index(bytes)?,
                None => IdIndex::default(),
            };
            if index.ids.iter().any(|i| i == id) {
                return Ok(Step::AlreadyApplied(()));
            }
            index.ids.push(id.to_string());
            let excess = index.ids.len().saturating_sub(max);
            index.ids.drain(..excess);
            index.w = write_id.clone();
            let bytes =
                serde_json::to_vec(&index).map_err(|e| StoreError::Storage(e.to_string()))?;
            Ok(Step::Write(bytes, ()))
        });
        match added {
            Ok(()) => Ok(()),
            Err(UpdateError::Rejected(e)) => Err(e),
            Err(UpdateError::Store(e)) => Err(storage(e)),
            Err(UpdateError::Contended) => Err(StoreError::Conflict),
        }
    }

    struct Component;

    impl Guest for Component {
        fn create(req: NewRequest) -> Result<AccessRequest, StoreError> {
            let bucket = bucket()?;
            let id = new_id()?;
            let request = lifecycle::create(
                lifecycle::NewRequest {
                    id: id.clone(),
                    requester: actor(&req.requester),
                    requester_principal: principal_to_json(&req.requester),
                    scopes: req.scopes,
                    models: req.models,
                    repository: req.repository,
                    reason: req.reason,
                    duration_secs: req.duration_secs,
                    required_approvals: req.required_approvals,
                    approver_groups: req.approver_groups,
                    pending_ttl_secs: req.pending_ttl_secs,
                    auto_approve: req.auto_approve,
                    renewable: req.renewable,
                    policy_ids: req.policy_ids,
                    renew_of: req.renew_of,
                    groups_confirmed_at: req.groups_confirmed_at,
                },
                now(),
            );
            bucket
                .set(&format!("{KEY_PREFIX}{id}"), &encode(&request)?)
                .map_err(storage)?;
            index_for_person(&bucket, &req.requester, &id)?;
            index_for_day(&bucket, request.created_at, &id)?;
            Ok(to_wit(request))
        }

        fn get(id: String) -> Result<AccessRequest, StoreError> {
            let request = load(&bucket()?, &id)?;
            Ok(to_wit(request.as_of(now())))
        }

        fn list_requests(filter: ListFilter) -> Result<RequestPage, StoreError> {
            let bucket = bucket()?;
            let now = now();
            let today = listing::day_of(now);
            let from = match &filter.cursor {
                None => Position::newest(today),
                Some(c) => Position::parse(c)
                    .filter(|p| p.day <= today)
                    .ok_or_else(|| {
                        StoreError::InvalidState("the cursor is not one this gateway gave".into())
                    })?,
            };
            let wanted = filter.status.map(|s| match s {
                RequestStatus::Pending => Status::Pending,
                RequestStatus::Approved => Status::Approved,
                RequestStatus::Denied => Status::Denied,
                RequestStatus::Expired => Status::Expired,
                RequestStatus::Revoked => Status::Revoked,
            });
            let mut requests = Vec::new();
            let next = listing::walk(
                from,
                today.saturating_sub(listing::LISTED_DAYS),
                filter.limit.clamp(1, 500) as usize,
                |day| day_ids(&bucket, day),
                |id| {
                    let request = match load(&bucket, id) {
                        Ok(r) => r.as_of(now),
                        // Not expected (a request is written before it is
                        // indexed), and not worth failing a listing for.
                        Err(StoreError::NotFound) => return Ok(false),
                        Err(e) => return Err(e),
                    };
                    let wanted_status = wanted.is_none_or(|w| w == request.status);
                    let wanted_requester = filter
                        .requester_subject
                        .as_ref()
                        .is_none_or(|s| *s == request.requester.subject);
                    if wanted_status && wanted_requester {
                        // Listings are for people: no call cache.
                        let mut request = request;
                        request.call_cache = Default::default();
                        requests.push(to_wit(request));
                        return Ok(true);
                    }
                    Ok(false)
                },
            )?;
            Ok(RequestPage {
                requests,
                next_cursor: next.map(|p| p.format()),
            })
        }

        fn active_grant(
            issuer: String,
            subject: String,
            scope: String,
        ) -> Result<Option<AccessRequest>, StoreError> {
            let bucket = bucket()?;
            let Some(bytes) = bucket
                .get(&person_index_key(&issuer, &subject))
                .map_err(storage)?
            else {
                return Ok(None);
            };
            let index = decode_index(&bytes)?;
            let now = now();
            for id in index.ids.iter().rev() {
                let request = match load(&bucket, id) {
                    Ok(r) => r.as_of(now),
                    Err(StoreError::NotFound) => continue,
                    Err(e) => return Err(e),
                };
                let covers = scope.is_empty() || request.scopes.contains(&scope);
                if request.status == Status::Approved && covers {
                    return Ok(Some(to_wit(request)));
                }
            }
            Ok(None)
        }

        fn decide(
            id: String,
            kind: DecisionKind,
            actor_principal: Principal,
            comment: String,
        ) -> Result<AccessRequest, StoreError> {
            let bucket = bucket()?;
            load(&bucket, &id)?;
            let key = format!("{KEY_PREFIX}{id}");
            let who = actor(&actor_principal);
            let write_id = new_write_id()?;
            let decided = update(&KvCas(&bucket), &key, CAS_ATTEMPTS, |current| {
                let current = decode(current.ok_or(StoreError::NotFound)?)?;
                match current
                    .decide_once(kind_to_lifecycle(kind), &who, &comment, now(), &write_id)
                    .map_err(|e| match e {
                        LifecycleError::InvalidState(m) => StoreError::InvalidState(m),
                        LifecycleError::Forbidden(m) => StoreError::Forbidden(m),
                    })? {
                    Decided::AlreadyStored(state) => Ok(Step::AlreadyApplied(state)),
                    Decided::Next(next) => Ok(Step::Write(encode(&next)?, next)),
                }
            });
            match decided {
                Ok(state) => Ok(to_wit(state)),
                Err(UpdateError::Rejected(e)) => Err(e),
                Err(UpdateError::Store(e)) => Err(storage(e)),
                Err(UpdateError::Contended) => Err(StoreError::Conflict),
            }
        }

        fn keep_call_cache(
            id: String,
            shared_upstream: Option<String>,
            audit_spooled: Option<bool>,
        ) -> Result<(), StoreError> {
            let bucket = bucket()?;
            load(&bucket, &id)?;
            let key = format!("{KEY_PREFIX}{id}");
            let write_id = new_write_id()?;
            let kept = update(&KvCas(&bucket), &key, CAS_ATTEMPTS, |current| {
                let mut request = decode(current.ok_or(StoreError::NotFound)?)?;
                let Some(mut cache) = request
                    .call_cache
                    .with(shared_upstream.as_deref(), audit_spooled)
                else {
                    return Ok(Step::AlreadyApplied(()));
                };
                cache.w = write_id.clone();
                request.call_cache = cache;
                Ok(Step::Write(encode(&request)?, ()))
            });
            match kept {
                Ok(()) => Ok(()),
                Err(UpdateError::Rejected(e)) => Err(e),
                Err(UpdateError::Store(e)) => Err(storage(e)),
                Err(UpdateError::Contended) => Err(StoreError::Conflict),
            }
        }
    }

    export!(Component);
}
