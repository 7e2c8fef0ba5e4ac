//! What the command-line tests share: a person's home, and signing in with
//! the device flow, the browser step driven as a person does it.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::time::Duration;

use copilot_jit_testkit::browser::Browser;
use copilot_jit_testkit::dev_issuer::DevIssuer;
use copilot_jit_testkit::harness::Stack;
use copilot_jit_testkit::login_provider::LoginProvider;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

/// One person's machine: a home of their own (config dir, credential).
pub struct Home {
    pub dir: PathBuf,
}

impl Home {
    pub fn new(name: &str) -> Home {
        let dir = std::env::temp_dir().join(format!(
            "copilot-jit-people-{name}-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        std::fs::create_dir_all(&dir).expect("temp home");
        Home { dir }
    }

    pub fn config(&self) -> PathBuf {
        self.dir.join(".config")
    }

    /// The command as this person runs it: no browser to open, no colour,
    /// no keyring (the 0600 file is what is under test here).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_copilot-jit"));
        c.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", &self.dir)
            .env("XDG_CONFIG_HOME", self.config())
            .env("NO_COLOR", "1")
            .env("COPILOT_JIT_NO_BROWSER", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        c
    }

    pub async fn run(&self, args: &[&str]) -> Output {
        tokio::time::timeout(Duration::from_secs(60), self.command(args).output())
            .await
            .unwrap_or_else(|_| panic!("copilot-jit {args:?} did not finish"))
            .expect("copilot-jit runs")
    }

    /// Runs a `--json` command that must succeed; its answer, parsed.
    pub async fn json(&self, args: &[&str]) -> Value {
        let out = self.run(args).await;
        assert!(
            out.status.success(),
            "copilot-jit {args:?}: {:?} {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "copilot-jit {args:?}: not JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0)
}

/// Which identity provider's sign-in form the browser meets.
#[derive(Clone, Copy)]
pub enum Idp {
    /// The real `oidc-provider` (people as in its account list).
    LoginProvider,
    /// The gateway's development issuer, what `scripts/run-dev.sh` serves.
    DevIssuer,
}

/// The browser step of the device flow, as a person does it: open the
/// link the command printed, sign in at the IdP's own form, allow.
pub async fn confirm_in_browser(mut browser: Browser, url: &str, who: &str, idp: Idp) {
    let entry = browser.get(url).await;
    assert_eq!(entry.status, 200, "{}", entry.text);
    let csrf = entry.input("csrf").expect("form token");
    let user_code = entry.input("user_code").expect("the code, filled in");
    let to_idp = browser
        .post_form(
            &entry.form_action().expect("form"),
            &[("csrf", &csrf), ("user_code", &user_code)],
        )
        .await;
    assert_eq!(to_idp.status, 303, "{}", to_idp.text);
    let login_page = browser.follow(to_idp).await;
    let after_login = match idp {
        Idp::LoginProvider => LoginProvider::log_in(&mut browser, login_page, who)
            .await
            .expect("login at the IdP"),
        Idp::DevIssuer => {
            DevIssuer::fill_sign_in_form(&mut browser, login_page, who, "developers").await
        }
    };
    let confirm = browser.follow(after_login).await;
    assert_eq!(confirm.status, 200, "{}", confirm.text);
    assert!(
        confirm.text.contains("copilot-jit command line"),
        "the page names the client: {}",
        confirm.text
    );
    let done = browser
        .post_form(
            &confirm.form_action().expect("confirm form"),
            &[
                ("csrf", &confirm.input("csrf").expect("csrf")),
                ("user_code", &user_code),
                ("decision", "allow"),
            ],
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.text);
}

/// `copilot-jit login --json` for `who`, the browser step driven meanwhile;
/// the command's final answer.
pub async fn log_in(home: &Home, stack: &Stack, who: &str) -> Value {
    log_in_at(home, stack, who, Idp::LoginProvider).await
}

pub async fn log_in_at(home: &Home, stack: &Stack, who: &str, idp: Idp) -> Value {
    let login = home.command(&["login", "--gateway", &stack.url, "--json"]);
    log_in_with(login, &stack.url, who, idp, Browser::new()).await
}

/// Runs `login` (the `command` given, for `gateway`), the browser step in
/// `browser`.
pub async fn log_in_with(
    mut command: Command,
    gateway: &str,
    who: &str,
    idp: Idp,
    browser: Browser,
) -> Value {
    let mut child = command.spawn().expect("login starts");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("the code is shown at once")
        .expect("stdout")
        .expect("a first line");
    let started: Value = serde_json::from_str(&first).expect("JSON");
    assert_eq!(started["event"], "device_code", "{started}");
    let user_code = started["user_code"].as_str().expect("user_code");
    let link = started["verification_uri_complete"]
        .as_str()
        .expect("the link to open");
    assert!(
        link.starts_with(&format!("{gateway}/login/device")),
        "{link}"
    );
    assert!(link.contains(user_code), "{link}");
    confirm_in_browser(browser, link, who, idp).await;
    let last = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("login finishes once allowed")
        .expect("stdout")
        .expect("a last line");
    let status = child.wait().await.expect("exit");
    assert!(status.success(), "login exited {status:?}");
    serde_json::from_str(&last).expect("JSON")
}

/// A `--wait` run, once it ends (within 30 s): its status and stdout.
pub async fn waited_for(mut child: tokio::process::Child) -> (Option<i32>, String) {
    tokio::time::timeout(Duration::from_secs(30), async {
        let mut out = String::new();
        let mut stdout = child.stdout.take().expect("stdout");
        tokio::io::AsyncReadExt::read_to_string(&mut stdout, &mut out)
            .await
            .expect("read");
        (child.wait().await.expect("exit").code(), out)
    })
    .await
    .expect("--wait ends once decided")
}

pub async fn chat(stack: &Stack, credential: &str) -> u16 {
    reqwest::Client::new()
        .post(format!("{}/chat/completions", stack.url))
        .header("authorization", format!("Bearer {credential}"))
        .json(&json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}]}))
        .send()
        .await
        .expect("reachable")
        .status()
        .as_u16()
}

/// Runs the command with its stdout on a terminal (a pseudo-terminal made
/// here), the way a person sees it; what it printed there, and its status.
#[cfg(unix)]
pub async fn on_terminal(mut command: Command) -> (Option<i32>, String) {
    use std::io::Read;
    use std::os::fd::{FromRawFd, OwnedFd};

    let (mut controller, terminal) = {
        let (mut controller, mut terminal) = (-1, -1);
        // SAFETY: openpty writes two new descriptors into the out-pointers;
        // null name, termios and size are allowed.
        let made = unsafe {
            libc::openpty(
                &mut controller,
                &mut terminal,
                std::ptr::null_mut(),
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        assert_eq!(made, 0, "openpty: {}", std::io::Error::last_os_error());
        // SAFETY: both descriptors are new and owned by nobody else.
        unsafe {
            (
                std::fs::File::from(OwnedFd::from_raw_fd(controller)),
                OwnedFd::from_raw_fd(terminal),
            )
        }
    };
    let mut child = command
        .stdout(Stdio::from(terminal))
        .spawn()
        .expect("copilot-jit starts");
    // The command's end closes the terminal; reading then ends with EIO.
    let shown = tokio::task::spawn_blocking(move || {
        let mut shown = Vec::new();
        let mut chunk = [0u8; 4096];
        while let Ok(n @ 1..) = controller.read(&mut chunk) {
            shown.extend_from_slice(&chunk[..n]);
        }
        String::from_utf8_lossy(&shown).into_owned()
    });
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("copilot-jit finishes")
        .expect("exit status");
    // Dropping the command released the parent's copy of the terminal.
    drop(command);
    (status.code(), shown.await.expect("the terminal is read"))
}
