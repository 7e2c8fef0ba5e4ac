//! Proxied Copilot calls, as a proxy's filter chain (pingora's `ProxyHttp`
//! is the model). Each phase is one function with a typed result; the trace
//! (`ctx.trace`) carries what the last phase needs:
//!
//! 1. `authorize_call`: the gateway token, its grant, scope and model
//!    (pingora's `request_filter`);
//! 2. `prepare_prompt`: read the body, ask the `use` policy, inspect the
//!    prompt and rewrite it redacted (`request_body_filter`);
//! 3. `call_upstream`: the Copilot token of the seat the policy chose (the
//!    caller's own, or the shared one), one refresh on 401
//!    (`upstream_request_filter`);
//! 4. `answer`: masked as it streams, or whole (`response_body_filter`);
//! 5. record: `trace::record` once the answer is out, as for every request
//!    (`logging`).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Instant;

use copilot_jit_access_policy::{Action, Resource, SeatMode};
use copilot_jit_wasi::http::types::{IncomingRequest, OutgoingBody, ResponseOutparam};
use copilot_jit_wasi::http::{header, write_all, Method, Request, Response};
use serde_json::{json, Value};

use super::copilot_jit::gateway::grants::AccessRequest;
use super::copilot_jit::gateway::masking::{self, MaskingContext};
use super::copilot_jit::gateway::types::Principal;
use super::identity::{authorize_for, Authorized};
use super::policy;
use super::seat;
use super::trace::from_wit;
use super::upstream;
use super::wasi_http::{read_request_body, respond, response_fields, settings};
use super::{Ctx, Reply};
use crate::body::{parse_json, MAX_PROMPT_BODY, MAX_UPSTREAM_BODY};
use crate::content;
use crate::copilot::{filter_models, how_to_request};
use crate::copilot_call::{
    answer_shape, checked_model, model_granted, named_model, retry_with_fresh_token, scope_granted,
    upstream_error, upstream_of, wants_stream, AnswerShape, Framing, WholeMasking,
};
use crate::error::{ApiError, ErrorKind};
use crate::findings::{self, AuditText, Finding};
use crate::headers::{FORWARDED_REQUEST_HEADERS, FORWARDED_RESPONSE_HEADERS};
use crate::outcome::Outcome;
use crate::routes::CopilotCall;
use crate::sse::{error_event, SseMasker, StreamFilter, TextMasker};
use crate::typed_sse::TypedSseMasker;

/// Bytes read from an upstream stream at a time.
const STREAM_CHUNK: u64 = 16 * 1024;

/// Phase 1's result: the caller's grant, and masking as their groups say.
struct CallGrant {
    grant: AccessRequest,
    masking: MaskingContext,
}

/// Phase 2's result: what goes upstream.
struct Prompt {
    /// The inspected, rewritten body; `None` for listings (a GET).
    body: Option<Vec<u8>>,
    wants_stream: bool,
}

/// Phase 3's result: upstream's answer head.
struct UpstreamAnswer {
    response: Response,
    status: u16,
    content_type: String,
    /// Upstream headers clients read, passed on.
    passed: Vec<(String, String)>,
}

pub(super) fn copilot_call(
    ctx: &mut Ctx,
    request: &IncomingRequest,
    out: &mut Option<ResponseOutparam>,
    call: CopilotCall,
) -> Result<Reply, ApiError> {
    // Fail closed without a read on a healthy call: the spool's depth is
    // read only when this grant's last record was spooled, or when the
    // call is refused (its record may need the spool too).
    let granted = authorize_call(ctx, &call);
    match &granted {
        Ok(g) if !g.grant.call_cache.audit_spooled => {}
        _ => super::admit(ctx)?,
    }
    let granted = granted?;
    let prompt = prepare_prompt(ctx, request, &call, &granted)?;
    let upstream = call_upstream(ctx, &call, &prompt, &granted)?;
    answer(ctx, out, &call, &granted, &prompt, upstream)
}

/// The masking context of a caller: their groups and the fingerprint key.
pub(super) fn masking_context(groups: &[String]) -> Result<MaskingContext, ApiError> {
    let masking = settings().masking()?;
    Ok(MaskingContext {
        groups: groups.to_vec(),
        fingerprint_key: masking.fingerprint_key.into_bytes(),
        max_hold_back: masking.max_hold_back,
    })
}

/// The policy's word on one Copilot call (action `use`): the grant covers
/// it, and policy may still forbid a model or endpoint for some callers. It
/// also says whose seat the call uses (`@upstream_mode`, else the
/// `upstream_mode` variable), kept in the trace for the upstream call.
fn may_use(
    ctx: &mut Ctx,
    grant: &AccessRequest,
    scope: &str,
    model: Option<&str>,
) -> Result<(), ApiError> {
    let mut context = json!({
        "endpoint": ctx.endpoint(),
        "client": ctx.client_name(),
    });
    if let Some(m) = model {
        context["model"] = json!(m);
    }
    if let Some(repo) = &grant.repository {
        context["repository"] = json!(repo);
    }
    let d = policy::decide(
        &grant.requester,
        Action::Use,
        &Resource::Scope(scope),
        context,
    )?;
    ctx.trace.policy_ids = d.policy_ids.clone();
    let d = ApiError::unless_allowed(d, ErrorKind::PolicyDenied, |d| {
        format!(
            "the access policy does not allow this call: {}",
            d.explain()
        )
    })?;
    ctx.trace.upstream_mode = Some(match d.requirements.upstream_mode {
        Some(mode) => mode,
        None => settings().upstream_mode()?,
    });
    Ok(())
}

/// Whose seat `principal`'s calls under `scope` use, as the `use` policy
/// and the `upstream_mode` variable say (for answers that are no call).
pub(super) fn seat_mode(
    ctx: &Ctx,
    principal: &Principal,
    scope: &str,
) -> Result<SeatMode, ApiError> {
    let d = policy::decide(
        principal,
        Action::Use,
        &Resource::Scope(scope),
        json!({"endpoint": ctx.endpoint(), "client": ctx.client_name()}),
    )?;
    match d.requirements.upstream_mode {
        Some(mode) if d.allowed => Ok(mode),
        _ => settings().upstream_mode(),
    }
}

/// Phase 1: a live grant whose scope covers the call; a listed model must
/// be granted; listings (no body) ask the `use` policy here.
fn authorize_call(ctx: &mut Ctx, call: &CopilotCall) -> Result<CallGrant, ApiError> {
    let scope = (!call.is_listing()).then(|| call.scope());
    let Authorized { grant, .. } = authorize_for(ctx, scope)?;
    ctx.trace.grant_audit_spooled = Some(grant.call_cache.audit_spooled);
    let masking = masking_context(&grant.requester.groups)?;
    if !scope_granted(call, &grant.scopes) {
        return Err(ApiError::new(
            ErrorKind::ScopeNotGranted,
            format!("your grant does not include {}", call.scope()),
        )
        .with(how_to_request(&settings().public_url())));
    }
    if let CopilotCall::Model { id } = call {
        if !model_granted(&grant.models, id) {
            return Err(ApiError::new(ErrorKind::NotFound, "no such model"));
        }
    }
    if call.is_listing() {
        may_use(ctx, &grant, call.scope(), None)?;
    }
    Ok(CallGrant { grant, masking })
}

/// Phase 2: the prompt read, its model granted and allowed by policy, and
/// every prompt text inspected (redacted, or the call blocked) before
/// anything leaves.
fn prepare_prompt(
    ctx: &mut Ctx,
    request: &IncomingRequest,
    call: &CopilotCall,
    granted: &CallGrant,
) -> Result<Prompt, ApiError> {
    if call.is_listing() {
        return Ok(Prompt {
            body: None,
            wants_stream: false,
        });
    }
    let bytes = read_request_body(request, MAX_PROMPT_BODY)?;
    ctx.trace.bytes_in = bytes.len() as u64;
    let mut body: Value = parse_json(&bytes)?;
    ctx.trace.model = named_model(call, &body);
    let model = checked_model(call, &body, &granted.grant.models)?;
    may_use(ctx, &granted.grant, call.scope(), model.as_deref())?;
    let wants_stream = wants_stream(&body);
    inspect_prompt(ctx, &mut body, &granted.masking)?;
    let rewritten = serde_json::to_vec(&body).map_err(|e| {
        ApiError::new(ErrorKind::Internal, "re-encoding the prompt failed").detail(e.to_string())
    })?;
    Ok(Prompt {
        body: Some(rewritten),
        wants_stream,
    })
}

/// Masks every prompt text in place; the findings and the masked prompt go
/// to the trace. A `block` match refuses the call, naming the detectors.
fn inspect_prompt(
    ctx: &mut Ctx,
    body: &mut Value,
    masking_ctx: &MaskingContext,
) -> Result<(), ApiError> {
    let mut blocked = false;
    let mut found = Vec::new();
    let mut prompt_log = AuditText::default();
    content::for_each_prompt_text(body, &mut |text| {
        let scan = masking::inspect_prompt(text, masking_ctx);
        blocked |= scan.blocked;
        findings::merge(&mut found, scan.findings.into_iter().map(from_wit));
        prompt_log.push_line(&scan.text);
        *text = scan.text;
    });
    ctx.trace.prompt = Some(prompt_log.into_bounded());
    let detectors: Vec<String> = findings::detectors(&found)
        .into_iter()
        .map(str::to_string)
        .collect();
    ctx.trace.findings = found;
    if blocked {
        ctx.trace.outcome = Some(Outcome::Blocked);
        return Err(ApiError::new(
            ErrorKind::PromptBlocked,
            "the prompt contains content that policy does not allow to leave",
        )
        .with(json!({"detectors": detectors})));
    }
    Ok(())
}

/// One upstream request with the seat's Copilot token, the client's request
/// id and the routing headers it sent.
fn upstream_request(
    ctx: &Ctx,
    method: Method,
    url: &str,
    copilot: &str,
    has_body: bool,
) -> Result<Request, ApiError> {
    let mut request = Request::new(method, url)
        .map_err(|e| unreachable_upstream(e.to_string()))?
        .header("authorization", format!("Bearer {copilot}"))
        .header("x-request-id", ctx.visible_request_id())
        // Plain text upstream, so masking sees what the model wrote.
        .header("accept-encoding", "identity");
    if has_body {
        request = request.header("content-type", "application/json");
    }
    for name in FORWARDED_REQUEST_HEADERS {
        if let Some(v) = ctx.header(name) {
            request = request.header(name, v);
        }
    }
    Ok(request)
}

fn unreachable_upstream(detail: String) -> ApiError {
    ApiError::new(
        ErrorKind::UpstreamUnavailable,
        "Copilot could not be reached",
    )
    .detail(detail)
}

/// Phase 3: the call upstream, with the Copilot token of the caller's own
/// seat or of the shared one, as `may_use` found. Upstream may have revoked
/// the cached Copilot token before its refresh time, so a refusal of the
/// first attempt exchanges a fresh token and tries once more.
fn call_upstream(
    ctx: &mut Ctx,
    call: &CopilotCall,
    prompt: &Prompt,
    granted: &CallGrant,
) -> Result<UpstreamAnswer, ApiError> {
    let url = format!(
        "{}{}",
        settings().upstream(upstream_of(call)),
        call.upstream_path()
    );
    let method = if call.is_listing() {
        Method::Get
    } else {
        Method::Post
    };
    let started = Instant::now();
    let mut attempt = 0;
    let seat = ctx.trace.upstream_mode.unwrap_or(SeatMode::SharedSeat);
    let response = loop {
        let (copilot, login) = match seat {
            SeatMode::OwnSeat => seat::copilot_token(&granted.grant.requester, attempt > 0)?,
            SeatMode::SharedSeat => upstream::copilot_token(attempt > 0, &granted.grant)?,
        };
        ctx.trace.upstream_login = Some(login).filter(|l| !l.is_empty());
        let response =
            upstream_request(ctx, method.clone(), &url, &copilot, prompt.body.is_some())?
                .send(prompt.body.as_deref())
                .map_err(|e| unreachable_upstream(e.to_string()))?;
        if !retry_with_fresh_token(response.status(), attempt) {
            break response;
        }
        attempt += 1;
    };
    let status = response.status();
    ctx.trace.upstream_status = Some(status);
    ctx.trace.upstream_started = Some(started);
    ctx.trace.ttfb_ms = Some(started.elapsed().as_millis() as u64);
    // The headers are a child of the response: read, then dropped before
    // the body is taken.
    let headers = response.headers();
    let content_type =
        header(&headers, "content-type").unwrap_or_else(|| "application/json".into());
    let mut passed: Vec<(String, String)> = FORWARDED_RESPONSE_HEADERS
        .iter()
        .filter_map(|n| header(&headers, n).map(|v| (n.to_string(), v)))
        .collect();
    if let Some(id) = header(&headers, "x-github-request-id") {
        passed.push(("x-github-request-id".into(), id));
    }
    drop(headers);
    Ok(UpstreamAnswer {
        response,
        status,
        content_type,
        passed,
    })
}

/// Phase 4: the answer, streamed or whole, masked either way.
fn answer(
    ctx: &mut Ctx,
    out: &mut Option<ResponseOutparam>,
    call: &CopilotCall,
    granted: &CallGrant,
    prompt: &Prompt,
    upstream: UpstreamAnswer,
) -> Result<Reply, ApiError> {
    let shape = answer_shape(
        call,
        upstream.status,
        &upstream.content_type,
        prompt.wants_stream,
    );
    let whole = match shape {
        AnswerShape::Stream(framing) => {
            let out = out
                .take()
                .ok_or_else(|| ApiError::new(ErrorKind::Internal, "response already sent"))?;
            stream_answer(ctx, out, upstream, framing, &granted.masking);
            return Ok(Reply::Sent);
        }
        AnswerShape::UpstreamError => None,
        AnswerShape::Whole(masking) => Some(masking),
    };
    let UpstreamAnswer {
        response,
        status,
        passed,
        ..
    } = upstream;
    let bytes = response.read_body(MAX_UPSTREAM_BODY).map_err(|e| {
        ApiError::new(
            ErrorKind::UpstreamFailed,
            "Copilot's answer could not be read",
        )
        .detail(format!("upstream {e}"))
    })?;
    let Some(masking) = whole else {
        ctx.trace.outcome = Some(Outcome::Failed);
        ctx.trace.reason = Some(format!("upstream answered {status}"));
        let (status, body) = upstream_error(status, &bytes, |text| {
            masking::mask_response(text, &granted.masking).text
        });
        return Ok(Reply::JsonWithHeaders(status, body, passed));
    };
    let mut body: Value = serde_json::from_slice(&bytes).map_err(|_| {
        ApiError::new(
            ErrorKind::UpstreamUnreadable,
            "Copilot's answer could not be inspected, so it is not passed on",
        )
    })?;
    if *call == CopilotCall::Models {
        filter_models(&mut body, &granted.grant.models);
    }
    mask_whole(ctx, &mut body, masking, &granted.masking);
    Ok(Reply::JsonWithHeaders(200, body, passed))
}

/// Masks a whole answer field by field; findings join the prompt's.
fn mask_whole(ctx: &mut Ctx, body: &mut Value, what: WholeMasking, masking_ctx: &MaskingContext) {
    let mut response_log = AuditText::default();
    let mut found = std::mem::take(&mut ctx.trace.findings);
    let mut mask = |text: &mut String| {
        let scan = masking::mask_response(text, masking_ctx);
        findings::merge(&mut found, scan.findings.into_iter().map(from_wit));
        response_log.push(&scan.text);
        *text = scan.text;
    };
    match what {
        WholeMasking::Nothing => {}
        WholeMasking::EveryString => content::for_each_string(body, &mut mask),
        WholeMasking::ResponseText => content::for_each_response_text(body, &mut mask),
    }
    ctx.trace.findings = found;
    ctx.trace.response = Some(response_log.into_bounded());
}

/// One text's masker in the masking-filter component. What it found joins
/// the call's findings when it is done with (every streamed text, every
/// string masked whole), so a streamed record carries them like a whole one.
struct ComponentMasker {
    masker: masking::StreamMasker,
    found: Rc<RefCell<Vec<Finding>>>,
}

impl TextMasker for ComponentMasker {
    fn push(&mut self, text: &str) -> String {
        self.masker.push(text)
    }
    fn finish(&mut self) -> String {
        self.masker.finish()
    }
}

impl Drop for ComponentMasker {
    fn drop(&mut self) {
        let found = self.masker.findings().into_iter().map(from_wit);
        findings::merge(&mut self.found.borrow_mut(), found);
    }
}

/// The stream filter for `framing`, and where its maskers leave their
/// findings. Frames that cannot be inspected end the stream (default) or,
/// by policy, are dropped; they are never passed on unmasked.
fn stream_filter(
    framing: Framing,
    masking_ctx: &MaskingContext,
) -> (Box<dyn StreamFilter>, Rc<RefCell<Vec<Finding>>>) {
    let stream_ctx = masking_ctx.clone();
    let found = Rc::new(RefCell::new(Vec::new()));
    let sink = found.clone();
    let new_masker = move || ComponentMasker {
        masker: masking::StreamMasker::new(&stream_ctx),
        found: sink.clone(),
    };
    let drop_unparseable = settings().drop_unparseable_frames();
    let filter: Box<dyn StreamFilter> = match framing {
        Framing::EventTyped => {
            Box::new(TypedSseMasker::new(new_masker).dropping_unparseable(drop_unparseable))
        }
        Framing::Chunks => {
            Box::new(SseMasker::new(new_masker).dropping_unparseable(drop_unparseable))
        }
    };
    (filter, found)
}

/// Streams upstream's answer to the client through the masker, chunk by
/// chunk; the outcome says whether it ended well, failed or was cancelled.
fn stream_answer(
    ctx: &mut Ctx,
    out: ResponseOutparam,
    upstream: UpstreamAnswer,
    framing: Framing,
    masking_ctx: &MaskingContext,
) {
    let (mut masker, found) = stream_filter(framing, masking_ctx);
    let fields = response_fields(ctx, &upstream.content_type, &upstream.passed);
    let Some(outgoing) = respond(out, 200, fields) else {
        ctx.trace.outcome = Some(Outcome::Failed);
        return;
    };
    let (Ok(client), Ok(mut source)) = (outgoing.write(), upstream.response.into_body()) else {
        ctx.trace.outcome = Some(Outcome::Failed);
        return;
    };
    let mut outcome = Outcome::Allowed;
    loop {
        let (masked, last) = match source.read(STREAM_CHUNK) {
            Ok(Some(chunk)) => (masker.push(&chunk), false),
            Ok(None) => (masker.finish(), true),
            Err(_) => {
                outcome = Outcome::Failed;
                ctx.trace.reason = Some("upstream stream broke".into());
                let _ = write_all(
                    &client,
                    error_event("the upstream stream ended early").as_bytes(),
                );
                break;
            }
        };
        let bytes = match masked {
            Ok(b) => b,
            Err(e) => {
                // Fail closed: nothing uninspected reaches the client.
                outcome = Outcome::Failed;
                let why = e.to_string();
                let _ = write_all(&client, error_event(&why).as_bytes());
                ctx.trace.reason = Some(why);
                break;
            }
        };
        ctx.trace.bytes_out += bytes.len() as u64;
        if write_all(&client, &bytes).is_err() {
            outcome = Outcome::Cancelled;
            ctx.trace.reason = Some("the client closed the stream".into());
            break;
        }
        if last {
            break;
        }
    }
    // Dropping the upstream body here cancels it when the client went away.
    drop(source);
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
    // Dropping the filter retires its last maskers into `found`.
    drop(masker);
    findings::merge(&mut ctx.trace.findings, found.take());
}
