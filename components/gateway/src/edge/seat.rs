//! Each person's own Copilot seat, its I/O: linking a GitHub account with
//! GitHub's device flow (the gateway as GitHub's client; one poll of GitHub
//! per page or API request, nothing runs in between), the vault records in
//! KV, the refresh of expiring GitHub tokens (one in flight per person, by a
//! lease taken with compare-and-swap), and the person's Copilot token per
//! call (cached, sealed, until `refresh_in`). Decisions are in `crate::seat`,
//! the cipher in `crate::vault`.

use copilot_jit_common::cas::{update, Step};
use copilot_jit_common::{person_key, unix_now as now};
use copilot_jit_wasi::http::{Method, Request};
use serde_json::{json, Value};

use super::copilot_jit::gateway::types::{Principal, PrincipalKind};
use super::signin::{bucket, cas_error, encode, sign_in_owner, storage, CAS_ATTEMPTS};
use super::wasi;
use super::wasi::keyvalue::store::Bucket;
use super::wasi_http::{random_hex, settings};
use super::{Ctx, Reply};
use crate::config::Upstream;
use crate::error::{ApiError, ErrorKind};
use crate::seat::{
    after_poll, copilot_key, device_code_answer, device_code_form, device_poll_form, github_user,
    link_key, login_key, pending_key, refresh_form, token_answer, CopilotCache, Due, GithubTokens,
    Lease, Link, LinkState, PendingLink, SeatProblem, TokenAnswer, LEASE_SECS, LINK_PAGE,
};
use crate::upstream_token::CachedToken;
use crate::vault::{Owner, Purpose, VaultKeys, NONCE_LEN};

copilot_jit_common::kv_cas_store!(KvCas);

/// Largest answer read from GitHub.
const MAX_GITHUB_ANSWER: usize = 256 * 1024;
const GITHUB_TIMEOUT_MS: u64 = 10_000;
/// While another caller refreshes an expired token: wait this long between
/// looks, this many times (longer than a lease).
const WAIT_STEP_MS: u64 = 100;
const WAIT_ROUNDS: u32 = 250;

fn owner(who: &Principal) -> Owner<'_> {
    Owner {
        issuer: &who.issuer,
        subject: &who.subject,
    }
}

fn pk(who: &Principal) -> String {
    person_key(&who.issuer, &who.subject)
}

fn nonce() -> Result<[u8; NONCE_LEN], ApiError> {
    let mut n = [0u8; NONCE_LEN];
    getrandom::fill(&mut n)
        .map_err(|e| ApiError::new(ErrorKind::Internal, "no randomness").detail(e.to_string()))?;
    Ok(n)
}

fn github_unavailable(detail: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        ErrorKind::UpstreamUnavailable,
        "GitHub could not be reached; try again shortly",
    )
    .detail(detail.to_string())
}

fn public_url() -> String {
    settings().public_url()
}

/// One request to GitHub; the status and the body (bounded).
fn github(
    method: Method,
    url: &str,
    authorization: Option<&str>,
    form: Option<&str>,
) -> Result<(u16, Vec<u8>), ApiError> {
    let mut request = Request::new(method, url)
        .map_err(github_unavailable)?
        .header("accept", "application/json")
        .header("user-agent", "copilot-jit/0.1")
        .timeout_ms(GITHUB_TIMEOUT_MS);
    if let Some(a) = authorization {
        request = request.header("authorization", a);
    }
    if form.is_some() {
        request = request.header("content-type", "application/x-www-form-urlencoded");
    }
    let response = request
        .send(form.map(str::as_bytes))
        .map_err(github_unavailable)?;
    let status = response.status();
    let body = response
        .read_body(MAX_GITHUB_ANSWER)
        .map_err(github_unavailable)?;
    Ok((status, body))
}

fn token_endpoint() -> String {
    format!(
        "{}/login/oauth/access_token",
        settings().upstream(Upstream::GitHubWeb)
    )
}

fn read<T: for<'de> serde::Deserialize<'de>>(
    bucket: &Bucket,
    key: &str,
) -> Result<Option<T>, ApiError> {
    match bucket.get(key).map_err(storage)? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            ApiError::new(
                ErrorKind::StorageUnavailable,
                "a stored record is unreadable",
            )
            .detail(e.to_string())
        }),
    }
}

// ---- per call ----------------------------------------------------------------

/// The Copilot token of the person's own seat, and its GitHub login: the
/// cached one while fresh (one KV read, no write), else exchanged with their
/// GitHub token (refreshed first when it expires). `force_refresh`: upstream
/// refused the cached one.
pub(super) fn copilot_token(
    who: &Principal,
    force_refresh: bool,
) -> Result<(String, String), ApiError> {
    let bucket = bucket()?;
    let keys = settings().vault_keys()?;
    let pk = pk(who);
    if !force_refresh {
        if let Some(cache) = read::<CopilotCache>(&bucket, &copilot_key(&pk))
            .ok()
            .flatten()
        {
            if cache.is_fresh(now()) {
                // A cache that does not open (moved from another person's
                // key, altered) is not used: the link decides below.
                if let Ok(token) =
                    keys.open_json::<String>(Purpose::CopilotToken, owner(who), &cache.token)
                {
                    return Ok((token, cache.login));
                }
            }
        }
    }
    let mut tokens = usable_tokens(&bucket, &keys, who)?;
    let mut refreshed = false;
    loop {
        match exchange(&tokens.1.access_token)? {
            Exchanged::Token(entry) => {
                let login = tokens.0.login.clone();
                let cache = CopilotCache {
                    login: login.clone(),
                    refresh_at: entry.refresh_at,
                    token: keys.seal_json(
                        Purpose::CopilotToken,
                        owner(who),
                        &entry.token,
                        &nonce()?,
                    ),
                };
                // A failed cache write costs one more exchange later.
                let _ = bucket.set(&copilot_key(&pk), &encode(&cache)?);
                return Ok((entry.token.clone(), login));
            }
            Exchanged::NoSeat => {
                return Err(SeatProblem::NoCopilotSeat {
                    login: tokens.0.login,
                }
                .error(&public_url()))
            }
            // GitHub no longer takes the token before its time (revoked,
            // rotated elsewhere): refresh once if possible, else the link
            // is broken.
            Exchanged::Unauthorized if !refreshed && tokens.1.can_refresh(now()) => {
                refreshed = true;
                tokens = refresh_now(&bucket, &keys, who, tokens)?;
            }
            Exchanged::Unauthorized => {
                let reason = "GitHub refused the linked token (revoked or expired)";
                break_link(&bucket, who, reason)?;
                return Err(SeatProblem::Broken {
                    login: tokens.0.login,
                    reason: reason.into(),
                }
                .error(&public_url()));
            }
        }
    }
}

enum Exchanged {
    Token(CachedToken),
    Unauthorized,
    NoSeat,
}

/// GitHub token → Copilot token (`/copilot_internal/v2/token`).
fn exchange(github_token: &str) -> Result<Exchanged, ApiError> {
    let url = format!(
        "{}/copilot_internal/v2/token",
        settings().upstream(Upstream::GitHubApi)
    );
    let (status, body) = github(
        Method::Get,
        &url,
        Some(&format!("token {github_token}")),
        None,
    )?;
    match status {
        200 => CachedToken::from_envelope(&body, now())
            .map(Exchanged::Token)
            .map_err(github_unavailable),
        401 => Ok(Exchanged::Unauthorized),
        403 | 404 => Ok(Exchanged::NoSeat),
        s => Err(github_unavailable(format!("token endpoint answered {s}"))),
    }
}

fn open_tokens(keys: &VaultKeys, who: &Principal, link: &Link) -> Result<GithubTokens, ApiError> {
    keys.open_json(Purpose::GithubTokens, owner(who), &link.tokens)
        .map_err(|e| SeatProblem::Unreadable(e.to_string()).error(&public_url()))
}

/// The person's link and GitHub tokens, good for the exchange: refreshed
/// first when due (by whoever takes the lease; the others go on with a
/// token still good, or wait for the refresh when it has expired).
fn usable_tokens(
    bucket: &Bucket,
    keys: &VaultKeys,
    who: &Principal,
) -> Result<(Link, GithubTokens), ApiError> {
    let me = random_hex(8);
    let key = link_key(&pk(who));
    for _ in 0..WAIT_ROUNDS {
        let now = now();
        let link: Link =
            read(bucket, &key)?.ok_or_else(|| SeatProblem::NotLinked.error(&public_url()))?;
        if link.state == LinkState::Broken {
            return Err(SeatProblem::Broken {
                login: link.login.clone(),
                reason: link.broken_reason.clone().unwrap_or_default(),
            }
            .error(&public_url()));
        }
        let tokens = open_tokens(keys, who, &link)?;
        let busy = link.lease_held_by_other(&me, now);
        match (tokens.due(now), busy) {
            (Due::Fresh, _) | (Due::RefreshAhead, true) => return Ok((link, tokens)),
            (Due::Expired, true) => {
                std::thread::sleep(std::time::Duration::from_millis(WAIT_STEP_MS));
                continue;
            }
            (due, false) => {
                if !tokens.can_refresh(now) {
                    if due == Due::RefreshAhead {
                        return Ok((link, tokens));
                    }
                    let reason = "the GitHub token expired and cannot be refreshed";
                    break_link(bucket, who, reason)?;
                    return Err(SeatProblem::Broken {
                        login: link.login,
                        reason: reason.into(),
                    }
                    .error(&public_url()));
                }
                if take_lease(bucket, &key, &me)? {
                    return refresh(bucket, keys, who, &me);
                }
            }
        }
    }
    Err(ApiError::new(
        ErrorKind::Busy,
        "your GitHub token is being refreshed; try again",
    ))
}

/// Takes the refresh lease; false when another caller holds it.
fn take_lease(bucket: &Bucket, key: &str, me: &str) -> Result<bool, ApiError> {
    let now = now();
    let writer = format!("{me}-{}", random_hex(4));
    update(&KvCas(bucket), key, CAS_ATTEMPTS, |current| {
        let Some(bytes) = current else {
            return Err(SeatProblem::NotLinked.error(&public_url()));
        };
        let mut link: Link = serde_json::from_slice(bytes)
            .map_err(|e| SeatProblem::Unreadable(e.to_string()).error(&public_url()))?;
        if link.lease.as_ref().is_some_and(|l| l.by == me) {
            return Ok(Step::AlreadyApplied(true));
        }
        if link.lease_held_by_other(me, now) || link.state != LinkState::Linked {
            return Ok(Step::AlreadyApplied(false));
        }
        link.lease = Some(Lease {
            by: me.to_string(),
            until: now + LEASE_SECS,
        });
        link.w = writer.clone();
        Ok(Step::Write(encode(&link)?, true))
    })
    .map_err(cas_error)
}

/// A refresh after upstream refused the token before its time: the lease
/// first, as for an expiry.
fn refresh_now(
    bucket: &Bucket,
    keys: &VaultKeys,
    who: &Principal,
    current: (Link, GithubTokens),
) -> Result<(Link, GithubTokens), ApiError> {
    let me = random_hex(8);
    if take_lease(bucket, &link_key(&pk(who)), &me)? {
        return refresh(bucket, keys, who, &me);
    }
    // Someone else refreshes: their result, once it is there.
    for _ in 0..WAIT_ROUNDS {
        std::thread::sleep(std::time::Duration::from_millis(WAIT_STEP_MS));
        let link: Link = read(bucket, &link_key(&pk(who)))?
            .ok_or_else(|| SeatProblem::NotLinked.error(&public_url()))?;
        if link.lease.is_none() || link.tokens != current.0.tokens {
            let tokens = open_tokens(keys, who, &link)?;
            return Ok((link, tokens));
        }
    }
    Err(ApiError::new(
        ErrorKind::Busy,
        "your GitHub token is being refreshed; try again",
    ))
}

/// With the lease held: GitHub's `refresh_token` grant (the refresh token
/// rotates), the new tokens sealed into the link. A refusal breaks the link.
fn refresh(
    bucket: &Bucket,
    keys: &VaultKeys,
    who: &Principal,
    me: &str,
) -> Result<(Link, GithubTokens), ApiError> {
    let key = link_key(&pk(who));
    let link: Link =
        read(bucket, &key)?.ok_or_else(|| SeatProblem::NotLinked.error(&public_url()))?;
    let tokens = open_tokens(keys, who, &link)?;
    let settings = settings();
    let form = refresh_form(
        &settings.github_client_id(),
        settings.github_client_secret().as_deref(),
        tokens.refresh_token.as_deref().unwrap_or(""),
    );
    drop(tokens);
    let answered = github(Method::Post, &token_endpoint(), None, Some(&form));
    let (status, body) = match answered {
        Ok(a) => a,
        Err(e) => {
            // GitHub unreachable: the link stays as it is; the lease ends.
            let _ = release_lease(bucket, &key, me);
            return Err(e);
        }
    };
    let now = now();
    match token_answer(status, &body, now) {
        TokenAnswer::Tokens(new) => {
            let sealed = keys.seal_json(Purpose::GithubTokens, owner(who), &new, &nonce()?);
            let written = update(&KvCas(bucket), &key, CAS_ATTEMPTS, |current| {
                let Some(bytes) = current else {
                    // Unlinked while refreshing: the new tokens are dropped.
                    return Err(SeatProblem::NotLinked.error(&public_url()));
                };
                let mut link: Link = serde_json::from_slice(bytes)
                    .map_err(|e| SeatProblem::Unreadable(e.to_string()).error(&public_url()))?;
                link.tokens = sealed.clone();
                link.lease = None;
                link.refreshed_at = Some(now);
                link.w = random_hex(8);
                Ok(Step::Write(encode(&link)?, link))
            })
            .map_err(cas_error)?;
            Ok((written, new))
        }
        refused => {
            let code = match refused {
                TokenAnswer::Refused(code) => code,
                other => format!("{other:?}").to_lowercase(),
            };
            let reason = format!("GitHub refused to refresh the token ({code})");
            break_link(bucket, who, &reason)?;
            Err(SeatProblem::Broken {
                login: link.login,
                reason,
            }
            .error(&public_url()))
        }
    }
}

fn release_lease(bucket: &Bucket, key: &str, me: &str) -> Result<(), ApiError> {
    update(&KvCas(bucket), key, CAS_ATTEMPTS, |current| {
        let Some(bytes) = current else {
            return Ok(Step::AlreadyApplied(()));
        };
        let mut link: Link = serde_json::from_slice(bytes)
            .map_err(|e| SeatProblem::Unreadable(e.to_string()).error(&public_url()))?;
        if link.lease.as_ref().is_none_or(|l| l.by != me) {
            return Ok(Step::AlreadyApplied(()));
        }
        link.lease = None;
        link.w = random_hex(8);
        Ok(Step::Write(encode(&link)?, ()))
    })
    .map_err(cas_error)
}

/// Marks the link broken (the next calls are told to link again) and drops
/// the cached Copilot token.
fn break_link(bucket: &Bucket, who: &Principal, reason: &str) -> Result<(), ApiError> {
    let now = now();
    let pk = pk(who);
    update(&KvCas(bucket), &link_key(&pk), CAS_ATTEMPTS, |current| {
        let Some(bytes) = current else {
            return Ok(Step::AlreadyApplied(()));
        };
        let mut link: Link = serde_json::from_slice(bytes)
            .map_err(|e| SeatProblem::Unreadable(e.to_string()).error(&public_url()))?;
        link.state = LinkState::Broken;
        link.broken_reason = Some(reason.to_string());
        link.broken_at = Some(now);
        link.lease = None;
        link.w = random_hex(8);
        Ok(Step::Write(encode(&link)?, ()))
    })
    .map_err(cas_error)?;
    eprintln!("own seat of person {pk}: link broken: {reason}");
    bucket.delete(&copilot_key(&pk)).map_err(storage)
}

/// What stands in the way of the person's own seat, from the link record
/// alone (no GitHub call): for the token envelope, so editors show it.
pub(super) fn seat_problem(who: &Principal) -> Result<Option<SeatProblem>, ApiError> {
    let link: Option<Link> = read(&bucket()?, &link_key(&pk(who)))?;
    Ok(match link {
        None => Some(SeatProblem::NotLinked),
        Some(l) if l.state == LinkState::Broken => Some(SeatProblem::Broken {
            login: l.login,
            reason: l.broken_reason.unwrap_or_default(),
        }),
        Some(_) => None,
    })
}

// ---- linking -----------------------------------------------------------------

/// What the API's GitHub link routes do.
pub(super) enum LinkAct {
    Status,
    Start,
    Unlink,
}

/// `GET|POST /v1/github/link`, `POST /v1/github/unlink`: for a person by
/// OIDC token or by their sign-in credential (the CLI).
pub(super) fn api(ctx: &mut Ctx, act: LinkAct) -> Result<Reply, ApiError> {
    let (who, _) = sign_in_owner(ctx)?;
    let answer = match act {
        LinkAct::Status => link_status(ctx, &who)?,
        LinkAct::Start => start_link(ctx, &who)?,
        LinkAct::Unlink => unlink(ctx, &who)?,
    };
    Ok(Reply::Json(200, answer))
}

fn refuse_pipelines(who: &Principal) -> Result<(), ApiError> {
    if who.kind == PrincipalKind::Workload {
        return Err(ApiError::new(
            ErrorKind::Forbidden,
            "pipelines have no GitHub account here: they use the shared seat",
        ));
    }
    Ok(())
}

/// Starts (or starts again) linking: GitHub's device code, its user code
/// for the person to enter at GitHub's verification page.
pub(super) fn start_link(ctx: &mut Ctx, who: &Principal) -> Result<Value, ApiError> {
    refuse_pipelines(who)?;
    let settings = settings();
    let keys = settings.vault_keys()?;
    let url = format!(
        "{}/login/device/code",
        settings.upstream(Upstream::GitHubWeb)
    );
    let form = device_code_form(&settings.github_client_id(), &settings.github_oauth_scope());
    let (status, body) = github(Method::Post, &url, None, Some(&form))?;
    let answer = device_code_answer(status, &body).map_err(|e| {
        ApiError::new(
            ErrorKind::UpstreamFailed,
            "GitHub did not start linking; try again",
        )
        .detail(e)
    })?;
    let now = now();
    let pending = PendingLink {
        user_code: answer.user_code.clone(),
        verification_uri: answer.verification_uri.clone(),
        expires_at: now + answer.expires_in,
        interval: answer.interval,
        next_poll_at: now + answer.interval,
        device_code: keys.seal_json(
            Purpose::DeviceCode,
            owner(who),
            &answer.device_code,
            &nonce()?,
        ),
        w: random_hex(8),
    };
    bucket()?
        .set(&pending_key(&pk(who)), &encode(&pending)?)
        .map_err(storage)?;
    ctx.trace.reason = Some("github link started".into());
    Ok(pending.status_json())
}

/// The person's link as it stands; while a link is pending and GitHub may
/// be asked again, one poll of GitHub (the page's and API's polling drive
/// it: nothing runs between requests).
pub(super) fn link_status(ctx: &mut Ctx, who: &Principal) -> Result<Value, ApiError> {
    let bucket = bucket()?;
    let pk = pk(who);
    let link: Option<Link> = read(&bucket, &link_key(&pk))?;
    if let Some(l) = &link {
        ctx.trace.upstream_login = Some(l.login.clone());
    }
    let current = || match &link {
        Some(l) => l.status_json(&public_url()),
        None => json!({"status": "none", "link_url": format!("{}{LINK_PAGE}", public_url())}),
    };
    let Some(pending) = read::<PendingLink>(&bucket, &pending_key(&pk))? else {
        return Ok(current());
    };
    let now = now();
    if pending.expired(now) {
        let _ = bucket.delete(&pending_key(&pk));
        let mut status = current();
        status["last_attempt"] = json!("expired");
        return Ok(status);
    }
    let mut answer = pending.status_json();
    if let Some(l) = &link {
        answer["current"] = l.status_json(&public_url());
    }
    if !pending.may_poll(now) || !claim_poll(&bucket, &pk, &pending, now)? {
        return Ok(answer);
    }
    let keys = settings().vault_keys()?;
    let device_code: String = keys
        .open_json(Purpose::DeviceCode, owner(who), &pending.device_code)
        .map_err(|e| SeatProblem::Unreadable(e.to_string()).error(&public_url()))?;
    let form = device_poll_form(&settings().github_client_id(), &device_code);
    drop(device_code);
    let (status, body) = github(Method::Post, &token_endpoint(), None, Some(&form))?;
    let polled = token_answer(status, &body, now);
    match polled {
        TokenAnswer::Tokens(tokens) => {
            let _ = bucket.delete(&pending_key(&pk));
            complete_link(ctx, &bucket, &keys, who, tokens)
        }
        TokenAnswer::Pending | TokenAnswer::SlowDown(_) => {
            if let Some(next) = after_poll(&pending, &polled, now) {
                let mut next = next;
                next.w = random_hex(8);
                let _ = bucket.set(&pending_key(&pk), &encode(&next)?);
                answer["interval"] = json!(next.interval);
            }
            Ok(answer)
        }
        TokenAnswer::Expired | TokenAnswer::Denied => {
            let _ = bucket.delete(&pending_key(&pk));
            let mut status = current();
            status["last_attempt"] = json!(if polled == TokenAnswer::Denied {
                "denied"
            } else {
                "expired"
            });
            ctx.trace.reason = Some(format!("github link {}", status["last_attempt"]));
            Ok(status)
        }
        TokenAnswer::Refused(code) => {
            let _ = bucket.delete(&pending_key(&pk));
            Err(ApiError::new(
                ErrorKind::UpstreamFailed,
                "GitHub refused the link; start again",
            )
            .detail(format!("device poll refused: {code}")))
        }
    }
}

/// One poll per interval, whoever polls: the next poll time is moved by
/// compare-and-swap first; only the caller who moved it asks GitHub.
fn claim_poll(bucket: &Bucket, pk: &str, seen: &PendingLink, now: u64) -> Result<bool, ApiError> {
    let writer = random_hex(8);
    update(&KvCas(bucket), &pending_key(pk), CAS_ATTEMPTS, |current| {
        let Some(bytes) = current else {
            return Ok(Step::AlreadyApplied(false));
        };
        let mut pending: PendingLink = match serde_json::from_slice(bytes) {
            Ok(p) => p,
            Err(_) => return Ok(Step::AlreadyApplied(false)),
        };
        if pending.device_code != seen.device_code || !pending.may_poll(now) {
            return Ok(Step::AlreadyApplied(false));
        }
        pending.next_poll_at = now + pending.interval;
        pending.w = writer.clone();
        Ok(Step::Write(encode(&pending)?, true))
    })
    .map_err(cas_error)
}

/// The person authorised on GitHub: their account (from `/user`) is linked
/// to them unless it is someone else's, and their tokens go into the vault.
fn complete_link(
    ctx: &mut Ctx,
    bucket: &Bucket,
    keys: &VaultKeys,
    who: &Principal,
    tokens: GithubTokens,
) -> Result<Value, ApiError> {
    let url = format!("{}/user", settings().upstream(Upstream::GitHubApi));
    let (status, body) = github(
        Method::Get,
        &url,
        Some(&format!("token {}", tokens.access_token)),
        None,
    )?;
    let (login, github_id) = github_user(&body)
        .filter(|_| status == 200)
        .ok_or_else(|| github_unavailable(format!("GET /user answered {status}")))?;
    ctx.trace.upstream_login = Some(login.clone());
    let pk = pk(who);
    let me = json!({"issuer": who.issuer, "subject": who.subject});
    let writer = random_hex(8);
    update(
        &KvCas(bucket),
        &login_key(github_id),
        CAS_ATTEMPTS,
        |current| {
            if let Some(bytes) = current {
                let owner: Value = serde_json::from_slice(bytes).unwrap_or(Value::Null);
                if owner["issuer"] == me["issuer"] && owner["subject"] == me["subject"] {
                    return Ok(Step::AlreadyApplied(()));
                }
                return Err(ApiError::new(
                    ErrorKind::Forbidden,
                    format!(
                        "the GitHub account {login} is already linked to someone else; sign in to GitHub as yourself and link again"
                    ),
                )
                .detail(format!("github account {login} ({github_id}) is linked to another person")));
            }
            let mut record = me.clone();
            record["w"] = json!(writer);
            Ok(Step::Write(encode(&record)?, ()))
        },
    )
    .map_err(cas_error)?;
    let previous: Option<Link> = read(bucket, &link_key(&pk))?;
    let now = now();
    let link = Link {
        login: login.clone(),
        github_id,
        linked_at: now,
        state: LinkState::Linked,
        broken_reason: None,
        broken_at: None,
        refreshed_at: None,
        tokens: keys.seal_json(Purpose::GithubTokens, owner(who), &tokens, &nonce()?),
        lease: None,
        w: random_hex(8),
    };
    bucket
        .set(&link_key(&pk), &encode(&link)?)
        .map_err(storage)?;
    let _ = bucket.delete(&copilot_key(&pk));
    // Another account linked before is freed for its owner.
    if let Some(old) = previous.filter(|p| p.github_id != github_id) {
        release_login(bucket, who, old.github_id);
    }
    ctx.trace.reason = Some(format!("github account {login} linked"));
    let mut answer = link.status_json(&public_url());
    // Whether the account has a seat, said at once rather than at the first call.
    match exchange(&tokens.access_token) {
        Ok(Exchanged::Token(entry)) => {
            let cache = CopilotCache {
                login,
                refresh_at: entry.refresh_at,
                token: keys.seal_json(Purpose::CopilotToken, owner(who), &entry.token, &nonce()?),
            };
            let _ = bucket.set(&copilot_key(&pk), &encode(&cache)?);
            answer["copilot_seat"] = json!(true);
        }
        Ok(Exchanged::NoSeat) => answer["copilot_seat"] = json!(false),
        _ => {}
    }
    Ok(answer)
}

fn release_login(bucket: &Bucket, who: &Principal, github_id: u64) {
    let key = login_key(github_id);
    let ours = bucket
        .get(&key)
        .ok()
        .flatten()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .is_some_and(|o| {
            o["issuer"] == who.issuer.as_str() && o["subject"] == who.subject.as_str()
        });
    if ours {
        let _ = bucket.delete(&key);
    }
}

/// Unlinks: the vault record, the cached Copilot token, a pending link and
/// the account's claim go. Upstream calls with the person's seat end at once.
pub(super) fn unlink(ctx: &mut Ctx, who: &Principal) -> Result<Value, ApiError> {
    let bucket = bucket()?;
    let pk = pk(who);
    let stored = bucket.get(&link_key(&pk)).map_err(storage)?;
    // An unreadable record is unlinked all the same.
    let link: Option<Link> = stored
        .as_deref()
        .and_then(|b| serde_json::from_slice(b).ok());
    let had_pending = bucket.get(&pending_key(&pk)).map_err(storage)?.is_some();
    if stored.is_none() && !had_pending {
        return Err(ApiError::new(
            ErrorKind::NotFound,
            "no GitHub account is linked",
        ));
    }
    bucket.delete(&link_key(&pk)).map_err(storage)?;
    bucket.delete(&copilot_key(&pk)).map_err(storage)?;
    bucket.delete(&pending_key(&pk)).map_err(storage)?;
    let login = link.as_ref().map(|l| l.login.clone());
    if let Some(l) = &link {
        release_login(&bucket, who, l.github_id);
    }
    ctx.trace.upstream_login = login.clone();
    Ok(json!({"status": "none", "unlinked": login}))
}
