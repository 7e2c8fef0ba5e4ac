//! Each person's own Copilot seat (issue 20): people link their GitHub
//! account with GitHub's device flow run by the gateway, their tokens sit
//! sealed in the vault, and every Copilot call goes upstream with the
//! Copilot token of the person who made it. Against the mock upstream's
//! GitHub (device flow, expiring user tokens with rotating refresh tokens,
//! `/user`, the Copilot token exchange per account).

use copilot_jit_testkit::browser::Browser;
use copilot_jit_testkit::dev_issuer::DevIssuer;
use copilot_jit_testkit::garage::Garage;
use copilot_jit_testkit::harness::{eventually, Answer, Stack, StackOptions, APPROVERS};
use copilot_jit_testkit::mock_upstream::SHARED_LOGIN;
use copilot_jit_testkit::seats::{
    chat_at, grant_for, link, link_at, options, own_seat_stack, vault_key, EIGHT_HOURS, LATER,
};
use serde_json::{json, Value};

/// The token envelope, as an editor asks for it.
async fn token_envelope(stack: &Stack, token: &str) -> Answer {
    stack
        .call("GET", "/copilot_internal/v2/token", Some(token), None)
        .await
}

async fn chat(stack: &Stack, token: &str) -> Answer {
    chat_at(&stack.url, token).await
}

/// The GitHub account whose Copilot token each upstream chat carried, in order.
fn chat_seats(stack: &Stack) -> Vec<String> {
    stack
        .upstream
        .requests()
        .iter()
        .filter(|r| r.path == "/chat/completions")
        .map(|r| r.copilot_user.clone().unwrap_or_default())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_persons_calls_carry_their_own_copilot_token() {
    let stack = own_seat_stack(&[]).await;
    let alice = stack.person("alice", &["developers"]);
    let dave = stack.person("dave", &["developers"]);
    let (alice_grant, alice_token) = grant_for(&stack, "alice").await;
    let (_, dave_token) = grant_for(&stack, "dave").await;

    // Before linking, the call and the token envelope say how to link.
    let refused = chat(&stack, &alice_token).await;
    assert_eq!(refused.status, 403, "{}", refused.text);
    assert_eq!(refused.json["error"]["code"], "github_link_needed");
    let link_url = format!("{}/github/link", stack.url);
    assert_eq!(refused.json["error_details"]["url"], link_url.as_str());
    let envelope = token_envelope(&stack, &alice_token).await;
    assert_eq!(envelope.status, 403, "{}", envelope.text);
    assert_eq!(envelope.json["error_details"]["url"], link_url.as_str());
    assert!(chat_seats(&stack).is_empty(), "nothing reached upstream");

    let linked = link(&stack, &alice, "alice-gh").await;
    assert_eq!(linked["copilot_seat"], true, "{linked}");
    link(&stack, &dave, "dave-gh").await;

    // A GitHub account already linked to someone else is refused.
    let mallory = stack.person("mallory", &["developers"]);
    let stolen = link_at(&stack.url, &stack, &mallory, "alice-gh").await;
    assert_ne!(stolen["status"], "linked", "{stolen}");
    let status = stack
        .call("GET", "/v1/github/link", Some(&mallory), None)
        .await;
    assert_eq!(status.json["status"], "none", "{}", status.text);

    // Calls of each person go upstream with that person's Copilot token.
    for _ in 0..2 {
        for token in [&alice_token, &dave_token] {
            let answer = chat(&stack, token).await;
            assert_eq!(answer.status, 200, "{}", answer.text);
        }
    }
    let envelope = token_envelope(&stack, &alice_token).await;
    assert_eq!(envelope.status, 200, "{}", envelope.text);
    assert_eq!(
        chat_seats(&stack),
        ["alice-gh", "dave-gh", "alice-gh", "dave-gh"]
    );
    let tokens_of = |login: &str| -> Vec<String> {
        stack
            .upstream
            .requests()
            .iter()
            .filter(|r| r.path == "/chat/completions" && r.copilot_user.as_deref() == Some(login))
            .filter_map(|r| r.authorization.clone())
            .collect()
    };
    let (a, d) = (tokens_of("alice-gh"), tokens_of("dave-gh"));
    assert!(a.iter().all(|t| !d.contains(t)), "seats never shared");
    assert_eq!(stack.upstream.leaks(), 0);

    // Each record names the upstream login and the mode.
    let record = stack
        .audit_record(&format!("grant={alice_grant}"), |r| {
            r["api"]["operation"] == "copilot.chat" && r["status_code"] == "200"
        })
        .await
        .expect("alice's call is recorded");
    assert_eq!(record["unmapped"]["upstream_login"], "alice-gh", "{record}");
    assert_eq!(record["unmapped"]["upstream_mode"], "own-seat");

    // Alice's grant is revoked: her calls stop, dave's go on.
    let bob = stack.person("bob", &[APPROVERS]);
    let revoked = stack
        .call(
            "POST",
            &format!("/v1/grants/{alice_grant}/revoke"),
            Some(&bob),
            json!({}),
        )
        .await;
    assert_eq!(revoked.status, 200, "{}", revoked.text);
    assert_eq!(chat(&stack, &alice_token).await.status, 403);
    assert_eq!(chat(&stack, &dave_token).await.status, 200);

    // GitHub revokes alice's tokens: her link breaks, dave's seat is untouched.
    let (_, alice_token) = grant_for(&stack, "alice").await;
    stack.upstream.revoke_user_tokens("alice-gh");
    stack.upstream.revoke_issued_tokens();
    let broken = chat(&stack, &alice_token).await;
    assert_eq!(broken.status, 403, "{}", broken.text);
    assert_eq!(broken.json["error"]["code"], "github_link_broken");
    assert_eq!(chat(&stack, &dave_token).await.status, 200);
    assert_eq!(
        chat_seats(&stack).last().map(String::as_str),
        Some("dave-gh")
    );

    // Dave unlinks (one action): his calls stop at once and say how to link.
    let unlinked = stack
        .call("POST", "/v1/github/unlink", Some(&dave), None)
        .await;
    assert_eq!(unlinked.status, 200, "{}", unlinked.text);
    assert_eq!(unlinked.json["unlinked"], "dave-gh");
    let after = chat(&stack, &dave_token).await;
    assert_eq!(after.status, 403, "{}", after.text);
    assert_eq!(after.json["error"]["code"], "github_link_needed");
    let record = stack
        .audit_record("", |r| r["api"]["operation"] == "github.unlink")
        .await
        .expect("the unlink is recorded");
    assert_eq!(record["unmapped"]["upstream_login"], "dave-gh", "{record}");
    assert_eq!(record["activity_id"], 4);
    // Freed, the account can be linked by mallory now.
    link(&stack, &mallory, "dave-gh").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_is_refreshed_once_under_twenty_concurrent_calls() {
    let stack = own_seat_stack(&[]).await;
    let alice = stack.person("alice", &["developers"]);
    link(&stack, &alice, "alice-gh").await;
    // Nine hours on: the user token and the cached Copilot token are stale.
    stack.advance(9 * 3600);
    let (_, token) = grant_for(&stack, "alice").await;
    let calls = (0..20).map(|_| {
        let url = stack.url.clone();
        let token = token.clone();
        tokio::spawn(async move { chat_at(&url, &token).await })
    });
    for call in futures::future::join_all(calls).await {
        let answer = call.unwrap();
        assert_eq!(answer.status, 200, "{}", answer.text);
    }
    assert_eq!(
        stack.upstream.refreshes("alice-gh"),
        1,
        "one refresh in flight"
    );
    assert_eq!(chat_seats(&stack).len(), 20);
    assert!(chat_seats(&stack).iter().all(|s| s == "alice-gh"));
    // The rotated tokens serve on: no refresh for the next call.
    assert_eq!(chat(&stack, &token).await.status, 200);
    assert_eq!(stack.upstream.refreshes("alice-gh"), 1);
    let alice = stack.person_now("alice", &["developers"]);
    let status = stack
        .call("GET", "/v1/github/link", Some(&alice), None)
        .await;
    assert!(status.json["refreshed_at"].is_u64(), "{}", status.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_refresh_breaks_the_link_until_it_is_linked_again() {
    let stack = own_seat_stack(&[]).await;
    let alice = stack.person("alice", &["developers"]);
    link(&stack, &alice, "alice-gh").await;
    stack.upstream.refuse_refresh("alice-gh");
    stack.advance(9 * 3600);
    let (_, token) = grant_for(&stack, "alice").await;
    let broken = chat(&stack, &token).await;
    assert_eq!(broken.status, 403, "{}", broken.text);
    assert_eq!(broken.json["error"]["code"], "github_link_broken");
    let message = broken.json["error_details"]["message"].as_str().unwrap();
    assert!(
        message.contains("alice-gh") && message.contains("link it again"),
        "{message}"
    );
    assert_eq!(
        broken.json["error_details"]["url"],
        format!("{}/github/link", stack.url).as_str()
    );
    // The link says why; the next call does not ask GitHub again.
    let alice = stack.person_now("alice", &["developers"]);
    let status = stack
        .call("GET", "/v1/github/link", Some(&alice), None)
        .await;
    assert_eq!(status.json["status"], "broken", "{}", status.text);
    assert!(status.json["reason"]
        .as_str()
        .is_some_and(|r| r.contains("bad_refresh_token")));
    assert_eq!(chat(&stack, &token).await.status, 403);
    assert_eq!(stack.upstream.refreshes("alice-gh"), 1);
    let envelope = token_envelope(&stack, &token).await;
    assert_eq!(envelope.status, 403);
    assert_eq!(envelope.json["error"]["code"], "github_link_broken");
    let record = stack
        .audit_record("subject=alice", |r| {
            r["api"]["operation"] == "copilot.chat" && r["status_code"] == "403"
        })
        .await
        .expect("recorded");
    assert!(
        record["status_detail"]
            .as_str()
            .is_some_and(|d| d.contains("broken")),
        "{record}"
    );

    // Linking again repairs it.
    link(&stack, &alice, "alice-gh").await;
    let repaired = chat(&stack, &token).await;
    assert_eq!(repaired.status, 200, "{}", repaired.text);
    assert_eq!(
        chat_seats(&stack).last().map(String::as_str),
        Some("alice-gh")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_vault_holds_no_token_and_a_moved_record_does_not_open() {
    let stack = Stack::start_with(StackOptions {
        capture_logs: true,
        ..options(&[])
    })
    .await
    .expect("stack");
    stack.upstream.set_user_token_ttl(Some(EIGHT_HOURS));
    let alice = stack.person("alice", &["developers"]);
    let dave = stack.person("dave", &["developers"]);
    let (_, alice_token) = grant_for(&stack, "alice").await;
    let (_, dave_token) = grant_for(&stack, "dave").await;
    let mut answers = Vec::new();
    answers.push(link(&stack, &alice, "alice-gh").await.to_string());
    answers.push(link(&stack, &dave, "dave-gh").await.to_string());
    for token in [&alice_token, &dave_token] {
        answers.push(chat(&stack, token).await.text);
    }
    // A refresh too: new tokens, sealed again.
    stack.advance(9 * 3600);
    let (_, alice_token) = grant_for(&stack, "alice").await;
    let (dave_grant, dave_token) = grant_for(&stack, "dave").await;
    answers.push(chat(&stack, &alice_token).await.text);
    let alice = stack.person_now("alice", &["developers"]);
    answers.push(
        stack
            .call("GET", "/v1/github/link", Some(&alice), None)
            .await
            .text,
    );
    assert_eq!(stack.upstream.refreshes("alice-gh"), 1);

    // No stored byte (key or value), record, log line or answer holds a
    // device code, a GitHub token or a Copilot token.
    let secrets = stack.upstream.issued_secrets();
    assert!(secrets.len() >= 8, "{secrets:?}");
    let stored = stack.gateway.kv().snapshot("default").await.unwrap();
    let mut haystack = String::new();
    for (k, v) in &stored {
        haystack.push_str(k);
        haystack.push_str(&String::from_utf8_lossy(v));
    }
    let records = stack.audit_records("").await.unwrap();
    haystack.push_str(&serde_json::to_string(&records).unwrap());
    haystack.push_str(&answers.join("\n"));
    haystack.push_str(&stack.logs());
    for secret in &secrets {
        assert!(!haystack.contains(secret.as_str()), "{secret:.8}… leaked");
        // Nor the secret part alone.
        assert!(!haystack.contains(&secret[4..]), "{secret:.8}… leaked");
    }
    assert!(stored.iter().any(|(k, _)| k.starts_with("seat:link:")));

    // Alice's vault record (and her cached Copilot token) copied over
    // dave's: they do not open for dave, and dave's calls never use her seat.
    let key_of = |prefix: &str, who: &str| {
        format!(
            "{prefix}{}",
            copilot_jit_testkit::harness::person_key(&stack.issuer.issuer(), who)
        )
    };
    let kv = stack.gateway.kv();
    for prefix in ["seat:link:", "seat:copilot:"] {
        let alices = kv
            .get("default", &key_of(prefix, "alice"))
            .await
            .unwrap()
            .expect("alice's record");
        kv.set("default", &key_of(prefix, "dave"), alices)
            .await
            .unwrap();
    }
    let before = chat_seats(&stack).len();
    let moved = chat(&stack, &dave_token).await;
    assert_eq!(moved.status, 403, "{}", moved.text);
    assert_eq!(moved.json["error"]["code"], "github_link_broken");
    assert_eq!(chat_seats(&stack).len(), before, "nothing went upstream");
    let record = stack
        .audit_record(&format!("grant={dave_grant}"), |r| {
            r["status_code"] == "403"
        })
        .await
        .expect("recorded");
    assert!(
        record["status_detail"]
            .as_str()
            .is_some_and(|d| d.contains("does not open for this person")),
        "{record}"
    );
    // Alice's own record still serves her.
    assert_eq!(chat(&stack, &alice_token).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_vault_key_opens_old_records_and_seals_new_ones() {
    let old_key = vault_key();
    let stack = own_seat_stack(&[("vault_key", &old_key)]).await;
    let alice = stack.person("alice", &["developers"]);
    link(&stack, &alice, "alice-gh").await;
    let (_, token) = grant_for(&stack, "alice").await;
    assert_eq!(chat(&stack, &token).await.status, 200);
    let record_key = format!(
        "seat:link:{}",
        copilot_jit_testkit::harness::person_key(&stack.issuer.issuer(), "alice")
    );
    let kid = |bytes: Vec<u8>| -> String {
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        v["tokens"]["kid"].as_str().unwrap().to_string()
    };
    let kv = stack.gateway.kv().clone();
    let old_kid = kid(kv.get("default", &record_key).await.unwrap().unwrap());

    // Redeployed with a new key, the old one listed as previous.
    let new_key = vault_key();
    let rotated = stack
        .instance_with(&[("vault_key", &new_key), ("vault_previous_keys", &old_key)])
        .await
        .unwrap();
    assert_eq!(
        chat_at(&rotated.url, &token).await.status,
        200,
        "old record opens"
    );
    assert_eq!(
        kid(kv.get("default", &record_key).await.unwrap().unwrap()),
        old_kid
    );
    // The next write (a refresh, hours later, shortly before the token
    // expires) seals under the new key.
    rotated.gateway.clock().advance(LATER);
    stack.upstream.advance(LATER);
    let answer = chat_at(&rotated.url, &token).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(stack.upstream.refreshes("alice-gh"), 1);
    let new_kid = kid(kv.get("default", &record_key).await.unwrap().unwrap());
    assert_ne!(new_kid, old_kid, "new writes use the new key");
    // Without the old key now, the new record still serves; with the old
    // key alone, it does not open.
    let only_new = stack
        .instance_with(&[("vault_key", &new_key)])
        .await
        .unwrap();
    only_new.gateway.clock().advance(LATER);
    assert_eq!(chat_at(&only_new.url, &token).await.status, 200);
    let only_old = stack
        .instance_with(&[("vault_key", &old_key)])
        .await
        .unwrap();
    only_old.gateway.clock().advance(LATER);
    // Its cached Copilot token is sealed under the new key too: refused.
    let refused = chat_at(&only_old.url, &token).await;
    assert_eq!(refused.status, 403, "{}", refused.text);
    assert_eq!(refused.json["error"]["code"], "github_link_broken");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelines_use_the_shared_seat_and_records_name_its_login() {
    // The shared seat's login is asked of GitHub (no upstream_github_login).
    let stack = Stack::start_with(StackOptions {
        github_actions: true,
        ..options(&[("upstream_github_login", "")])
    })
    .await
    .expect("stack");
    let actions = stack.actions_issuer.as_ref().unwrap();
    let run = actions.sign(
        copilot_jit_testkit::dev_issuer::Alg::Rs256,
        json!({
            "iss": actions.issuer(), "aud": "copilot-jit",
            "sub": "repo:acme/app:environment:production",
            "repository": "acme/app", "repository_owner": "acme", "ref": "refs/heads/main",
            "environment": "production", "event_name": "push", "workflow": "ci",
            "job_workflow_ref": "acme/app/.github/workflows/ci.yml@refs/heads/main",
            "iat": copilot_jit_testkit::dev_issuer::now(),
            "exp": copilot_jit_testkit::dev_issuer::now() + 300,
        }),
    );
    let exchanged = copilot_jit_testkit::harness::send(
        reqwest::Client::new()
            .post(format!("{}/v1/token-exchange", stack.url))
            .form(&[
                (
                    "grant_type",
                    "urn:ietf:params:oauth:grant-type:token-exchange",
                ),
                (
                    "subject_token_type",
                    "urn:ietf:params:oauth:token-type:id_token",
                ),
                ("subject_token", &run),
            ]),
    )
    .await;
    assert_eq!(exchanged.status, 200, "{}", exchanged.text);
    let token = exchanged.json["access_token"].as_str().unwrap().to_string();
    let completion = copilot_jit_testkit::harness::send(
        reqwest::Client::new()
            .post(format!(
                "{}/v1/engines/gpt-41-copilot/completions",
                stack.url
            ))
            .bearer_auth(&token)
            .json(&json!({"prompt": "fn main() {", "max_tokens": 5, "stream": true})),
    )
    .await;
    assert_eq!(completion.status, 200, "{}", completion.text);
    let sent = stack.upstream.requests();
    let call = sent
        .iter()
        .find(|r| r.path.starts_with("/v1/engines/"))
        .expect("proxied");
    assert_eq!(call.copilot_user.as_deref(), Some(SHARED_LOGIN));
    // The shared seat's cached Copilot token is sealed in KV like people's.
    let stored = stack.gateway.kv().snapshot("default").await.unwrap();
    assert!(stored.iter().any(|(k, _)| k == "upstream:copilot-token"));
    for secret in stack.upstream.issued_secrets() {
        assert!(
            stored
                .iter()
                .all(|(_, v)| !String::from_utf8_lossy(v).contains(&secret)),
            "{secret:.8}… stored in the clear"
        );
    }
    // The pipeline has no GitHub account to link.
    let link = stack
        .call("POST", "/v1/github/link", Some(&run), None)
        .await;
    assert!(matches!(link.status, 401 | 403), "{}", link.text);
    let record = stack
        .audit_record("", |r| r["api"]["operation"] == "copilot.completions")
        .await
        .expect("recorded");
    assert_eq!(
        record["unmapped"]["upstream_mode"], "shared-seat",
        "{record}"
    );
    assert_eq!(record["unmapped"]["upstream_login"], SHARED_LOGIN);
    assert_eq!(record["unmapped"]["principal_kind"], "workload");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_link_page_shows_githubs_code_and_polls_until_linked() {
    let stack = own_seat_stack(&[]).await;
    stack.upstream.set_device_interval(2);
    let mut browser = Browser::new();
    // Signed out: the page sends the person to the (dev) IdP first.
    let page = DevIssuer::browser_sign_in(
        &mut browser,
        &format!("{}/github/link", stack.url),
        "alice",
        "developers",
    )
    .await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(page.text.contains("Link GitHub account"), "{}", page.text);
    let csrf = page.input("csrf").expect("csrf");

    // Without the session's CSRF token nothing starts.
    let forged = browser
        .post_form(&format!("{}/github/link", stack.url), &[])
        .await;
    assert_eq!(forged.status, 403, "{}", forged.text);

    let started = browser
        .post_form(&format!("{}/github/link", stack.url), &[("csrf", &csrf)])
        .await;
    assert_eq!(started.status, 200, "{}", started.text);
    assert_eq!(started.header("refresh").as_deref(), Some("2"));
    let at = started
        .text
        .find("id=\"user-code\"><strong>")
        .expect("the code")
        + 23;
    let user_code = started.text[at..at + 9].to_string();
    assert!(started.text.contains("/login/device\""), "{}", started.text);
    let polls = stack.upstream.device_polls();
    // Reloads before the interval do not ask GitHub.
    let again = browser.get(&format!("{}/github/link", stack.url)).await;
    assert!(again.text.contains(&user_code));
    assert_eq!(stack.upstream.device_polls(), polls);

    assert!(stack.upstream.authorize_device(&user_code, "alice-gh"));
    // GitHub's interval passes on the test clock, not the wall clock: each
    // view after it asks GitHub once.
    let mut linked = None;
    for _ in 0..5 {
        stack.advance(2);
        let view = browser.get(&format!("{}/github/link", stack.url)).await;
        if view.text.contains("id=\"linked\"") {
            linked = Some(view);
            break;
        }
    }
    let linked = linked.expect("the page shows the link");
    assert!(linked.text.contains("alice-gh"), "{}", linked.text);
    assert!(linked.header("refresh").is_none());
    // GitHub was asked once per interval at most, never told to slow down.
    assert!(stack.upstream.device_polls() <= polls + 6);

    let (_, token) = grant_for(&stack, "alice").await;
    assert_eq!(chat(&stack, &token).await.status, 200);
    let out = browser
        .post_form(&format!("{}/github/unlink", stack.url), &[("csrf", &csrf)])
        .await;
    assert_eq!(out.status, 303, "{}", out.text);
    let after = browser.follow(out).await;
    assert!(after.text.contains("Link GitHub account"), "{}", after.text);
    assert_eq!(chat(&stack, &token).await.status, 403);
}

/// Every instance has ended, with the work it does after its answer.
async fn settled(stack: &Stack) {
    let live = stack.gateway.live_instances();
    eventually(|| async { (live.alive() == 0).then_some(()) })
        .await
        .expect("the gateway's work after its answers ended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_own_seat_call_writes_nothing_to_kv() {
    let garage = Garage::start().await.expect("garage");
    let mut variables: Vec<(String, String)> = garage.audit_variables();
    variables.push(("upstream_mode".into(), "own-seat".into()));
    let stack = Stack::start_with(StackOptions {
        variables: variables.into_iter().collect(),
        ..StackOptions::default()
    })
    .await
    .expect("stack");
    stack.upstream.set_user_token_ttl(Some(EIGHT_HOURS));
    let alice = stack.person("alice", &["developers"]);
    link(&stack, &alice, "alice-gh").await;
    let (_, token) = grant_for(&stack, "alice").await;
    // The first call may exchange; the next ones are healthy.
    assert_eq!(chat(&stack, &token).await.status, 200);
    settled(&stack).await;
    for _ in 0..3 {
        let stats = stack.gateway.kv().stats();
        let (reads, writes) = (stats.reads(), stats.writes());
        let answer = chat(&stack, &token).await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        // The record goes to the bucket after the answer.
        settled(&stack).await;
        let stats = stack.gateway.kv().stats();
        let (reads, writes) = (stats.reads() - reads, stats.writes() - writes);
        assert_eq!(writes, 0, "a healthy own-seat call wrote to KV");
        // The grant and the person's cached Copilot token.
        assert_eq!(reads, 2, "{reads} KV reads");
    }
    assert_eq!(chat_seats(&stack).len(), 4);
}
