//! The `copilot-jit` commands that follow a first grant, end to end against
//! the composed gateway and the real `oidc-provider`: an approver watching
//! the inbox sees each request once, as it arrives; `renew` asks again for
//! a grant and follows the decision; colour shows only on a terminal and
//! never with `NO_COLOR`.
//!
//! `scripts/test.sh` installs the provider and sets OIDC_PROVIDER_DIR.

use std::time::Duration;

use copilot_jit_testkit::login_provider::stack_with_login_provider;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::ChildStdout;

mod common;
use common::{log_in, on_terminal, waited_for, Home};

/// The next request `approvals --watch --json` prints.
async fn next_watched(lines: &mut Lines<BufReader<ChildStdout>>) -> Value {
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("the watch prints the new request")
        .expect("stdout")
        .expect("the watch is still running");
    let event: Value = serde_json::from_str(&line).expect("one JSON object per line");
    assert_eq!(event["event"], "request", "{event}");
    event["request"].clone()
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().expect("an id").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approver_watches_requests_arrive_and_a_renewal_is_decided_like_a_request() {
    let (stack, _idp) = stack_with_login_provider()
        .await
        .expect("stack and identity provider");
    let (alice, bob) = (Home::new("alice-w"), Home::new("bob-w"));
    log_in(&alice, &stack, "alice").await;
    log_in(&bob, &stack, "bob").await;

    // Nothing to renew yet: refused (5), one line, the way out named.
    let none = alice.run(&["renew"]).await;
    assert_eq!(none.status.code(), Some(5));
    let said = String::from_utf8_lossy(&none.stderr);
    assert_eq!(said.lines().count(), 1, "{said}");
    assert!(said.contains("copilot-jit request"), "{said}");

    let mut watch = bob
        .command(&["approvals", "--watch", "--json"])
        .spawn()
        .expect("the watch starts");
    let mut watched = BufReader::new(watch.stdout.take().expect("stdout")).lines();

    // Each request shows once, when it arrives; decided ones leave quietly.
    let first = alice
        .json(&[
            "request",
            "--scopes",
            "chat",
            "--duration",
            "30m",
            "--reason",
            "parser work",
            "--json",
        ])
        .await;
    let first_id = id_of(&first["request"]);
    let seen = next_watched(&mut watched).await;
    assert_eq!(id_of(&seen), first_id);
    assert_eq!(seen["reason"], "parser work");
    assert_eq!(seen["you_may_decide"], true, "{seen}");
    bob.json(&["approve", &first_id, "--json"]).await;

    let second = alice
        .json(&[
            "request",
            "--scopes",
            "completions",
            "--reason",
            "second ask",
            "--json",
        ])
        .await;
    let second_id = id_of(&second["request"]);
    let seen = next_watched(&mut watched).await;
    assert_eq!(
        id_of(&seen),
        second_id,
        "the first request is not shown again"
    );
    bob.json(&["approve", &second_id, "--json"]).await;

    // Two active grants: renew must be told which.
    let which = alice.run(&["renew"]).await;
    assert_eq!(which.status.code(), Some(2));
    let said = String::from_utf8_lossy(&which.stderr);
    assert!(
        said.contains(&first_id) && said.contains(&second_id),
        "{said}"
    );

    // The renewal follows the renew policy (one approval for developers):
    // the watch shows it, bob approves, `--wait` ends with 0.
    let renewing = alice
        .command(&[
            "renew",
            &first_id,
            "--duration",
            "1h",
            "--reason",
            "the parser needs another hour",
            "--wait",
            "--json",
        ])
        .spawn()
        .expect("renew starts");
    let renewal = next_watched(&mut watched).await;
    assert_eq!(renewal["renew_of"], first_id.as_str(), "{renewal}");
    assert_eq!(renewal["reason"], "the parser needs another hour");
    assert_eq!(renewal["scopes"], serde_json::json!(["chat"]));
    let renewal_id = id_of(&renewal);
    bob.json(&["approve", &renewal_id, "-m", "fine", "--json"])
        .await;
    let (code, out) = waited_for(renewing).await;
    assert_eq!(code, Some(0), "approved: exit 0");
    let answer: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(answer["request"]["id"], renewal_id.as_str());
    assert_eq!(answer["request"]["status"], "approved");

    // The renewed grant is active with the hour asked for.
    let status = alice.json(&["status", "--json"]).await;
    let renewed = status["grants"]
        .as_array()
        .and_then(|g| g.iter().find(|g| g["id"] == renewal_id.as_str()))
        .unwrap_or_else(|| panic!("the renewed grant in {status}"));
    let left = renewed["seconds_left"].as_u64().expect("seconds_left");
    assert!(left > 3500 && left <= 3600, "{left}");

    watch.kill().await.expect("the watch stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn colour_only_on_a_terminal_and_never_with_no_color() {
    let (stack, _idp) = stack_with_login_provider()
        .await
        .expect("stack and identity provider");
    let (alice, bob) = (Home::new("alice-c"), Home::new("bob-c"));
    log_in(&alice, &stack, "alice").await;
    log_in(&bob, &stack, "bob").await;
    let asked = alice
        .json(&[
            "request", "--scopes", "chat", "--reason", "colours", "--json",
        ])
        .await;
    let id = id_of(&asked["request"]);
    const ESCAPE: char = '\x1b';

    // On a terminal: the inbox table's header is bold.
    let mut coloured = bob.command(&["approvals"]);
    coloured.env_remove("NO_COLOR");
    let (code, shown) = on_terminal(coloured).await;
    assert_eq!(code, Some(0), "{shown}");
    assert!(shown.contains(&id), "{shown}");
    assert!(shown.contains(ESCAPE), "colour on a terminal: {shown:?}");

    // NO_COLOR (any non-empty value): the same table, plain.
    let mut plain = bob.command(&["approvals"]);
    plain.env("NO_COLOR", "yes");
    let (code, shown) = on_terminal(plain).await;
    assert_eq!(code, Some(0), "{shown}");
    assert!(shown.contains(&id), "{shown}");
    assert!(!shown.contains(ESCAPE), "NO_COLOR: {shown:?}");

    // Not a terminal: plain even without NO_COLOR.
    let mut piped = bob.command(&["approvals"]);
    piped.env_remove("NO_COLOR");
    let out = piped.output().await.expect("runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&id) && !text.contains(ESCAPE), "{text:?}");

    // --json on a terminal: JSON, never painted.
    let mut json = alice.command(&["status", "--json"]);
    json.env_remove("NO_COLOR");
    let (code, shown) = on_terminal(json).await;
    assert_eq!(code, Some(0), "{shown}");
    let status: Value = serde_json::from_str(shown.trim()).expect("plain JSON");
    assert_eq!(status["pending"][0]["id"], id.as_str(), "{status}");
}
