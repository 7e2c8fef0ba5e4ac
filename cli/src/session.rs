//! Signing in and out, and `status`: the gateway's GitHub-compatible device
//! flow (the same one editors use), the credential kept by `credentials`.

use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::args::{parse, plain, Spec};
use crate::context::{gateway_url, signed_in, Session};
use crate::credentials::{self, where_kept};
use crate::error::{CliError, Exit, Result};
use crate::gateway::Gateway;
use crate::output::{self, duration_text, now, print_json, table, Progress, Style};

/// The device flow's client id the gateway shows on its pages.
pub const CLIENT_ID: &str = "copilot-jit-cli";
const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

pub const LOGIN: Spec = Spec {
    command: "login",
    values: &[],
    switches: &["--no-browser"],
    aliases: &[],
    positionals: &[],
};

fn not_a_gateway(url: &str) -> CliError {
    CliError::new(
        Exit::Unreachable,
        "not_a_gateway",
        format!("{url} does not offer the device flow: is it a copilot-jit gateway?"),
    )
}

/// Opens `url` in the person's browser, where there is a way to; false
/// when there is none (then the printed code and URL are the way).
fn open_browser(url: &str) -> bool {
    if std::env::var_os("COPILOT_JIT_NO_BROWSER").is_some() {
        return false;
    }
    let mut command = if cfg!(target_os = "macos") {
        Command::new("open")
    } else if cfg!(windows) {
        let mut c = Command::new("rundll32");
        c.arg("url.dll,FileProtocolHandler");
        c
    } else {
        let graphical = ["DISPLAY", "WAYLAND_DISPLAY"]
            .iter()
            .any(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()));
        if !graphical {
            return false;
        }
        Command::new("xdg-open")
    };
    command
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .is_ok()
}

/// `copilot-jit login [--gateway URL] [--no-browser]`.
pub fn login(args: &[String]) -> Result<ExitCode> {
    let p = parse(args, &LOGIN)?;
    let json = p.json();
    let url = gateway_url(&p)?;
    let gateway = Gateway::new(&url, None);
    let started = gateway.post_form(
        "/login/device/code",
        &[("client_id", CLIENT_ID), ("scope", "read:user")],
    )?;
    let text = |k: &str| started[k].as_str().map(str::to_string);
    let (Some(device_code), Some(user_code), Some(verification_uri)) = (
        text("device_code"),
        text("user_code"),
        text("verification_uri"),
    ) else {
        return Err(not_a_gateway(&url));
    };
    let mut interval = started["interval"].as_u64().unwrap_or(5).clamp(1, 60);
    let lifetime = started["expires_in"].as_u64().unwrap_or(900);
    let complete = format!("{verification_uri}?user_code={user_code}");
    if json {
        print_json(&json!({
            "event": "device_code",
            "user_code": user_code,
            "verification_uri": verification_uri,
            "verification_uri_complete": complete,
            "expires_in": lifetime,
        }));
    }
    let opened = !p.switch("--no-browser") && open_browser(&complete);
    if !json {
        let style = Style::detect();
        eprintln!("Your one-time code: {}", style.bold(&user_code));
        if opened {
            eprintln!("Opened {complete} in your browser: sign in there and allow this device.");
        } else {
            eprintln!("Open {complete} in a browser, sign in and allow this device.");
        }
    }
    let mut progress = Progress::new("Waiting for you to confirm in the browser…", json);
    let deadline = Instant::now() + Duration::from_secs(lifetime);
    let credential = loop {
        if Instant::now() >= deadline {
            progress.finish();
            return Err(CliError::not_signed_in(
                "the code expired before it was confirmed: run `copilot-jit login` again",
            ));
        }
        std::thread::sleep(Duration::from_secs(interval));
        let polled = gateway.post_form(
            "/login/oauth/access_token",
            &[
                ("client_id", CLIENT_ID),
                ("device_code", &device_code),
                ("grant_type", DEVICE_GRANT),
            ],
        );
        let polled = match polled {
            Ok(v) => v,
            Err(e) => {
                progress.finish();
                return Err(e);
            }
        };
        if let Some(c) = polled["access_token"].as_str() {
            break c.to_string();
        }
        match polled["error"].as_str() {
            Some("authorization_pending") => {}
            Some("slow_down") => {
                interval = polled["interval"]
                    .as_u64()
                    .unwrap_or(interval + 5)
                    .clamp(1, 60)
            }
            Some("expired_token") => {
                progress.finish();
                return Err(CliError::not_signed_in(
                    "the code expired before it was confirmed: run `copilot-jit login` again",
                ));
            }
            Some("access_denied") => {
                progress.finish();
                return Err(CliError::new(
                    Exit::SignIn,
                    "access_denied",
                    "the sign-in was refused in the browser",
                ));
            }
            _ => {
                progress.finish();
                return Err(not_a_gateway(&url));
            }
        }
        progress.say("Waiting for you to confirm in the browser…", json);
    };
    progress.finish();
    let me = Gateway::new(&url, Some(credential.clone())).get("/api/v3/user")?;
    let login = me["login"].as_str().unwrap_or_default().to_string();
    let saved = credentials::save(&url, &login, &credential)?;
    if json {
        print_json(&json!({
            "event": "signed_in",
            "gateway": url,
            "login": login,
            "email": me["email"],
            "credential_store": saved.store.name(),
            "credential_kept_in": where_kept(&saved),
        }));
    } else {
        let style = Style::detect();
        println!(
            "{} Signed in to {url} as {}; the credential is kept in {}.",
            style.green("✓"),
            style.bold(&login),
            where_kept(&saved)
        );
        println!("Next: copilot-jit request --scopes chat,completions --reason \"…\"");
    }
    Ok(ExitCode::SUCCESS)
}

/// `copilot-jit logout`: ends the sign-in at the gateway, then here.
pub fn logout(args: &[String]) -> Result<ExitCode> {
    let p = parse(args, &plain("logout"))?;
    let session = match signed_in(&p) {
        Ok(s) => s,
        Err(e) if e.exit == Exit::SignIn => {
            credentials::forget()?;
            if p.json() {
                print_json(&json!({"signed_out": true, "revoked_at_gateway": false}));
            } else {
                println!("Not signed in.");
            }
            return Ok(ExitCode::SUCCESS);
        }
        Err(e) => return Err(e),
    };
    let revoked = revoke_current(&session);
    credentials::forget()?;
    match revoked {
        // Already ended at the gateway (expired or signed out from a page).
        Ok(_)
        | Err(CliError {
            exit: Exit::SignIn, ..
        }) => {
            if p.json() {
                print_json(
                    &json!({"signed_out": true, "revoked_at_gateway": true, "gateway": session.gateway.url}),
                );
            } else {
                println!(
                    "Signed out of {}: the credential no longer opens anything.",
                    session.gateway.url
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Err(CliError {
            message: format!(
                "forgotten here, but not revoked at the gateway: {}",
                e.message
            ),
            ..e
        }),
    }
}

fn revoke_current(session: &Session) -> Result<()> {
    let listed = session.gateway.get("/v1/sign-ins")?;
    let current = listed["sign_ins"]
        .as_array()
        .and_then(|all| all.iter().find(|s| s["current"] == true))
        .and_then(|s| s["id"].as_str())
        .ok_or_else(|| CliError::not_signed_in("this sign-in has already ended"))?;
    session
        .gateway
        .post(&format!("/v1/sign-ins/{current}/revoke"), &json!({}))?;
    Ok(())
}

/// The caller's requests (everyone's they may see are listed; theirs are
/// the ones they asked for).
pub fn my_requests(session: &Session, who: &Value) -> Result<Vec<Value>> {
    let listed = session.gateway.get("/v1/access-requests?limit=500")?;
    Ok(listed["requests"]
        .as_array()
        .map(|all| {
            all.iter()
                .filter(|r| {
                    r["requester"]["subject"] == who["subject"]
                        && r["requester"]["issuer"] == who["issuer"]
                })
                .cloned()
                .collect()
        })
        .unwrap_or_default())
}

/// Who the gateway takes the caller for, and their devices.
pub fn whoami(session: &Session) -> Result<Value> {
    session.gateway.get("/v1/sign-ins")
}

pub fn is_active_grant(r: &Value, now: u64) -> bool {
    r["status"] == "approved" && r["expires_at"].as_u64().is_some_and(|t| t > now)
}

/// `copilot-jit status`.
pub fn status(args: &[String]) -> Result<ExitCode> {
    let p = parse(args, &plain("status"))?;
    let session = signed_in(&p)?;
    let me = whoami(&session)?;
    let who = &me["principal"];
    let requests = my_requests(&session, who)?;
    let now = now();
    let grants: Vec<Value> = requests
        .iter()
        .filter(|r| is_active_grant(r, now))
        .map(|r| {
            let ends = r["expires_at"].as_u64().unwrap_or(now);
            json!({
                "id": r["id"], "scopes": r["scopes"], "models": r["models"],
                "repository": r["repository"], "expires_at": ends,
                "seconds_left": ends.saturating_sub(now), "renew_of": r["renew_of"],
            })
        })
        .collect();
    let pending: Vec<Value> = requests
        .iter()
        .filter(|r| r["status"] == "pending")
        .map(|r| {
            json!({
                "id": r["id"], "scopes": r["scopes"], "reason": r["reason"],
                "approvals": approvals_so_far(r), "required_approvals": r["required_approvals"],
                "approver_groups": r["approver_groups"], "created_at": r["created_at"],
                "pending_expires_at": r["pending_expires_at"],
            })
        })
        .collect();
    let devices = me["sign_ins"].as_array().cloned().unwrap_or_default();
    let this = devices.iter().find(|d| d["current"] == true);
    if p.json() {
        print_json(&json!({
            "gateway": session.gateway.url,
            "login": session.login.login,
            "principal": who,
            "credential_store": session.login.store.name(),
            "credential_kept_in": where_kept(&session.login),
            "sign_in_expires_at": this.map(|d| d["expires_at"].clone()),
            "grants": grants,
            "pending": pending,
            "devices": devices,
        }));
        return Ok(ExitCode::SUCCESS);
    }
    let style = Style::detect();
    let groups = who["groups"]
        .as_array()
        .map(|g| {
            g.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    println!(
        "Signed in to {} as {} ({}), groups: {}",
        session.gateway.url,
        style.bold(&session.login.login),
        who["email"].as_str().unwrap_or("no e-mail"),
        if groups.is_empty() { "none" } else { &groups }
    );
    let ends_in = this
        .and_then(|d| d["expires_at"].as_u64())
        .map(|t| duration_text(t.saturating_sub(now)))
        .unwrap_or_else(|| "?".into());
    println!(
        "  sign-in ends in {ends_in}; credential kept in {}",
        where_kept(&session.login)
    );
    println!();
    if grants.is_empty() {
        println!("No active grant: copilot-jit request --scopes chat,completions --reason \"…\"");
    } else {
        let rows: Vec<Vec<String>> = grants
            .iter()
            .map(|g| {
                vec![
                    g["id"].as_str().unwrap_or_default().to_string(),
                    list_text(&g["scopes"]),
                    list_text_or(&g["models"], "any"),
                    style.green(&duration_text(g["seconds_left"].as_u64().unwrap_or(0))),
                ]
            })
            .collect();
        println!("Grants");
        println!(
            "{}",
            table(&["ID", "SCOPES", "MODELS", "TIME LEFT"], &rows, style)
        );
    }
    if !pending.is_empty() {
        let rows: Vec<Vec<String>> = pending
            .iter()
            .map(|r| {
                vec![
                    r["id"].as_str().unwrap_or_default().to_string(),
                    list_text(&r["scopes"]),
                    format!(
                        "{} of {} from {}",
                        r["approvals"],
                        r["required_approvals"],
                        list_text(&r["approver_groups"])
                    ),
                    output::clip(r["reason"].as_str().unwrap_or_default(), 40),
                ]
            })
            .collect();
        println!("\nPending requests");
        println!(
            "{}",
            table(&["ID", "SCOPES", "APPROVALS", "REASON"], &rows, style)
        );
    }
    let rows: Vec<Vec<String>> = devices
        .iter()
        .map(|d| {
            let since = now.saturating_sub(d["signed_in_at"].as_u64().unwrap_or(now));
            vec![
                d["id"].as_str().unwrap_or_default().to_string(),
                format!(
                    "{}{}",
                    d["client"].as_str().unwrap_or_default(),
                    if d["current"] == true {
                        " (this one)"
                    } else {
                        ""
                    }
                ),
                format!("{} ago", duration_text(since)),
            ]
        })
        .collect();
    println!("\nSigned-in devices");
    println!("{}", table(&["ID", "CLIENT", "SIGNED IN"], &rows, style));
    Ok(ExitCode::SUCCESS)
}

/// `copilot-jit credential`: the sign-in credential on stdout, for editor
/// settings that start a language server with it (what `configure` writes).
pub fn credential(args: &[String]) -> Result<ExitCode> {
    let p = parse(args, &plain("credential"))?;
    let session = signed_in(&p)?;
    if p.json() {
        print_json(&json!({"gateway": session.gateway.url, "credential": session.credential}));
    } else {
        println!("{}", session.credential);
    }
    Ok(ExitCode::SUCCESS)
}

pub fn approvals_so_far(r: &Value) -> usize {
    r["decisions"]
        .as_array()
        .map(|d| d.iter().filter(|d| d["kind"] == "approve").count())
        .unwrap_or(0)
}

pub fn list_text(v: &Value) -> String {
    list_text_or(v, "")
}

pub fn list_text_or(v: &Value, none: &str) -> String {
    let items: Vec<&str> = v
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if items.is_empty() {
        none.to_string()
    } else {
        items.join(",")
    }
}
