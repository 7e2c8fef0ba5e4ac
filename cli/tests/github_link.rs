//! `copilot-jit github status | unlink` against a gateway in own-seat mode:
//! one command unlinks, and the person's calls stop using the seat at once.

use std::process::Command;

use copilot_jit_testkit::seats::{chat_at, grant_for, link, own_seat_stack};

fn cli(url: &str, token: &str, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_copilot-jit"))
        .arg("github")
        .args(args)
        .args(["--url", url])
        .env("COPILOT_JIT_TOKEN", token)
        .output()
        .expect("the CLI runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_command_unlinks_a_github_account() {
    let stack = own_seat_stack(&[]).await;
    let alice = stack.person("alice", &["developers"]);
    let (code, out) = cli(&stack.url, &alice, &["status"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("none: link your GitHub account at"), "{out}");
    link(&stack, &alice, "alice-gh").await;
    let (_, token) = grant_for(&stack, "alice").await;
    assert_eq!(chat_at(&stack.url, &token).await.status, 200);

    let (code, out) = cli(&stack.url, &alice, &["status"]);
    assert_eq!((code, out.trim()), (0, "linked: alice-gh"));
    let url = stack.url.clone();
    let who = alice.clone();
    let (code, out) = tokio::task::spawn_blocking(move || cli(&url, &who, &["unlink"]))
        .await
        .unwrap();
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("unlinked the GitHub account alice-gh"),
        "{out}"
    );
    assert_eq!(chat_at(&stack.url, &token).await.status, 403);
    let (code, out) = cli(&stack.url, &alice, &["unlink"]);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("no GitHub account is linked"), "{out}");
    let (code, out) = cli(&stack.url, "not-a-token", &["unlink"]);
    assert_eq!(code, 1, "{out}");
}
