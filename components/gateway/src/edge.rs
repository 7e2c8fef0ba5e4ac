//! The wasi:http edge: reads requests, calls the five component interfaces,
//! talks to Copilot, writes responses. Decisions live in the pure modules.

use crate::content;
use crate::copilot;
use crate::policy::{self as ask, AccessAsk, RenewAsk};
use crate::routes::{self, CopilotCall, Route, RouteError, Verdict};
use crate::sse::{SseError, SseMasker, StreamFilter, TextMasker};
use crate::typed_sse::TypedSseMasker;
use copilot_jit_common::unix_now as now;
use serde_json::{json, Value};
use std::time::Instant;

wit_bindgen::generate!({
    path: "../../wit",
    world: "gateway",
    generate_all,
});

use copilot_jit::gateway::types::{Finding, Principal, PrincipalKind};
use copilot_jit::gateway::{audit, auth, grants, masking, minter};
use exports::wasi::http::incoming_handler::Guest;
use wasi::config::store as config;
use wasi::http::outgoing_handler;
use wasi::http::types::{
    Fields, IncomingBody, IncomingRequest, IncomingResponse, Method, OutgoingBody, OutgoingRequest,
    OutgoingResponse, OutputStream, ResponseOutparam, Scheme,
};
use wasi::io::streams::{InputStream, StreamError};
use wasi::keyvalue::store;

#[path = "access.rs"]
mod access;
use access::{decide as ask_policy, denial, facts};
use copilot_jit_access_policy::{Action, Resource};

/// Largest body accepted on the access API.
const MAX_API_BODY: usize = 64 * 1024;
/// Largest prompt body accepted for Copilot calls.
const MAX_PROMPT_BODY: usize = 4 * 1024 * 1024;
/// Largest non-streamed upstream body the gateway will inspect.
const MAX_UPSTREAM_BODY: usize = 16 * 1024 * 1024;
/// How much prompt text an audit record keeps.
const MAX_AUDIT_TEXT: usize = 64 * 1024;
const UPSTREAM_TOKEN_KEY: &str = "upstream:copilot-token";
/// Client headers that steer routing or billing upstream: forwarded unchanged.
const FORWARDED_REQUEST_HEADERS: &[&str] = &[
    "accept",
    "openai-intent",
    "openai-organization",
    "x-initiator",
    "x-interaction-id",
    "x-interaction-type",
    "copilot-integration-id",
    "copilot-vision-request",
    "editor-version",
    "editor-plugin-version",
    "x-github-api-version",
    "user-agent",
];
const FORWARDED_RESPONSE_HEADERS: &[&str] = &[
    "openai-processing-ms",
    "azureml-model-deployment",
    "x-copilot-experiment",
    "retry-after",
];

/// An error answered as JSON; `detail` goes to the audit record only.
struct ApiError {
    status: u16,
    code: &'static str,
    message: String,
    // Boxed: errors travel through every `?`, and JSON values are large.
    extra: Option<Box<Value>>,
    detail: Option<String>,
    /// A body in another protocol's error shape, sent instead of ours.
    envelope: Option<Box<Value>>,
}

impl ApiError {
    fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            extra: None,
            detail: None,
            envelope: None,
        }
    }

    fn with(mut self, extra: Value) -> Self {
        self.extra = Some(Box::new(extra));
        self
    }

    fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    fn body(&self) -> Value {
        if let Some(envelope) = &self.envelope {
            return (**envelope).clone();
        }
        let mut error = json!({"code": self.code, "message": self.message});
        if let (Some(Value::Object(extra)), Some(obj)) =
            (self.extra.as_deref(), error.as_object_mut())
        {
            for (k, v) in extra {
                obj.insert(k.clone(), v.clone());
            }
        }
        json!({ "error": error })
    }
}

enum Reply {
    Json(u16, Value),
    JsonWithHeaders(u16, Value, Vec<(String, String)>),
    /// The response was already sent (streamed).
    Sent,
}

/// What one request did, for its audit record.
#[derive(Default)]
struct Trace {
    action: String,
    principal: Option<Principal>,
    grant_id: Option<String>,
    token_id: Option<String>,
    model: Option<String>,
    outcome: Option<&'static str>,
    reason: Option<String>,
    findings: Vec<Finding>,
    prompt: Option<String>,
    response: Option<String>,
    upstream_status: Option<u16>,
    /// When the upstream call began, to time it to its end.
    upstream_started: Option<Instant>,
    ttfb_ms: Option<u64>,
    policy_ids: Vec<String>,
    /// Webhook messages to send once the response is out.
    notifications: Vec<Value>,
    /// The audit sink refused to take another record (storage down, spool
    /// full): the call is refused and leaves no record.
    unrecordable: bool,
    bytes_in: u64,
    bytes_out: u64,
}

struct Ctx {
    request_id: String,
    client_request_id: Option<String>,
    method: String,
    path: String,
    headers: Fields,
    trace: Trace,
}

fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    // The id is for correlation only; a zeroed id is still a valid response.
    let _ = getrandom::fill(&mut bytes);
    hex::encode(bytes)
}

fn variable(name: &str) -> Option<String> {
    config::get(name)
        .ok()
        .flatten()
        .filter(|v| !v.trim().is_empty())
}

fn public_url() -> String {
    variable("public_url")
        .unwrap_or_else(|| "http://127.0.0.1:3000".into())
        .trim_end_matches('/')
        .to_string()
}

fn method_name(m: &Method) -> String {
    match m {
        Method::Get => "GET".into(),
        Method::Head => "HEAD".into(),
        Method::Post => "POST".into(),
        Method::Put => "PUT".into(),
        Method::Delete => "DELETE".into(),
        Method::Connect => "CONNECT".into(),
        Method::Options => "OPTIONS".into(),
        Method::Trace => "TRACE".into(),
        Method::Patch => "PATCH".into(),
        Method::Other(s) => s.to_uppercase(),
    }
}

fn header(fields: &Fields, name: &str) -> Option<String> {
    fields
        .get(name)
        .into_iter()
        .next()
        .and_then(|v| String::from_utf8(v).ok())
}

fn clean_request_id(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
}

fn how_to_request() -> Value {
    let base = public_url();
    json!({
        "how_to_request_access": {
            "request": {
                "method": "POST",
                "url": format!("{base}/v1/access-requests"),
                "headers": {"authorization": "Bearer <your OIDC token>"},
                "body": {"scopes": ["chat", "completions"], "reason": "<why>", "duration": "1h"}
            },
            "then": format!("POST {base}/v1/grants/<request id>/token once approved")
        }
    })
}

// ---------------------------------------------------------------- bodies

enum BodyError {
    TooLarge,
    Unreadable,
}

fn read_stream(stream: &InputStream, limit: usize) -> Result<Vec<u8>, BodyError> {
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => {
                bytes.extend_from_slice(&chunk);
                if bytes.len() > limit {
                    return Err(BodyError::TooLarge);
                }
            }
            Err(StreamError::Closed) => return Ok(bytes),
            Err(StreamError::LastOperationFailed(_)) => return Err(BodyError::Unreadable),
        }
    }
}

fn read_request_body(request: &IncomingRequest, limit: usize) -> Result<Vec<u8>, ApiError> {
    let too_large = || {
        ApiError::new(
            413,
            "body_too_large",
            format!("request bodies are limited to {limit} bytes"),
        )
    };
    let declared =
        header(&request.headers(), "content-length").and_then(|v| v.trim().parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let unreadable = || ApiError::new(400, "bad_body", "the request body could not be read");
    let body = request.consume().map_err(|_| unreadable())?;
    let stream = body.stream().map_err(|_| unreadable())?;
    let bytes = read_stream(&stream, limit).map_err(|e| match e {
        BodyError::TooLarge => too_large(),
        BodyError::Unreadable => unreadable(),
    })?;
    drop(stream);
    IncomingBody::finish(body);
    Ok(bytes)
}

/// A body that may be left out: empty (or blank) means the defaults.
fn parse_optional_json<T: serde::de::DeserializeOwned + Default>(
    bytes: &[u8],
) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        Ok(T::default())
    } else {
        parse_json(bytes)
    }
}

impl From<ask::BadAsk> for ApiError {
    fn from(b: ask::BadAsk) -> Self {
        ApiError::new(400, "bad_request", b.message).with(json!({"field": b.field}))
    }
}

fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.is_empty() {
        return Err(ApiError::new(400, "bad_json", "a JSON body is required"));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::new(
            400,
            "bad_json",
            format!("the body is not valid JSON for this call: {e}"),
        )
    })
}

fn write_all(stream: &OutputStream, bytes: &[u8]) -> Result<(), StreamError> {
    for chunk in bytes.chunks(4096) {
        stream.blocking_write_and_flush(chunk)?;
    }
    Ok(())
}

fn response_fields(ctx: &Ctx, content_type: &str, extra: &[(String, String)]) -> Fields {
    let mut list: Vec<(String, Vec<u8>)> = vec![
        ("content-type".into(), content_type.as_bytes().to_vec()),
        (
            "x-request-id".into(),
            ctx.client_request_id
                .clone()
                .unwrap_or_else(|| ctx.request_id.clone())
                .into_bytes(),
        ),
    ];
    if !extra.iter().any(|(k, _)| k == "x-github-request-id") {
        list.push((
            "x-github-request-id".into(),
            ctx.request_id.clone().into_bytes(),
        ));
    }
    for (k, v) in extra {
        list.push((k.clone(), v.clone().into_bytes()));
    }
    Fields::from_list(&list).unwrap_or_else(|_| Fields::new())
}

fn send_bytes(
    out: ResponseOutparam,
    status: u16,
    fields: Fields,
    body: &[u8],
) -> Result<(), StreamError> {
    let response = OutgoingResponse::new(fields);
    let _ = response.set_status_code(status);
    let Ok(outgoing) = response.body() else {
        ResponseOutparam::set(out, Ok(response));
        return Ok(());
    };
    ResponseOutparam::set(out, Ok(response));
    let result = match outgoing.write() {
        Ok(stream) => {
            let r = write_all(&stream, body);
            drop(stream);
            r
        }
        Err(()) => Ok(()),
    };
    let _ = OutgoingBody::finish(outgoing, None);
    result
}

// ---------------------------------------------------------------- identity

fn bearer(ctx: &Ctx) -> Option<String> {
    let value = header(&ctx.headers, "authorization")?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    let accepted = scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token");
    (accepted && !token.is_empty()).then(|| token.to_string())
}

/// Stable names for the audit record (and SIEM queries), not Rust debug text.
fn failure_name(f: auth::AuthFailure) -> &'static str {
    use auth::AuthFailure::*;
    match f {
        Malformed => "malformed",
        UnsupportedAlgorithm => "unsupported-algorithm",
        UnknownIssuer => "unknown-issuer",
        UnknownKey => "unknown-key",
        BadSignature => "bad-signature",
        Expired => "expired",
        NotYetValid => "not-yet-valid",
        WrongAudience => "wrong-audience",
        KeysUnavailable => "keys-unavailable",
    }
}

fn authenticate(ctx: &mut Ctx) -> Result<Principal, ApiError> {
    let token = bearer(ctx).ok_or_else(|| {
        ApiError::new(
            401,
            "unauthenticated",
            "send an OIDC token as 'Authorization: Bearer <token>'",
        )
    })?;
    match auth::authenticate(&token) {
        Ok(p) => {
            ctx.trace.principal = Some(p.clone());
            Ok(p)
        }
        Err(e) => {
            let detail = format!("{}: {}", failure_name(e.failure), e.detail);
            Err(match e.failure {
                auth::AuthFailure::KeysUnavailable => ApiError::new(
                    503,
                    "identity_unavailable",
                    "the identity provider's keys cannot be fetched",
                ),
                auth::AuthFailure::Expired => {
                    ApiError::new(401, "token_expired", "the identity token has expired")
                }
                _ => ApiError::new(401, "invalid_token", "the identity token was not accepted"),
            }
            .detail(detail))
        }
    }
}

fn same_person(p: &Principal, r: &grants::AccessRequest) -> bool {
    p.subject == r.requester.subject && p.issuer == r.requester.issuer
}

// ---------------------------------------------------------------- rendering

fn status_name(s: grants::RequestStatus) -> &'static str {
    match s {
        grants::RequestStatus::Pending => "pending",
        grants::RequestStatus::Approved => "approved",
        grants::RequestStatus::Denied => "denied",
        grants::RequestStatus::Expired => "expired",
        grants::RequestStatus::Revoked => "revoked",
    }
}

fn kind_name(k: PrincipalKind) -> &'static str {
    match k {
        PrincipalKind::Human => "human",
        PrincipalKind::Workload => "workload",
        PrincipalKind::Agent => "agent",
    }
}

fn request_json(r: &grants::AccessRequest) -> Value {
    json!({
        "id": r.id,
        "status": status_name(r.status),
        "requester": {
            "kind": kind_name(r.requester.kind),
            "issuer": r.requester.issuer,
            "subject": r.requester.subject,
            "email": r.requester.email,
            "groups": r.requester.groups,
        },
        "scopes": r.scopes,
        "models": r.models,
        "repository": r.repository,
        "reason": r.reason,
        "duration_secs": r.duration_secs,
        "created_at": r.created_at,
        "pending_expires_at": r.pending_expires_at,
        "required_approvals": r.required_approvals,
        "approver_groups": r.approver_groups,
        "decisions": r.decisions.iter().map(|d| json!({
            "kind": match d.kind {
                grants::DecisionKind::Approve => "approve",
                grants::DecisionKind::Deny => "deny",
                grants::DecisionKind::Revoke => "revoke",
            },
            "by": d.by_subject,
            "comment": d.comment,
            "at": d.at,
        })).collect::<Vec<_>>(),
        "granted_at": r.granted_at,
        "expires_at": r.expires_at,
        "renewable": r.renewable,
        "policy_ids": r.policy_ids,
        "renew_of": r.renew_of,
    })
}

fn store_error(e: grants::StoreError) -> ApiError {
    match e {
        grants::StoreError::NotFound => ApiError::new(404, "not_found", "no such access request"),
        grants::StoreError::InvalidState(m) => ApiError::new(409, "invalid_state", m),
        grants::StoreError::Forbidden(m) => ApiError::new(403, "forbidden", m),
        grants::StoreError::Conflict => ApiError::new(
            503,
            "busy",
            "too many concurrent changes to this request; retry",
        ),
        grants::StoreError::Storage(m) => {
            ApiError::new(503, "storage_unavailable", "the grant store is unavailable").detail(m)
        }
    }
}

fn load_request(ctx: &mut Ctx, id: &str) -> Result<grants::AccessRequest, ApiError> {
    ctx.trace.grant_id = Some(id.to_string());
    grants::get(id).map_err(store_error)
}

fn client_name(ctx: &Ctx) -> String {
    header(&ctx.headers, "editor-version")
        .or_else(|| header(&ctx.headers, "user-agent"))
        .unwrap_or_default()
}

/// The policy's view of one access request for `action`, recorded in the
/// trace (the audit names the deciding policies).
fn ask_about_request(
    ctx: &mut Ctx,
    principal: &Principal,
    action: Action,
    request: &grants::AccessRequest,
    context: Value,
) -> Result<copilot_jit_access_policy::Decision, ApiError> {
    let d = ask_policy(
        principal,
        action,
        &Resource::AccessRequest(facts(request)),
        context,
    )?;
    ctx.trace.policy_ids = d.policy_ids.clone();
    Ok(d)
}

fn clock_context(extra: Value) -> Value {
    let (hour, weekday) = access::clock();
    let mut c = json!({"hour": hour, "weekday": weekday});
    if let (Some(c), Value::Object(extra)) = (c.as_object_mut(), extra) {
        c.extend(extra);
    }
    c
}

/// Whether `principal` may approve (and so decide) `request` now.
fn may_decide(principal: &Principal, request: &grants::AccessRequest) -> Result<bool, ApiError> {
    Ok(ask_policy(
        principal,
        Action::Approve,
        &Resource::AccessRequest(facts(request)),
        clock_context(json!({"comment": ""})),
    )?
    .allowed)
}

fn requirements_json(r: &copilot_jit_access_policy::Requirements) -> Value {
    json!({
        "auto_approve": r.auto_approve,
        "approver_groups": r.approver_groups,
        "min_approvals": r.min_approvals,
        "max_duration_secs": r.max_duration_secs,
        "pending_ttl_secs": r.pending_ttl_secs,
    })
}

/// Creates a request (or a renewal) under the requirements of the policies
/// that permitted it.
fn create_under_policy(
    ctx: &mut Ctx,
    principal: Principal,
    ask: &AccessAsk,
    asked_secs: Option<u64>,
    decisions: Vec<copilot_jit_access_policy::Decision>,
    renew_of: Option<String>,
) -> Result<grants::AccessRequest, ApiError> {
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
        let d = copilot_jit_access_policy::Decision {
            allowed: false,
            policy_ids: ids,
            errors: Vec::new(),
            requirements: req.clone(),
        };
        return Err(denial(
            &d,
            "duration_exceeds_policy",
            format!("the policy allows at most {max} seconds"),
        ));
    }
    if !req.auto_approve && req.approver_groups.is_empty() {
        return Err(ApiError::new(
            503,
            "policy_incomplete",
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
    notify_created(ctx, &created);
    Ok(created)
}

// ---------------------------------------------------------------- access API

fn create_request(ctx: &mut Ctx, request: &IncomingRequest) -> Result<Reply, ApiError> {
    let principal = authenticate(ctx)?;
    let body = read_request_body(request, MAX_API_BODY)?;
    ctx.trace.bytes_in = body.len() as u64;
    let asked: AccessAsk = parse_json(&body)?;
    let asked_secs = ask::check_ask(&asked)?;
    let (hour, weekday) = access::clock();
    let mut decisions = Vec::new();
    for scope in &asked.scopes {
        let mut context = json!({
            "duration_secs": asked_secs.unwrap_or(ask::DEFAULT_DURATION_SECS),
            "reason": asked.reason,
            "hour": hour,
            "weekday": weekday,
            "client": client_name(ctx),
            "models": asked.models,
        });
        if let Some(repo) = &asked.repository {
            context["repository"] = json!(repo);
        }
        let d = ask_policy(
            &principal,
            Action::Request,
            &Resource::Scope(scope),
            context,
        )?;
        if !d.allowed {
            ctx.trace.policy_ids = d.policy_ids.clone();
            return Err(denial(
                &d,
                "policy_denied",
                format!(
                    "the access policy does not let you request {scope}: {}",
                    d.explain()
                ),
            ));
        }
        decisions.push(d);
    }
    let created = create_under_policy(ctx, principal, &asked, asked_secs, decisions, None)?;
    Ok(Reply::Json(201, json!({"request": request_json(&created)})))
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
            d.seconds().ok_or_else(|| {
                ApiError::new(
                    400,
                    "bad_query",
                    format!("{name} must be seconds or text like \"1h\""),
                )
            })
        })
        .transpose()
}

fn list_requests(ctx: &mut Ctx) -> Result<Reply, ApiError> {
    let principal = authenticate(ctx)?;
    let query = routes::query_params(&ctx.path);
    let param = |name: &str| query.get(name);
    let status = match param("status").as_deref() {
        None | Some("") | Some("all") => None,
        Some("pending") => Some(grants::RequestStatus::Pending),
        Some("approved") => Some(grants::RequestStatus::Approved),
        Some("denied") => Some(grants::RequestStatus::Denied),
        Some("expired") => Some(grants::RequestStatus::Expired),
        Some("revoked") => Some(grants::RequestStatus::Revoked),
        Some(other) => {
            return Err(ApiError::new(
                400,
                "bad_query",
                format!("unknown status {other:?}"),
            ));
        }
    };
    let limit = match param("limit") {
        None => 100,
        Some(v) => v
            .parse::<u32>()
            .map_err(|_| ApiError::new(400, "bad_query", "limit must be a whole number"))?,
    };
    let older_than = age_param(&query, "older_than")?;
    let newer_than = age_param(&query, "newer_than")?;
    let found = grants::list_requests(&grants::ListFilter {
        status,
        requester_subject: param("requester"),
        limit: 500,
    })
    .map_err(store_error)?;
    let now = now();
    let mut visible = Vec::new();
    for r in &found {
        let age = now.saturating_sub(r.created_at);
        if older_than.is_some_and(|t| age < t) || newer_than.is_some_and(|t| age > t) {
            continue;
        }
        let own = same_person(&principal, r);
        // Approvers see what the policy lets them decide; everyone sees
        // their own requests.
        let decider = !own && may_decide(&principal, r)?;
        if !own && !decider {
            continue;
        }
        let mut v = request_json(r);
        v["you_may_decide"] = json!(
            decider
                && r.status == grants::RequestStatus::Pending
                && !r
                    .decisions
                    .iter()
                    .any(|d| d.by_subject == principal.subject && d.by_issuer == principal.issuer)
        );
        visible.push(v);
        if visible.len() >= limit.clamp(1, 500) as usize {
            break;
        }
    }
    Ok(Reply::Json(200, json!({"requests": visible})))
}

fn get_request(ctx: &mut Ctx, id: &str) -> Result<Reply, ApiError> {
    let principal = authenticate(ctx)?;
    let request = load_request(ctx, id)?;
    let own = same_person(&principal, &request);
    let approve = ask_about_request(
        ctx,
        &principal,
        Action::Approve,
        &request,
        clock_context(json!({"comment": ""})),
    )?;
    if !own && !approve.allowed {
        // Not found rather than forbidden: ids of others' requests are not revealed.
        return Err(ApiError::new(404, "not_found", "no such access request"));
    }
    let requirements = copilot_jit_access_policy::requirements(&request.policy_ids);
    let mut body = request_json(&request);
    body["policy"] = json!({
        "permitted_by": request.policy_ids,
        "requirements": requirements_json(&requirements),
        "explanation": if requirements.auto_approve {
            format!("approved at once under {}", request.policy_ids.join(", "))
        } else {
            format!(
                "needs {} approval(s) from {} under {}",
                request.required_approvals,
                request.approver_groups.join(", "),
                request.policy_ids.join(", ")
            )
        },
        "you_may_decide": approve.allowed && request.status == grants::RequestStatus::Pending,
        "your_decision_explained": approve.explain(),
    });
    Ok(Reply::Json(200, json!({"request": body})))
}

fn comment_from(request: &IncomingRequest) -> Result<String, ApiError> {
    let body = read_request_body(request, MAX_API_BODY)?;
    #[derive(serde::Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    struct CommentBody {
        #[serde(default)]
        comment: String,
    }
    let parsed: CommentBody = parse_optional_json(&body)?;
    if parsed.comment.chars().count() > 1000 {
        return Err(ApiError::new(
            400,
            "bad_comment",
            "comments are limited to 1000 characters",
        ));
    }
    Ok(parsed.comment)
}

fn decide(
    ctx: &mut Ctx,
    request: &IncomingRequest,
    id: &str,
    verdict: Verdict,
) -> Result<Reply, ApiError> {
    let principal = authenticate(ctx)?;
    let comment = comment_from(request)?;
    let current = load_request(ctx, id)?;
    let (action, kind) = match verdict {
        Verdict::Approve => (Action::Approve, grants::DecisionKind::Approve),
        Verdict::Deny => (Action::Deny, grants::DecisionKind::Deny),
    };
    let d = ask_about_request(
        ctx,
        &principal,
        action,
        &current,
        clock_context(json!({"comment": comment})),
    )?;
    if !d.allowed {
        let message = if same_person(&principal, &current) {
            "requesters cannot decide their own request".to_string()
        } else {
            format!(
                "only members of {} may decide this request",
                current.approver_groups.join(", ")
            )
        };
        return Err(denial(&d, "not_an_approver", message));
    }
    let updated = grants::decide(id, kind, &principal, &comment).map_err(store_error)?;
    if updated.status != grants::RequestStatus::Pending {
        notify_decided(ctx, &updated, &principal, &comment);
    }
    Ok(Reply::Json(200, json!({"request": request_json(&updated)})))
}

fn revoke(ctx: &mut Ctx, request: &IncomingRequest, id: &str) -> Result<Reply, ApiError> {
    let principal = authenticate(ctx)?;
    let comment = comment_from(request)?;
    let current = load_request(ctx, id)?;
    let d = ask_about_request(
        ctx,
        &principal,
        Action::Revoke,
        &current,
        clock_context(json!({})),
    )?;
    if !d.allowed {
        return Err(denial(
            &d,
            "forbidden",
            "only the requester, an approver of the grant or security may revoke it",
        ));
    }
    let updated = grants::decide(id, grants::DecisionKind::Revoke, &principal, &comment)
        .map_err(store_error)?;
    notify_decided(ctx, &updated, &principal, &comment);
    Ok(Reply::Json(200, json!({"request": request_json(&updated)})))
}

/// `POST /v1/grants/{id}/renew`: a new grant with the same scopes. The renew
/// policy decides whether it is approved at once or goes to approvers.
fn renew(ctx: &mut Ctx, request: &IncomingRequest, id: &str) -> Result<Reply, ApiError> {
    let principal = authenticate(ctx)?;
    let body = read_request_body(request, MAX_API_BODY)?;
    let asked: RenewAsk = parse_optional_json(&body)?;
    let current = load_request(ctx, id)?;
    if !matches!(
        current.status,
        grants::RequestStatus::Approved | grants::RequestStatus::Expired
    ) || current.granted_at.is_none()
        || !current.renewable
    {
        return Err(ApiError::new(
            409,
            "not_renewable",
            format!(
                "only a granted, renewable request can be renewed; this one is {}",
                status_name(current.status)
            ),
        ));
    }
    let asked_secs = ask::duration_secs(&asked.duration)?;
    let duration = asked_secs.unwrap_or(current.duration_secs);
    let d = ask_about_request(
        ctx,
        &principal,
        Action::Renew,
        &current,
        clock_context(json!({"duration_secs": duration})),
    )?;
    if !d.allowed {
        return Err(denial(
            &d,
            "policy_denied",
            format!(
                "the access policy does not let you renew this grant: {}",
                d.explain()
            ),
        ));
    }
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

/// The lifetime a requester asks for: `{"ttl": 600}`, `{"ttl": "10m"}`, or
/// `{"ttl": "grant"}` for a token that lasts as long as the grant (what an
/// IDE that re-exchanges with its start-up token needs).
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TokenAsk {
    #[serde(default)]
    ttl: Option<ask::Duration>,
}

fn issue_token(ctx: &mut Ctx, request: &IncomingRequest, id: &str) -> Result<Reply, ApiError> {
    let principal = authenticate(ctx)?;
    let body = read_request_body(request, MAX_API_BODY)?;
    let ask: TokenAsk = parse_optional_json(&body)?;
    let grant = load_request(ctx, id)?;
    if !same_person(&principal, &grant) {
        return Err(ApiError::new(
            403,
            "forbidden",
            "only the requester receives tokens for a grant",
        ));
    }
    if !grant.renewable {
        return Err(ApiError::new(
            403,
            "not_renewable",
            "tokens for this grant come from the token exchange only; exchange a new identity token",
        ));
    }
    let (grants::RequestStatus::Approved, Some(expires_at)) = (grant.status, grant.expires_at)
    else {
        return Err(ApiError::new(
            409,
            "grant_not_active",
            format!("the request is {}", status_name(grant.status)),
        )
        .with(json!({"status": status_name(grant.status)})));
    };
    let ttl = match &ask.ttl {
        None => variable("token_ttl_secs")
            .and_then(|v| v.parse().ok())
            .unwrap_or(900),
        Some(ask::Duration::Text(t)) if t == "grant" => expires_at.saturating_sub(now()),
        Some(d) => d.seconds().filter(|s| *s > 0).ok_or_else(|| {
            ApiError::new(
                400,
                "bad_ttl",
                "ttl must be seconds, text like \"10m\", or \"grant\"",
            )
        })?,
    };
    let minted = minter::mint(&minter::MintRequest {
        grant_id: grant.id.clone(),
        subject: principal.subject.clone(),
        issuer_of_subject: principal.issuer.clone(),
        scopes: grant.scopes.clone(),
        models: grant.models.clone(),
        ttl_secs: ttl,
        not_after: expires_at,
    })
    .map_err(|e| {
        ApiError::new(503, "minter_unavailable", "no token could be minted")
            .detail(format!("{e:?}"))
    })?;
    ctx.trace.token_id = Some(minted.claims.token_id.clone());
    Ok(Reply::Json(
        200,
        json!({
            "access_token": minted.token,
            "token_type": "Bearer",
            "issued_token_type": "urn:ietf:params:oauth:token-type:jwt",
            "expires_in": minted.claims.expires_at.saturating_sub(now()),
            "expires_at": minted.claims.expires_at,
            "grant_id": grant.id,
            "token_id": minted.claims.token_id,
            "scopes": grant.scopes,
        }),
    ))
}

/// An OAuth 2.0 error (RFC 6749 §5.2 shape), as token-exchange clients expect.
fn oauth_error(status: u16, error: &'static str, description: impl Into<String>) -> ApiError {
    let description = description.into();
    ApiError {
        envelope: Some(Box::new(
            json!({"error": error, "error_description": description}),
        )),
        ..ApiError::new(status, error, description)
    }
}

const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// A pipeline token's lifetime unless the permitting policy says less.
const EXCHANGE_DEFAULT_SECS: u64 = 900;

/// `POST /v1/token-exchange` (RFC 8693): a GitHub Actions run trades its
/// OIDC token for a minutes-long gateway token, under the Actions policy.
/// The grant behind it is recorded like any other and is not renewable.
fn token_exchange(ctx: &mut Ctx, request: &IncomingRequest) -> Result<Reply, ApiError> {
    let body = read_request_body(request, MAX_API_BODY)?;
    ctx.trace.bytes_in = body.len() as u64;
    let form = match header(&ctx.headers, "content-type") {
        Some(t) if t.starts_with("application/json") => {
            let v: Value = parse_json(&body)?;
            let fields = v
                .as_object()
                .map(|o| {
                    o.iter()
                        .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
                        .collect()
                })
                .unwrap_or_default();
            routes::Query(fields)
        }
        _ => routes::query_params(&format!("?{}", String::from_utf8_lossy(&body))),
    };
    if form.get("grant_type").as_deref() != Some(TOKEN_EXCHANGE_GRANT) {
        return Err(oauth_error(
            400,
            "unsupported_grant_type",
            format!("grant_type must be {TOKEN_EXCHANGE_GRANT}"),
        ));
    }
    let subject_token = form
        .get("subject_token")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| oauth_error(400, "invalid_request", "subject_token is required"))?;
    match form.get("subject_token_type").as_deref() {
        Some(
            "urn:ietf:params:oauth:token-type:id_token" | "urn:ietf:params:oauth:token-type:jwt",
        ) => {}
        _ => {
            return Err(oauth_error(
                400,
                "invalid_request",
                "subject_token_type must be urn:ietf:params:oauth:token-type:id_token",
            ))
        }
    }
    let principal = auth::authenticate(&subject_token).map_err(|e| {
        oauth_error(400, "invalid_grant", "the subject token was not accepted").detail(format!(
            "{}: {}",
            failure_name(e.failure),
            e.detail
        ))
    })?;
    ctx.trace.principal = Some(principal.clone());
    let actions_issuer = variable("github_actions_issuer").unwrap_or_default();
    if principal.kind != PrincipalKind::Workload || principal.issuer != actions_issuer {
        return Err(oauth_error(
            400,
            "invalid_grant",
            "only GitHub Actions tokens can be exchanged; people request access",
        ));
    }
    let claims: Value = serde_json::from_str(&principal.claims_json).unwrap_or_default();
    // Pipelines get completions unless they ask for more; each scope is the
    // policy's to allow (action `exchange`).
    let asked: Option<Vec<String>> = form
        .get("scope")
        .map(|s| s.split_whitespace().map(str::to_string).collect());
    let scopes = asked
        .clone()
        .unwrap_or_else(|| vec!["completions".to_string()]);
    if let Some(bad) = scopes
        .iter()
        .find(|s| !ask::KNOWN_SCOPES.contains(&s.as_str()))
    {
        return Err(oauth_error(
            400,
            "invalid_scope",
            format!("unknown scope {bad}"),
        ));
    }
    let mut permits = Vec::new();
    for scope in &scopes {
        let d = ask_policy(
            &principal,
            Action::Exchange,
            &Resource::Scope(scope),
            json!({"duration_secs": EXCHANGE_DEFAULT_SECS}),
        )?;
        ctx.trace.policy_ids = d.policy_ids.clone();
        if !d.allowed {
            let (status, error) = if asked.is_some() {
                (400, "invalid_scope")
            } else {
                (403, "access_denied")
            };
            return Err(oauth_error(
                status,
                error,
                format!("this run may not use {scope}: {}", d.explain()),
            )
            .with(json!({"policy_ids": d.policy_ids}))
            .detail(format!("policy: {}", d.explain())));
        }
        permits.extend(d.policy_ids);
    }
    permits.sort();
    permits.dedup();
    let requirements = copilot_jit_access_policy::requirements(&permits);
    let token_secs = requirements
        .max_duration_secs
        .unwrap_or(EXCHANGE_DEFAULT_SECS)
        .min(EXCHANGE_DEFAULT_SECS);
    ctx.trace.policy_ids = permits.clone();
    let claim = |k: &str| {
        claims
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let grant = grants::create(&grants::NewRequest {
        requester: principal.clone(),
        scopes: scopes.clone(),
        models: Vec::new(),
        repository: Some(claim("repository")),
        reason: format!(
            "GitHub Actions {} ({}) on {}",
            claim("workflow"),
            claim("event_name"),
            claim("ref")
        ),
        duration_secs: token_secs,
        required_approvals: 1,
        approver_groups: Vec::new(),
        pending_ttl_secs: 1,
        auto_approve: true,
        renewable: false,
        policy_ids: permits,
        renew_of: None,
    })
    .map_err(store_error)?;
    ctx.trace.grant_id = Some(grant.id.clone());
    let minted = minter::mint(&minter::MintRequest {
        grant_id: grant.id.clone(),
        subject: principal.subject.clone(),
        issuer_of_subject: principal.issuer.clone(),
        scopes: scopes.clone(),
        models: Vec::new(),
        ttl_secs: token_secs,
        not_after: grant.expires_at.unwrap_or_else(now),
    })
    .map_err(|e| {
        oauth_error(503, "temporarily_unavailable", "no token could be minted")
            .detail(format!("{e:?}"))
    })?;
    ctx.trace.token_id = Some(minted.claims.token_id.clone());
    Ok(Reply::Json(
        200,
        json!({
            "access_token": minted.token,
            "issued_token_type": "urn:ietf:params:oauth:token-type:jwt",
            "token_type": "Bearer",
            "expires_in": minted.claims.expires_at.saturating_sub(now()),
            "scope": scopes.join(" "),
            "grant_id": grant.id,
        }),
    ))
}

fn audit_records(ctx: &mut Ctx) -> Result<Reply, ApiError> {
    require_auditor(ctx)?;
    let query = routes::query_params(&ctx.path);
    let param = |name: &str| query.get(name);
    let number = |name: &str| -> Result<Option<u64>, ApiError> {
        param(name)
            .map(|v| {
                v.parse::<u64>().map_err(|_| {
                    ApiError::new(400, "bad_query", format!("{name} must be a whole number"))
                })
            })
            .transpose()
    };
    let records = audit::query(&audit::AuditQuery {
        grant_id: param("grant"),
        subject: param("subject"),
        since: number("since")?,
        until: number("until")?,
        limit: number("limit")?.unwrap_or(200).min(10_000) as u32,
    })
    .map_err(audit_failure)?;
    let records: Vec<Value> = records
        .iter()
        .filter_map(|r| serde_json::from_str(r).ok())
        .collect();
    Ok(Reply::Json(200, json!({"records": records})))
}

fn require_auditor(ctx: &mut Ctx) -> Result<Principal, ApiError> {
    let principal = authenticate(ctx)?;
    let d = ask_policy(
        &principal,
        Action::ReadAudit,
        &Resource::AuditTrail,
        json!({}),
    )?;
    ctx.trace.policy_ids = d.policy_ids.clone();
    if !d.allowed {
        return Err(denial(
            &d,
            "not_an_auditor",
            "the audit trail is for auditors",
        ));
    }
    Ok(principal)
}

fn audit_failure(e: audit::AuditError) -> ApiError {
    ApiError::new(503, "audit_unavailable", "the audit trail cannot be read")
        .detail(format!("{e:?}"))
}

/// One grant's records in chain order, prompts and responses as recorded,
/// each re-checked against today's masking policy: would it pass today?
/// `as_groups=a,b` re-checks as if members of those groups had sent them.
fn audit_replay(ctx: &mut Ctx, grant_id: &str) -> Result<Reply, ApiError> {
    require_auditor(ctx)?;
    let as_groups: Option<Vec<String>> =
        routes::query_params(&ctx.path).get("as_groups").map(|g| {
            g.split(',')
                .map(str::trim)
                .filter(|g| !g.is_empty())
                .map(str::to_string)
                .collect()
        });
    let records = audit::query(&audit::AuditQuery {
        grant_id: Some(grant_id.to_string()),
        subject: None,
        since: None,
        until: None,
        limit: 10_000,
    })
    .map_err(audit_failure)?;
    let mut exchanges = Vec::new();
    for line in &records {
        let Ok(record) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let unmapped = &record["unmapped"];
        let groups: Vec<String> = match &as_groups {
            Some(g) => g.clone(),
            None => record["actor"]["user"]["groups"]
                .as_array()
                .map(|g| {
                    g.iter()
                        .filter_map(|g| g["name"].as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
        };
        let masking_ctx = masking_context(&groups)?;
        let recheck = |text: Option<&str>, prompt: bool| -> Value {
            let Some(text) = text else { return Value::Null };
            let scan = if prompt {
                masking::inspect_prompt(text, &masking_ctx)
            } else {
                masking::mask_response(text, &masking_ctx)
            };
            let detectors: Vec<&str> = scan.findings.iter().map(|f| f.detector.as_str()).collect();
            json!({"blocked": scan.blocked, "detectors": detectors})
        };
        let prompt = unmapped["prompt"].as_str();
        let response = unmapped["response"].as_str();
        let today_prompt = recheck(prompt, true);
        let today_policy = replay_policy(&record, &groups)?;
        let would_block =
            today_prompt["blocked"].as_bool().unwrap_or(false) || today_policy["allowed"] == false;
        exchanges.push(json!({
            "seq": record["integrity"]["seq"],
            "id": record["metadata"]["uid"],
            "time": record["time"],
            "action": unmapped["action"],
            "path": record["http_request"]["url"]["path"],
            "model": unmapped["model"],
            "outcome": unmapped["outcome"],
            "status": record["api"]["response"]["code"],
            "prompt": prompt,
            "response": response,
            "findings": unmapped["findings"],
            "today": {
                "prompt": today_prompt,
                "response": recheck(response, false),
                "policy": today_policy,
                "would_be_blocked": would_block,
            },
        }));
    }
    if exchanges.is_empty() {
        return Err(ApiError::new(
            404,
            "no_records",
            format!("the audit trail has no records for grant {grant_id}"),
        ));
    }
    Ok(Reply::Json(
        200,
        json!({"grant_id": grant_id, "exchanges": exchanges}),
    ))
}

/// Today's `use` decision for a recorded Copilot call, asked as the recorded
/// caller with `groups` (theirs, or the replay's `as_groups`). Null for
/// records of other actions.
fn replay_policy(record: &Value, groups: &[String]) -> Result<Value, ApiError> {
    let unmapped = &record["unmapped"];
    let Some(scope) = unmapped["action"]
        .as_str()
        .and_then(|a| a.strip_prefix("copilot."))
        .filter(|s| ask::KNOWN_SCOPES.contains(s))
    else {
        return Ok(Value::Null);
    };
    let user = &record["actor"]["user"];
    let text = |v: &Value| v.as_str().unwrap_or("").to_string();
    let principal = Principal {
        kind: match user["type"].as_str() {
            Some("workload") => PrincipalKind::Workload,
            Some("agent") => PrincipalKind::Agent,
            _ => PrincipalKind::Human,
        },
        issuer: text(&record["actor"]["idp"]["name"]),
        subject: text(&user["uid"]),
        email: user["email_addr"].as_str().map(str::to_string),
        name: None,
        groups: groups.to_vec(),
        claims_json: "{}".into(),
    };
    let mut context = json!({
        "endpoint": text(&record["http_request"]["url"]["path"]),
        "client": text(&record["actor"]["app_name"]),
    });
    if let Some(model) = unmapped["model"].as_str() {
        context["model"] = json!(model);
    }
    let d = ask_policy(&principal, Action::Use, &Resource::Scope(scope), context)?;
    Ok(json!({
        "allowed": d.allowed,
        "policy_ids": d.policy_ids,
        "explanation": d.explain(),
    }))
}

/// Ships spooled records; for a scheduler when traffic is too thin to
/// carry them along.
fn audit_flush(ctx: &mut Ctx) -> Result<Reply, ApiError> {
    require_auditor(ctx)?;
    let query = routes::query_params(&ctx.path);
    let max = match query.get("max") {
        None => 1000,
        Some(v) => v
            .parse::<u32>()
            .map_err(|_| ApiError::new(400, "bad_query", "max must be a whole number"))?,
    };
    let report = audit::flush(max).map_err(audit_failure)?;
    let body = json!({"shipped": report.shipped, "remaining": report.remaining});
    match report.error {
        Some(e) if report.shipped == 0 => Err(ApiError::new(
            503,
            "audit_storage_unavailable",
            "audit storage is still unreachable; spooled records are kept",
        )
        .with(body)
        .detail(e)),
        _ => Ok(Reply::Json(200, body)),
    }
}

fn audit_status(ctx: &mut Ctx) -> Result<Reply, ApiError> {
    require_auditor(ctx)?;
    let s = audit::status().map_err(audit_failure)?;
    Ok(Reply::Json(
        200,
        json!({
            "storage": s.storage,
            "spool": {"depth": s.spool_depth, "max": s.spool_max},
            "head": {"chain": "main", "seq": s.head_seq, "hash": s.head_hash},
            "public_key": {"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "kid": s.kid, "x": s.public_key},
        }),
    ))
}

// ---------------------------------------------------------------- webhooks

/// The approvers' webhook (Slack-compatible), if configured: the origin is
/// public, the path is the secret.
fn webhook_url() -> Option<String> {
    let path = variable("notify_webhook_path")?;
    let origin = variable("notify_webhook_origin")?;
    Some(format!(
        "{}/{}",
        origin.trim_end_matches('/'),
        path.trim_start_matches('/')
    ))
}

fn who(p: &Principal) -> String {
    p.email.clone().unwrap_or_else(|| p.subject.clone())
}

fn notify_created(ctx: &mut Ctx, r: &grants::AccessRequest) {
    if webhook_url().is_none() {
        return;
    }
    let link = format!("{}/v1/access-requests/{}", public_url(), r.id);
    let (event, text) = if r.status == grants::RequestStatus::Approved {
        (
            "access.auto_approved",
            format!(
                "{} was granted {} for {}s at once (policy {}). {link}",
                who(&r.requester),
                r.scopes.join(", "),
                r.duration_secs,
                r.policy_ids.join(", ")
            ),
        )
    } else {
        (
            "access.requested",
            format!(
                "{} asks for {} for {}s: \"{}\". Needs {} approval(s) from {}. {link}",
                who(&r.requester),
                r.scopes.join(", "),
                r.duration_secs,
                r.reason,
                r.required_approvals,
                r.approver_groups.join(", ")
            ),
        )
    };
    ctx.trace.notifications.push(json!({
        "text": text,
        "copilot_jit": {"event": event, "request": request_json(r)},
    }));
}

fn notify_decided(ctx: &mut Ctx, r: &grants::AccessRequest, by: &Principal, comment: &str) {
    if webhook_url().is_none() {
        return;
    }
    let (event, verb) = match r.status {
        grants::RequestStatus::Approved => ("access.approved", "approved"),
        grants::RequestStatus::Denied => ("access.denied", "denied"),
        grants::RequestStatus::Revoked => ("grant.revoked", "revoked"),
        _ => return,
    };
    let comment = if comment.is_empty() {
        String::new()
    } else {
        format!(": \"{comment}\"")
    };
    ctx.trace.notifications.push(json!({
        "text": format!(
            "{}: your request {} for {} was {verb} by {}{comment}",
            who(&r.requester),
            r.id,
            r.scopes.join(", "),
            who(by)
        ),
        "copilot_jit": {
            "event": event,
            "request": request_json(r),
            "by": who(by),
            "requester": who(&r.requester),
        },
    }));
}

/// Sends the queued messages. A failure never undoes the decision; each
/// delivery, or its failure, gets its own audit record.
fn deliver_notifications(ctx: &Ctx) {
    let Some(url) = webhook_url() else { return };
    for message in &ctx.trace.notifications {
        let started = Instant::now();
        let body = message.to_string().into_bytes();
        let headers = vec![("content-type".to_string(), b"application/json".to_vec())];
        let result = send_with_timeout(Method::Post, &url, &headers, Some(&body), Some(3000))
            .and_then(|r| match r.status {
                200..=299 => Ok(r.status),
                s => Err(format!("webhook answered {s}")),
            });
        let (outcome, reason, status) = match &result {
            Ok(s) => ("allowed", None, *s),
            Err(e) => ("failed", Some(format!("webhook not delivered: {e}")), 502),
        };
        if let Err(e) = &result {
            eprintln!("notification for {} not delivered: {e}", ctx.request_id);
        }
        let event = audit::AuditEvent {
            request_id: ctx.request_id.clone(),
            client_request_id: None,
            principal: ctx.trace.principal.clone(),
            grant_id: ctx.trace.grant_id.clone(),
            token_id: None,
            method: "POST".into(),
            // The webhook path is a secret: never recorded.
            path: "/notify/webhook".into(),
            action: format!(
                "notify.{}",
                message["copilot_jit"]["event"]
                    .as_str()
                    .unwrap_or("message")
            ),
            model: None,
            client: audit::ClientInfo {
                editor_version: None,
                plugin_version: None,
                integration_id: None,
                user_agent: None,
            },
            outcome: outcome.into(),
            status,
            reason,
            policy_ids: Vec::new(),
            findings: Vec::new(),
            prompt: None,
            response: None,
            upstream_status: result.as_ref().ok().copied(),
            bytes_in: 0,
            bytes_out: body.len() as u64,
            duration_ms: started.elapsed().as_millis() as u64,
            upstream_ms: None,
            ttfb_ms: None,
        };
        if let Err(e) = audit::append(&event) {
            eprintln!("audit record for a notification not stored: {e:?}");
        }
    }
}

// ---------------------------------------------------------------- upstream

#[derive(serde::Serialize, serde::Deserialize)]
struct CachedCopilotToken {
    token: String,
    refresh_at: u64,
}

fn upstream_base(name: &str, default: &str) -> String {
    variable(name)
        .unwrap_or_else(|| default.to_string())
        .trim_end_matches('/')
        .to_string()
}

struct Upstream {
    status: u16,
    response: IncomingResponse,
}

/// Sends one request over wasi:http; the body is written after `handle` so
/// that large bodies stream instead of filling the host's buffer.
fn send(
    method: Method,
    url: &str,
    headers: &[(String, Vec<u8>)],
    body: Option<&[u8]>,
) -> Result<Upstream, String> {
    send_with_timeout(method, url, headers, body, None)
}

/// `send`, giving up after `timeout_ms` to connect or to the first byte.
fn send_with_timeout(
    method: Method,
    url: &str,
    headers: &[(String, Vec<u8>)],
    body: Option<&[u8]>,
    timeout_ms: Option<u64>,
) -> Result<Upstream, String> {
    let url_parts = copilot_jit_common::split_url(url)?;
    let scheme = if url_parts.https {
        Scheme::Https
    } else {
        Scheme::Http
    };
    let (authority, path) = (url_parts.authority, url_parts.path);
    let fields = Fields::from_list(headers).map_err(|e| format!("headers: {e:?}"))?;
    let request = OutgoingRequest::new(fields);
    let ok = request.set_method(&method).is_ok()
        && request.set_scheme(Some(&scheme)).is_ok()
        && request.set_authority(Some(authority)).is_ok()
        && request.set_path_with_query(Some(path)).is_ok();
    if !ok {
        return Err(format!("invalid upstream URL {url}"));
    }
    let outgoing_body = request
        .body()
        .map_err(|_| "request body unavailable".to_string())?;
    let options = timeout_ms.map(|ms| {
        let options = wasi::http::types::RequestOptions::new();
        let _ = options.set_connect_timeout(Some(ms * 1_000_000));
        let _ = options.set_first_byte_timeout(Some(ms * 1_000_000));
        options
    });
    let pending = outgoing_handler::handle(request, options).map_err(|e| format!("{e:?}"))?;
    if let Some(bytes) = body {
        let stream = outgoing_body
            .write()
            .map_err(|_| "request body stream unavailable".to_string())?;
        write_all(&stream, bytes).map_err(|e| format!("writing upstream body: {e:?}"))?;
        drop(stream);
    }
    OutgoingBody::finish(outgoing_body, None).map_err(|e| format!("{e:?}"))?;
    pending.subscribe().block();
    match pending.get() {
        Some(Ok(Ok(response))) => Ok(Upstream {
            status: response.status(),
            response,
        }),
        Some(Ok(Err(e))) => Err(format!("{e:?}")),
        _ => Err("upstream gave no response".into()),
    }
}

fn read_response(response: IncomingResponse, limit: usize) -> Result<Vec<u8>, String> {
    let body = response.consume().map_err(|_| "no body".to_string())?;
    let stream = body.stream().map_err(|_| "no body stream".to_string())?;
    let bytes = read_stream(&stream, limit).map_err(|e| match e {
        BodyError::TooLarge => "upstream body too large".to_string(),
        BodyError::Unreadable => "upstream body unreadable".to_string(),
    })?;
    drop(stream);
    IncomingBody::finish(body);
    Ok(bytes)
}

/// The Copilot token the gateway uses upstream, from the KV cache or fresh
/// from the token endpoint with the gateway-held GitHub token.
fn copilot_token(force_refresh: bool) -> Result<String, ApiError> {
    let unavailable = |detail: String| {
        ApiError::new(
            502,
            "upstream_unavailable",
            "the gateway could not obtain upstream access",
        )
        .detail(detail)
    };
    let bucket = store::open("default").map_err(|e| unavailable(format!("kv: {e:?}")))?;
    if !force_refresh {
        let cached: Option<CachedCopilotToken> = bucket
            .get(UPSTREAM_TOKEN_KEY)
            .ok()
            .flatten()
            .and_then(|b| serde_json::from_slice(&b).ok());
        if let Some(c) = cached.filter(|c| now() < c.refresh_at) {
            return Ok(c.token);
        }
    }
    let github_token = variable("upstream_github_token").ok_or_else(|| {
        ApiError::new(
            503,
            "gateway_misconfigured",
            "the gateway has no upstream credential configured",
        )
    })?;
    let url = format!(
        "{}/copilot_internal/v2/token",
        upstream_base("github_api_url", "https://api.github.com")
    );
    let headers = vec![
        (
            "authorization".to_string(),
            format!("token {github_token}").into_bytes(),
        ),
        ("accept".to_string(), b"application/json".to_vec()),
        ("user-agent".to_string(), b"copilot-jit/0.1".to_vec()),
    ];
    let upstream = send(Method::Get, &url, &headers, None).map_err(unavailable)?;
    let status = upstream.status;
    let body = read_response(upstream.response, 256 * 1024).map_err(unavailable)?;
    if status != 200 {
        return Err(unavailable(format!("token endpoint answered {status}")));
    }
    let envelope: Value =
        serde_json::from_slice(&body).map_err(|e| unavailable(format!("token envelope: {e}")))?;
    let token = envelope["token"]
        .as_str()
        .ok_or_else(|| unavailable("token envelope has no token".into()))?;
    let now = now();
    let refresh_in = envelope["refresh_in"].as_u64().unwrap_or(300);
    let expires_at = envelope["expires_at"].as_u64().unwrap_or(now + refresh_in);
    let entry = CachedCopilotToken {
        token: token.to_string(),
        refresh_at: (now + refresh_in).min(expires_at.saturating_sub(60)),
    };
    if let Ok(bytes) = serde_json::to_vec(&entry) {
        // A failed cache write costs one more exchange later, nothing else.
        let _ = bucket.set(UPSTREAM_TOKEN_KEY, &bytes);
    }
    Ok(entry.token)
}

// ---------------------------------------------------------------- Copilot proxy

struct ComponentMasker(masking::StreamMasker);

impl TextMasker for ComponentMasker {
    fn push(&mut self, text: &str) -> String {
        self.0.push(text)
    }
    fn finish(&mut self) -> String {
        self.0.finish()
    }
}

/// How many positions and fingerprints one finding keeps in the audit.
const MAX_FINDING_DETAILS: usize = 16;

fn merge_findings(into: &mut Vec<Finding>, found: Vec<Finding>) {
    for f in found {
        match into.iter_mut().find(|x| x.detector == f.detector) {
            Some(x) => {
                x.count += f.count;
                let room = MAX_FINDING_DETAILS.saturating_sub(x.positions.len());
                x.positions.extend(f.positions.into_iter().take(room));
                let room = MAX_FINDING_DETAILS.saturating_sub(x.fingerprints.len());
                x.fingerprints.extend(f.fingerprints.into_iter().take(room));
            }
            None => into.push(f),
        }
    }
}

/// The masking context of a caller: their groups and the fingerprint key.
fn masking_context(groups: &[String]) -> Result<masking::MaskingContext, ApiError> {
    let key = variable("masking_fingerprint_key").ok_or_else(|| {
        ApiError::new(503, "gateway_misconfigured", "masking is not configured")
            .detail("variable masking_fingerprint_key is not set")
    })?;
    let max_hold_back = variable("masking_hold_back_bytes")
        .map(|v| v.trim().parse::<u32>())
        .transpose()
        .map_err(|_| {
            ApiError::new(503, "gateway_misconfigured", "masking is not configured")
                .detail("variable masking_hold_back_bytes must be a whole number")
        })?
        .unwrap_or(4096);
    Ok(masking::MaskingContext {
        groups: groups.to_vec(),
        fingerprint_key: key.into_bytes(),
        max_hold_back,
    })
}

fn bounded(mut text: String) -> String {
    if text.len() > MAX_AUDIT_TEXT {
        let mut cut = MAX_AUDIT_TEXT;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    text
}

/// A verified gateway token and the grant behind it, still active.
struct Authorized {
    claims: minter::TokenClaims,
    grant: grants::AccessRequest,
}

/// Checks what a Copilot client presents: a gateway JWT, or the Copilot-shaped
/// token string from the envelope that carries one. The signature is checked
/// without storage; the grant is read so revocation takes effect at once.
fn authorize_copilot(ctx: &mut Ctx) -> Result<Authorized, ApiError> {
    let presented = bearer(ctx).ok_or_else(|| {
        ApiError::new(
            401,
            "unauthenticated",
            "this call needs a gateway token; request access first",
        )
        .with(how_to_request())
    })?;
    // Envelope session tokens carry a MAC (cheap); gateway JWTs a signature.
    let checked = if copilot::is_session_token(&presented) {
        minter::open_session(&presented)
    } else {
        minter::verify(&presented)
    };
    let claims = checked.map_err(|e| {
        let message = match e {
            minter::MinterError::Expired => {
                "the gateway token has expired; get a new one from your grant"
            }
            _ => "the gateway token was not accepted",
        };
        ApiError::new(401, "invalid_gateway_token", message)
            .with(how_to_request())
            .detail(format!("{e:?}"))
    })?;
    ctx.trace.grant_id = Some(claims.grant_id.clone());
    ctx.trace.token_id = Some(claims.token_id.clone());
    let grant = grants::get(&claims.grant_id).map_err(store_error)?;
    ctx.trace.principal = Some(grant.requester.clone());
    if grant.status != grants::RequestStatus::Approved {
        return Err(ApiError::new(
            403,
            "grant_not_active",
            format!("your grant is {}", status_name(grant.status)),
        )
        .with(how_to_request()));
    }
    Ok(Authorized { claims, grant })
}

/// `GET /copilot_internal/v2/token`: the exchange clients perform, answered
/// with a fresh short-lived gateway token in Copilot's envelope. The upstream
/// Copilot token never leaves the gateway.
fn copilot_token_exchange(ctx: &mut Ctx) -> Result<Reply, ApiError> {
    ctx.trace.action = "copilot.token".into();
    let how_to = how_to_request();
    let auth = authorize_copilot(ctx).map_err(|e| {
        // Clients show `error_details.message` on 403 and sign out on 401.
        let message = e.message.clone();
        ApiError {
            envelope: Some(Box::new(copilot::error_envelope(&message, &how_to))),
            ..e
        }
    })?;
    let grant = &auth.grant;
    let not_after = grant.expires_at.unwrap_or_else(now);
    let ttl = variable("copilot_token_ttl_secs")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1800);
    let minted = minter::seal_session(&minter::MintRequest {
        grant_id: grant.id.clone(),
        subject: auth.claims.subject.clone(),
        issuer_of_subject: auth.claims.issuer_of_subject.clone(),
        scopes: grant.scopes.clone(),
        models: grant.models.clone(),
        ttl_secs: ttl,
        not_after,
    })
    .map_err(|e| {
        ApiError::new(503, "minter_unavailable", "no token could be minted")
            .detail(format!("{e:?}"))
    })?;
    ctx.trace.token_id = Some(minted.claims.token_id.clone());
    let chat = grant.scopes.iter().any(|s| s == "chat");
    let expires_at = minted.claims.expires_at;
    let token = minted.token;
    Ok(Reply::Json(
        200,
        copilot::envelope(
            &public_url(),
            &token,
            expires_at,
            copilot::refresh_in(now(), expires_at),
            chat,
        ),
    ))
}

/// `GET /copilot_internal/user` and `GET /user`, answered from the grant.
fn copilot_user(ctx: &mut Ctx, github_shape: bool) -> Result<Reply, ApiError> {
    ctx.trace.action = "copilot.user".into();
    let auth = authorize_copilot(ctx)?;
    let grant = &auth.grant;
    let login = grant
        .requester
        .email
        .clone()
        .unwrap_or_else(|| grant.requester.subject.clone());
    if github_shape {
        return Ok(Reply::Json(
            200,
            json!({"login": login, "name": grant.requester.name, "email": grant.requester.email, "type": "User"}),
        ));
    }
    let unlimited = json!({"unlimited": true, "overage_permitted": false, "overage_count": 0,
                           "percent_remaining": 100.0, "entitlement": 0, "remaining": 0});
    Ok(Reply::Json(
        200,
        json!({
            "login": login,
            "access_type_sku": "copilot_jit",
            "copilot_plan": "business",
            "chat_enabled": grant.scopes.iter().any(|s| s == "chat"),
            "can_signup_for_limited": false,
            "assigned_date": grant.granted_at,
            "quota_reset_date": grant.expires_at,
            "organization_login_list": [],
            "organization_list": [],
            "analytics_tracking_id": auth.claims.token_id,
            "quota_snapshots": {"chat": unlimited, "completions": unlimited, "premium_interactions": unlimited},
            "endpoints": {"api": public_url(), "proxy": public_url(), "telemetry": public_url(), "origin-tracker": public_url()},
            "grant": {"id": grant.id, "scopes": grant.scopes, "models": grant.models, "expires_at": grant.expires_at},
        }),
    ))
}

/// Telemetry is accepted and dropped: it never reaches upstream and carries
/// no credential of the gateway.
fn telemetry(ctx: &mut Ctx, request: &IncomingRequest) -> Result<Reply, ApiError> {
    if ctx.method == "POST" {
        let body = read_request_body(request, MAX_PROMPT_BODY)?;
        if variable("telemetry_forward").as_deref() == Some("true") {
            forward_telemetry(ctx, &body);
        }
        return Ok(Reply::Json(200, json!({})));
    }
    // `GET` is the experiment-assignment lookup: no experiments, in the shape
    // the language server reads (it fails completions on anything else).
    Ok(Reply::Json(
        200,
        json!({"Features": [], "Flights": {}, "Configs": [], "ParameterGroups": [],
               "FlightingVersion": 0, "ImpressionId": "", "AssignmentContext": ""}),
    ))
}

/// Sends a client's telemetry on to Copilot's telemetry service, masked
/// like a response (telemetry can carry code) and with no credential: the
/// client's gateway token is not forwarded and the gateway's own is never
/// attached. Best effort: the client's answer does not depend on it.
fn forward_telemetry(ctx: &Ctx, body: &[u8]) {
    let Ok(text) = std::str::from_utf8(body) else {
        eprintln!("telemetry {} not forwarded: not UTF-8", ctx.request_id);
        return;
    };
    let Ok(masking_ctx) = masking_context(&[]) else {
        eprintln!(
            "telemetry {} not forwarded: masking unavailable",
            ctx.request_id
        );
        return;
    };
    let masked = masking::mask_response(text, &masking_ctx);
    let base = upstream_base(
        "copilot_telemetry_url",
        "https://copilot-telemetry.githubusercontent.com",
    );
    let content_type =
        header(&ctx.headers, "content-type").unwrap_or_else(|| "application/json".into());
    let headers = vec![("content-type".to_string(), content_type.into_bytes())];
    let url = format!("{base}/telemetry");
    match send_with_timeout(
        Method::Post,
        &url,
        &headers,
        Some(masked.text.as_bytes()),
        Some(2000),
    ) {
        Ok(r) if (200..300).contains(&r.status) => {}
        Ok(r) => eprintln!(
            "telemetry {} forwarded, answered {}",
            ctx.request_id, r.status
        ),
        Err(e) => eprintln!("telemetry {} not forwarded: {e}", ctx.request_id),
    }
}

/// The policy's word on one Copilot call (action `use`): the grant covers
/// it, and policy may still forbid a model or endpoint for some callers.
fn may_use(
    ctx: &mut Ctx,
    grant: &grants::AccessRequest,
    scope: &str,
    model: Option<&str>,
) -> Result<(), ApiError> {
    let mut context = json!({
        "endpoint": ctx.path.split('?').next().unwrap_or(""),
        "client": client_name(ctx),
    });
    if let Some(m) = model {
        context["model"] = json!(m);
    }
    if let Some(repo) = &grant.repository {
        context["repository"] = json!(repo);
    }
    let d = ask_policy(
        &grant.requester,
        Action::Use,
        &Resource::Scope(scope),
        context,
    )?;
    ctx.trace.policy_ids = d.policy_ids.clone();
    if !d.allowed {
        return Err(denial(
            &d,
            "policy_denied",
            format!(
                "the access policy does not allow this call: {}",
                d.explain()
            ),
        ));
    }
    Ok(())
}

fn copilot_call(
    ctx: &mut Ctx,
    request: &IncomingRequest,
    out: &mut Option<ResponseOutparam>,
    call: CopilotCall,
) -> Result<Reply, ApiError> {
    ctx.trace.action = format!("copilot.{}", call.scope());
    // 1. Token and grant.
    let Authorized { grant, .. } = authorize_copilot(ctx)?;
    let masking_ctx = masking_context(&grant.requester.groups)?;
    // 2. Scope and model.
    let scope_ok = if call.is_listing() {
        !grant.scopes.is_empty()
    } else {
        grant.scopes.iter().any(|s| s == call.scope())
    };
    if !scope_ok {
        return Err(ApiError::new(
            403,
            "scope_not_granted",
            format!("your grant does not include {}", call.scope()),
        )
        .with(how_to_request()));
    }
    let model_allowed = |m: &str| grant.models.is_empty() || grant.models.iter().any(|g| g == m);
    if let CopilotCall::Model { id } = &call {
        if !model_allowed(id) {
            return Err(ApiError::new(404, "not_found", "no such model"));
        }
    }
    if call.is_listing() {
        may_use(ctx, &grant, call.scope(), None)?;
    }
    // 3. The prompt: inspected, redacted or blocked before anything leaves.
    let mut upstream_body = None;
    let mut wants_stream = false;
    if !call.is_listing() {
        let bytes = read_request_body(request, MAX_PROMPT_BODY)?;
        ctx.trace.bytes_in = bytes.len() as u64;
        let mut body: Value = parse_json(&bytes)?;
        let model = match &call {
            CopilotCall::EngineCompletions { model } => Some(model.clone()),
            _ => body
                .get("model")
                .and_then(Value::as_str)
                .map(str::to_string),
        };
        ctx.trace.model = model.clone();
        if let Some(m) = model.as_deref().filter(|m| !model_allowed(m)) {
            return Err(ApiError::new(
                403,
                "model_not_granted",
                format!("your grant does not include model {m}"),
            ));
        }
        may_use(ctx, &grant, call.scope(), model.as_deref())?;
        wants_stream = body.get("stream").and_then(Value::as_bool).unwrap_or(false);
        let mut blocked = false;
        let mut findings = Vec::new();
        let mut prompt_log = String::new();
        content::for_each_prompt_text(&mut body, &mut |text| {
            let scan = masking::inspect_prompt(text, &masking_ctx);
            blocked |= scan.blocked;
            merge_findings(&mut findings, scan.findings);
            if prompt_log.len() < MAX_AUDIT_TEXT {
                prompt_log.push_str(&scan.text);
                prompt_log.push('\n');
            }
            *text = scan.text;
        });
        ctx.trace.prompt = Some(bounded(prompt_log));
        ctx.trace.findings = findings.clone();
        if blocked {
            let detectors: Vec<&str> = findings.iter().map(|f| f.detector.as_str()).collect();
            ctx.trace.outcome = Some("blocked");
            return Err(ApiError::new(
                403,
                "prompt_blocked",
                "the prompt contains content that policy does not allow to leave",
            )
            .with(json!({"detectors": detectors})));
        }
        upstream_body = Some(serde_json::to_vec(&body).map_err(|e| {
            ApiError::new(500, "internal", "re-encoding the prompt failed").detail(e.to_string())
        })?);
    }
    // 4. Upstream, with the gateway-held credential; one refresh on 401/403.
    let base = if matches!(call, CopilotCall::EngineCompletions { .. }) {
        upstream_base(
            "copilot_proxy_url",
            "https://copilot-proxy.githubusercontent.com",
        )
    } else {
        upstream_base("copilot_api_url", "https://api.githubcopilot.com")
    };
    let url = format!("{base}{}", call.upstream_path());
    let method = if call.is_listing() {
        Method::Get
    } else {
        Method::Post
    };
    let started = Instant::now();
    let mut upstream = None;
    for attempt in 0..2 {
        let copilot = copilot_token(attempt > 0)?;
        let mut headers: Vec<(String, Vec<u8>)> = vec![
            (
                "authorization".into(),
                format!("Bearer {copilot}").into_bytes(),
            ),
            (
                "x-request-id".into(),
                ctx.client_request_id
                    .clone()
                    .unwrap_or_else(|| ctx.request_id.clone())
                    .into_bytes(),
            ),
            // Plain text upstream, so masking sees what the model wrote.
            ("accept-encoding".into(), b"identity".to_vec()),
        ];
        if upstream_body.is_some() {
            headers.push(("content-type".into(), b"application/json".to_vec()));
        }
        for name in FORWARDED_REQUEST_HEADERS {
            if let Some(v) = header(&ctx.headers, name) {
                headers.push((name.to_string(), v.into_bytes()));
            }
        }
        let response =
            send(method.clone(), &url, &headers, upstream_body.as_deref()).map_err(|e| {
                ApiError::new(502, "upstream_unavailable", "Copilot could not be reached").detail(e)
            })?;
        if (response.status == 401 || response.status == 403) && attempt == 0 {
            continue;
        }
        upstream = Some(response);
        break;
    }
    let upstream = upstream
        .ok_or_else(|| ApiError::new(502, "upstream_unavailable", "Copilot refused the gateway"))?;
    ctx.trace.upstream_status = Some(upstream.status);
    ctx.trace.upstream_started = Some(started);
    ctx.trace.ttfb_ms = Some(started.elapsed().as_millis() as u64);
    let upstream_headers = upstream.response.headers();
    let content_type =
        header(&upstream_headers, "content-type").unwrap_or_else(|| "application/json".into());
    let mut passed: Vec<(String, String)> = FORWARDED_RESPONSE_HEADERS
        .iter()
        .filter_map(|n| header(&upstream_headers, n).map(|v| (n.to_string(), v)))
        .collect();
    if let Some(id) = header(&upstream_headers, "x-github-request-id") {
        passed.push(("x-github-request-id".into(), id));
    }
    drop(upstream_headers);
    let is_stream =
        upstream.status == 200 && (content_type.contains("event-stream") || wants_stream);
    if is_stream {
        let out = out
            .take()
            .ok_or_else(|| ApiError::new(500, "internal", "response already sent"))?;
        let stream_ctx = masking_ctx.clone();
        let new_masker = move || ComponentMasker(masking::StreamMasker::new(&stream_ctx));
        // Frames that cannot be inspected end the stream (default) or, by
        // policy, are dropped; they are never passed on unmasked.
        let drop_unparseable = variable("masking_unparseable_frames").as_deref() == Some("drop");
        let mut masker: Box<dyn StreamFilter> = match call {
            // Event-typed streams: `event:` lines and per-block deltas.
            CopilotCall::Responses | CopilotCall::Messages => {
                Box::new(TypedSseMasker::new(new_masker).dropping_unparseable(drop_unparseable))
            }
            _ => Box::new(SseMasker::new(new_masker).dropping_unparseable(drop_unparseable)),
        };
        stream_response(ctx, out, upstream, &content_type, &passed, masker.as_mut());
        return Ok(Reply::Sent);
    }
    // 5. Whole bodies: masked field by field.
    let status = upstream.status;
    let bytes = read_response(upstream.response, MAX_UPSTREAM_BODY).map_err(|e| {
        ApiError::new(502, "upstream_failed", "Copilot's answer could not be read").detail(e)
    })?;
    if status != 200 {
        ctx.trace.outcome = Some("failed");
        ctx.trace.reason = Some(format!("upstream answered {status}"));
        let text: String = String::from_utf8_lossy(&bytes).chars().take(2000).collect();
        let body: Value = match serde_json::from_slice::<Value>(&bytes) {
            Ok(v) if copilot::client_status(status) == status => v,
            // Clients match error bodies by substring, so the upstream text is kept.
            _ => {
                json!({"error": {"code": format!("upstream_{status}"), "message": masking::mask_response(&text, &masking_ctx).text}})
            }
        };
        return Ok(Reply::JsonWithHeaders(
            copilot::client_status(status),
            body,
            passed,
        ));
    }
    let mut body: Value = serde_json::from_slice(&bytes).map_err(|_| {
        ApiError::new(
            502,
            "upstream_unreadable",
            "Copilot's answer could not be inspected, so it is not passed on",
        )
    })?;
    if call == CopilotCall::Models {
        copilot::filter_models(&mut body, &grant.models);
    }
    let mut response_log = String::new();
    let mut findings = std::mem::take(&mut ctx.trace.findings);
    let mut mask = |text: &mut String| {
        let scan = masking::mask_response(text, &masking_ctx);
        merge_findings(&mut findings, scan.findings);
        if response_log.len() < MAX_AUDIT_TEXT {
            response_log.push_str(&scan.text);
        }
        *text = scan.text;
    };
    if call.is_listing() {
        // Listings carry no generated text.
    } else if matches!(call, CopilotCall::Responses | CopilotCall::Messages) {
        // Shapes vary by API: every string in the answer is masked.
        content::for_each_string(&mut body, &mut mask);
    } else {
        content::for_each_response_text(&mut body, &mut mask);
    }
    ctx.trace.findings = findings;
    ctx.trace.response = Some(bounded(response_log));
    Ok(Reply::JsonWithHeaders(200, body, passed))
}

fn stream_response(
    ctx: &mut Ctx,
    out: ResponseOutparam,
    upstream: Upstream,
    content_type: &str,
    passed: &[(String, String)],
    masker: &mut dyn StreamFilter,
) {
    let response = OutgoingResponse::new(response_fields(ctx, content_type, passed));
    let _ = response.set_status_code(200);
    let Ok(outgoing) = response.body() else {
        ResponseOutparam::set(out, Ok(response));
        ctx.trace.outcome = Some("failed");
        return;
    };
    ResponseOutparam::set(out, Ok(response));
    let (Ok(client), Ok(body)) = (outgoing.write(), upstream.response.consume()) else {
        ctx.trace.outcome = Some("failed");
        return;
    };
    let Ok(source) = body.stream() else {
        ctx.trace.outcome = Some("failed");
        return;
    };
    let mut outcome = "allowed";
    let fail_event = |why: &str| {
        format!(
            "data: {}\n\n",
            json!({"error": {"code": "gateway_stream_error", "message": why}})
        )
    };
    loop {
        let (masked, last) = match source.blocking_read(16 * 1024) {
            Ok(chunk) => (masker.push(&chunk), false),
            Err(StreamError::Closed) => (masker.finish(), true),
            Err(StreamError::LastOperationFailed(_)) => {
                outcome = "failed";
                ctx.trace.reason = Some("upstream stream broke".into());
                let _ = write_all(
                    &client,
                    fail_event("the upstream stream ended early").as_bytes(),
                );
                break;
            }
        };
        let bytes = match masked {
            Ok(b) => b,
            Err(e) => {
                // Fail closed: nothing uninspected reaches the client.
                outcome = "failed";
                let why = match e {
                    SseError::LineTooLong => {
                        "an upstream event was too long to inspect".to_string()
                    }
                    SseError::Unparseable(m) => {
                        format!("an upstream event could not be inspected ({m})")
                    }
                };
                ctx.trace.reason = Some(why.clone());
                let _ = write_all(&client, fail_event(&why).as_bytes());
                break;
            }
        };
        ctx.trace.bytes_out += bytes.len() as u64;
        if write_all(&client, &bytes).is_err() {
            outcome = "cancelled";
            ctx.trace.reason = Some("the client closed the stream".into());
            break;
        }
        if last {
            break;
        }
    }
    // Dropping the upstream body here cancels it when the client went away.
    drop(source);
    drop(body);
    drop(client);
    let _ = OutgoingBody::finish(outgoing, None);
    ctx.trace.outcome = Some(outcome);
    if masker.dropped_frames() > 0 && ctx.trace.reason.is_none() {
        ctx.trace.reason = Some(format!(
            "{} unparseable frames dropped",
            masker.dropped_frames()
        ));
    }
    ctx.trace.response = Some(masker.transcript().to_string());
}

// ---------------------------------------------------------------- dispatch

fn dispatch(
    ctx: &mut Ctx,
    request: &IncomingRequest,
    out: &mut Option<ResponseOutparam>,
) -> Result<Reply, ApiError> {
    let method = ctx.method.clone();
    let route = routes::route(&method, &ctx.path).map_err(|e| match e {
        RouteError::NotFound => ApiError::new(404, "not_found", "no such endpoint"),
        RouteError::MethodNotAllowed(allowed) => ApiError::new(
            405,
            "method_not_allowed",
            format!("use {allowed} for this endpoint"),
        ),
    })?;
    ctx.trace.action = match &route {
        Route::Health => "health",
        Route::Jwks => "jwks",
        Route::CreateRequest => "access.request",
        Route::ListRequests => "access.list",
        Route::GetRequest(_) => "access.show",
        Route::Decide(_, Verdict::Approve) => "access.approve",
        Route::Decide(_, Verdict::Deny) => "access.deny",
        Route::Revoke(_) => "grant.revoke",
        Route::Renew(_) => "grant.renew",
        Route::IssueToken(_) => "grant.token",
        Route::AuditRecords => "audit.read",
        Route::AuditReplay(_) => "audit.replay",
        Route::AuditFlush => "audit.flush",
        Route::AuditStatus => "audit.status",
        Route::TokenExchange => "grant.exchange",
        Route::CopilotToken => "copilot.token",
        Route::CopilotUser | Route::GithubUser => "copilot.user",
        Route::Agents => "copilot.agents",
        Route::Telemetry => "telemetry",
        Route::Ping => "ping",
        Route::Copilot(_) => "copilot",
    }
    .to_string();
    // Fail closed: a call that could not be recorded is not served. Reading
    // the spool's state and flushing it stay open, to recover from an outage.
    if records_this(&ctx.trace.action) && !matches!(route, Route::AuditFlush | Route::AuditStatus) {
        let admitted = audit::admit();
        ctx.trace.unrecordable = admitted.is_err();
        admitted.map_err(|e| match e {
            audit::AuditError::SpoolFull(depth) => ApiError::new(
                503,
                "audit_unavailable",
                "audit storage is unreachable and its spool is full; try again later",
            )
            .detail(format!("audit spool full at {depth} records")),
            other => ApiError::new(503, "audit_unavailable", "the audit trail is unavailable")
                .detail(format!("{other:?}")),
        })?;
    }
    match route {
        Route::Health => Ok(Reply::Json(200, json!({"status": "ok"}))),
        Route::Jwks => minter::jwks()
            .ok()
            .and_then(|j| serde_json::from_str(&j).ok())
            .map(|v| Reply::Json(200, v))
            .ok_or_else(|| {
                ApiError::new(
                    503,
                    "minter_unavailable",
                    "the signing key is not configured",
                )
            }),
        Route::CreateRequest => create_request(ctx, request),
        Route::ListRequests => list_requests(ctx),
        Route::GetRequest(id) => get_request(ctx, &id),
        Route::Decide(id, verdict) => decide(ctx, request, &id, verdict),
        Route::Revoke(id) => revoke(ctx, request, &id),
        Route::Renew(id) => renew(ctx, request, &id),
        Route::IssueToken(id) => issue_token(ctx, request, &id),
        Route::AuditRecords => audit_records(ctx),
        Route::AuditReplay(grant) => audit_replay(ctx, &grant),
        Route::AuditFlush => audit_flush(ctx),
        Route::AuditStatus => audit_status(ctx),
        Route::TokenExchange => token_exchange(ctx, request),
        Route::CopilotToken => copilot_token_exchange(ctx),
        Route::CopilotUser => copilot_user(ctx, false),
        Route::GithubUser => copilot_user(ctx, true),
        Route::Agents => authorize_copilot(ctx).map(|_| Reply::Json(200, json!({"agents": []}))),
        Route::Telemetry => telemetry(ctx, request),
        Route::Ping => Ok(Reply::Json(200, json!({"status": "ok"}))),
        Route::Copilot(call) => copilot_call(ctx, request, out, call),
    }
}

/// Probes and dropped telemetry leave no record: they carry no exchange.
/// Unrouted requests (empty action) are recorded: they may be probing.
fn records_this(action: &str) -> bool {
    !matches!(action, "health" | "jwks" | "ping" | "telemetry")
}

fn record(ctx: &Ctx, status: u16, duration_ms: u64) {
    let t = &ctx.trace;
    let outcome = t.outcome.unwrap_or(match status {
        200..=299 => "allowed",
        401 | 403 => "denied",
        _ => "failed",
    });
    let event = audit::AuditEvent {
        request_id: ctx.request_id.clone(),
        client_request_id: ctx.client_request_id.clone(),
        principal: t.principal.clone(),
        grant_id: t.grant_id.clone(),
        token_id: t.token_id.clone(),
        method: ctx.method.clone(),
        path: ctx.path.split('?').next().unwrap_or("").to_string(),
        action: t.action.clone(),
        model: t.model.clone(),
        client: audit::ClientInfo {
            editor_version: header(&ctx.headers, "editor-version"),
            plugin_version: header(&ctx.headers, "editor-plugin-version"),
            integration_id: header(&ctx.headers, "copilot-integration-id"),
            user_agent: header(&ctx.headers, "user-agent"),
        },
        outcome: outcome.to_string(),
        status,
        reason: t.reason.clone(),
        policy_ids: t.policy_ids.clone(),
        findings: t.findings.clone(),
        prompt: t.prompt.clone(),
        response: t.response.clone(),
        upstream_status: t.upstream_status,
        bytes_in: t.bytes_in,
        bytes_out: t.bytes_out,
        duration_ms,
        upstream_ms: t.upstream_started.map(|at| at.elapsed().as_millis() as u64),
        ttfb_ms: t.ttfb_ms,
    };
    if let Err(e) = audit::append(&event) {
        eprintln!("audit record {} not stored: {e:?}", ctx.request_id);
    }
}

struct Component;

impl Guest for Component {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let started = Instant::now();
        let headers = request.headers();
        let mut ctx = Ctx {
            request_id: random_hex(16),
            client_request_id: clean_request_id(header(&headers, "x-request-id")),
            method: method_name(&request.method()),
            path: request.path_with_query().unwrap_or_else(|| "/".into()),
            headers,
            trace: Trace::default(),
        };
        let mut out = Some(out);
        let (status, reply_body, mut extra) = match dispatch(&mut ctx, &request, &mut out) {
            Ok(Reply::Json(status, body)) => (status, Some(body), Vec::new()),
            Ok(Reply::JsonWithHeaders(status, body, headers)) => (status, Some(body), headers),
            Ok(Reply::Sent) => (200, None, Vec::new()),
            Err(e) => {
                if ctx.trace.reason.is_none() {
                    ctx.trace.reason = Some(e.detail.clone().unwrap_or_else(|| e.message.clone()));
                }
                (e.status, Some(e.body()), Vec::new())
            }
        };
        if let (Some(out), Some(body)) = (out.take(), reply_body) {
            let bytes = body.to_string().into_bytes();
            ctx.trace.bytes_out = bytes.len() as u64;
            if let Err(RouteError::MethodNotAllowed(allowed)) =
                routes::route(&ctx.method, &ctx.path)
            {
                extra.push(("allow".to_string(), allowed.to_string()));
            }
            if status == 401 {
                extra.push(("www-authenticate".to_string(), "Bearer".to_string()));
            }
            let fields = response_fields(&ctx, "application/json", &extra);
            if send_bytes(out, status, fields, &bytes).is_err() {
                ctx.trace.outcome = Some("cancelled");
            }
        }
        if records_this(&ctx.trace.action) && !ctx.trace.unrecordable {
            record(&ctx, status, started.elapsed().as_millis() as u64);
        }
        deliver_notifications(&ctx);
    }
}

export!(Component);
