//! The device flow's I/O and the sign-in credentials it ends in: codes and
//! sign-ins in KV (state changes by compare-and-swap), the person's grant
//! looked up at call time. Decisions are in `crate::device_flow` and
//! `crate::signin`.

use copilot_jit_common::cas::{update, Step, UpdateError};
use copilot_jit_common::unix_now as now;
use copilot_jit_wasi::http::types::IncomingRequest;
use serde_json::{json, Value};

use super::access_api::store_error;
use super::copilot_jit::gateway::grants::{self, AccessRequest};
use super::copilot_jit::gateway::minter::TokenClaims;
use super::copilot_jit::gateway::types::{Principal, PrincipalKind};
use super::identity::{authenticate, authenticate_oidc, Authorized};
use super::wasi;
use super::wasi::keyvalue::store::{self, Bucket};
use super::wasi_http::{random_hex, read_request_body, settings};
use super::{Ctx, Reply};
use crate::body::{parse_json, MAX_API_BODY};
use crate::device_flow::{
    self, bind, code_answer, code_ask, device_key, normalize_user_code, oauth_params, poll,
    poll_ask, user_code_from, user_code_key, BindRefusal, DeviceError, DeviceGrant, Poll,
};
use crate::error::{ApiError, ErrorKind};
use crate::signin::{
    self, access_needed, credential_from, credential_hash, short_id, signin_key, signins_of_key,
    SignIn, SignInEntry, SignInIndex, CREDENTIAL_CHARS,
};

copilot_jit_common::kv_cas_store!(KvCas);

/// Genuine conflicts retried before the caller is told to retry.
pub(super) const CAS_ATTEMPTS: u32 = 8;

pub(super) fn storage(e: store::Error) -> ApiError {
    ApiError::new(ErrorKind::StorageUnavailable, "the store is unavailable")
        .detail(format!("kv: {e:?}"))
}

pub(super) fn bucket() -> Result<Bucket, ApiError> {
    store::open("default").map_err(storage)
}

pub(super) fn encode<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, ApiError> {
    serde_json::to_vec(v)
        .map_err(|e| ApiError::new(ErrorKind::Internal, "encoding failed").detail(e.to_string()))
}

fn corrupt(e: serde_json::Error) -> ApiError {
    ApiError::new(
        ErrorKind::StorageUnavailable,
        "a stored record is unreadable",
    )
    .detail(e.to_string())
}

fn random_bytes<const N: usize>() -> Result<[u8; N], ApiError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes)
        .map_err(|e| ApiError::new(ErrorKind::Internal, "no randomness").detail(e.to_string()))?;
    Ok(bytes)
}

pub(super) fn cas_error(e: UpdateError<store::Error, ApiError>) -> ApiError {
    match e {
        UpdateError::Rejected(e) => e,
        UpdateError::Store(e) => storage(e),
        UpdateError::Contended => {
            ApiError::new(ErrorKind::Busy, "too many concurrent changes; try again")
        }
    }
}

fn kind_name(k: PrincipalKind) -> &'static str {
    match k {
        PrincipalKind::Human => "human",
        PrincipalKind::Workload => "workload",
        PrincipalKind::Agent => "agent",
    }
}

/// A principal as a sign-in keeps it.
pub(super) fn principal_to_json(p: &Principal) -> Value {
    json!({
        "kind": kind_name(p.kind),
        "issuer": p.issuer,
        "subject": p.subject,
        "email": p.email,
        "name": p.name,
        "groups": p.groups,
        "claims": serde_json::from_str::<Value>(&p.claims_json).unwrap_or_default(),
    })
}

pub(super) fn principal_from_json(v: &Value) -> Principal {
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    Principal {
        kind: match v.get("kind").and_then(Value::as_str) {
            Some("workload") => PrincipalKind::Workload,
            Some("agent") => PrincipalKind::Agent,
            _ => PrincipalKind::Human,
        },
        issuer: text("issuer").unwrap_or_default(),
        subject: text("subject").unwrap_or_default(),
        email: text("email"),
        name: text("name"),
        groups: v
            .get("groups")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|g| g.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
        claims_json: v
            .get("claims")
            .map(Value::to_string)
            .unwrap_or_else(|| "{}".into()),
    }
}

/// A device-flow error in GitHub's shape, recorded as the reason.
fn device_refusal(ctx: &mut Ctx, e: DeviceError, interval: Option<u64>) -> Reply {
    ctx.trace.reason = Some(e.code().to_string());
    Reply::Json(e.status(), e.body(interval))
}

fn params(ctx: &Ctx, request: &IncomingRequest) -> Result<crate::routes::Query, ApiError> {
    let body = read_request_body(request, MAX_API_BODY)?;
    Ok(oauth_params(
        &ctx.path,
        ctx.header("content-type").as_deref(),
        &body,
    ))
}

/// `POST /login/device/code`: a fresh device code and the user code the
/// person types on the gateway's page.
pub(super) fn device_code(ctx: &mut Ctx, request: &IncomingRequest) -> Result<Reply, ApiError> {
    let params = params(ctx, request)?;
    let ask = match code_ask(&params) {
        Ok(a) => a,
        Err(e) => return Ok(device_refusal(ctx, e, None)),
    };
    let bucket = bucket()?;
    let now = now();
    let device_code = random_hex(20);
    // A user code still in use is never handed out twice.
    let mut user_code = None;
    for _ in 0..4 {
        let candidate = user_code_from(&random_bytes::<8>()?);
        if bucket
            .get(&user_code_key(&candidate))
            .map_err(storage)?
            .is_none()
        {
            user_code = Some(candidate);
            break;
        }
    }
    let user_code =
        user_code.ok_or_else(|| ApiError::new(ErrorKind::Busy, "no free user code; try again"))?;
    let mut grant = DeviceGrant::new(ask, user_code.clone(), now);
    grant.writer = random_hex(8);
    bucket
        .set(&device_key(&device_code), &encode(&grant)?)
        .map_err(storage)?;
    bucket
        .set(
            &user_code_key(&user_code),
            device_key(&device_code).as_bytes(),
        )
        .map_err(storage)?;
    let verification_uri = format!("{}/login/device", settings().public_url());
    Ok(Reply::Json(
        200,
        code_answer(&grant, &device_code, &verification_uri, now),
    ))
}

/// `POST /login/oauth/access_token`: pending until a person takes the code,
/// then one credential, once.
pub(super) fn device_token(ctx: &mut Ctx, request: &IncomingRequest) -> Result<Reply, ApiError> {
    let params = params(ctx, request)?;
    let device_code = match poll_ask(&params) {
        Ok(c) => c,
        Err(e) => return Ok(device_refusal(ctx, e, None)),
    };
    let bucket = bucket()?;
    let now = now();
    let writer = random_hex(8);
    enum Polled {
        Refused(DeviceError, u64),
        Redeemed(Value, DeviceGrant),
    }
    let polled = update(
        &KvCas(&bucket),
        &device_key(&device_code),
        CAS_ATTEMPTS,
        |current| {
            let Some(bytes) = current else {
                return Ok(Step::AlreadyApplied(Polled::Refused(
                    DeviceError::InvalidGrant,
                    0,
                )));
            };
            let grant: DeviceGrant = serde_json::from_slice(bytes).map_err(corrupt)?;
            match poll(&grant, now) {
                Poll::Final(e) => Ok(Step::AlreadyApplied(Polled::Refused(e, grant.interval))),
                Poll::Refuse(e, mut next) => {
                    next.writer = writer.clone();
                    let interval = next.interval;
                    Ok(Step::Write(encode(&next)?, Polled::Refused(e, interval)))
                }
                Poll::Redeem {
                    principal,
                    mut next,
                } => {
                    next.writer = writer.clone();
                    Ok(Step::Write(
                        encode(&next)?,
                        Polled::Redeemed(principal, next),
                    ))
                }
            }
        },
    )
    .map_err(cas_error)?;
    let (principal, grant) = match polled {
        Polled::Refused(e, interval) => {
            let interval = (e == DeviceError::SlowDown).then_some(interval);
            return Ok(device_refusal(ctx, e, interval));
        }
        Polled::Redeemed(p, g) => (p, g),
    };
    ctx.trace.principal = Some(principal_from_json(&principal));
    // The page's code is spent with it.
    let _ = bucket.delete(&user_code_key(&grant.user_code));
    let credential = issue_credential(ctx, &bucket, principal, &grant, now)?;
    Ok(Reply::Json(
        200,
        json!({"access_token": credential, "token_type": "bearer", "scope": grant.scope}),
    ))
}

/// Stores a new sign-in (only its hash) and lists it among the person's
/// devices; the oldest beyond the bound end.
fn issue_credential(
    ctx: &mut Ctx,
    bucket: &Bucket,
    principal: Value,
    grant: &DeviceGrant,
    now: u64,
) -> Result<String, ApiError> {
    let credential = credential_from(&random_bytes::<CREDENTIAL_CHARS>()?);
    let hash = credential_hash(&credential);
    let record = SignIn {
        principal: principal.clone(),
        client_id: grant.client_id.clone(),
        scope: grant.scope.clone(),
        created_at: now,
        expires_at: now + settings().signin_ttl_secs(),
    };
    bucket
        .set(&signin_key(&hash), &encode(&record)?)
        .map_err(storage)?;
    ctx.trace.token_id = Some(format!("signin:{}", short_id(&hash)));
    let who = principal_from_json(&principal);
    let entry = SignInEntry {
        hash,
        client_id: record.client_id.clone(),
        created_at: now,
        expires_at: record.expires_at,
    };
    let dropped = update_index(bucket, &who, |index| Ok(index.add(entry.clone(), now)))?;
    for hash in dropped {
        let _ = bucket.delete(&signin_key(&hash));
    }
    Ok(credential)
}

fn update_index<T>(
    bucket: &Bucket,
    who: &Principal,
    change: impl Fn(&mut SignInIndex) -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    let key = signins_of_key(&copilot_jit_common::person_key(&who.issuer, &who.subject));
    let writer = random_hex(8);
    update(&KvCas(bucket), &key, CAS_ATTEMPTS, |current| {
        let mut index: SignInIndex = match current {
            Some(bytes) => serde_json::from_slice(bytes).map_err(corrupt)?,
            None => SignInIndex::default(),
        };
        let answer = change(&mut index)?;
        index.w = writer.clone();
        Ok(Step::Write(encode(&index)?, answer))
    })
    .map_err(cas_error)
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct BindAsk {
    user_code: String,
    /// Refuse the code instead (it was not you who started signing in).
    #[serde(default)]
    deny: bool,
}

/// `POST /v1/sign-in/device`: the caller (by their OIDC token) takes a user
/// code, as the page does after the IdP sign-in. A sign-in credential may
/// not: it would let one sign-in outlive itself through the next.
pub(super) fn bind_device(ctx: &mut Ctx, request: &IncomingRequest) -> Result<Reply, ApiError> {
    let principal = authenticate_oidc(ctx)?;
    // A pipeline's token names a run, not a person at a device.
    if principal.kind == PrincipalKind::Workload {
        return Err(ApiError::new(
            ErrorKind::Forbidden,
            "pipelines exchange their own tokens; only people sign devices in",
        ));
    }
    let body = read_request_body(request, MAX_API_BODY)?;
    let ask: BindAsk = parse_json(&body)?;
    let grant = bind_user_code(&principal, &ask.user_code, !ask.deny)?;
    Ok(Reply::Json(
        200,
        json!({
            "status": if ask.deny { "denied" } else { "signed_in" },
            "user_code": grant.user_code,
            "client": signin::client_name(&grant.client_id),
            "client_id": grant.client_id,
        }),
    ))
}

/// The person takes (or refuses) the device code behind `typed`: once, by
/// one person, before it expires.
pub(super) fn bind_user_code(
    principal: &Principal,
    typed: &str,
    allow: bool,
) -> Result<DeviceGrant, ApiError> {
    let unknown = || {
        ApiError::new(
            ErrorKind::NotFound,
            "no such code; check the code your device shows",
        )
        .with(json!({"field": "user_code"}))
    };
    let user_code = normalize_user_code(typed).ok_or_else(unknown)?;
    let bucket = bucket()?;
    let device = bucket
        .get(&user_code_key(&user_code))
        .map_err(storage)?
        .and_then(|k| String::from_utf8(k).ok())
        .ok_or_else(unknown)?;
    let now = now();
    let writer = random_hex(8);
    let stored = allow.then(|| principal_to_json(principal));
    update(&KvCas(&bucket), &device, CAS_ATTEMPTS, |current| {
        let grant: DeviceGrant =
            serde_json::from_slice(current.ok_or_else(unknown)?).map_err(corrupt)?;
        let mut next = bind(&grant, stored.clone(), now).map_err(|r| {
            let kind = match r {
                BindRefusal::Expired => ErrorKind::InvalidState,
                BindRefusal::AlreadyUsed => ErrorKind::InvalidState,
            };
            ApiError::new(kind, r.message())
        })?;
        next.writer = writer.clone();
        Ok(Step::Write(encode(&next)?, next))
    })
    .map_err(cas_error)
}

/// The live sign-in behind a presented credential: one read, no write.
pub(super) fn signed_in(ctx: &mut Ctx, presented: &str) -> Result<(String, SignIn), ApiError> {
    let refused = |message: &str| {
        ApiError::new(ErrorKind::InvalidGatewayToken, message.to_string())
            .with(json!({"sign_in": format!("{}/login/device", settings().public_url())}))
    };
    if !signin::is_credential(presented) {
        return Err(refused("this credential was not issued by the gateway"));
    }
    let hash = credential_hash(presented);
    ctx.trace.token_id = Some(format!("signin:{}", short_id(&hash)));
    let record = bucket()?
        .get(&signin_key(&hash))
        .map_err(storage)?
        .ok_or_else(|| refused("this sign-in has ended; sign in again"))?;
    let record: SignIn = serde_json::from_slice(&record).map_err(corrupt)?;
    ctx.trace.principal = Some(principal_from_json(&record.principal));
    if !record.live(now()) {
        return Err(refused("this sign-in has expired; sign in again"));
    }
    Ok((hash, record))
}

/// The person's active grant for `scope` (for no scope: chat if they have
/// it, else any), looked up now: approval after sign-in counts at once,
/// revocation too.
pub(super) fn authorize_signed_in(
    ctx: &mut Ctx,
    presented: &str,
    scope: Option<&str>,
) -> Result<Authorized, ApiError> {
    let (hash, record) = signed_in(ctx, presented)?;
    let who = principal_from_json(&record.principal);
    let grant = match scope {
        Some(s) => active_grant(&who, s)?,
        None => match active_grant(&who, "chat")? {
            Some(g) => Some(g),
            None => active_grant(&who, "")?,
        },
    };
    let Some(grant) = grant else {
        let (message, body) = access_needed(scope, &settings().public_url());
        return Err(ApiError::new(ErrorKind::GrantNotActive, message.clone())
            .detail(format!(
                "signed in, no active grant for {}",
                scope.unwrap_or("any scope")
            ))
            .in_copilot_shape(body));
    };
    ctx.trace.grant_id = Some(grant.id.clone());
    super::identity::groups_still_trusted(&grant)?;
    let claims = TokenClaims {
        token_id: format!("signin:{}", short_id(&hash)),
        grant_id: grant.id.clone(),
        subject: who.subject.clone(),
        issuer_of_subject: who.issuer.clone(),
        scopes: grant.scopes.clone(),
        models: grant.models.clone(),
        issued_at: record.created_at,
        expires_at: grant
            .expires_at
            .map_or(record.expires_at, |g| g.min(record.expires_at)),
    };
    Ok(Authorized { claims, grant })
}

fn active_grant(who: &Principal, scope: &str) -> Result<Option<AccessRequest>, ApiError> {
    grants::active_grant(&who.issuer, &who.subject, scope).map_err(store_error)
}

/// Who asks about sign-ins: a signed-in client, or a person by OIDC token.
pub(super) fn sign_in_owner(ctx: &mut Ctx) -> Result<(Principal, Option<String>), ApiError> {
    match ctx.bearer() {
        Some(b) if signin::looks_like_github_token(&b) => {
            let (hash, record) = signed_in(ctx, &b)?;
            Ok((principal_from_json(&record.principal), Some(hash)))
        }
        _ => Ok((authenticate(ctx)?, None)),
    }
}

/// `GET /v1/sign-ins`: the caller's signed-in devices, and who the gateway
/// takes the caller for (what `copilot-jit status` shows).
pub(super) fn list(ctx: &mut Ctx) -> Result<Reply, ApiError> {
    let (who, current) = sign_in_owner(ctx)?;
    Ok(Reply::Json(
        200,
        json!({
            "principal": {
                "kind": kind_name(who.kind),
                "issuer": who.issuer,
                "subject": who.subject,
                "email": who.email,
                "name": who.name,
                "groups": who.groups,
            },
            "sign_ins": devices(&who, current.as_deref())?,
        }),
    ))
}

/// The person's live sign-ins, newest first, as pages and the API show them.
pub(super) fn devices(who: &Principal, current: Option<&str>) -> Result<Vec<Value>, ApiError> {
    let key = signins_of_key(&copilot_jit_common::person_key(&who.issuer, &who.subject));
    let index: SignInIndex = match bucket()?.get(&key).map_err(storage)? {
        Some(bytes) => serde_json::from_slice(&bytes).map_err(corrupt)?,
        None => SignInIndex::default(),
    };
    let now = now();
    Ok(index
        .entries
        .iter()
        .rev()
        .filter(|e| e.expires_at > now)
        .map(|e| {
            json!({
                "id": short_id(&e.hash),
                "client": signin::client_name(&e.client_id),
                "client_id": e.client_id,
                "signed_in_at": e.created_at,
                "expires_at": e.expires_at,
                "current": current == Some(e.hash.as_str()),
            })
        })
        .collect())
}

/// `POST /v1/sign-ins/{id}/revoke`: ends one of the caller's sign-ins.
pub(super) fn revoke(ctx: &mut Ctx, id: &str) -> Result<Reply, ApiError> {
    let (who, _) = sign_in_owner(ctx)?;
    end_sign_in(ctx, &who, id)?;
    Ok(Reply::Json(200, json!({"revoked": id})))
}

/// Ends the person's sign-in `id`: its record goes, so the credential
/// opens nothing from the next call on.
pub(super) fn end_sign_in(ctx: &mut Ctx, who: &Principal, id: &str) -> Result<(), ApiError> {
    let bucket = bucket()?;
    let removed = update_index(&bucket, who, |index| {
        index
            .remove(id)
            .ok_or_else(|| ApiError::new(ErrorKind::NotFound, "no such sign-in"))
    })?;
    bucket.delete(&signin_key(&removed.hash)).map_err(storage)?;
    ctx.trace.token_id = Some(format!("signin:{}", short_id(&removed.hash)));
    Ok(())
}

/// What the device flow's page needs to know about a typed code.
pub(super) fn pending_code(typed: &str) -> Option<DeviceGrant> {
    let user_code = normalize_user_code(typed)?;
    let bucket = bucket().ok()?;
    let device = bucket.get(&user_code_key(&user_code)).ok()??;
    let bytes = bucket.get(std::str::from_utf8(&device).ok()?).ok()??;
    let grant: DeviceGrant = serde_json::from_slice(&bytes).ok()?;
    (grant.state == device_flow::DeviceState::Pending && !grant.expired(now())).then_some(grant)
}
