//! The pages in a real browser (Debian's headless `chromium` through
//! `chromium-driver`; scripts/test.sh installs both): alice signs in and asks
//! for access, bob approves in a second browser of his own, alice revokes.
//! Screenshots of each step are kept in `dist/test-artifacts/browser/`.
//! A form posted without its CSRF token, or with another session's, is
//! refused.

use copilot_jit_testkit::harness::{eventually, workspace_root, Stack};
use copilot_jit_testkit::webdriver::{Browser, Driver};

/// Signs in at the dev issuer's form as `who` in `groups`.
async fn dev_sign_in(b: &Browser, who: &str, groups: &str) {
    b.fill("input[name=login]", who).await.expect("login field");
    b.fill("input[name=groups]", groups)
        .await
        .expect("groups field");
    b.click("button[type=submit]").await.expect("submit");
}

/// The page source once it shows `needle` (a click's navigation finishes
/// after the click answers).
async fn page_showing(b: &Browser, needle: &str) -> String {
    let found = eventually(|| async {
        let page = b.source().await.ok()?;
        page.contains(needle).then_some(page)
    })
    .await;
    match found {
        Some(page) => page,
        None => panic!(
            "never showed {needle:?}: {}",
            b.source().await.unwrap_or_default()
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_people_request_approve_and_revoke_in_chromium() {
    let stack = Stack::start().await.expect("stack");
    let artifacts = workspace_root().join("dist/test-artifacts/browser");
    let profiles =
        std::env::temp_dir().join(format!("copilot-jit-chromium-{}", std::process::id()));
    let driver = Driver::start().await.expect("chromedriver");
    let alice = driver
        .browser(&profiles.join("alice"))
        .await
        .expect("alice's browser");
    let bob = driver
        .browser(&profiles.join("bob"))
        .await
        .expect("bob's browser");

    // Alice: /access sends her to sign in, then back.
    alice.goto(&format!("{}/access", stack.url)).await.unwrap();
    dev_sign_in(&alice, "alice", "developers").await;
    page_showing(&alice, "alice@example.com").await;
    alice
        .screenshot(&artifacts, "1-alice-signed-in")
        .await
        .unwrap();

    // She asks; the policy's answer is shown at once.
    alice
        .fill("input[name=reason]", "pairing on the parser")
        .await
        .unwrap();
    alice
        .click("form[action='/access'] button[type=submit]")
        .await
        .unwrap();
    page_showing(&alice, "waiting for 1 approval(s) from copilot-approvers").await;
    alice.screenshot(&artifacts, "2-alice-asked").await.unwrap();

    // Bob, in his own browser, approves from his inbox.
    bob.goto(&format!("{}/approvals", stack.url)).await.unwrap();
    dev_sign_in(&bob, "bob", "copilot-approvers").await;
    page_showing(&bob, "pairing on the parser").await;
    bob.screenshot(&artifacts, "3-bob-inbox").await.unwrap();
    bob.fill("#pending input[name=comment]", "go ahead")
        .await
        .unwrap();
    bob.click("#pending form[action$='/approve'] button")
        .await
        .unwrap();
    // Back in the inbox, the grant is now among the active ones.
    page_showing(&bob, "?from=approvals").await;
    bob.screenshot(&artifacts, "4-bob-approved").await.unwrap();

    // Alice sees it approved and revokes it.
    alice.goto(&format!("{}/access", stack.url)).await.unwrap();
    page_showing(&alice, ">approved<").await;
    alice.click("form[action$='/revoke'] button").await.unwrap();
    page_showing(&alice, ">revoked<").await;
    alice
        .screenshot(&artifacts, "5-alice-revoked")
        .await
        .unwrap();

    // Without the session's CSRF token, or with bob's, alice's cookie gets nowhere.
    let alice_cookie = alice
        .cookie("cjit_session")
        .await
        .unwrap()
        .expect("alice's session cookie");
    let post = |fields: Vec<(&'static str, String)>| {
        reqwest::Client::new()
            .post(format!("{}/access", stack.url))
            .header("cookie", format!("cjit_session={alice_cookie}"))
            .form(&fields)
            .send()
    };
    let no_token = post(vec![("scope", "chat".into()), ("reason", "forged".into())])
        .await
        .unwrap();
    assert_eq!(no_token.status(), 403);
    bob.goto(&format!("{}/access", stack.url)).await.unwrap();
    let bobs_page = page_showing(&bob, "name=\"csrf\"").await;
    let at = bobs_page
        .find("name=\"csrf\" value=\"")
        .expect("bob's form token")
        + 20;
    let bobs_csrf = bobs_page[at..at + 32].to_string();
    let crossed = post(vec![
        ("csrf", bobs_csrf),
        ("scope", "chat".into()),
        ("reason", "crossed".into()),
    ])
    .await
    .unwrap();
    assert_eq!(crossed.status(), 403);
    assert!(alice.url().await.unwrap().ends_with("/access"));

    alice.close().await;
    bob.close().await;
    let _ = std::fs::remove_dir_all(&profiles);
}
