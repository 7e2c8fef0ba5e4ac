//! `copilot-jit configure CLIENT --write` on a temporary home, for every
//! client: the file written is the one that client reads, and what the
//! client makes of it is checked with the client itself where it runs here
//! (Neovim, Vim and bash read their files; the real Copilot language server
//! then signs in through the gateway with only those settings).
//!
//! `scripts/test.sh` installs the language server (COPILOT_LS_BIN), the
//! provider (OIDC_PROVIDER_DIR), `neovim` and `vim`.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use copilot_jit_testkit::harness::eventually;
use copilot_jit_testkit::language_server::LanguageServer;
use copilot_jit_testkit::login_provider::stack_with_login_provider;
use serde_json::{json, Value};
use tokio::process::Command;

mod common;
use common::{log_in, Home};

/// A program run as the client runs: only PATH and the temporary home.
fn client(home: &Home, program: &str) -> Command {
    let mut c = Command::new(program);
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", &home.dir)
        .env("XDG_CONFIG_HOME", home.config())
        .env("SHELL", "/bin/bash")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    c
}

async fn output(mut c: Command, what: &str) -> String {
    let out = tokio::time::timeout(Duration::from_secs(30), c.output())
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish"))
        .unwrap_or_else(|e| panic!("{what} does not run ({e}); scripts/test.sh installs it"));
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The three language-server settings, as the client's process has them.
fn settings_from(json_text: &str, what: &str) -> Vec<(String, String)> {
    let v: Value = serde_json::from_str(json_text.trim())
        .unwrap_or_else(|e| panic!("{what}: {e}: {json_text}"));
    [
        "GH_COPILOT_TOKEN",
        "GH_COPILOT_API_URL",
        "GH_COPILOT_SERVER_URL",
    ]
    .iter()
    .map(|k| {
        let value = v[k].as_str().unwrap_or_default().to_string();
        assert!(!value.is_empty(), "{what} has no {k}: {v}");
        (k.to_string(), value)
    })
    .collect()
}

/// The language server, started with exactly `settings`, signs in through
/// the gateway.
async fn language_server_signs_in(settings: &[(String, String)], home: &Home, editor: &str) {
    let ls_home = home.dir.join("ls");
    std::fs::create_dir_all(ls_home.join("config")).expect("ls home");
    let mut ls = LanguageServer::start_with(settings, &ls_home);
    let status = ls.sign_in_status(editor).await;
    assert_eq!(status["status"], "OK", "{editor}: {status}");
    let _ = ls.child.start_kill();
}

async fn write(home: &Home, client_name: &str, gateway: &str) -> Value {
    let written = home
        .json(&[
            "configure",
            client_name,
            "--write",
            "--gateway",
            gateway,
            "--json",
        ])
        .await;
    assert_eq!(written["written"], true, "{written}");
    assert_eq!(written["gateway_answers"], true, "{written}");
    written
}

fn file(v: &Value) -> &Path {
    Path::new(v["file"].as_str().expect("file"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_client_reads_what_configure_writes() {
    let (stack, idp) = stack_with_login_provider()
        .await
        .expect("stack and identity provider");
    let home = Home::new("configure");
    log_in(&home, &stack, "alice").await;
    // Alice holds a grant (bob approved it), so the language server's sign-in
    // completes; the settings alone must get it there.
    let asked = home
        .json(&[
            "request",
            "--scopes",
            "chat,completions",
            "--reason",
            "editor setup",
            "--json",
        ])
        .await;
    let id = asked["request"]["id"].as_str().expect("id").to_string();
    let bob = idp.id_token(&stack.url, "bob").await.expect("bob's token");
    let approved = reqwest::Client::new()
        .post(format!("{}/v1/access-requests/{id}/approve", stack.url))
        .bearer_auth(&bob)
        .json(&json!({}))
        .send()
        .await
        .expect("reachable");
    assert_eq!(approved.status(), 200);
    let credential = home.json(&["credential", "--json"]).await["credential"]
        .as_str()
        .expect("credential")
        .to_string();

    // VS Code: its user settings.json, merged, the old one kept.
    let settings = home.config().join("Code/User/settings.json");
    std::fs::create_dir_all(settings.parent().unwrap()).unwrap();
    std::fs::write(&settings, "{\"editor.fontSize\": 14}\n").unwrap();
    let printed = home
        .json(&["configure", "vscode", "--gateway", &stack.url, "--json"])
        .await;
    assert_eq!(printed["written"], false);
    assert_eq!(
        std::fs::read_to_string(&settings).unwrap(),
        "{\"editor.fontSize\": 14}\n",
        "printing changes nothing"
    );
    let written = write(&home, "vscode", &stack.url).await;
    assert_eq!(file(&written), settings);
    let now: Value = serde_json::from_str(&std::fs::read_to_string(&settings).unwrap()).unwrap();
    assert_eq!(
        now["github.copilot.advanced.authProvider"],
        "github-enterprise"
    );
    assert_eq!(now["github-enterprise.uri"], stack.url.as_str());
    assert_eq!(now["editor.fontSize"], 14);
    let backup = written["backup"].as_str().expect("a backup");
    assert_eq!(
        std::fs::read_to_string(backup).unwrap(),
        "{\"editor.fontSize\": 14}\n"
    );
    assert!(
        written["todo"]
            .to_string()
            .contains("Sign in with GitHub Enterprise"),
        "{written}"
    );

    // Neovim: a plugin file it sources at start; what it then holds is what
    // the language server it starts inherits.
    let written = write(&home, "neovim", &stack.url).await;
    assert_eq!(
        file(&written),
        home.config().join("nvim/plugin/copilot-jit.lua")
    );
    let mut nvim = client(&home, "nvim");
    nvim.args([
        "--headless",
        "-i",
        "NONE",
        "+lua io.stdout:write(vim.json.encode({GH_COPILOT_TOKEN = vim.env.GH_COPILOT_TOKEN, GH_COPILOT_API_URL = vim.env.GH_COPILOT_API_URL, GH_COPILOT_SERVER_URL = vim.env.GH_COPILOT_SERVER_URL}))",
        "+qa!",
    ]);
    let from_nvim = settings_from(&output(nvim, "nvim").await, "neovim");
    assert_eq!(from_nvim[0].1, credential);
    language_server_signs_in(&from_nvim, &home, "Neovim").await;

    // Vim: the same, from ~/.vim/plugin.
    let written = write(&home, "vim", &stack.url).await;
    assert_eq!(file(&written), home.dir.join(".vim/plugin/copilot-jit.vim"));
    let dump = home.dir.join("vim-env.json");
    let mut vim = client(&home, "vim");
    vim.args([
        "-X",
        "-N",
        "-n",
        "--not-a-term",
        "-c",
        &format!(
            "call writefile([json_encode({{'GH_COPILOT_TOKEN': $GH_COPILOT_TOKEN, 'GH_COPILOT_API_URL': $GH_COPILOT_API_URL, 'GH_COPILOT_SERVER_URL': $GH_COPILOT_SERVER_URL}})], '{}')",
            dump.display()
        ),
        "-c",
        "qa!",
    ]);
    output(vim, "vim").await;
    let from_vim = settings_from(&std::fs::read_to_string(&dump).expect("vim wrote"), "vim");
    assert_eq!(from_vim, from_nvim);
    language_server_signs_in(&from_vim, &home, "Vim").await;

    // JetBrains: the shell's startup file, whose environment the IDE (and
    // the plugin's language server) inherit; what was there stays.
    let bashrc = home.dir.join(".bashrc");
    std::fs::write(&bashrc, "alias ll='ls -l'\n").unwrap();
    let written = write(&home, "jetbrains", &stack.url).await;
    assert_eq!(file(&written), bashrc);
    let mut bash = client(&home, "bash");
    bash.args([
        "-c",
        ". \"$HOME/.bashrc\"; printf '{\"GH_COPILOT_TOKEN\":\"%s\",\"GH_COPILOT_API_URL\":\"%s\",\"GH_COPILOT_SERVER_URL\":\"%s\"}' \"$GH_COPILOT_TOKEN\" \"$GH_COPILOT_API_URL\" \"$GH_COPILOT_SERVER_URL\"",
    ]);
    let from_bash = settings_from(&output(bash, "bash").await, "jetbrains");
    assert_eq!(from_bash, from_nvim);
    language_server_signs_in(&from_bash, &home, "JetBrains-IC").await;

    // Each of those sign-ins went through the gateway, as alice's editor.
    let carol = idp
        .id_token(&stack.url, "carol")
        .await
        .expect("carol's token");
    let editors = eventually(|| async {
        let body: Value = reqwest::Client::new()
            .get(format!(
                "{}/v1/audit/records?subject=alice&limit=500",
                stack.url
            ))
            .bearer_auth(&carol)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let apps: Vec<String> = body["records"]
            .as_array()?
            .iter()
            .filter(|r| r["unmapped"]["action"] == "copilot.token")
            .filter_map(|r| r["actor"]["app_name"].as_str().map(str::to_string))
            .collect();
        ["Neovim/1.0", "Vim/1.0", "JetBrains-IC/1.0"]
            .iter()
            .all(|e| apps.iter().any(|a| a == e))
            .then_some(apps)
    })
    .await;
    assert!(
        editors.is_some(),
        "the three editors' token exchanges are recorded under alice"
    );

    // The Copilot CLI: a block in the shell's startup file, next to what
    // was there (configured_copilot_cli.rs runs the real CLI from it).
    let written = write(&home, "cli", &stack.url).await;
    assert_eq!(file(&written), bashrc);
    assert!(
        written["todo"].to_string().contains("HTTPS"),
        "plain HTTP is named as a problem for the CLI: {written}"
    );
    let rc = std::fs::read_to_string(&bashrc).unwrap();
    assert!(rc.starts_with("alias ll='ls -l'\n"), "{rc}");
    assert_eq!(rc.matches("# >>> copilot-jit jetbrains >>>").count(), 1);
    assert_eq!(rc.matches("# >>> copilot-jit cli >>>").count(), 1);
    // A new shell has `copilot` run with the gateway as its host.
    let mut bash = client(&home, "bash");
    bash.args([
        "-c",
        ". \"$HOME/.bashrc\"; type copilot >/dev/null && declare -f copilot",
    ]);
    let defined = output(bash, "bash").await;
    assert!(
        defined.contains(&format!(
            "GH_HOST='{}'",
            stack.url.trim_start_matches("http://")
        )),
        "{defined}"
    );

    // Writing again replaces the block, it does not add another.
    write(&home, "cli", &stack.url).await;
    let again = std::fs::read_to_string(&bashrc).unwrap();
    assert_eq!(
        again.matches("# >>> copilot-jit cli >>>").count(),
        1,
        "{again}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configure_says_when_the_gateway_does_not_answer() {
    let home = Home::new("configure-down");
    let port = copilot_jit_testkit::login_provider::free_port().expect("port");
    let out = home
        .run(&[
            "configure",
            "vscode",
            "--gateway",
            &format!("http://127.0.0.1:{port}"),
            "--json",
        ])
        .await;
    assert_eq!(out.status.code(), Some(4));
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["gateway_answers"], false, "{v}");
    assert!(v["gateway_problem"]
        .as_str()
        .unwrap_or_default()
        .contains("cannot reach"));
}
