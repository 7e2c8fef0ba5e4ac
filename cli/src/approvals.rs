//! Approvers' commands: `approvals [--all] [--watch]`, `approve ID [-m …]`,
//! `deny ID -m …`.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use serde_json::{json, Value};

use crate::access::describe;
use crate::args::{parse, Spec};
use crate::context::{signed_in, Session};
use crate::error::{CliError, Result};
use crate::output::{clip, duration_text, now, print_json, table, Style};
use crate::session::{approvals_so_far, list_text, list_text_or};

const WATCH_EVERY: Duration = Duration::from_secs(2);

pub const APPROVALS: Spec = Spec {
    command: "approvals",
    values: &[],
    switches: &["--all", "--watch"],
    aliases: &[("-a", "--all"), ("-w", "--watch")],
    positionals: &[],
};

pub const APPROVE: Spec = Spec {
    command: "approve",
    values: &["--message"],
    switches: &[],
    aliases: &[("-m", "--message")],
    positionals: &["ID"],
};

pub const DENY: Spec = Spec {
    command: "deny",
    ..APPROVE
};

/// What the caller may decide (with `--all`, every request they may see),
/// oldest first.
fn inbox(session: &Session, all: bool) -> Result<Vec<Value>> {
    let path = if all {
        "/v1/access-requests?limit=500"
    } else {
        "/v1/access-requests?status=pending&limit=500"
    };
    let listed = session.gateway.get(path)?;
    let mut requests: Vec<Value> = listed["requests"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|r| all || r["you_may_decide"] == true)
        .collect();
    // The gateway lists newest first, in creation order within a second.
    requests.reverse();
    Ok(requests)
}

/// Why the policy sent it here, in words.
fn explanation(r: &Value) -> String {
    format!(
        "{} of {} from {} ({})",
        approvals_so_far(r),
        r["required_approvals"],
        list_text(&r["approver_groups"]),
        list_text(&r["policy_ids"])
    )
}

fn requester(r: &Value) -> String {
    r["requester"]["email"]
        .as_str()
        .or(r["requester"]["subject"].as_str())
        .unwrap_or("?")
        .to_string()
}

fn rows(requests: &[Value], all: bool, style: Style) -> (Vec<&'static str>, Vec<Vec<String>>) {
    let now = now();
    let mut headers = vec![
        "ID",
        "REQUESTER",
        "SCOPES",
        "MODELS",
        "REASON",
        "AGE",
        "POLICY",
    ];
    if all {
        headers.insert(1, "STATUS");
    }
    let rows = requests
        .iter()
        .map(|r| {
            let age = now.saturating_sub(r["created_at"].as_u64().unwrap_or(now));
            let mut row = vec![
                r["id"].as_str().unwrap_or_default().to_string(),
                requester(r),
                list_text(&r["scopes"]),
                list_text_or(&r["models"], "any"),
                clip(r["reason"].as_str().unwrap_or_default(), 40),
                duration_text(age),
                explanation(r),
            ];
            if all {
                row.insert(1, style.status(r["status"].as_str().unwrap_or_default()));
            }
            row
        })
        .collect();
    (headers, rows)
}

fn show(requests: &[Value], all: bool, json: bool) {
    if json {
        print_json(&json!({"requests": requests}));
        return;
    }
    if requests.is_empty() {
        println!("Nothing waits for your decision.");
        return;
    }
    let style = Style::detect();
    let (headers, rows) = rows(requests, all, style);
    println!("{}", table(&headers, &rows, style));
}

/// `copilot-jit approvals [--all] [--watch]`.
pub fn approvals(args: &[String]) -> Result<ExitCode> {
    let p = parse(args, &APPROVALS)?;
    let session = signed_in(&p)?;
    let all = p.switch("--all");
    if !p.switch("--watch") {
        show(&inbox(&session, all)?, all, p.json());
        return Ok(ExitCode::SUCCESS);
    }
    // On a terminal the table is redrawn; otherwise (and with --json) each
    // request is printed once, when it first appears.
    let redraw = !p.json() && std::io::stdout().is_terminal();
    let mut seen: Vec<String> = Vec::new();
    loop {
        let requests = inbox(&session, all)?;
        if redraw {
            print!("\x1b[2J\x1b[H");
            println!("Watching {} (Ctrl-C to stop)\n", session.gateway.url);
            show(&requests, all, false);
        } else {
            let style = Style::detect();
            for r in &requests {
                let id = r["id"].as_str().unwrap_or_default().to_string();
                if seen.contains(&id) {
                    continue;
                }
                if p.json() {
                    print_json(&json!({"event": "request", "request": r}));
                } else {
                    let (_, row) = rows(std::slice::from_ref(r), all, style);
                    println!("{}", row.concat().join("  "));
                }
                seen.push(id);
            }
        }
        std::thread::sleep(WATCH_EVERY);
    }
}

fn decide(args: &[String], spec: &Spec, verdict: &str) -> Result<ExitCode> {
    let p = parse(args, spec)?;
    let id = p
        .positional(0)
        .ok_or_else(|| CliError::usage(format!("{verdict} needs the request's ID")))?;
    let comment = p.value("--message");
    if verdict == "deny" && comment.is_none_or(|c| c.trim().is_empty()) {
        return Err(CliError::usage(
            "deny needs -m \"why\": the requester reads it",
        ));
    }
    let session = signed_in(&p)?;
    let answer = session.gateway.post(
        &format!("/v1/access-requests/{id}/{verdict}"),
        &json!({"comment": comment.unwrap_or_default()}),
    )?;
    let request = &answer["request"];
    if p.json() {
        print_json(&json!({"request": request}));
    } else {
        let style = Style::detect();
        let done = if verdict == "approve" {
            "approved"
        } else {
            "denied"
        };
        println!("You {done} {id} for {}.", requester(request));
        println!("{}", describe(request, style));
    }
    Ok(ExitCode::SUCCESS)
}

/// `copilot-jit approve ID [-m …]`.
pub fn approve(args: &[String]) -> Result<ExitCode> {
    decide(args, &APPROVE, "approve")
}

/// `copilot-jit deny ID -m …`.
pub fn deny(args: &[String]) -> Result<ExitCode> {
    decide(args, &DENY, "deny")
}
