//! `copilot-jit github unlink | status`: a person's GitHub link on a
//! gateway (their own Copilot seat). Unlinking is one action: the gateway
//! forgets the account's tokens and its cached Copilot token at once, and
//! the person's next Copilot call is told how to link again. Linking itself
//! is done on the gateway's page (`/github/link`), where GitHub's code is
//! shown; `status` prints the link as the gateway sees it.
//!
//! The caller's identity is `COPILOT_JIT_TOKEN`: an OIDC token or the
//! gateway sign-in credential (`gho_…`) of the person.

use std::process::ExitCode;

pub const USAGE: &str = "\
usage: copilot-jit github unlink --url GATEWAY_URL   (token in COPILOT_JIT_TOKEN)
       copilot-jit github status --url GATEWAY_URL

  unlink  the gateway forgets your linked GitHub account (and its tokens);
          your Copilot calls stop using its seat at once
  status  your link: none, pending, linked (with the GitHub login) or broken
  Link (or link again) on the gateway's page: GATEWAY_URL/github/link";

fn url_of(args: &[String]) -> Result<String, String> {
    match args {
        [flag, url] if flag == "--url" => {
            let url = url.trim_end_matches('/');
            if url.starts_with("https://") || url.starts_with("http://") {
                Ok(url.to_string())
            } else {
                Err(format!("--url {url}: not an http(s) URL"))
            }
        }
        _ => Err("needs --url GATEWAY_URL".into()),
    }
}

/// `args` after `github`.
pub fn run(args: &[String]) -> Result<ExitCode, String> {
    let (method, path) = match args.first().map(String::as_str) {
        Some("unlink") => ("POST", "/v1/github/unlink"),
        Some("status") => ("GET", "/v1/github/link"),
        Some("-h" | "--help" | "help") | None => {
            println!("{USAGE}");
            return Ok(ExitCode::SUCCESS);
        }
        Some(other) => return Err(format!("unknown github command {other}\n\n{USAGE}")),
    };
    let url = url_of(&args[1..]).map_err(|e| format!("{e}\n\n{USAGE}"))?;
    let token = std::env::var("COPILOT_JIT_TOKEN")
        .map_err(|_| "COPILOT_JIT_TOKEN is not set (your OIDC token or sign-in credential)")?;
    let request = ureq::request(method, &format!("{url}{path}"))
        .set("authorization", &format!("Bearer {}", token.trim()))
        .timeout(std::time::Duration::from_secs(30));
    let answer = if method == "POST" {
        request.send_string("")
    } else {
        request.call()
    };
    let (status, body) = match answer {
        Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
        Err(e) => return Err(format!("{url}: {e}")),
    };
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    match (status, args[0].as_str()) {
        (200, "unlink") => match v["unlinked"].as_str() {
            Some(login) => println!("unlinked the GitHub account {login}"),
            None => println!("unlinked (a pending link was cancelled)"),
        },
        (200, _) => match v["status"].as_str().unwrap_or("") {
            "linked" => println!("linked: {}", v["login"].as_str().unwrap_or("")),
            "broken" => println!(
                "broken: {} ({}); link again at {url}/github/link",
                v["login"].as_str().unwrap_or(""),
                v["reason"].as_str().unwrap_or("")
            ),
            "pending" => println!(
                "pending: enter {} at {}",
                v["user_code"].as_str().unwrap_or(""),
                v["verification_uri"].as_str().unwrap_or("")
            ),
            _ => println!("none: link your GitHub account at {url}/github/link"),
        },
        (404, "unlink") => println!("no GitHub account is linked"),
        _ => eprintln!(
            "copilot-jit: the gateway answered {status}: {}",
            v["error"]["message"].as_str().unwrap_or(&body)
        ),
    }
    Ok(match status {
        200 => ExitCode::SUCCESS,
        404 => ExitCode::from(3),
        _ => ExitCode::from(1),
    })
}
