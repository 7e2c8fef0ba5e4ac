//! The real OpenID provider (panva/oidc-provider) as the organisation's IdP
//! for people: its own login form signs anyone in, with e-mail and groups
//! (`bob` approves, `carol` audits, everyone else develops). The gateway is
//! its confidential client `copilot-jit`.
//!
//! `scripts/test.sh` installs the provider and sets OIDC_PROVIDER_DIR.

use crate::browser::{Browser, Page};
use crate::harness::{workspace_root, Stack, StackOptions};
use crate::tls::TestCa;
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

    /// A person signing a device in at the gateway's verification page
    /// (`verification_uri`, as the client showed it), the way one does it:
    /// types `user_code` into its form, logs in at this provider's form as
    /// `who`, allows the device on the confirmation page. Returns that page
    /// (it names the client) and the answer to allowing it.
    pub async fn sign_device_in(
        browser: &mut Browser,
        verification_uri: &str,
        user_code: &str,
        who: &str,
    ) -> Result<(Page, Page)> {
        let entry = browser.get(verification_uri).await;
        let form = |page: &Page| {
            page.form_action()
                .zip(page.input("csrf"))
                .with_context(|| format!("no form at {}: {}", page.url, page.text))
        };
        let (action, csrf) = form(&entry)?;
        let to_idp = browser
            .post_form(&action, &[("csrf", &csrf), ("user_code", user_code)])
            .await;
        let login_page = browser.follow(to_idp).await;
        let after = LoginProvider::log_in(browser, login_page, who).await?;
        let confirm = browser.follow(after).await;
        let (action, csrf) = form(&confirm)?;
        let allowed = browser
            .post_form(
                &action,
                &[
                    ("csrf", &csrf),
                    ("user_code", user_code),
                    ("decision", "allow"),
                ],
            )
            .await;
        Ok((confirm, allowed))
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
        crate::harness::audit_records_as(base, &carol, &format!("grant={grant}")).await
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
        let carol = self.id_token(gateway_url, "carol").await.ok()?;
        crate::harness::audit_record_as(base, &carol, &format!("grant={grant}"), wanted).await
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

/// The same served over HTTPS with a test CA's certificate (for the clients
/// that speak only TLS), and over plain HTTP for the test's own calls and
/// the person's browser, which speaks no TLS.
pub struct HttpsStack {
    pub stack: Stack,
    pub idp: LoginProvider,
    /// The same gateway over plain HTTP.
    pub plain_url: String,
    plain: tokio::task::JoinHandle<()>,
}

impl Drop for HttpsStack {
    fn drop(&mut self) {
        self.plain.abort();
    }
}

impl HttpsStack {
    /// `public_url` is the gateway's name when it has one the clients use
    /// (else they reach it at its loopback address, `stack.url`).
    pub async fn start(ca: &TestCa, public_url: Option<&str>) -> Result<HttpsStack> {
        let port = free_port()?;
        let mut variables = LoginProvider::variables(&format!("http://127.0.0.1:{port}"));
        if let Some(url) = public_url {
            variables.insert("public_url".into(), url.into());
        }
        let stack = Stack::start_with(StackOptions {
            variables,
            tls: Some(ca.acceptor()?),
            ..StackOptions::default()
        })
        .await?;
        let (listener, addr) = crate::host::loopback_listener().await?;
        let plain = stack.gateway.clone().serve(listener);
        let idp = LoginProvider::start(port, public_url.unwrap_or(&stack.url)).await?;
        Ok(HttpsStack {
            stack,
            idp,
            plain_url: format!("http://{addr}"),
            plain,
        })
    }
}
