//! The real Copilot CLI (npm `@github/copilot`, pinned in scripts/common.sh;
//! it embeds its own Node) against the gateway over HTTPS on loopback with a
//! test CA: `copilot login --host … --device-code`, the verification page
//! driven like a person (code, the real IdP's login form, confirmation),
//! by dana (a developer on the security team: the default masking policy
//! blocks the literal "confidential", which the CLI's own system prompt
//! contains; that team's override redacts it instead),
//! then `copilot -p`: refused with Copilot's 403 before approval, answered
//! through the gateway (the Responses stream, masked and audited under the
//! person) after, refused again once revoked.
//!
//! `scripts/test.sh` installs the CLI and sets COPILOT_CLI_BIN.

use copilot_jit_testkit::browser::Browser;
use copilot_jit_testkit::login_provider::{HttpsStack, LoginProvider};
use copilot_jit_testkit::mock_upstream::StreamScript;
use copilot_jit_testkit::tls::TestCa;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::Command;

fn cli() -> PathBuf {
    PathBuf::from(
        std::env::var("COPILOT_CLI_BIN")
            .expect("COPILOT_CLI_BIN must name the Copilot CLI (scripts/test.sh installs it)"),
    )
}

/// The CLI's environment: its own home, the test CA, no update checks.
fn command(home: &Path, ca: &Path) -> Command {
    let mut c = Command::new(cli());
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("COPILOT_HOME", home.join(".copilot"))
        .env("COPILOT_CACHE_HOME", home.join("cache"))
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("COPILOT_AUTO_UPDATE", "false")
        .env("NODE_EXTRA_CA_CERTS", ca)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    c
}

/// `copilot -p`: (succeeded, stdout + stderr).
async fn ask(home: &Path, ca: &Path, gh_host: &str, prompt: &str) -> (bool, String) {
    let out = command(home, ca)
        .env("GH_HOST", gh_host)
        .args([
            "-p",
            prompt,
            "--model",
            "gpt-4o",
            "--allow-all-tools",
            "-s",
            "--no-auto-update",
            "--disable-client-telemetry",
        ])
        .args(["--log-level", "all", "--log-dir"])
        .arg(home.join("logs"))
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), out)
        .await
        .expect("copilot -p finishes")
        .expect("copilot runs");
    (
        out.status.success(),
        format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn user_code_in(line: &str) -> Option<String> {
    line.split(|c: char| !c.is_ascii_alphanumeric() && c != '-')
        .find(|w| {
            w.len() == 9
                && w.as_bytes()[4] == b'-'
                && w.bytes()
                    .filter(|b| *b != b'-')
                    .all(|b| b.is_ascii_uppercase())
        })
        .map(str::to_string)
}

async fn api(base: &str, token: &str, path: &str, body: Value) -> Value {
    reqwest::Client::new()
        .post(format!("{base}{path}"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("reachable")
        .json()
        .await
        .unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_copilot_cli_signs_in_and_is_served_once_approved() {
    let home = std::env::temp_dir().join(format!("copilot-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&home);
    std::fs::create_dir_all(home.join(".copilot")).unwrap();
    // No keychain here: the CLI keeps its token in its own config (the
    // setting a person accepts when login asks about plaintext storage).
    for file in ["settings.json", "config.json"] {
        std::fs::write(
            home.join(".copilot").join(file),
            r#"{"storeTokenPlaintext": true}"#,
        )
        .unwrap();
    }
    let ca = TestCa::create(&home.join("tls"), &["127.0.0.1", "gw.test", "api.gw.test"])
        .expect("test CA");
    let https = HttpsStack::start(&ca, None)
        .await
        .expect("stack and identity provider");
    let (stack, idp, plain_url) = (&https.stack, &https.idp, https.plain_url.as_str());
    let gh_host = stack.url.trim_start_matches("https://").to_string();
    stack.upstream.script_stream(StreamScript {
        pieces: vec![
            "Hi from ".into(),
            "Copilot through the gateway. Your key: ghp_0123456789abcdefghij".into(),
            "klmnopqrstuvwxyz done.".into(),
        ],
        ..Default::default()
    });

    // 1. `copilot login --device-code`: it prints a code and waits.
    let mut login = command(&home, &ca.ca_pem)
        .args(["login", "--host", &stack.url, "--device-code"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("copilot login starts");
    let mut out = BufReader::new(login.stdout.take().unwrap()).lines();
    let mut seen = String::new();
    let user_code = tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(line)) = out.next_line().await {
            seen.push_str(&line);
            seen.push('\n');
            if let Some(code) = user_code_in(&line) {
                return Some(code);
            }
        }
        None
    })
    .await
    .ok()
    .flatten();
    let Some(user_code) = user_code else {
        let mut err = String::new();
        let _ = login.stderr.take().unwrap().read_to_string(&mut err).await;
        panic!("no user code from copilot login:\n{seen}\n{err}");
    };

    // 2. Dana at the verification page: code, the IdP's form, confirm.
    let mut browser = Browser::new();
    browser.alias(&stack.url, plain_url);
    let (confirm, done) = LoginProvider::sign_device_in(
        &mut browser,
        &format!("{}/login/device", stack.url),
        &user_code,
        "dana",
    )
    .await
    .expect("the verification page");
    assert!(
        confirm.text.contains("GitHub Copilot CLI"),
        "{}",
        confirm.text
    );
    assert_eq!(done.status, 200, "{}", done.text);
    let status = tokio::time::timeout(Duration::from_secs(60), login.wait())
        .await
        .expect("copilot login finishes")
        .expect("exit status");
    while let Ok(Some(line)) = out.next_line().await {
        seen.push_str(&line);
    }
    let mut err = String::new();
    let _ = login.stderr.take().unwrap().read_to_string(&mut err).await;
    assert!(status.success(), "copilot login failed:\n{seen}\n{err}");

    // 3. Signed in, no grant: Copilot's own refusal, naming the request page.
    let (ok, text) = ask(&home, &ca.ca_pem, &gh_host, "say hi").await;
    assert!(!ok, "answered without a grant:\n{text}");
    // The CLI words a 403 its own way and links the host's settings page,
    // which the gateway sends to the request page.
    assert!(text.contains("Access denied"), "{text}");
    let settings_link = format!("{}/settings/copilot", stack.url);
    assert!(text.contains(&settings_link), "{text}");
    let mut visitor = Browser::new();
    visitor.alias(&stack.url, plain_url);
    let page = visitor.get(&settings_link).await;
    assert_eq!(
        page.location().as_deref(),
        Some(format!("{}/access", stack.url).as_str())
    );

    // 4. Approval arrives; the same sign-in now works.
    let dana = idp.id_token(&stack.url, "dana").await.expect("dana");
    let bob = idp.id_token(&stack.url, "bob").await.expect("bob");
    let created = api(
        plain_url,
        &dana,
        "/v1/access-requests",
        json!({"scopes": ["chat"], "reason": "cli", "duration": "1h"}),
    )
    .await;
    let id = created["request"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{created}"))
        .to_string();
    let approved = api(
        plain_url,
        &bob,
        &format!("/v1/access-requests/{id}/approve"),
        json!({}),
    )
    .await;
    assert_eq!(approved["request"]["status"], "approved", "{approved}");
    let (ok, text) = ask(&home, &ca.ca_pem, &gh_host, "say hi").await;
    // The secret split across two stream events is masked all the same.
    assert!(
        !text.contains("ghp_0123"),
        "an unmasked secret reached the CLI:\n{text}"
    );
    if !(ok
        && text.contains("Copilot through the gateway")
        && text.contains("[REDACTED:github-token]"))
    {
        let why: Vec<String> = idp
            .audit_records(plain_url, &stack.url, &id)
            .await
            .unwrap_or_default()
            .iter()
            .map(|r| {
                format!(
                    "{} {} {} {} {}",
                    r["unmapped"]["action"],
                    r["http_response"]["code"],
                    r["unmapped"]["outcome"],
                    r["unmapped"]["reason"],
                    r["unmapped"]["findings"]
                )
            })
            .collect();
        panic!("{text}\n{why:#?}");
    }

    // 5. Recorded under dana, with her grant.
    let recorded = idp
        .audit_record(plain_url, &stack.url, &id, |r| {
            r["unmapped"]["action"] == "copilot.chat" && r["actor"]["user"]["uid"] == "dana"
        })
        .await;
    assert!(recorded.is_some(), "the CLI's chat is recorded under dana");

    // 6. Revoked: the CLI stops.
    let revoked = api(
        plain_url,
        &bob,
        &format!("/v1/grants/{id}/revoke"),
        json!({}),
    )
    .await;
    assert_eq!(revoked["request"]["status"], "revoked", "{revoked}");
    let (ok, text) = ask(&home, &ca.ca_pem, &gh_host, "say hi again").await;
    assert!(!ok, "answered after revocation:\n{text}");
    let _ = std::fs::remove_dir_all(&home);
}
