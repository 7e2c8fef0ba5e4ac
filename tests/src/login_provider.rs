//! The real OpenID provider (panva/oidc-provider) as the organisation's IdP
//! for people: its own login form signs anyone in, with e-mail and groups
//! (`bob` approves, `carol` audits, everyone else develops). The gateway is
//! its confidential client `copilot-jit`.
//!
//! `scripts/test.sh` installs the provider and sets OIDC_PROVIDER_DIR.

use crate::browser::{Browser, Page};
use crate::harness::{workspace_root, Stack, StackOptions};
use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub const CLIENT_SECRET: &str = "test-only-gateway-client-secret";

pub struct LoginProvider {
    pub issuer: String,
    _child: Child,
}

/// A free loopback port (for the provider, whose issuer the gateway must
/// know before either starts).
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl LoginProvider {
    /// The gateway variables that make it this provider's client.
    pub fn variables(issuer: &str) -> HashMap<String, String> {
        HashMap::from([
            ("oidc_issuer".to_string(), issuer.to_string()),
            ("oidc_issuer_origin".to_string(), issuer.to_string()),
            ("oidc_audience".to_string(), "copilot-jit".to_string()),
            ("oidc_client_secret".to_string(), CLIENT_SECRET.to_string()),
        ])
    }

    /// Starts it on `port`, redirecting back to `gateway_url`'s callback.
    pub async fn start(port: u16, gateway_url: &str) -> Result<LoginProvider> {
        let dir = PathBuf::from(std::env::var("OIDC_PROVIDER_DIR").context(
            "OIDC_PROVIDER_DIR must name the oidc-provider install (scripts/test.sh sets it)",
        )?);
        let script = dir.join("login-provider.mjs");
        std::fs::copy(
            workspace_root().join("tests/oidc-provider/login-provider.mjs"),
            &script,
        )?;
        let mut child = Command::new("node")
            .arg(&script)
            .arg(port.to_string())
            .arg(format!("{gateway_url}/login/callback"))
            .arg(CLIENT_SECRET)
            .current_dir(&dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("node starts the provider")?;
        let mut lines = BufReader::new(child.stdout.take().context("stdout")?).lines();
        let ready = tokio::time::timeout(Duration::from_secs(30), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.starts_with("ready") {
                    return true;
                }
            }
            false
        })
        .await;
        if ready != Ok(true) {
            bail!("the provider did not start");
        }
        // The provider logs to stdout as it goes (its first interaction
        // prints a notice); a closed pipe would kill it, so keep reading.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(LoginProvider {
            issuer: format!("http://127.0.0.1:{port}"),
            _child: child,
        })
    }

    /// A person at the provider's login form (any password), from the page
    /// the gateway sent the browser to; returns the answer after the login.
    pub async fn log_in(browser: &mut Browser, login_page: Page, who: &str) -> Result<Page> {
        let action = login_page
            .form_action()
            .with_context(|| format!("no login form at {}: {}", login_page.url, login_page.text))?;
        let submitted = browser
            .post_form(
                &action,
                &[
                    ("prompt", "login"),
                    ("login", who),
                    ("password", "any password"),
                ],
            )
            .await;
        Ok(submitted)
    }

    /// An ID token for `who`, as a command-line client of the gateway's own
    /// registration would get one (code flow with PKCE, the redirect caught
    /// before it reaches the gateway): for API calls such as the auditor's.
    pub async fn id_token(&self, gateway_url: &str, who: &str) -> Result<String> {
        use base64::Engine as _;
        use sha2::Digest as _;
        let verifier = hex::encode(rand::random::<[u8; 32]>());
        let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(sha2::Sha256::digest(verifier.as_bytes()));
        let redirect = format!("{gateway_url}/login/callback");
        let url = reqwest::Url::parse_with_params(
            &format!("{}/auth", self.issuer),
            &[
                ("response_type", "code"),
                ("client_id", "copilot-jit"),
                ("redirect_uri", redirect.as_str()),
                ("scope", "openid email profile groups"),
                ("state", "cli-state-0123456789"),
                ("nonce", "cli-nonce"),
                ("code_challenge", challenge.as_str()),
                ("code_challenge_method", "S256"),
            ],
        )?;
        let mut browser = Browser::new();
        let first = browser.get(url.as_str()).await;
        let login_page = browser.follow(first).await;
        let mut page = LoginProvider::log_in(&mut browser, login_page, who).await?;
        let callback = loop {
            let to = page
                .location()
                .with_context(|| format!("no redirect at {}: {}", page.url, page.text))?;
            if to.starts_with(&redirect) {
                break reqwest::Url::parse(&to)?;
            }
            page = browser.get(&to).await;
        };
        let code = callback
            .query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.to_string())
            .context("no code in the callback")?;
        let answer: serde_json::Value = reqwest::Client::new()
            .post(format!("{}/token", self.issuer))
            .basic_auth("copilot-jit", Some(CLIENT_SECRET))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", redirect.as_str()),
                ("code_verifier", verifier.as_str()),
            ])
            .send()
            .await?
            .json()
            .await?;
        answer["id_token"]
            .as_str()
            .map(str::to_string)
            .with_context(|| format!("no id_token: {answer}"))
    }

    /// The audit records of `grant`, read as carol (an auditor) from the
    /// gateway at `base` (registered as `gateway_url`).
    pub async fn audit_records(
        &self,
        base: &str,
        gateway_url: &str,
        grant: &str,
    ) -> Result<Vec<serde_json::Value>> {
        let carol = self.id_token(gateway_url, "carol").await?;
        let body: serde_json::Value = reqwest::Client::new()
            .get(format!("{base}/v1/audit/records?grant={grant}&limit=100"))
            .bearer_auth(&carol)
            .send()
            .await?
            .json()
            .await?;
        Ok(body["records"].as_array().cloned().unwrap_or_default())
    }

    /// The first record of `grant` that `wanted` accepts, awaited: the
    /// gateway writes records after it answers.
    pub async fn audit_record(
        &self,
        base: &str,
        gateway_url: &str,
        grant: &str,
        wanted: impl Fn(&serde_json::Value) -> bool,
    ) -> Option<serde_json::Value> {
        crate::harness::eventually(|| async {
            self.audit_records(base, gateway_url, grant)
                .await
                .ok()?
                .into_iter()
                .find(|r| wanted(r))
        })
        .await
    }
}

/// A gateway stack whose identity provider is a real `oidc-provider`
/// (`LoginProvider`) on a free loopback port, for the sign-in tests.
pub async fn stack_with_login_provider() -> Result<(Stack, LoginProvider)> {
    let port = free_port()?;
    let issuer = format!("http://127.0.0.1:{port}");
    let stack = Stack::start_with(StackOptions {
        variables: LoginProvider::variables(&issuer),
        ..StackOptions::default()
    })
    .await?;
    let idp = LoginProvider::start(port, &stack.url).await?;
    Ok((stack, idp))
}
