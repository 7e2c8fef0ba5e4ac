//! The wasi:http edge: reads requests, calls the five component interfaces,
//! talks to Copilot, writes responses. Decisions live in the plain modules
//! of the crate; each file here is one concern's I/O.
//!
//! | file | what |
//! |---|---|
//! | `mod.rs` | bindings, `Guest::handle`, routing to a handler |
//! | `wasi_http.rs` | headers, request bodies, JSON replies, variables |
//! | `trace.rs` | what a request did, and its audit record |
//! | `identity.rs` | callers: OIDC tokens, gateway tokens, auditors, approvers |
//! | `policy.rs` | questions to the Cedar policy |
//! | `access_api.rs` | access requests: create, list, show, decide, revoke, renew |
//! | `grant_json.rs` | access requests as the API and webhooks show them |
//! | `tokens.rs` | gateway tokens for grants, and the RFC 8693 exchange |
//! | `audit_api.rs` | the auditor's API: records, replay, flush, status |
//! | `notify.rs` | approvers' webhook messages |
//! | `upstream.rs` | the shared seat's Copilot token, cached in KV |
//! | `seat.rs` | people's own seats: GitHub linking, the vault, their Copilot tokens |
//! | `copilot_api.rs` | Copilot's token envelope, user, notifications, agents, telemetry |
//! | `proxy.rs` | proxied Copilot calls, phase by phase, and streams |
//! | `signin.rs` | the device flow, sign-in credentials, call-time grant lookup |
//! | `github_api.rs` | the GitHub API shapes signed-in clients read |
//! | `web_login.rs` | the pages' IdP sign-in (code + PKCE) and device confirmation |
//! | `access_pages.rs` | the pages for access, approvals and devices |

mod access_api;
mod access_pages;
mod audit_api;
mod copilot_api;
mod github_api;
mod grant_json;
mod identity;
mod notify;
mod policy;
mod proxy;
mod seat;
mod signin;
mod tokens;
mod trace;
mod upstream;
mod wasi_http;
mod web_login;

// One set of wasi types for this component and the shared client.
copilot_jit_wasi::bindings_with_http!("gateway");

use std::time::Instant;

use copilot_jit_wasi::http::types::{Fields, IncomingRequest, ResponseOutparam};
use serde_json::{json, Value};

use crate::error::{ApiError, ErrorKind};
use crate::headers::{bearer_token, clean_request_id};
use crate::outcome::Outcome;
use crate::routes::{self, Route, RouteError};
use copilot_jit::gateway::{audit, minter};
use exports::wasi::http::incoming_handler::Guest as IncomingHandler;
use trace::Trace;
use wasi_http::{header, method_name, random_hex, response_fields, send_bytes};

/// What a handler answers: JSON for `handle` to send, or nothing when the
/// handler already streamed its answer.
enum Reply {
    Json(u16, Value),
    JsonWithHeaders(u16, Value, Vec<(String, String)>),
    /// An HTML page (or a redirect) with its headers.
    Page(u16, String, Vec<(String, String)>),
    Sent,
}

/// One request as it passes through: who sent what, and what it did.
struct Ctx {
    request_id: String,
    client_request_id: Option<String>,
    method: String,
    path: String,
    headers: Fields,
    /// Set when the path exists under other methods: the `allow` header.
    allow: Option<&'static str>,
    /// When the IdP vouched for the authenticated caller's groups: the
    /// OIDC token's issue time, or the sign-in's or web session's start.
    groups_confirmed_at: Option<u64>,
    trace: Trace,
}

impl Ctx {
    fn header(&self, name: &str) -> Option<String> {
        header(&self.headers, name)
    }

    /// The path without its query.
    fn endpoint(&self) -> &str {
        self.path.split('?').next().unwrap_or("")
    }

    /// The credential in `Authorization` (`Bearer` or `token`).
    fn bearer(&self) -> Option<String> {
        self.header("authorization")
            .and_then(|v| bearer_token(&v).map(str::to_string))
    }

    /// The editor (or, failing that, the user agent) for policy contexts.
    fn client_name(&self) -> String {
        self.header("editor-version")
            .or_else(|| self.header("user-agent"))
            .unwrap_or_default()
    }

    /// The id the client knows the call by: its own, else ours.
    fn visible_request_id(&self) -> String {
        self.client_request_id
            .clone()
            .unwrap_or_else(|| self.request_id.clone())
    }
}

fn route_error(e: RouteError) -> ApiError {
    match e {
        RouteError::NotFound => ApiError::new(ErrorKind::NotFound, "no such endpoint"),
        RouteError::MethodNotAllowed(allowed) => ApiError::new(
            ErrorKind::MethodNotAllowed,
            format!("use {allowed} for this endpoint"),
        ),
    }
}

/// Fail closed: a call that could not be recorded is not served.
fn admit(ctx: &mut Ctx) -> Result<(), ApiError> {
    let admitted = audit::admit();
    ctx.trace.unrecordable = admitted.is_err();
    admitted.map_err(|e| match e {
        audit::AuditError::SpoolFull(depth) => ApiError::new(
            ErrorKind::AuditUnavailable,
            "audit storage is unreachable and its spool is full; try again later",
        )
        .detail(format!("audit spool full at {depth} records")),
        other => ApiError::new(
            ErrorKind::AuditUnavailable,
            "the audit trail is unavailable",
        )
        .detail(format!("{other:?}")),
    })
}

fn jwks() -> Result<Reply, ApiError> {
    minter::jwks()
        .ok()
        .and_then(|j| serde_json::from_str(&j).ok())
        .map(|v| Reply::Json(200, v))
        .ok_or_else(|| {
            ApiError::new(
                ErrorKind::MinterUnavailable,
                "the signing key is not configured",
            )
        })
}

fn dispatch(
    ctx: &mut Ctx,
    request: &IncomingRequest,
    out: &mut Option<ResponseOutparam>,
) -> Result<Reply, ApiError> {
    let route = routes::route(&ctx.method, &ctx.path).map_err(|e| {
        if let RouteError::MethodNotAllowed(allowed) = e {
            ctx.allow = Some(allowed);
        }
        route_error(e)
    })?;
    ctx.trace.action = route.action();
    // Copilot calls are admitted once their grant is known (`proxy.rs`).
    if route.needs_audit_room() && !matches!(route, Route::Copilot(_)) {
        admit(ctx)?;
    }
    match route {
        Route::Health | Route::Ping => Ok(Reply::Json(200, json!({"status": "ok"}))),
        Route::Jwks => jwks(),
        Route::CreateRequest => access_api::create_request(ctx, request),
        Route::ListRequests => access_api::list_requests(ctx),
        Route::GetRequest(id) => access_api::get_request(ctx, &id),
        Route::Decide(id, verdict) => access_api::decide(ctx, request, &id, verdict),
        Route::Revoke(id) => access_api::revoke(ctx, request, &id),
        Route::Renew(id) => access_api::renew(ctx, request, &id),
        Route::IssueToken(id) => tokens::issue_token(ctx, request, &id),
        Route::TokenExchange => tokens::token_exchange(ctx, request),
        Route::AuditRecords => audit_api::records(ctx),
        Route::AuditReplay(grant) => audit_api::replay(ctx, &grant),
        Route::AuditFlush => audit_api::flush(ctx),
        Route::AuditStatus => audit_api::status(ctx),
        Route::AuditSeal => audit_api::seal(ctx),
        Route::CopilotToken => copilot_api::token_envelope(ctx),
        Route::CopilotUser => github_api::copilot_user(ctx),
        Route::CopilotNotification => copilot_api::notification_answered(ctx, request),
        Route::GithubUser => github_api::user(ctx),
        Route::Agents => copilot_api::agents(ctx),
        Route::Telemetry => copilot_api::telemetry(ctx, request),
        Route::Copilot(call) => proxy::copilot_call(ctx, request, out, call),
        Route::DeviceCode => signin::device_code(ctx, request),
        Route::DeviceToken => signin::device_token(ctx, request),
        Route::DeviceBind => signin::bind_device(ctx, request),
        Route::SignIns => signin::list(ctx),
        Route::SignInRevoke(id) => signin::revoke(ctx, &id),
        Route::GithubApiRoot => github_api::api_root(ctx),
        Route::GithubMeta => github_api::meta(),
        Route::GithubLinkStatus => seat::api(ctx, seat::LinkAct::Status),
        Route::GithubLinkStart => seat::api(ctx, seat::LinkAct::Start),
        Route::GithubUnlink => seat::api(ctx, seat::LinkAct::Unlink),
        Route::NotOffered => github_api::not_offered_reply(),
        Route::Page(page) => Ok(web_login::page(ctx, request, page)),
    }
}

struct Component;

impl IncomingHandler for Component {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let started = Instant::now();
        let headers = request.headers();
        let mut ctx = Ctx {
            request_id: random_hex(16),
            client_request_id: clean_request_id(header(&headers, "x-request-id")),
            method: method_name(&request.method()),
            path: request.path_with_query().unwrap_or_else(|| "/".into()),
            headers,
            allow: None,
            groups_confirmed_at: None,
            trace: Trace::default(),
        };
        let mut out = Some(out);
        let mut content_type = "application/json";
        let (status, reply_body, mut extra) = match dispatch(&mut ctx, &request, &mut out) {
            Ok(Reply::Json(status, body)) => (status, Some(body.to_string()), Vec::new()),
            Ok(Reply::JsonWithHeaders(status, body, headers)) => {
                (status, Some(body.to_string()), headers)
            }
            Ok(Reply::Page(status, html, headers)) => {
                content_type = "text/html; charset=utf-8";
                (status, Some(html), headers)
            }
            Ok(Reply::Sent) => (200, None, Vec::new()),
            Err(e) => {
                if ctx.trace.reason.is_none() {
                    ctx.trace.reason = Some(e.reason());
                }
                (e.status(), Some(e.body().to_string()), Vec::new())
            }
        };
        if let (Some(out), Some(body)) = (out.take(), reply_body) {
            let bytes = body.into_bytes();
            ctx.trace.bytes_out = bytes.len() as u64;
            if let Some(allowed) = ctx.allow {
                extra.push(("allow".to_string(), allowed.to_string()));
            }
            if status == 401 {
                extra.push(("www-authenticate".to_string(), "Bearer".to_string()));
            }
            let fields = response_fields(&ctx, content_type, &extra);
            if send_bytes(out, status, fields, &bytes).is_err() {
                ctx.trace.outcome = Some(Outcome::Cancelled);
            }
        }
        if routes::is_recorded(ctx.trace.action) && !ctx.trace.unrecordable {
            trace::record(&ctx, status, started.elapsed().as_millis() as u64);
        }
        notify::deliver(&ctx);
    }
}

impl Guest for Component {
    fn wizer_initialize() {
        policy::warm_up();
    }
}

export!(Component);
