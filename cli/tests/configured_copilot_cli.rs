//! The developer's path with the real Copilot CLI (npm `@github/copilot`,
//! pinned in scripts/common.sh), nothing but `copilot-jit` commands:
//! `login` and `request` against the gateway over HTTPS (a test CA, trusted
//! through `SSL_CERT_FILE` as a private CA would be), `configure cli
//! --write`, then plain `copilot -p` in a new shell. Refused with Copilot's
//! 403 before approval, answered through the gateway (masked, recorded
//! under the person) after.
//!
//! dana is a developer on the security team: the default masking policy
//! blocks the literal "confidential", which the CLI's own system prompt
//! holds; that team's override redacts it instead.
//!
//! `scripts/test.sh` installs the CLI (COPILOT_CLI_BIN) and the provider
//! (OIDC_PROVIDER_DIR).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use copilot_jit_testkit::browser::Browser;
use copilot_jit_testkit::harness::{Stack, StackOptions};
use copilot_jit_testkit::login_provider::{free_port, LoginProvider};
use copilot_jit_testkit::mock_upstream::StreamScript;
use copilot_jit_testkit::tls::TestCa;
use serde_json::{json, Value};
use tokio::process::Command;

mod common;
use common::{log_in_with, Home, Idp};

/// The directory holding the real `copilot`, for PATH.
fn copilot_cli_dir() -> PathBuf {
    let bin = PathBuf::from(
        std::env::var("COPILOT_CLI_BIN")
            .expect("COPILOT_CLI_BIN must name the Copilot CLI (scripts/test.sh installs it)"),
    );
    bin.parent().expect("a directory").to_path_buf()
}

/// `copilot-jit …` as dana runs it: her home, trusting the test CA.
fn copilot_jit(home: &Home, ca: &Path, args: &[&str]) -> Command {
    let mut c = home.command(args);
    c.env("SSL_CERT_FILE", ca);
    c
}

/// A new login shell of dana's runs `copilot -p PROMPT`, as she would
/// after `configure`: (succeeded, what it printed).
async fn copilot_in_new_shell(home: &Home, ca: &Path, prompt: &str) -> (bool, String) {
    let path = format!(
        "{}:{}",
        copilot_cli_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let script = format!(
        ". \"$HOME/.bashrc\"; copilot -p '{prompt}' --model gpt-4o --allow-all-tools -s \
         --no-auto-update --disable-client-telemetry"
    );
    let out = Command::new("bash")
        .args(["-c", &script])
        .env_clear()
        .env("PATH", path)
        .env("HOME", &home.dir)
        .env("SHELL", "/bin/bash")
        .env("XDG_CONFIG_HOME", home.config())
        .env("COPILOT_HOME", home.dir.join(".copilot"))
        .env("COPILOT_CACHE_HOME", home.dir.join("cache"))
        .env("COPILOT_AUTO_UPDATE", "false")
        .env("NODE_EXTRA_CA_CERTS", ca)
        .env("SSL_CERT_FILE", ca)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), out)
        .await
        .expect("copilot -p finishes")
        .expect("bash runs");
    (
        out.status.success(),
        format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_copilot_cli_set_up_by_configure_is_served_once_approved() {
    let dana = Home::new("dana-cli");
    let ca = TestCa::create(&dana.dir.join("tls"), &["127.0.0.1"]).expect("test CA");
    let port = free_port().expect("port");
    let issuer = format!("http://127.0.0.1:{port}");
    let stack = Stack::start_with(StackOptions {
        variables: LoginProvider::variables(&issuer),
        tls: Some(ca.acceptor().expect("acceptor")),
        ..StackOptions::default()
    })
    .await
    .expect("stack");
    // The test's browser speaks plain HTTP to the same gateway.
    let plain = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let plain_url = format!("http://{}", plain.local_addr().expect("address"));
    let _plain = stack.gateway.clone().serve(plain);
    let idp = LoginProvider::start(port, &stack.url)
        .await
        .expect("provider");
    stack.upstream.script_stream(StreamScript {
        pieces: vec![
            "Hi from ".into(),
            "Copilot through the gateway. Your key: ghp_0123456789abcdefghij".into(),
            "klmnopqrstuvwxyz done.".into(),
        ],
        ..Default::default()
    });

    // 1. login, over HTTPS.
    let mut browser = Browser::new();
    browser.alias(&stack.url, &plain_url);
    let login = copilot_jit(
        &dana,
        &ca.ca_pem,
        &["login", "--gateway", &stack.url, "--json"],
    );
    let signed_in = log_in_with(login, &stack.url, "dana", Idp::LoginProvider, browser).await;
    assert_eq!(signed_in["login"], "dana", "{signed_in}");

    // 2. configure cli --write: a block in the shell's startup file.
    let out = copilot_jit(
        &dana,
        &ca.ca_pem,
        &[
            "configure",
            "cli",
            "--write",
            "--gateway",
            &stack.url,
            "--json",
        ],
    )
    .env("SHELL", "/bin/bash")
    .output()
    .await
    .expect("configure runs");
    let configured: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert!(out.status.success(), "{configured}");
    assert_eq!(configured["gateway_answers"], true, "{configured}");

    // 3. No grant yet: the CLI shows Copilot's refusal.
    let (ok, text) = copilot_in_new_shell(&dana, &ca.ca_pem, "say hi").await;
    assert!(!ok, "answered without a grant:\n{text}");
    assert!(text.contains("Access denied"), "{text}");

    // 4. request; an approver decides.
    let asked = copilot_jit(
        &dana,
        &ca.ca_pem,
        &[
            "request",
            "--scopes",
            "chat",
            "--reason",
            "try the CLI",
            "--json",
        ],
    )
    .output()
    .await
    .expect("request runs");
    let asked: Value = serde_json::from_slice(&asked.stdout).expect("JSON");
    let id = asked["request"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{asked}"))
        .to_string();
    let bob = idp.id_token(&stack.url, "bob").await.expect("bob");
    let approved: Value = reqwest::Client::new()
        .post(format!("{plain_url}/v1/access-requests/{id}/approve"))
        .bearer_auth(&bob)
        .json(&json!({}))
        .send()
        .await
        .expect("reachable")
        .json()
        .await
        .expect("JSON");
    assert_eq!(approved["request"]["status"], "approved", "{approved}");

    // 5. The same shell command is now answered, the split secret masked.
    let (ok, text) = copilot_in_new_shell(&dana, &ca.ca_pem, "say hi").await;
    assert!(!text.contains("ghp_0123"), "an unmasked secret:\n{text}");
    assert!(
        ok && text.contains("Copilot through the gateway")
            && text.contains("[REDACTED:github-token]"),
        "{text}"
    );

    // 6. Recorded under dana, with her grant.
    let recorded = idp
        .audit_record(&plain_url, &stack.url, &id, |r| {
            r["unmapped"]["action"] == "copilot.chat" && r["actor"]["user"]["uid"] == "dana"
        })
        .await;
    assert!(recorded.is_some(), "the CLI's chat is recorded under dana");
}
