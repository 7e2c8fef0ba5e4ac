//! The pages, walked by two people in their own browsers with the real IdP:
//! alice asks for access (the policy answers at once), bob approves from
//! his inbox, alice's signed-in CLI works, alice revokes. Forms without the
//! session's CSRF token, and sessions that are not yours, are refused.

use copilot_jit_testkit::browser::{Browser, Page};
use copilot_jit_testkit::harness::Stack;
use copilot_jit_testkit::login_provider::{stack_with_login_provider, LoginProvider};
use serde_json::{json, Value};

async fn stack_with_idp() -> (Stack, LoginProvider) {
    stack_with_login_provider()
        .await
        .expect("stack and identity provider")
}

/// Opens `path` signed out: off to the IdP, log in as `who`, back on `path`.
async fn sign_in_at(browser: &mut Browser, stack: &Stack, path: &str, who: &str) -> Page {
    let first = browser.get(&format!("{}{path}", stack.url)).await;
    assert_eq!(first.status, 303, "{}", first.text);
    let login = browser.follow(first).await;
    let after = LoginProvider::log_in(browser, login, who)
        .await
        .expect("login");
    let page = browser.follow(after).await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(page.url.ends_with(path), "{}", page.url);
    page
}

/// A signed-in CLI credential for `who` (device flow, confirmed in `browser`).
async fn cli_credential(stack: &Stack, browser: &mut Browser) -> String {
    let started: Value = reqwest::Client::new()
        .post(format!("{}/login/device/code", stack.url))
        .form(&[("client_id", "Ov23ctDVkRmgkPke0Mmm")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let user_code = started["user_code"].as_str().unwrap();
    let entry = browser
        .get(&format!("{}/login/device?user_code={user_code}", stack.url))
        .await;
    let csrf = entry.input("csrf").unwrap();
    let to_confirm = browser
        .post_form(
            &entry.form_action().unwrap(),
            &[("csrf", &csrf), ("user_code", user_code)],
        )
        .await;
    // Already signed in here: straight to the confirmation, no IdP round trip.
    let confirm = browser.follow(to_confirm).await;
    assert_eq!(confirm.status, 200, "{}", confirm.text);
    let csrf = confirm.input("csrf").unwrap();
    let done = browser
        .post_form(
            &confirm.form_action().unwrap(),
            &[
                ("csrf", &csrf),
                ("user_code", user_code),
                ("decision", "allow"),
            ],
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.text);
    let polled: Value = reqwest::Client::new()
        .post(format!("{}/login/oauth/access_token", stack.url))
        .form(&[
            ("device_code", started["device_code"].as_str().unwrap()),
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    polled["access_token"]
        .as_str()
        .expect("credential")
        .to_string()
}

async fn chat_status(stack: &Stack, credential: &str) -> u16 {
    reqwest::Client::new()
        .post(format!("{}/chat/completions", stack.url))
        .bearer_auth(credential)
        .json(&json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_approve_and_revoke_from_the_pages() {
    let (stack, _idp) = stack_with_idp().await;
    let mut alice = Browser::new();
    let mut bob = Browser::new();

    // Alice signs in at /access and signs her CLI in: no grant yet.
    let page = sign_in_at(&mut alice, &stack, "/access", "alice").await;
    assert!(page.text.contains("alice@example.com"), "{}", page.text);
    let credential = cli_credential(&stack, &mut alice).await;
    assert_eq!(chat_status(&stack, &credential).await, 403);

    // She asks; the policy's answer is on the page at once.
    let (action, csrf) = page.form_ending("/access");
    let asked = alice
        .post_form(
            &action,
            &[
                ("csrf", &csrf),
                ("scope", "chat"),
                ("duration", "1h"),
                ("reason", "pairing on the parser"),
            ],
        )
        .await;
    assert_eq!(asked.status, 200, "{}", asked.text);
    assert!(
        asked
            .text
            .contains("waiting for 1 approval(s) from copilot-approvers"),
        "{}",
        asked.text
    );
    assert_eq!(
        asked.header("refresh").as_deref(),
        Some("10"),
        "pending pages refresh themselves"
    );
    let id = asked.first_request_id();

    // Without the CSRF token nothing is asked.
    let forged = alice
        .post_form(&action, &[("scope", "chat"), ("reason", "forged")])
        .await;
    assert_eq!(forged.status, 403, "{}", forged.text);

    // Bob's inbox (his own browser, his own session) shows it; he approves.
    let inbox = sign_in_at(&mut bob, &stack, "/approvals", "bob").await;
    assert!(inbox.text.contains(&id), "{}", inbox.text);
    assert!(inbox.text.contains("pairing on the parser"));
    let (approve, bobs_csrf) = inbox.form_ending(&format!("/access/{id}/approve"));
    // Alice's token is not Bob's.
    let alices_csrf = page.input("csrf").unwrap();
    let crossed = bob
        .post_form(&approve, &[("csrf", &alices_csrf), ("comment", "ok")])
        .await;
    assert_eq!(crossed.status, 403, "{}", crossed.text);
    // Alice cannot approve her own request, even with her own token.
    let self_approval = alice
        .post_form(&approve, &[("csrf", &alices_csrf), ("comment", "me")])
        .await;
    assert_eq!(self_approval.status, 403, "{}", self_approval.text);
    let approved = bob
        .post_form(&approve, &[("csrf", &bobs_csrf), ("comment", "go ahead")])
        .await;
    assert_eq!(approved.status, 303, "{}", approved.text);

    // The same CLI credential now works; alice's page says approved.
    assert_eq!(chat_status(&stack, &credential).await, 200);
    let mine = alice.get(&format!("{}/access", stack.url)).await;
    assert!(mine.text.contains("approved"), "{}", mine.text);
    assert!(mine.header("refresh").is_none());

    // She revokes it from her page; the CLI stops at once.
    let (revoke, csrf) = mine.form_ending(&format!("/access/{id}/revoke"));
    let revoked = alice.post_form(&revoke, &[("csrf", &csrf)]).await;
    assert_eq!(revoked.status, 303, "{}", revoked.text);
    assert_eq!(chat_status(&stack, &credential).await, 403);

    // Her devices: the CLI is listed and can be signed out.
    let devices = alice.get(&format!("{}/login/devices", stack.url)).await;
    assert!(
        devices.text.contains("GitHub Copilot CLI"),
        "{}",
        devices.text
    );
    let at = devices.text.find("data-device=\"").unwrap() + 13;
    let device = &devices.text[at..at + 16];
    let (out, csrf) = devices.form_ending(&format!("/login/devices/{device}/revoke"));
    let ended = alice.post_form(&out, &[("csrf", &csrf)]).await;
    assert_eq!(ended.status, 303, "{}", ended.text);
    assert_eq!(chat_status(&stack, &credential).await, 401);
}
