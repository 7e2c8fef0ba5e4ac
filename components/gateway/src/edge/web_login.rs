//! The device flow's pages and the IdP sign-in behind them: enter the code,
//! sign in at the organisation's IdP (authorization code + PKCE, state
//! bound to this browser, nonce checked), confirm the device. Every answer
//! is a readable page; nothing here answers 500.

use copilot_jit_common::unix_now as now;
use copilot_jit_wasi::http::types::IncomingRequest;
use copilot_jit_wasi::http::{Method, Request};
use serde_json::Value;

use super::copilot_jit::gateway::auth;
use super::copilot_jit::gateway::types::Principal;
use super::identity::failure_detail;
use super::signin::{bind_user_code, pending_code, principal_from_json, principal_to_json};
use super::wasi::keyvalue::store::{self, Bucket};
use super::wasi_http::{random_hex, read_request_body, settings};
use super::{Ctx, Reply};
use crate::body::MAX_API_BODY;
use crate::device_flow::normalize_user_code;
use crate::error::{ApiError, ErrorKind};
use crate::pages::{self, content_security_policy, PAGE_HEADERS};
use crate::routes::{query_params, Page, Query};
use crate::signin::client_name;
use crate::web_login::{
    authorize_url, basic_auth, callback_params, check_login, clear_cookie, cookie, login_key,
    nonce_matches, safe_then, same_token, secure_cookies, session_key, set_cookie, token_form,
    AuthorizeAsk, LoginState, WebSession, CALLBACK_PATH, FORM_COOKIE, LOGIN_COOKIE, LOGIN_TTL_SECS,
    SESSION_COOKIE, WEB_SESSION_TTL_SECS,
};

/// Largest discovery document or token answer read from the IdP.
const MAX_IDP_ANSWER: usize = 256 * 1024;
const IDP_TIMEOUT_MS: u64 = 5000;

/// What a page handler gives back: a page, or a redirect, with cookies.
pub(super) struct PageAnswer {
    status: u16,
    title: String,
    body: String,
    location: Option<String>,
    cookies: Vec<String>,
    /// Seconds after which the browser reloads the page (no script needed).
    pub(super) refresh: Option<u32>,
}

impl PageAnswer {
    pub(super) fn page(status: u16, title: &str, body: String) -> PageAnswer {
        PageAnswer {
            status,
            title: title.into(),
            body,
            location: None,
            cookies: Vec::new(),
            refresh: None,
        }
    }

    pub(super) fn redirect(to: String) -> PageAnswer {
        PageAnswer {
            status: 303,
            title: "Redirecting".into(),
            body: String::new(),
            location: Some(to),
            cookies: Vec::new(),
            refresh: None,
        }
    }

    fn with_cookie(mut self, cookie: String) -> PageAnswer {
        self.cookies.push(cookie);
        self
    }
}

/// An error as a page: its message, its status; the detail goes to the
/// audit record only.
pub(super) fn error_page(ctx: &mut Ctx, e: ApiError) -> PageAnswer {
    ctx.trace.reason = Some(e.reason());
    let status = match e.status() {
        401 => 403,
        s => s,
    };
    PageAnswer::page(
        status,
        "Cannot continue",
        pages::message("Cannot continue", &e.message),
    )
}

pub(super) fn page(ctx: &mut Ctx, request: &IncomingRequest, page: Page) -> Reply {
    let answer = match page {
        Page::DeviceEntry => Ok(device_entry(ctx, None)),
        Page::DeviceStart => device_start(ctx, request),
        Page::Callback => callback(ctx),
        Page::Confirm => confirm_page(ctx),
        Page::ConfirmPost => confirm(ctx, request),
        Page::SignOut => sign_out(ctx, request),
        Page::CopilotSettings => Ok(PageAnswer::redirect("/access".into())),
        other => super::access_pages::page(ctx, request, other),
    }
    .unwrap_or_else(|e| error_page(ctx, e));
    render(answer)
}

fn render(a: PageAnswer) -> Reply {
    let nonce = random_hex(16);
    let settings = settings();
    let mut headers: Vec<(String, String)> = PAGE_HEADERS
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    headers.push((
        "content-security-policy".into(),
        content_security_policy(&nonce, &settings.oidc_issuer_origin()),
    ));
    if let Some(to) = &a.location {
        headers.push(("location".into(), to.clone()));
    }
    if let Some(secs) = a.refresh {
        headers.push(("refresh".into(), secs.to_string()));
    }
    for c in a.cookies {
        headers.push(("set-cookie".into(), c));
    }
    let html = if a.location.is_some() {
        String::new()
    } else {
        pages::layout(&a.title, &a.body, &nonce)
    };
    Reply::Page(a.status, html, headers)
}

fn secure() -> bool {
    secure_cookies(&settings().public_url())
}

fn bucket() -> Result<Bucket, ApiError> {
    store::open("default").map_err(|e| {
        ApiError::new(ErrorKind::StorageUnavailable, "the store is unavailable")
            .detail(format!("kv: {e:?}"))
    })
}

fn storage(e: store::Error) -> ApiError {
    ApiError::new(ErrorKind::StorageUnavailable, "the store is unavailable")
        .detail(format!("kv: {e:?}"))
}

fn encode<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, ApiError> {
    serde_json::to_vec(v)
        .map_err(|e| ApiError::new(ErrorKind::Internal, "encoding failed").detail(e.to_string()))
}

pub(super) fn form(request: &IncomingRequest) -> Result<Query, ApiError> {
    let body = read_request_body(request, MAX_API_BODY)?;
    Ok(query_params(&format!(
        "?{}",
        String::from_utf8_lossy(&body)
    )))
}

fn cookie_of(ctx: &Ctx, name: &str) -> Option<String> {
    cookie(ctx.header("cookie").as_deref(), name)
}

/// The browser's live session, if it has one.
pub(super) fn web_session(ctx: &mut Ctx) -> Result<Option<(String, WebSession)>, ApiError> {
    let Some(id) = cookie_of(ctx, SESSION_COOKIE) else {
        return Ok(None);
    };
    let Some(bytes) = bucket()?.get(&session_key(&id)).map_err(storage)? else {
        return Ok(None);
    };
    let session: WebSession = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::new(
            ErrorKind::StorageUnavailable,
            "a stored session is unreadable",
        )
        .detail(e.to_string())
    })?;
    if session.expires_at <= now() {
        return Ok(None);
    }
    ctx.trace.principal = Some(principal_from_json(&session.principal));
    ctx.groups_confirmed_at = Some(session.created_at);
    Ok(Some((id, session)))
}

/// The CSRF token of a form must be the session's (or, before sign-in, the
/// form cookie's: double submit).
pub(super) fn check_csrf(sent: Option<String>, expected: &str) -> Result<(), ApiError> {
    match sent {
        Some(s) if same_token(&s, expected) => Ok(()),
        _ => Err(ApiError::new(
            ErrorKind::Forbidden,
            "this form has expired or did not come from this site; reload the page and try again",
        )
        .detail("csrf token missing or wrong")),
    }
}

/// `GET /login/device`: the code-entry form, with a fresh form token.
fn device_entry(ctx: &Ctx, error: Option<&str>) -> PageAnswer {
    let query = query_params(&ctx.path);
    let prefill = query
        .get("user_code")
        .and_then(|c| normalize_user_code(&c))
        .unwrap_or_default();
    let token = random_hex(16);
    let status = if error.is_some() { 400 } else { 200 };
    PageAnswer::page(
        status,
        "Sign in a device",
        pages::device_entry(&prefill, &token, error),
    )
    .with_cookie(set_cookie(FORM_COOKIE, &token, LOGIN_TTL_SECS, secure()))
}

/// `POST /login/device`: a pending code sends the person to the IdP (or,
/// already signed in here, straight to the confirmation).
fn device_start(ctx: &mut Ctx, request: &IncomingRequest) -> Result<PageAnswer, ApiError> {
    let form = form(request)?;
    let expected = cookie_of(ctx, FORM_COOKIE).unwrap_or_default();
    if expected.is_empty() {
        return Err(ApiError::new(
            ErrorKind::Forbidden,
            "this form has expired; reload the page and try again",
        ));
    }
    check_csrf(form.get("csrf"), &expected)?;
    let typed = form.get("user_code").unwrap_or_default();
    let Some(grant) = pending_code(&typed) else {
        return Ok(device_entry(
            ctx,
            Some(
                "That code is unknown, expired or already used. Check the code your device shows.",
            ),
        ));
    };
    let confirm = format!("/login/device/confirm?user_code={}", grant.user_code);
    if web_session(ctx)?.is_some() {
        return Ok(PageAnswer::redirect(confirm));
    }
    start_login(Some(grant.user_code), &confirm)
}

/// Sends the browser to the IdP, remembering the login under its `state`.
pub(super) fn start_login(user_code: Option<String>, then: &str) -> Result<PageAnswer, ApiError> {
    let settings = settings();
    let idp = discovery()?;
    let authorization_endpoint = endpoint(&idp, "authorization_endpoint")?;
    let state = random_hex(32);
    let nonce = random_hex(16);
    let verifier = random_hex(32);
    let browser = random_hex(16);
    let login = LoginState {
        user_code,
        nonce: nonce.clone(),
        verifier: verifier.clone(),
        browser: crate::signin::sha256_hex(&browser),
        expires_at: now() + LOGIN_TTL_SECS,
        then: safe_then(Some(then)),
    };
    bucket()?
        .set(&login_key(&state), &encode(&login)?)
        .map_err(storage)?;
    let client_id = settings.oidc_client_id();
    let redirect_uri = redirect_uri();
    let to = authorize_url(&AuthorizeAsk {
        endpoint: &authorization_endpoint,
        client_id: &client_id,
        redirect_uri: &redirect_uri,
        state: &state,
        nonce: &nonce,
        verifier: &verifier,
    });
    Ok(PageAnswer::redirect(to).with_cookie(set_cookie(
        LOGIN_COOKIE,
        &browser,
        LOGIN_TTL_SECS,
        secure(),
    )))
}

fn redirect_uri() -> String {
    format!("{}{CALLBACK_PATH}", settings().public_url())
}

fn idp_unavailable(detail: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        ErrorKind::IdentityUnavailable,
        "the organisation's sign-in service cannot be reached; try again shortly",
    )
    .detail(detail.to_string())
}

/// The IdP's discovery document (fetched on each sign-in: a person's login
/// is not a hot path, and it follows the IdP's changes).
fn discovery() -> Result<Value, ApiError> {
    let issuer = settings().oidc_issuer().ok_or_else(|| {
        ApiError::new(
            ErrorKind::GatewayMisconfigured,
            "no identity provider is configured",
        )
    })?;
    let url = format!("{issuer}/.well-known/openid-configuration");
    let response = Request::new(Method::Get, &url)
        .map(|r| {
            r.header("accept", "application/json")
                .timeout_ms(IDP_TIMEOUT_MS)
        })
        .and_then(|r| r.send(None))
        .map_err(|e| idp_unavailable(format!("discovery {url}: {e}")))?;
    if response.status() != 200 {
        return Err(idp_unavailable(format!(
            "discovery answered {}",
            response.status()
        )));
    }
    let body = response
        .read_body(MAX_IDP_ANSWER)
        .map_err(idp_unavailable)?;
    serde_json::from_slice(&body).map_err(idp_unavailable)
}

fn endpoint(idp: &Value, name: &str) -> Result<String, ApiError> {
    idp.get(name)
        .and_then(Value::as_str)
        .filter(|u| u.starts_with("https://") || u.starts_with("http://"))
        .map(str::to_string)
        .ok_or_else(|| idp_unavailable(format!("discovery has no {name}")))
}

/// `GET /login/callback`: the IdP's answer, checked (state, browser, code
/// exchange with PKCE, ID token by the same validator as the API, nonce);
/// then a session for this browser.
fn callback(ctx: &mut Ctx) -> Result<PageAnswer, ApiError> {
    let query = query_params(&ctx.path);
    let refused = |r: crate::web_login::CallbackRefusal| {
        ApiError::new(ErrorKind::BadQuery, r.message()).detail(format!("callback: {r:?}"))
    };
    let (code, state) = callback_params(
        query.get("code").as_deref(),
        query.get("state").as_deref(),
        query.get("error").as_deref(),
    )
    .map_err(refused)?;
    let bucket = bucket()?;
    let key = login_key(&state);
    let stored = bucket
        .get(&key)
        .map_err(storage)?
        .and_then(|b| serde_json::from_slice::<LoginState>(&b).ok());
    let login =
        check_login(stored, cookie_of(ctx, LOGIN_COOKIE).as_deref(), now()).map_err(refused)?;
    // One use: a replayed callback finds nothing.
    bucket.delete(&key).map_err(storage)?;
    let id_token = exchange_code(&code, &login.verifier)?;
    let principal = auth::authenticate(&id_token).map_err(|e| {
        ApiError::new(
            ErrorKind::InvalidToken,
            "the identity provider's answer was not accepted",
        )
        .detail(failure_detail(&e))
    })?;
    if !nonce_matches(&principal.claims_json, &login.nonce) {
        return Err(refused(crate::web_login::CallbackRefusal::NonceMismatch));
    }
    ctx.trace.principal = Some(principal.clone());
    let session_id = random_hex(32);
    let now = now();
    let session = WebSession {
        principal: principal_to_json(&principal),
        csrf: random_hex(16),
        created_at: now,
        expires_at: now + WEB_SESSION_TTL_SECS,
    };
    bucket
        .set(&session_key(&session_id), &encode(&session)?)
        .map_err(storage)?;
    Ok(PageAnswer::redirect(login.then)
        .with_cookie(set_cookie(
            SESSION_COOKIE,
            &session_id,
            WEB_SESSION_TTL_SECS,
            secure(),
        ))
        .with_cookie(clear_cookie(LOGIN_COOKIE, secure())))
}

/// The authorization code for the ID token, as a confidential client.
fn exchange_code(code: &str, verifier: &str) -> Result<String, ApiError> {
    let settings = settings();
    let secret = settings.oidc_client_secret().ok_or_else(|| {
        ApiError::new(
            ErrorKind::GatewayMisconfigured,
            "sign-in at the identity provider is not configured (oidc_client_secret)",
        )
    })?;
    let token_endpoint = endpoint(&discovery()?, "token_endpoint")?;
    let body = token_form(code, &redirect_uri(), verifier);
    let response = Request::new(Method::Post, &token_endpoint)
        .map(|r| {
            r.header("content-type", "application/x-www-form-urlencoded")
                .header("accept", "application/json")
                .header(
                    "authorization",
                    basic_auth(&settings.oidc_client_id(), &secret),
                )
                .timeout_ms(IDP_TIMEOUT_MS)
        })
        .and_then(|r| r.send(Some(body.as_bytes())))
        .map_err(|e| idp_unavailable(format!("token endpoint {token_endpoint}: {e}")))?;
    let status = response.status();
    let answer: Value = response
        .read_body(MAX_IDP_ANSWER)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    if status != 200 {
        return Err(ApiError::new(
            ErrorKind::InvalidToken,
            "the identity provider refused this sign-in; start again",
        )
        .detail(format!("token endpoint {status}: {}", answer["error"])));
    }
    answer["id_token"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| idp_unavailable("token answer without id_token"))
}

/// `GET /login/device/confirm?user_code=…`: signed in here, the person sees
/// which client asks before allowing it.
fn confirm_page(ctx: &mut Ctx) -> Result<PageAnswer, ApiError> {
    let query = query_params(&ctx.path);
    let typed = query.get("user_code").unwrap_or_default();
    let Some((_, session)) = web_session(ctx)? else {
        let then = normalize_user_code(&typed)
            .map(|c| format!("/login/device/confirm?user_code={c}"))
            .unwrap_or_else(|| "/login/device".into());
        return start_login(normalize_user_code(&typed), &then);
    };
    let Some(grant) = pending_code(&typed) else {
        return Ok(PageAnswer::page(
            400,
            "Code not usable",
            pages::message(
                "Code not usable",
                "That code is unknown, expired or already used. Start signing in again on your device.",
            ),
        ));
    };
    let who = principal_from_json(&session.principal);
    Ok(PageAnswer::page(
        200,
        "Confirm the device",
        pages::device_confirm(
            client_name(&grant.client_id),
            &display_name(&who),
            &grant.user_code,
            &session.csrf,
        ),
    ))
}

pub(super) fn display_name(p: &Principal) -> String {
    p.email.clone().unwrap_or_else(|| p.subject.clone())
}

/// `POST /login/device/confirm`: allow or refuse, by the session's person,
/// with the session's CSRF token.
fn confirm(ctx: &mut Ctx, request: &IncomingRequest) -> Result<PageAnswer, ApiError> {
    let form = form(request)?;
    let Some((_, session)) = web_session(ctx)? else {
        return Err(ApiError::new(
            ErrorKind::Unauthenticated,
            "you are not signed in here (or your session ended); start again",
        ));
    };
    check_csrf(form.get("csrf"), &session.csrf)?;
    let allow = match form.get("decision").as_deref() {
        Some("allow") => true,
        Some("deny") => false,
        _ => return Err(ApiError::new(ErrorKind::BadBody, "choose allow or deny")),
    };
    let who = principal_from_json(&session.principal);
    let grant = bind_user_code(&who, &form.get("user_code").unwrap_or_default(), allow)?;
    Ok(PageAnswer::page(
        200,
        if allow {
            "Device signed in"
        } else {
            "Device refused"
        },
        pages::device_done(allow, client_name(&grant.client_id)),
    ))
}

/// `POST /logout`: this browser's session ends (devices stay signed in;
/// they are ended from the devices list).
fn sign_out(ctx: &mut Ctx, request: &IncomingRequest) -> Result<PageAnswer, ApiError> {
    let form = form(request)?;
    if let Some((id, session)) = web_session(ctx)? {
        check_csrf(form.get("csrf"), &session.csrf)?;
        bucket()?.delete(&session_key(&id)).map_err(storage)?;
    }
    Ok(PageAnswer::page(
        200,
        "Signed out",
        pages::message("Signed out", "You are signed out of this browser."),
    )
    .with_cookie(clear_cookie(SESSION_COOKIE, secure())))
}
