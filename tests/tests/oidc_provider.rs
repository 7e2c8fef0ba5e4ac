//! The gateway against a real OpenID provider (panva/oidc-provider, the
//! certified Node.js OP), configured here: an agent signs in with a JWT
//! access token, the gateway keeps serving on cached keys while the provider
//! is down, and follows a key rotation without restart.
//!
//! `scripts/test.sh` installs the provider and sets OIDC_PROVIDER_DIR.

use copilot_jit_testkit::harness::{eventually, workspace_root, Stack, StackOptions};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

struct Provider {
    child: Child,
}

impl Provider {
    /// Starts the provider on `port` with a fresh signing key named `kid`.
    async fn start(port: u16, kid: &str) -> Provider {
        let dir = PathBuf::from(std::env::var("OIDC_PROVIDER_DIR").expect(
            "OIDC_PROVIDER_DIR must name the oidc-provider install (scripts/test.sh sets it)",
        ));
        // The script runs beside the installed package so that `import` finds it.
        let script = dir.join("provider.mjs");
        std::fs::copy(
            workspace_root().join("tests/oidc-provider/provider.mjs"),
            &script,
        )
        .expect("copy provider");
        let mut child = Command::new("node")
            .arg(&script)
            .arg(port.to_string())
            .arg(kid)
            .current_dir(&dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("node starts the provider");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let ready = tokio::time::timeout(Duration::from_secs(30), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.starts_with("ready") {
                    return true;
                }
            }
            false
        })
        .await;
        assert_eq!(ready, Ok(true), "the provider did not start");
        Provider { child }
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

async fn access_token(port: u16) -> String {
    let body: Value = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/token"))
        .basic_auth("ci-agent", Some("test-only-client-secret"))
        .form(&[("grant_type", "client_credentials"), ("scope", "copilot")])
        .send()
        .await
        .expect("provider reachable")
        .json()
        .await
        .expect("token JSON");
    body["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no token: {body}"))
        .to_string()
}

async fn request_access(stack: &Stack, token: &str) -> (u16, Value) {
    let ask = json!({"scopes": ["completions"], "reason": "nightly refactoring agent"});
    let answer = stack
        .call("POST", "/v1/access-requests", Some(token), ask)
        .await;
    (
        answer.status,
        serde_json::from_str(&answer.text).expect("JSON"),
    )
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_openid_provider_signs_agents_in_and_rotates_keys() {
    let port = free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    let provider = Provider::start(port, "key-a").await;
    let stack = Stack::start_with(StackOptions {
        variables: HashMap::from([
            ("oidc_issuer".to_string(), issuer.clone()),
            ("oidc_issuer_origin".to_string(), issuer.clone()),
            ("oidc_audience".to_string(), "urn:copilot-jit".to_string()),
            ("oidc_principal_kind".to_string(), "agent".to_string()),
            ("oidc_jwks_refetch_secs".to_string(), "1".to_string()),
        ]),
        ..StackOptions::default()
    })
    .await
    .expect("stack");

    // 1. The provider's JWT access token is accepted; the agent is the principal.
    let old_token = access_token(port).await;
    let (status, body) = request_access(&stack, &old_token).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["request"]["requester"]["subject"], "ci-agent");
    assert_eq!(body["request"]["requester"]["kind"], "agent");
    assert_eq!(body["request"]["requester"]["issuer"], issuer.as_str());

    // 2. The provider goes down: keys already fetched keep serving.
    provider.stop().await;
    let (status, body) = request_access(&stack, &old_token).await;
    assert_eq!(status, 201, "cached keys must keep serving: {body}");

    // 3. It comes back with a new signing key: the gateway follows without a
    //    restart, and tokens signed by the retired key stop working.
    // The gateway refetches keys at most once per refetch interval, so the
    // new key is picked up by a later call: poll for it.
    let provider = Provider::start(port, "key-b").await;
    let new_token = access_token(port).await;
    let picked_up = eventually(|| async {
        let (status, _) = request_access(&stack, &new_token).await;
        (status == 201).then_some(())
    })
    .await;
    let (status, body) = match picked_up {
        Some(()) => (201, Value::Null),
        None => request_access(&stack, &new_token).await,
    };
    assert_eq!(status, 201, "rotated key must be picked up: {body}");
    let retired = eventually(|| async {
        let (status, _) = request_access(&stack, &old_token).await;
        (status == 401).then_some(())
    })
    .await;
    let (status, body) = match retired {
        Some(()) => (401, Value::Null),
        None => request_access(&stack, &old_token).await,
    };
    assert_eq!(status, 401, "the retired key must no longer verify: {body}");
    provider.stop().await;
}
