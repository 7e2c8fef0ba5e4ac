//! The pages people use with a browser session: ask for access, the
//! approver's inbox, revoke and renew, signed-in devices. Every action goes
//! through the access API's own functions, so the same Cedar decisions and
//! the same audit record apply; every form carries the session's CSRF token.

use copilot_jit_wasi::http::types::IncomingRequest;
use serde_json::{json, Value};

use super::access_api::{create_with, decide_with, list_with, renew_with, revoke_with};
use super::signin::{devices, end_sign_in, principal_from_json};
use super::web_login::{check_csrf, display_name, form, start_login, web_session, PageAnswer};
use super::{Ctx, Reply};
use crate::error::ApiError;
use crate::pages;
use crate::routes::{Page, PageAct, Query, Verdict};

pub(super) fn page(
    ctx: &mut Ctx,
    request: &IncomingRequest,
    page: Page,
) -> Result<PageAnswer, ApiError> {
    let Some((_, session)) = web_session(ctx)? else {
        // Pages need a sign-in; a GET goes to the IdP and comes back here.
        let then = match &page {
            Page::Approvals => "/approvals",
            Page::Devices => "/login/devices",
            Page::GithubLink => "/github/link",
            _ => "/access",
        };
        return start_login(None, then);
    };
    let who = principal_from_json(&session.principal);
    let csrf = session.csrf.clone();
    let posted = || -> Result<Query, ApiError> {
        let f = form(request)?;
        check_csrf(f.get("csrf"), &csrf)?;
        Ok(f)
    };
    match page {
        Page::Access => access(&who, &csrf, None),
        Page::AccessPost => {
            let f = posted()?;
            let answer = match create_with(ctx, who.clone(), &ask_json(&f)) {
                Ok(reply) => answer_of(reply)
                    .get("request")
                    .map(|r| {
                        format!(
                            "Request {}: {}.",
                            r["id"].as_str().unwrap_or(""),
                            pages::status_line(r)
                        )
                    })
                    .unwrap_or_default(),
                Err(e) => {
                    ctx.trace.reason = Some(e.reason());
                    format!("Not requested: {}", e.message)
                }
            };
            access(&who, &csrf, Some(&answer))
        }
        Page::Act(id, act) => {
            let f = posted()?;
            let comment = f.get("comment").unwrap_or_default();
            let back = match act {
                PageAct::Approve | PageAct::Deny => "/approvals",
                PageAct::Revoke | PageAct::Renew => "/access",
            };
            let result = match act {
                PageAct::Approve => decide_with(ctx, who, &comment, &id, Verdict::Approve),
                PageAct::Deny => decide_with(ctx, who, &comment, &id, Verdict::Deny),
                PageAct::Revoke => revoke_with(ctx, who, &comment, &id),
                PageAct::Renew => renew_with(ctx, who, b"", &id),
            };
            result?;
            // An approver revoking from the inbox goes back there.
            let from_inbox = crate::routes::query_params(&ctx.path)
                .get("from")
                .as_deref()
                == Some("approvals");
            let back = if from_inbox { "/approvals" } else { back };
            Ok(PageAnswer::redirect(back.to_string()))
        }
        Page::Approvals => {
            let listed = answer_of(list_with(
                &who,
                &Query(vec![("limit".into(), "200".into())]),
            )?);
            let all = listed["requests"].as_array().cloned().unwrap_or_default();
            let mine = |r: &Value| {
                r["requester"]["subject"] == who.subject.as_str()
                    && r["requester"]["issuer"] == who.issuer.as_str()
            };
            let decidable: Vec<Value> = all
                .iter()
                .filter(|r| r["you_may_decide"] == true)
                .cloned()
                .collect();
            let active: Vec<Value> = all
                .iter()
                .filter(|r| r["status"] == "approved" && !mine(r))
                .cloned()
                .collect();
            Ok(PageAnswer::page(
                200,
                "Approvals",
                pages::approvals_page(&display_name(&who), &csrf, &decidable, &active),
            ))
        }
        Page::Devices => Ok(PageAnswer::page(
            200,
            "Signed-in devices",
            pages::devices_page(&display_name(&who), &csrf, &devices(&who, None)?),
        )),
        Page::GithubLink => github_page(ctx, &who, &csrf, None),
        Page::GithubLinkStart => {
            posted()?;
            let started = super::seat::start_link(ctx, &who)?;
            github_page(ctx, &who, &csrf, Some(started))
        }
        Page::GithubUnlink => {
            posted()?;
            super::seat::unlink(ctx, &who)?;
            Ok(PageAnswer::redirect("/github/link".into()))
        }
        Page::DeviceRevoke(id) => {
            posted()?;
            end_sign_in(ctx, &who, &id)?;
            Ok(PageAnswer::redirect("/login/devices".into()))
        }
        _ => Err(ApiError::new(
            crate::error::ErrorKind::NotFound,
            "no such page",
        )),
    }
}

/// The GitHub link page: the state (after one poll of GitHub while a link
/// is pending, unless `status` is the answer just given); it reloads itself
/// at GitHub's interval while pending.
fn github_page(
    ctx: &mut Ctx,
    who: &super::copilot_jit::gateway::types::Principal,
    csrf: &str,
    status: Option<Value>,
) -> Result<PageAnswer, ApiError> {
    let status = match status {
        Some(s) => s,
        None => super::seat::link_status(ctx, who)?,
    };
    let mut answer = PageAnswer::page(
        200,
        "Your GitHub account",
        pages::github_link_page(&display_name(who), csrf, &status),
    );
    if status["status"] == "pending" {
        answer.refresh = Some(status["interval"].as_u64().unwrap_or(5).clamp(1, 60) as u32);
    }
    Ok(answer)
}

/// The person's own page, with the policy's answer to what they just asked.
fn access(
    who: &super::copilot_jit::gateway::types::Principal,
    csrf: &str,
    notice: Option<&str>,
) -> Result<PageAnswer, ApiError> {
    let listed = answer_of(list_with(
        who,
        &Query(vec![("limit".into(), "100".into())]),
    )?);
    let own: Vec<Value> = listed["requests"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|r| {
                    r["requester"]["subject"] == who.subject.as_str()
                        && r["requester"]["issuer"] == who.issuer.as_str()
                })
                .rev()
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let mut answer = PageAnswer::page(
        200,
        "Copilot access",
        pages::access_page(&display_name(who), csrf, &own, notice),
    );
    // While something waits for approvers the page refreshes itself.
    if own.iter().any(|r| r["status"] == "pending") {
        answer.refresh = Some(10);
    }
    Ok(answer)
}

/// The JSON an access API function answered.
fn answer_of(reply: Reply) -> Value {
    match reply {
        Reply::Json(_, v) | Reply::JsonWithHeaders(_, v, _) => v,
        _ => Value::Null,
    }
}

/// The request form as the API's JSON ask.
fn ask_json(f: &Query) -> Vec<u8> {
    let scopes: Vec<&str> =
        f.0.iter()
            .filter(|(k, _)| k == "scope")
            .map(|(_, v)| v.as_str())
            .collect();
    let models: Vec<String> = f
        .get("models")
        .unwrap_or_default()
        .split(',')
        .map(|m| m.trim().to_string())
        .filter(|m| !m.is_empty())
        .collect();
    let mut ask = json!({
        "scopes": scopes,
        "models": models,
        "reason": f.get("reason").unwrap_or_default(),
        "duration": f.get("duration").unwrap_or_else(|| "1h".into()),
    });
    if let Some(repo) = f.get("repository").filter(|r| !r.trim().is_empty()) {
        ask["repository"] = json!(repo.trim());
    }
    ask.to_string().into_bytes()
}
