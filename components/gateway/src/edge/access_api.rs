//! The access API: asking for access, listing and showing requests,
//! approving, denying, revoking and renewing. Every step asks the Cedar
//! policy and names the deciding policies in the audit record.

use copilot_jit_access_policy::{Action, Decision, Resource};
use copilot_jit_common::unix_now as now;
use copilot_jit_wasi::http::types::IncomingRequest;
use serde_json::json;

use super::copilot_jit::gateway::grants::{self, AccessRequest, DecisionKind, RequestStatus};
use super::copilot_jit::gateway::types::Principal;
use super::grant_json::{request_json, requirements_json, status_name};
use super::identity::{authenticate, may_decide, same_person};
use super::policy::{self, clock, clock_context, decide_on_request};
use super::wasi_http::read_request_body;
use super::{notify, Ctx, Reply};
use crate::ask::{self, AccessAsk, RenewAsk};
use crate::body::{parse_json, parse_optional_json, MAX_API_BODY};
use crate::error::{ApiError, ErrorKind};
use crate::routes::{self, Verdict};

/// Most requests one listing reads from the store, and returns.
const MAX_LISTED: u32 = 500;
const DEFAULT_LISTED: u32 = 100;
/// Store pages one listing reads at most.
const LISTING_CALLS: u32 = 5;
const MAX_COMMENT_CHARS: usize = 1000;

/// The grant store's refusals as the API answers them.
pub(super) fn store_error(e: grants::StoreError) -> ApiError {
    match e {
        grants::StoreError::NotFound => {
            ApiError::new(ErrorKind::NotFound, "no such access request")
        }
        grants::StoreError::InvalidState(m) => ApiError::new(ErrorKind::InvalidState, m),
        grants::StoreError::Forbidden(m) => ApiError::new(ErrorKind::Forbidden, m),
        grants::StoreError::Conflict => ApiError::new(
            ErrorKind::Busy,
            "too many concurrent changes to this request; retry",
        ),
        grants::StoreError::Storage(m) => ApiError::new(
            ErrorKind::StorageUnavailable,
            "the grant store is unavailable",
        )
        .detail(m),
    }
}

/// One request by id, named in the trace whether or not it exists.
pub(super) fn load_request(ctx: &mut Ctx, id: &str) -> Result<AccessRequest, ApiError> {
    ctx.trace.grant_id = Some(id.to_string());
    grants::get(id).map_err(store_error)
}

/// Creates a request (or a renewal) under the requirements of the policies
/// that permitted it.
fn create_under_policy(
    ctx: &mut Ctx,
    principal: Principal,
    ask: &AccessAsk,
    asked_secs: Option<u64>,
    decisions: Vec<Decision>,
    renew_of: Option<String>,
) -> Result<AccessRequest, ApiError> {
    let mut ids: Vec<String> = decisions
        .iter()
        .flat_map(|d| d.policy_ids.iter().cloned())
        .collect();
    ids.sort();
    ids.dedup();
    let req = copilot_jit_access_policy::requirements(&ids);
    ctx.trace.policy_ids = ids.clone();
    let max = req.max_duration_secs.unwrap_or(u64::MAX);
    let duration_secs = asked_secs.unwrap_or(ask::DEFAULT_DURATION_SECS.min(max));
    if duration_secs > max {
        let d = Decision {
            allowed: false,
            policy_ids: ids,
            errors: Vec::new(),
            requirements: req.clone(),
        };
        return Err(ApiError::denied(
            ErrorKind::DurationExceedsPolicy,
            &d,
            format!("the policy allows at most {max} seconds"),
        ));
    }
    if !req.auto_approve && req.approver_groups.is_empty() {
        return Err(ApiError::new(
            ErrorKind::PolicyIncomplete,
            "the permitting policy names no approvers",
        )
        .detail(format!("policies {ids:?} name no @approver_groups")));
    }
    let created = grants::create(&grants::NewRequest {
        requester: principal,
        scopes: ask.scopes.clone(),
        models: ask.models.clone(),
        repository: ask.repository.clone(),
        reason: ask.reason.clone(),
        duration_secs,
        required_approvals: req.min_approvals,
        approver_groups: req.approver_groups.clone(),
        pending_ttl_secs: req
            .pending_ttl_secs
            .unwrap_or(ask::DEFAULT_PENDING_TTL_SECS),
        auto_approve: req.auto_approve,
        renewable: true,
        policy_ids: ids,
        renew_of,
        groups_confirmed_at: ctx.groups_confirmed_at,
    })
    .map_err(store_error)?;
    ctx.trace.grant_id = Some(created.id.clone());
    ctx.trace.reason = Some(
        if req.auto_approve {
            "auto-approved"
        } else {
            "pending approval"
        }
        .into(),
    );
    notify::created(ctx, &created);
    Ok(created)
}

/// `POST /v1/access-requests`: every scope asked for must be permitted.
pub(super) fn create_request(ctx: &mut Ctx, request: &IncomingRequest) -> Result<Reply, ApiError> {
    let principal = authenticate(ctx)?;
    let body = read_request_body(request, MAX_API_BODY)?;
    create_with(ctx, principal, &body)
}

/// As `POST /v1/access-requests`, for `principal` (the API's caller or the
/// pages' signed-in person) and a JSON `body`.
pub(super) fn create_with(
    ctx: &mut Ctx,
    principal: Principal,
    body: &[u8],
) -> Result<Reply, ApiError> {
    ctx.trace.bytes_in = body.len() as u64;
    let asked: AccessAsk = parse_json(body)?;
    let asked_secs = ask::check_ask(&asked)?;
    let duration = asked_secs.unwrap_or(ask::DEFAULT_DURATION_SECS);
    let decisions = request_decisions(ctx, &principal, &asked, duration)?;
    let created = create_under_policy(ctx, principal, &asked, asked_secs, decisions, None)?;
    Ok(Reply::Json(201, json!({"request": request_json(&created)})))
}

/// The `request` decision for every scope of `asked`, each of which must be
/// permitted: a new request and a renewal pass the same policies.
fn request_decisions(
    ctx: &mut Ctx,
    principal: &Principal,
    asked: &AccessAsk,
    duration_secs: u64,
) -> Result<Vec<Decision>, ApiError> {
    let (hour, weekday) = clock();
    let mut decisions = Vec::new();
    for scope in &asked.scopes {
        let mut context = json!({
            "duration_secs": duration_secs,
            "reason": asked.reason,
            "hour": hour,
            "weekday": weekday,
            "client": ctx.client_name(),
            "models": asked.models,
        });
        if let Some(repo) = &asked.repository {
            context["repository"] = json!(repo);
        }
        let d = policy::decide(principal, Action::Request, &Resource::Scope(scope), context)?;
        if !d.allowed {
            ctx.trace.policy_ids = d.policy_ids.clone();
        }
        decisions.push(ApiError::unless_allowed(d, ErrorKind::PolicyDenied, |d| {
            format!(
                "the access policy does not let you request {scope}: {}",
                d.explain()
            )
        })?);
    }
    Ok(decisions)
}

fn bad_query(message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorKind::BadQuery, message)
}

/// `?older_than=` / `?newer_than=`: seconds or text like "1h".
fn age_param(query: &routes::Query, name: &str) -> Result<Option<u64>, ApiError> {
    query
        .get(name)
        .map(|v| {
            let d = v
                .parse::<u64>()
                .map(ask::Duration::Seconds)
                .unwrap_or(ask::Duration::Text(v.clone()));
            d.seconds()
                .ok_or_else(|| bad_query(format!("{name} must be seconds or text like \"1h\"")))
        })
        .transpose()
}

fn status_param(query: &routes::Query) -> Result<Option<RequestStatus>, ApiError> {
    Ok(Some(match query.get("status").as_deref() {
        None | Some("") | Some("all") => return Ok(None),
        Some("pending") => RequestStatus::Pending,
        Some("approved") => RequestStatus::Approved,
        Some("denied") => RequestStatus::Denied,
        Some("expired") => RequestStatus::Expired,
        Some("revoked") => RequestStatus::Revoked,
        Some(other) => return Err(bad_query(format!("unknown status {other:?}"))),
    }))
}

/// `GET /v1/access-requests`: approvers see what the policy lets them
/// decide; everyone sees their own requests.
pub(super) fn list_requests(ctx: &mut Ctx) -> Result<Reply, ApiError> {
    let principal = authenticate(ctx)?;
    let query = routes::query_params(&ctx.path);
    list_with(&principal, &query)
}

/// As `GET /v1/access-requests`, for `principal` and `query`.
pub(super) fn list_with(principal: &Principal, query: &routes::Query) -> Result<Reply, ApiError> {
    let status = status_param(query)?;
    let limit = match query.get("limit") {
        None => DEFAULT_LISTED,
        Some(v) => v
            .parse::<u32>()
            .map_err(|_| bad_query("limit must be a whole number"))?,
    };
    let older_than = age_param(query, "older_than")?;
    let newer_than = age_param(query, "newer_than")?;
    let cursor = match query.get("cursor") {
        Some(c) if c.len() > 40 => return Err(bad_query("cursor is not one this gateway gave")),
        other => other,
    };
    let limit = limit.clamp(1, MAX_LISTED) as usize;
    let now = now();
    let mut visible = Vec::new();
    // Newest first, filtered before the limit. Each page asked of the store
    // is no larger than what is still missing, so the cursor handed on is
    // exactly where this listing stopped.
    let mut next = cursor;
    // A bound on the work of one call (each store call examines at most
    // 2,000 requests); a caller who sees few goes on with the cursor.
    let mut calls = 0;
    while visible.len() < limit && (calls == 0 || next.is_some()) && calls < LISTING_CALLS {
        calls += 1;
        let page = grants::list_requests(&grants::ListFilter {
            status,
            requester_subject: query.get("requester"),
            limit: (limit - visible.len()) as u32,
            cursor: next.take(),
        })
        .map_err(|e| match e {
            grants::StoreError::InvalidState(m) => bad_query(m),
            other => store_error(other),
        })?;
        next = page.next_cursor;
        for r in &page.requests {
            let age = now.saturating_sub(r.created_at);
            if older_than.is_some_and(|t| age < t) || newer_than.is_some_and(|t| age > t) {
                continue;
            }
            let own = same_person(principal, r);
            let decider = !own && may_decide(principal, r)?;
            if !own && !decider {
                continue;
            }
            let mut v = request_json(r);
            v["you_may_decide"] =
                json!(
                    decider
                        && r.status == RequestStatus::Pending
                        && !r.decisions.iter().any(|d| d.by_subject == principal.subject
                            && d.by_issuer == principal.issuer)
                );
            visible.push(v);
        }
    }
    Ok(Reply::Json(
        200,
        json!({"requests": visible, "next_cursor": next}),
    ))
}

/// `GET /v1/access-requests/{id}`, with why the policy decided as it did.
pub(super) fn get_request(ctx: &mut Ctx, id: &str) -> Result<Reply, ApiError> {
    let principal = authenticate(ctx)?;
    let request = load_request(ctx, id)?;
    let own = same_person(&principal, &request);
    let approve = decide_on_request(
        ctx,
        &principal,
        Action::Approve,
        &request,
        clock_context(json!({"comment": ""})),
    )?;
    if !own && !approve.allowed {
        // Not found rather than forbidden: ids of others' requests are not revealed.
        return Err(ApiError::new(ErrorKind::NotFound, "no such access request"));
    }
    let requirements = copilot_jit_access_policy::requirements(&request.policy_ids);
    let mut body = request_json(&request);
    body["policy"] = json!({
        "permitted_by": request.policy_ids,
        "requirements": requirements_json(&requirements),
        "explanation": explanation(&request, requirements.auto_approve),
        "you_may_decide": approve.allowed && request.status == RequestStatus::Pending,
        "your_decision_explained": approve.explain(),
    });
    Ok(Reply::Json(200, json!({"request": body})))
}

fn explanation(request: &AccessRequest, auto_approve: bool) -> String {
    if auto_approve {
        format!("approved at once under {}", request.policy_ids.join(", "))
    } else {
        format!(
            "needs {} approval(s) from {} under {}",
            request.required_approvals,
            request.approver_groups.join(", "),
            request.policy_ids.join(", ")
        )
    }
}

fn comment_from(request: &IncomingRequest) -> Result<String, ApiError> {
    let body = read_request_body(request, MAX_API_BODY)?;
    comment_from_body(&body)
}

fn comment_from_body(body: &[u8]) -> Result<String, ApiError> {
    #[derive(serde::Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    struct CommentBody {
        #[serde(default)]
        comment: String,
    }
    let parsed: CommentBody = parse_optional_json(body)?;
    if parsed.comment.chars().count() > MAX_COMMENT_CHARS {
        return Err(ApiError::new(
            ErrorKind::BadComment,
            format!("comments are limited to {MAX_COMMENT_CHARS} characters"),
        ));
    }
    Ok(parsed.comment)
}

/// A comment within the length limit.
fn checked_comment(comment: &str) -> Result<String, ApiError> {
    if comment.chars().count() > MAX_COMMENT_CHARS {
        return Err(ApiError::new(
            ErrorKind::BadComment,
            format!("comments are limited to {MAX_COMMENT_CHARS} characters"),
        ));
    }
    Ok(comment.to_string())
}

/// `POST /v1/access-requests/{id}/approve` and `…/deny`.
pub(super) fn decide(
    ctx: &mut Ctx,
    request: &IncomingRequest,
    id: &str,
    verdict: Verdict,
) -> Result<Reply, ApiError> {
    let principal = authenticate(ctx)?;
    let comment = comment_from(request)?;
    decide_with(ctx, principal, &comment, id, verdict)
}

/// As `POST /v1/access-requests/{id}/approve|deny`, for `principal`.
pub(super) fn decide_with(
    ctx: &mut Ctx,
    principal: Principal,
    comment: &str,
    id: &str,
    verdict: Verdict,
) -> Result<Reply, ApiError> {
    let comment = checked_comment(comment)?;
    let current = load_request(ctx, id)?;
    let (action, kind) = match verdict {
        Verdict::Approve => (Action::Approve, DecisionKind::Approve),
        Verdict::Deny => (Action::Deny, DecisionKind::Deny),
    };
    let d = decide_on_request(
        ctx,
        &principal,
        action,
        &current,
        clock_context(json!({"comment": comment})),
    )?;
    ApiError::unless_allowed(d, ErrorKind::NotAnApprover, |_| {
        if same_person(&principal, &current) {
            "requesters cannot decide their own request".to_string()
        } else {
            format!(
                "only members of {} may decide this request",
                current.approver_groups.join(", ")
            )
        }
    })?;
    let updated = grants::decide(id, kind, &principal, &comment).map_err(store_error)?;
    if updated.status != RequestStatus::Pending {
        notify::decided(ctx, &updated, &principal, &comment);
    }
    Ok(Reply::Json(200, json!({"request": request_json(&updated)})))
}

/// `POST /v1/grants/{id}/revoke`: ends the grant at once.
pub(super) fn revoke(
    ctx: &mut Ctx,
    request: &IncomingRequest,
    id: &str,
) -> Result<Reply, ApiError> {
    let principal = authenticate(ctx)?;
    let comment = comment_from(request)?;
    revoke_with(ctx, principal, &comment, id)
}

/// As `POST /v1/grants/{id}/revoke`, for `principal`.
pub(super) fn revoke_with(
    ctx: &mut Ctx,
    principal: Principal,
    comment: &str,
    id: &str,
) -> Result<Reply, ApiError> {
    let comment = checked_comment(comment)?;
    let current = load_request(ctx, id)?;
    let d = decide_on_request(
        ctx,
        &principal,
        Action::Revoke,
        &current,
        clock_context(json!({})),
    )?;
    ApiError::unless_allowed(d, ErrorKind::Forbidden, |_| {
        "only the requester, an approver of the grant or security may revoke it".into()
    })?;
    let updated =
        grants::decide(id, DecisionKind::Revoke, &principal, &comment).map_err(store_error)?;
    notify::decided(ctx, &updated, &principal, &comment);
    Ok(Reply::Json(200, json!({"request": request_json(&updated)})))
}

/// `POST /v1/grants/{id}/renew`: a new grant with the same scopes. The renew
/// policy decides whether it is approved at once or goes to approvers.
pub(super) fn renew(ctx: &mut Ctx, request: &IncomingRequest, id: &str) -> Result<Reply, ApiError> {
    let principal = authenticate(ctx)?;
    let body = read_request_body(request, MAX_API_BODY)?;
    renew_with(ctx, principal, &body, id)
}

/// As `POST /v1/grants/{id}/renew`, for `principal` and a JSON `body`.
pub(super) fn renew_with(
    ctx: &mut Ctx,
    principal: Principal,
    body: &[u8],
    id: &str,
) -> Result<Reply, ApiError> {
    let asked: RenewAsk = parse_optional_json(body)?;
    let current = load_request(ctx, id)?;
    let granted = matches!(
        current.status,
        RequestStatus::Approved | RequestStatus::Expired
    ) && current.granted_at.is_some();
    if !granted || !current.renewable {
        return Err(ApiError::new(
            ErrorKind::NotRenewable,
            format!(
                "only a granted, renewable request can be renewed; this one is {}",
                status_name(current.status)
            ),
        ));
    }
    let asked_secs = ask::duration_secs(&asked.duration)?;
    let duration = asked_secs.unwrap_or(current.duration_secs);
    let d = decide_on_request(
        ctx,
        &principal,
        Action::Renew,
        &current,
        clock_context(json!({"duration_secs": duration})),
    )?;
    let d = ApiError::unless_allowed(d, ErrorKind::PolicyDenied, |d| {
        format!(
            "the access policy does not let you renew this grant: {}",
            d.explain()
        )
    })?;
    let reason = match &asked.reason {
        Some(r) => {
            ask::check_reason(r)?;
            r.clone()
        }
        None => format!("renewal of {}: {}", current.id, current.reason),
    };
    let renewal = AccessAsk {
        scopes: current.scopes.clone(),
        models: current.models.clone(),
        duration: None,
        reason,
        repository: current.repository.clone(),
    };
    // Every forbid a new request meets applies to a renewal (production
    // code, a working day…), with the groups of the token asking now; the
    // renew policy alone sets how it is approved.
    request_decisions(ctx, &principal, &renewal, duration)?;
    let created = create_under_policy(
        ctx,
        principal,
        &renewal,
        Some(duration),
        vec![d],
        Some(current.id.clone()),
    )?;
    Ok(Reply::Json(201, json!({"request": request_json(&created)})))
}
