//! The device flow's verification page, driven the way a person does it:
//! enter the code, sign in at the real IdP (oidc-provider's own login form;
//! authorization code + PKCE, state, nonce), confirm the device. The
//! client's next poll then gets its credential. Hostile callbacks (replays,
//! another browser's state, forged parameters) get readable refusals.

use copilot_jit_testkit::browser::{Browser, Page};
use copilot_jit_testkit::harness::{eventually, Stack};
use copilot_jit_testkit::login_provider::{stack_with_login_provider, LoginProvider};
use serde_json::Value;

const CLI_CLIENT_ID: &str = "Ov23ctDVkRmgkPke0Mmm";
const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

async fn stack_with_idp() -> (Stack, LoginProvider) {
    stack_with_login_provider()
        .await
        .expect("stack and identity provider")
}

/// The Copilot CLI starts signing in: (device code, user code).
async fn cli_starts(stack: &Stack) -> (String, String) {
    let started: Value = reqwest::Client::new()
        .post(format!("{}/login/device/code", stack.url))
        .header("accept", "application/json")
        .form(&[("client_id", CLI_CLIENT_ID), ("scope", "read:user,repo")])
        .send()
        .await
        .expect("reachable")
        .json()
        .await
        .expect("json");
    (
        started["device_code"].as_str().expect("device_code").into(),
        started["user_code"].as_str().expect("user_code").into(),
    )
}

async fn cli_polls(stack: &Stack, device_code: &str) -> Value {
    reqwest::Client::new()
        .post(format!("{}/login/oauth/access_token", stack.url))
        .header("accept", "application/json")
        .form(&[
            ("client_id", CLI_CLIENT_ID),
            ("device_code", device_code),
            ("grant_type", DEVICE_GRANT),
        ])
        .send()
        .await
        .expect("reachable")
        .json()
        .await
        .expect("json")
}

/// Enters the code on the page and follows the browser to the IdP's login
/// form.
async fn enter_code(browser: &mut Browser, stack: &Stack, user_code: &str) -> Page {
    let entry = browser
        .get(&format!("{}/login/device?user_code={user_code}", stack.url))
        .await;
    assert_eq!(entry.status, 200, "{}", entry.text);
    let csrf = entry.input("csrf").expect("form token");
    assert_eq!(entry.input("user_code").as_deref(), Some(user_code));
    let started = browser
        .post_form(
            &entry.form_action().expect("form"),
            &[("csrf", &csrf), ("user_code", &user_code.to_lowercase())],
        )
        .await;
    assert_eq!(started.status, 303, "{}", started.text);
    started
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_a_device_in_at_the_real_idp() {
    let (stack, idp) = stack_with_idp().await;
    let (device_code, user_code) = cli_starts(&stack).await;
    let mut browser = Browser::new();

    // 1. The code-entry page: strict headers, a form token.
    let entry = browser.get(&format!("{}/login/device", stack.url)).await;
    let csp = entry.header("content-security-policy").expect("csp");
    assert!(
        csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(entry.header("x-frame-options").as_deref(), Some("DENY"));
    assert!(entry
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    // Without the form token, nothing happens.
    let forged = browser
        .post_form(
            &format!("{}/login/device", stack.url),
            &[("user_code", &user_code)],
        )
        .await;
    assert_eq!(forged.status, 403, "{}", forged.text);
    assert!(forged.text.contains("reload the page"), "{}", forged.text);

    // 2. Code → the IdP, with PKCE, state and nonce.
    let to_idp = enter_code(&mut browser, &stack, &user_code).await;
    let authorize = to_idp.location().expect("redirect");
    assert!(authorize.starts_with(&idp.issuer), "{authorize}");
    for p in [
        "code_challenge_method=S256",
        "code_challenge=",
        "state=",
        "nonce=",
        "client_id=copilot-jit",
    ] {
        assert!(authorize.contains(p), "{p} missing in {authorize}");
    }
    let login_page = browser.follow(to_idp).await;
    assert_eq!(login_page.status, 200, "{}", login_page.text);

    // 3. Alice signs in at the IdP; the callback brings her back, signed in.
    let after_login = LoginProvider::log_in(&mut browser, login_page, "alice")
        .await
        .expect("login");
    let confirm = browser.follow(after_login).await;
    assert_eq!(confirm.status, 200, "{}", confirm.text);
    assert!(
        confirm
            .url
            .starts_with(&format!("{}/login/device/confirm", stack.url)),
        "{}",
        confirm.url
    );
    assert!(
        confirm.text.contains("alice@example.com"),
        "{}",
        confirm.text
    );
    assert!(
        confirm.text.contains("GitHub Copilot CLI"),
        "{}",
        confirm.text
    );
    let session_cookie = browser
        .set_cookies
        .iter()
        .find(|c| c.starts_with("cjit_session="))
        .expect("a session cookie")
        .clone();
    assert!(
        session_cookie.contains("HttpOnly") && session_cookie.contains("SameSite=Lax"),
        "{session_cookie}"
    );
    // Plain-HTTP loopback development: Secure is left off (and only there).
    assert!(!session_cookie.contains("Secure"), "{session_cookie}");

    // Still pending until she confirms; a POST without the CSRF token fails.
    assert_eq!(
        cli_polls(&stack, &device_code).await["error"],
        "authorization_pending"
    );
    let action = confirm.form_action().expect("confirm form");
    let no_token = browser
        .post_form(&action, &[("user_code", &user_code), ("decision", "allow")])
        .await;
    assert_eq!(no_token.status, 403, "{}", no_token.text);

    // 4. She allows it; the CLI's next poll gets her credential.
    let csrf = confirm.input("csrf").expect("csrf");
    let done = browser
        .post_form(
            &action,
            &[
                ("csrf", &csrf),
                ("user_code", &user_code),
                ("decision", "allow"),
            ],
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.text);
    assert!(done.text.contains("Device signed in"), "{}", done.text);
    let polled = cli_polls(&stack, &device_code).await;
    let credential = polled["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("{polled}"));
    let user: Value = reqwest::Client::new()
        .get(format!("{}/user", stack.url))
        .header("authorization", format!("token {credential}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(user["email"], "alice@example.com", "{user}");
    assert_eq!(user["login"], "alice");

    // 5. The sign-in at the IdP and the confirmation are recorded, under
    //    alice (read by carol, an auditor at the same IdP).
    let carol = idp
        .id_token(&stack.url, "carol")
        .await
        .expect("carol's token");
    let actions = eventually(|| async {
        let body: Value = reqwest::Client::new()
            .get(format!(
                "{}/v1/audit/records?subject=alice&limit=100",
                stack.url
            ))
            .bearer_auth(&carol)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        let actions: Vec<String> = body["records"]
            .as_array()?
            .iter()
            .filter_map(|r| r["unmapped"]["action"].as_str().map(str::to_string))
            .collect();
        (actions.iter().any(|a| a == "signin.web") && actions.iter().any(|a| a == "signin.bind"))
            .then_some(actions)
    })
    .await;
    assert!(
        actions.is_some(),
        "the IdP sign-in and the confirmation are recorded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_callbacks_and_sessions_are_refused_readably() {
    let (stack, _idp) = stack_with_idp().await;
    let (_, user_code) = cli_starts(&stack).await;

    // A login started in one browser, its callback replayed.
    let mut alice = Browser::new();
    let to_idp = enter_code(&mut alice, &stack, &user_code).await;
    let login_page = alice.follow(to_idp).await;
    let after_login = LoginProvider::log_in(&mut alice, login_page, "alice")
        .await
        .expect("login");
    // Walk to the callback URL without visiting it, to deliver it elsewhere.
    let mut page = after_login;
    let callback = loop {
        let to = page.location().expect("a redirect towards the callback");
        if to.starts_with(&format!("{}/login/callback", stack.url)) {
            break to;
        }
        page = alice.get(&to).await;
    };
    // Mallory's browser (no login cookie) cannot use alice's callback.
    let mut mallory = Browser::new();
    let stolen = mallory.get(&callback).await;
    assert_eq!(stolen.status, 400, "{}", stolen.text);
    assert!(stolen.text.contains("another browser"), "{}", stolen.text);
    // Its state is spent by the refusal? No: alice's own browser still works once...
    let own = alice.get(&callback).await;
    assert_eq!(own.status, 303, "{}", own.text);
    // ...and never twice.
    let replayed = alice.get(&callback).await;
    assert_eq!(replayed.status, 400, "{}", replayed.text);
    assert!(replayed.text.contains("already used"), "{}", replayed.text);

    // Forged and malformed callbacks, open redirects: pages, never a 500.
    for query in [
        "",
        "?error=access_denied&state=x",
        "?code=abc&state=short",
        &format!("?code={}&state={}", "c".repeat(5000), "a".repeat(64)),
        &format!("?code=abc&state={}", "a".repeat(64)),
        &format!(
            "?code=abc&state={}&then=https://evil.example",
            "b".repeat(64)
        ),
    ] {
        let page = alice
            .get(&format!("{}/login/callback{query}", stack.url))
            .await;
        assert_eq!(page.status, 400, "{query}: {}", page.text);
        assert!(page.header("location").is_none(), "{query}");
        assert!(page.text.contains("<h1>"), "{query}: a readable page");
    }

    // Another session's cookie does not carry its CSRF token along.
    let alice_session = alice
        .cookie(&stack.url, "cjit_session")
        .expect("alice's session");
    let (_, bobs_code) = cli_starts(&stack).await;
    let mut bob = Browser::new();
    let to_idp = enter_code(&mut bob, &stack, &bobs_code).await;
    let login_page = bob.follow(to_idp).await;
    let after = LoginProvider::log_in(&mut bob, login_page, "bob")
        .await
        .expect("login");
    let bobs_confirm = bob.follow(after).await;
    let bobs_csrf = bobs_confirm.input("csrf").expect("bob's csrf");
    let mut thief = Browser::new();
    thief.set_cookie(&stack.url, "cjit_session", &alice_session);
    let crossed = thief
        .post_form(
            &format!("{}/login/device/confirm", stack.url),
            &[
                ("csrf", &bobs_csrf),
                ("user_code", &bobs_code),
                ("decision", "allow"),
            ],
        )
        .await;
    assert_eq!(crossed.status, 403, "{}", crossed.text);

    // A code already taken cannot be confirmed by a second person.
    let confirmed = bob
        .post_form(
            &bobs_confirm.form_action().unwrap(),
            &[
                ("csrf", &bobs_csrf),
                ("user_code", &bobs_code),
                ("decision", "allow"),
            ],
        )
        .await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.text);
    let alice_confirm = alice
        .get(&format!(
            "{}/login/device/confirm?user_code={bobs_code}",
            stack.url
        ))
        .await;
    assert_eq!(alice_confirm.status, 400, "{}", alice_confirm.text);
    assert!(
        alice_confirm.text.contains("already used"),
        "{}",
        alice_confirm.text
    );

    // Sign-out ends the browser session.
    let csrf = alice
        .get(&format!(
            "{}/login/device/confirm?user_code={user_code}",
            stack.url
        ))
        .await
        .input("csrf")
        .expect("alice's form");
    let out = alice
        .post_form(&format!("{}/logout", stack.url), &[("csrf", &csrf)])
        .await;
    assert_eq!(out.status, 200, "{}", out.text);
    assert!(alice.cookie(&stack.url, "cjit_session").is_none());
    let mut replay = Browser::new();
    replay.set_cookie(&stack.url, "cjit_session", &alice_session);
    let after_out = replay
        .get(&format!(
            "{}/login/device/confirm?user_code={user_code}",
            stack.url
        ))
        .await;
    assert_eq!(
        after_out.status, 303,
        "an ended session sends the person to sign in again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newcomer_signs_in_from_a_browser_with_the_dev_issuer() {
    // What scripts/run-dev.sh serves: the dev issuer's own sign-in form.
    let stack = Stack::start().await.expect("stack");
    let mut browser = Browser::new();
    let page = copilot_jit_testkit::dev_issuer::DevIssuer::browser_sign_in(
        &mut browser,
        &format!("{}/access", stack.url),
        "alice",
        "developers",
    )
    .await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(page.text.contains("alice@example.com"), "{}", page.text);
    assert!(page.text.contains("Request access"), "{}", page.text);
}
