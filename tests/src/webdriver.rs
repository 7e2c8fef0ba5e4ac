//! A real browser for the pages: Debian's `chromium`, headless, driven over
//! W3C WebDriver by `chromium-driver` (`chromedriver`), with plain HTTP
//! calls (no client crate needed). Each `Browser` session has its own
//! profile, so two sessions are two people.

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Driver {
    url: String,
    _child: Child,
}

fn chromedriver() -> String {
    std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into())
}

impl Driver {
    pub async fn start() -> Result<Driver> {
        let port = crate::login_provider::free_port()?;
        let child = Command::new(chromedriver())
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("chromedriver starts (scripts/test.sh installs chromium-driver)")?;
        let url = format!("http://127.0.0.1:{port}");
        for _ in 0..100 {
            let ready = reqwest::get(format!("{url}/status")).await;
            if let Ok(r) = ready {
                let v: Value = r.json().await.unwrap_or_default();
                if v["value"]["ready"] == true {
                    return Ok(Driver { url, _child: child });
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("chromedriver did not become ready")
    }

    /// A new headless browser with its own profile in `profile`.
    pub async fn browser(&self, profile: &Path) -> Result<Browser> {
        let binary = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": binary,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1100,900", format!("--user-data-dir={}", profile.display())],
            }
        }}});
        let created: Value = reqwest::Client::new()
            .post(format!("{}/session", self.url))
            .json(&caps)
            .send()
            .await?
            .json()
            .await?;
        let id = created["value"]["sessionId"]
            .as_str()
            .with_context(|| format!("no session: {created}"))?;
        Ok(Browser {
            base: format!("{}/session/{id}", self.url),
        })
    }
}

pub struct Browser {
    base: String,
}

impl Browser {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value> {
        let mut req = reqwest::Client::new().request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let v: Value = req.send().await?.json().await?;
        if v["value"].get("error").is_some() {
            bail!("webdriver {path}: {}", v["value"]);
        }
        Ok(v["value"].clone())
    }

    pub async fn goto(&self, url: &str) -> Result<()> {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await?;
        Ok(())
    }

    pub async fn url(&self) -> Result<String> {
        Ok(self
            .call(reqwest::Method::GET, "/url", None)
            .await?
            .as_str()
            .unwrap_or("")
            .to_string())
    }

    pub async fn source(&self) -> Result<String> {
        Ok(self
            .call(reqwest::Method::GET, "/source", None)
            .await?
            .as_str()
            .unwrap_or("")
            .to_string())
    }

    pub async fn find(&self, css: &str) -> Result<String> {
        let v = self
            .call(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await
            .with_context(|| format!("no element {css}"))?;
        v[ELEMENT]
            .as_str()
            .map(str::to_string)
            .with_context(|| format!("element id in {v}"))
    }

    pub async fn fill(&self, css: &str, text: &str) -> Result<()> {
        let el = self.find(css).await?;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{el}/clear"),
            Some(json!({})),
        )
        .await?;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{el}/value"),
            Some(json!({"text": text})),
        )
        .await?;
        Ok(())
    }

    pub async fn click(&self, css: &str) -> Result<()> {
        let el = self.find(css).await?;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{el}/click"),
            Some(json!({})),
        )
        .await?;
        Ok(())
    }

    /// The browser's cookies for the current page, as `name=value` pairs.
    pub async fn cookie(&self, name: &str) -> Result<Option<String>> {
        let all = self.call(reqwest::Method::GET, "/cookie", None).await?;
        Ok(all
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["name"] == name)
            .and_then(|c| c["value"].as_str().map(str::to_string)))
    }

    /// Saves a PNG of the page as `dir/name.png` (test artifacts).
    pub async fn screenshot(&self, dir: &Path, name: &str) -> Result<PathBuf> {
        use base64::Engine as _;
        let png = self.call(reqwest::Method::GET, "/screenshot", None).await?;
        let bytes = base64::engine::general_purpose::STANDARD.decode(png.as_str().unwrap_or(""))?;
        std::fs::create_dir_all(dir)?;
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, bytes)?;
        Ok(path)
    }

    pub async fn close(self) {
        let _ = reqwest::Client::new().delete(&self.base).send().await;
    }
}
