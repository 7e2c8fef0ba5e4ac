//! Asking for access and living with it: `request` (and `--wait`),
//! `renew`, `revoke`. The policy answers at once; approvers decide the rest.

use std::process::ExitCode;
use std::time::Duration;

use serde_json::{json, Value};

use crate::args::{list, parse, Spec};
use crate::context::{signed_in, Session};
use crate::error::{CliError, Exit, Result};
use crate::output::{duration_text, now, print_json, Progress, Style};
use crate::session::{approvals_so_far, is_active_grant, list_text, my_requests, whoami};

const POLL: Duration = Duration::from_secs(2);

pub const REQUEST: Spec = Spec {
    command: "request",
    values: &[
        "--scopes",
        "--models",
        "--duration",
        "--reason",
        "--repository",
    ],
    switches: &["--wait"],
    aliases: &[("-s", "--scopes"), ("-r", "--reason"), ("-d", "--duration")],
    positionals: &[],
};

pub const RENEW: Spec = Spec {
    command: "renew",
    values: &["--duration", "--reason"],
    switches: &["--wait"],
    aliases: &[("-r", "--reason"), ("-d", "--duration")],
    positionals: &["ID"],
};

pub const REVOKE: Spec = Spec {
    command: "revoke",
    values: &["--message"],
    switches: &[],
    aliases: &[("-m", "--message")],
    positionals: &["ID"],
};

/// `2h`, `90m`, `45s` or plain seconds, checked before the gateway sees it.
fn check_duration(text: &str) -> Result<()> {
    let digits = text.trim_end_matches(['h', 'm', 's']);
    let unit_ok = text.len() - digits.len() <= 1;
    if digits.is_empty() || !unit_ok || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CliError::usage(format!(
            "--duration {text:?}: give it as 2h, 90m, 45s or seconds"
        )));
    }
    Ok(())
}

fn id_of(r: &Value) -> &str {
    r["id"].as_str().unwrap_or_default()
}

/// What the policy made of a request, in one line.
pub fn describe(r: &Value, style: Style) -> String {
    let id = id_of(r);
    let scopes = list_text(&r["scopes"]);
    let policies = list_text(&r["policy_ids"]);
    let now = now();
    match r["status"].as_str().unwrap_or_default() {
        "approved" => {
            let left = r["expires_at"].as_u64().unwrap_or(now).saturating_sub(now);
            let how = if r["decisions"].as_array().is_some_and(|d| d.is_empty()) {
                format!("approved at once under {policies}")
            } else {
                "approved".to_string()
            };
            format!(
                "{} {id}: {} — {scopes} for {}",
                style.green("✓"),
                style.green(&how),
                duration_text(left)
            )
        }
        "pending" => format!(
            "{} {id}: {} — needs {} of {} approval(s) from {} under {policies}; an approver runs `copilot-jit approve {id}`",
            style.yellow("…"),
            style.yellow("pending"),
            r["required_approvals"].as_u64().unwrap_or(1).saturating_sub(approvals_so_far(r) as u64),
            r["required_approvals"],
            list_text(&r["approver_groups"]),
        ),
        other => {
            let why = r["decisions"]
                .as_array()
                .and_then(|d| d.iter().rev().find(|d| d["kind"] != "approve"))
                .map(|d| {
                    format!(
                        " by {}{}",
                        d["by"].as_str().unwrap_or("?"),
                        d["comment"]
                            .as_str()
                            .filter(|c| !c.is_empty())
                            .map(|c| format!(": {c:?}"))
                            .unwrap_or_default()
                    )
                })
                .unwrap_or_default();
            format!("{} {id}: {}{why}", style.red("✗"), style.red(other))
        }
    }
}

/// The exit status a decided request ends a `--wait` with.
fn outcome(r: &Value) -> ExitCode {
    match r["status"].as_str() {
        Some("approved") => ExitCode::SUCCESS,
        _ => ExitCode::from(Exit::Denied as u8),
    }
}

/// Follows request `id` until it is decided, with live progress on stderr.
fn wait_for(session: &Session, id: &str, json: bool) -> Result<Value> {
    let mut progress = Progress::new(&format!("Waiting for a decision on {id}…"), json);
    loop {
        let current = match session.gateway.get(&format!("/v1/access-requests/{id}")) {
            Ok(v) => v["request"].clone(),
            Err(e) => {
                progress.finish();
                return Err(e);
            }
        };
        if current["status"] != "pending" {
            progress.finish();
            return Ok(current);
        }
        let now = now();
        let expires = current["pending_expires_at"]
            .as_u64()
            .map(|t| {
                format!(
                    "; the request expires in {}",
                    duration_text(t.saturating_sub(now))
                )
            })
            .unwrap_or_default();
        progress.say(
            &format!(
                "Waiting for approval of {id}: {} of {} from {}{expires}",
                approvals_so_far(&current),
                current["required_approvals"],
                list_text(&current["approver_groups"]),
            ),
            json,
        );
        std::thread::sleep(POLL);
    }
}

/// Shows a request the gateway just created, and follows it with `--wait`.
fn answered(session: &Session, created: Value, wait: bool, json: bool) -> Result<ExitCode> {
    let style = Style::detect();
    let request = created["request"].clone();
    if !wait || request["status"] != "pending" {
        if json {
            print_json(&json!({"request": request}));
        } else {
            println!("{}", describe(&request, style));
        }
        return Ok(match request["status"].as_str() {
            Some("approved" | "pending") => ExitCode::SUCCESS,
            _ => outcome(&request),
        });
    }
    if !json {
        eprintln!("{}", describe(&request, style));
    }
    let decided = wait_for(session, id_of(&request), json)?;
    if json {
        print_json(&json!({"request": decided}));
    } else {
        println!("{}", describe(&decided, style));
    }
    Ok(outcome(&decided))
}

/// `copilot-jit request --scopes … --reason … [--models …] [--duration 2h]
/// [--repository …] [--wait]`.
pub fn request(args: &[String]) -> Result<ExitCode> {
    let p = parse(args, &REQUEST)?;
    let scopes = list(p.required("--scopes", "request")?);
    if scopes.is_empty() {
        return Err(CliError::usage(
            "--scopes names at least one scope (chat, completions, models, embeddings)",
        ));
    }
    let reason = p.required("--reason", "request")?;
    let mut body = json!({"scopes": scopes, "reason": reason});
    if let Some(models) = p.value("--models") {
        body["models"] = json!(list(models));
    }
    if let Some(d) = p.value("--duration") {
        check_duration(d)?;
        body["duration"] = json!(d);
    }
    if let Some(repo) = p.value("--repository") {
        body["repository"] = json!(repo);
    }
    let session = signed_in(&p)?;
    let created = session.gateway.post("/v1/access-requests", &body)?;
    answered(&session, created, p.switch("--wait"), p.json())
}

/// The caller's active grants, for `renew` and `revoke` without an ID.
fn my_active_grants(session: &Session) -> Result<Vec<Value>> {
    let me = whoami(session)?;
    let now = now();
    Ok(my_requests(session, &me["principal"])?
        .into_iter()
        .filter(|r| is_active_grant(r, now))
        .collect())
}

/// `copilot-jit renew [ID] [--duration …] [--reason …] [--wait]`.
pub fn renew(args: &[String]) -> Result<ExitCode> {
    let p = parse(args, &RENEW)?;
    let session = signed_in(&p)?;
    let id = match p.positional(0) {
        Some(id) => id.to_string(),
        None => {
            let grants = my_active_grants(&session)?;
            match grants.as_slice() {
                [one] => id_of(one).to_string(),
                [] => {
                    return Err(CliError::new(
                        Exit::Refused,
                        "no_active_grant",
                        "no active grant to renew: copilot-jit request --scopes … --reason …",
                    ))
                }
                many => {
                    let ids: Vec<&str> = many.iter().map(id_of).collect();
                    return Err(CliError::usage(format!(
                        "several active grants: name one ({})",
                        ids.join(", ")
                    )));
                }
            }
        }
    };
    let mut body = json!({});
    if let Some(d) = p.value("--duration") {
        check_duration(d)?;
        body["duration"] = json!(d);
    }
    if let Some(r) = p.value("--reason") {
        body["reason"] = json!(r);
    }
    let created = session
        .gateway
        .post(&format!("/v1/grants/{id}/renew"), &body)?;
    answered(&session, created, p.switch("--wait"), p.json())
}

/// `copilot-jit revoke [ID] [-m …]`: without an ID, every active grant of
/// the caller's.
pub fn revoke(args: &[String]) -> Result<ExitCode> {
    let p = parse(args, &REVOKE)?;
    let session = signed_in(&p)?;
    let ids: Vec<String> = match p.positional(0) {
        Some(id) => vec![id.to_string()],
        None => my_active_grants(&session)?
            .iter()
            .map(|g| id_of(g).to_string())
            .collect(),
    };
    if ids.is_empty() {
        return Err(CliError::new(
            Exit::Refused,
            "no_active_grant",
            "no active grant to revoke",
        ));
    }
    let comment = p.value("--message").unwrap_or_default();
    let style = Style::detect();
    let mut revoked = Vec::new();
    for id in &ids {
        let answer = session.gateway.post(
            &format!("/v1/grants/{id}/revoke"),
            &json!({"comment": comment}),
        )?;
        if !p.json() {
            println!(
                "{} {id}: revoked; it opens nothing from now on",
                style.red("✗")
            );
        }
        revoked.push(answer["request"].clone());
    }
    if p.json() {
        print_json(&json!({"revoked": revoked}));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_checked_before_sending() {
        for ok in ["2h", "90m", "45s", "900"] {
            assert!(check_duration(ok).is_ok(), "{ok}");
        }
        for bad in ["", "2 hours", "h", "2hh", "-1h"] {
            assert!(check_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_decided_request_says_who_and_why() {
        let r = json!({"id": "r1", "status": "denied", "scopes": ["chat"],
                       "decisions": [{"kind": "deny", "by": "bob", "comment": "not now"}]});
        assert_eq!(
            describe(&r, Style { color: false }),
            "✗ r1: denied by bob: \"not now\""
        );
        assert_eq!(outcome(&r), ExitCode::from(1));
    }
}
