//! The access workflow through the composed artifact: Cedar decides who may
//! ask, who approves, how many approvals and for how long (policies/), the
//! grant store keeps the lifecycle, approvers are notified by webhook.

use std::collections::HashMap;

use copilot_jit_testkit::harness::{self, eventually, Body, Stack, StackOptions, APPROVERS};
use copilot_jit_testkit::webhook::{self, Webhook};
use serde_json::{json, Value};

async fn api(stack: &Stack, method: &str, path: &str, token: &str, body: Value) -> (u16, Value) {
    let body = if method == "POST" {
        Body::Json(body)
    } else {
        Body::Empty
    };
    let answer = stack.call(method, path, Some(token), body).await;
    let json = serde_json::from_str(&answer.text).expect("JSON");
    (answer.status, json)
}

async fn ask(stack: &Stack, token: &str, body: Value) -> (u16, Value) {
    api(stack, "POST", "/v1/access-requests", token, body).await
}

fn chat_ask() -> Value {
    json!({"scopes": ["chat"], "reason": "pairing on the billing service"})
}

async fn chat(stack: &Stack, token: &str, model: &str) -> (u16, Value) {
    api(
        stack,
        "POST",
        "/chat/completions",
        token,
        json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await
}

async fn token_for(stack: &Stack, requester: &str, grant: &str) -> String {
    let (status, body) = api(
        stack,
        "POST",
        &format!("/v1/grants/{grant}/token"),
        requester,
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["access_token"].as_str().unwrap().to_string()
}

fn id(body: &Value) -> String {
    body["request"]["id"]
        .as_str()
        .expect("request id")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_decided_by_the_cedar_policy_and_denials_name_it() {
    let stack = Stack::start().await.unwrap();
    // Senior engineers: approved at once, even for production code.
    let sam = stack.person("sam", &["senior-engineers"]);
    let (status, body) = ask(
        &stack,
        &sam,
        json!({"scopes": ["chat"], "reason": "hotfix", "repository": "acme/prod-payments"}),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["request"]["status"], "approved");
    assert_eq!(
        body["request"]["policy_ids"],
        json!(["senior-engineers-auto-approve"])
    );
    assert!(body["request"]["granted_at"].is_u64());

    // Only senior engineers may request Copilot for production code.
    let alice = stack.person("alice", &["developers"]);
    let (status, body) = ask(
        &stack,
        &alice,
        json!({"scopes": ["chat"], "reason": "hotfix", "repository": "acme/prod-payments"}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "policy_denied");
    assert_eq!(
        body["error"]["policy_ids"],
        json!(["production-code-senior-only"])
    );
    assert!(body["error"]["explanation"]
        .as_str()
        .unwrap()
        .contains("forbidden by production-code-senior-only"));

    // Nobody permits marketing.
    let eve = stack.person("eve", &["marketing"]);
    let (status, body) = ask(&stack, &eve, chat_ask()).await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["policy_ids"], json!([]));
    assert_eq!(body["error"]["explanation"], "no policy permits this");

    // Durations: a working day at most for anyone, four hours for contractors.
    let (status, body) = ask(
        &stack,
        &sam,
        json!({"scopes": ["chat"], "reason": "x", "duration": "10h"}),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(
        body["error"]["policy_ids"],
        json!(["at-most-a-working-day"])
    );
    let cora = stack.person("cora", &["contractors"]);
    let (status, body) = ask(
        &stack,
        &cora,
        json!({"scopes": ["chat"], "reason": "x", "duration": "6h"}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "duration_exceeds_policy");
    assert_eq!(
        body["error"]["policy_ids"],
        json!(["contractors-two-security-approvals"])
    );

    // The audit names the deciding policies (records follow the answers).
    let denied = stack
        .audit_record("", |r| {
            r["unmapped"]["action"] == "access.request"
                && r["unmapped"]["policy_ids"] == json!(["production-code-senior-only"])
        })
        .await;
    let denied = denied.expect("the denial is recorded with its policy");
    assert_eq!(denied["unmapped"]["outcome"], "denied");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_approval_starts_the_clock_at_approval() {
    let stack = Stack::start().await.unwrap();
    let alice = stack.person("alice", &["developers"]);
    let bob = stack.person("bob", &[APPROVERS]);
    let (status, created) = ask(&stack, &alice, chat_ask()).await;
    assert_eq!(status, 201);
    let r = &created["request"];
    assert_eq!(
        (r["status"].as_str(), r["required_approvals"].as_u64()),
        (Some("pending"), Some(1))
    );
    assert_eq!(r["approver_groups"], json!([APPROVERS]));
    let request_id = id(&created);

    // Ten minutes pass before Bob decides.
    stack.gateway.clock().advance(600);
    let (status, approved) = api(
        &stack,
        "POST",
        &format!("/v1/access-requests/{request_id}/approve"),
        &bob,
        json!({"comment": "go ahead"}),
    )
    .await;
    assert_eq!(status, 200, "{approved}");
    let r = &approved["request"];
    assert_eq!(r["status"], "approved");
    let created_at = created["request"]["created_at"].as_u64().unwrap();
    let granted_at = r["granted_at"].as_u64().unwrap();
    assert!(
        granted_at >= created_at + 600,
        "the clock starts at approval"
    );
    assert_eq!(
        r["expires_at"].as_u64().unwrap(),
        granted_at + r["duration_secs"].as_u64().unwrap()
    );
    assert_eq!(r["decisions"][0]["comment"], "go ahead");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contractors_need_two_of_security_each_counted_once_and_never_their_own() {
    let stack = Stack::start().await.unwrap();
    let cora = stack.person("cora", &["contractors"]);
    let (_, created) = ask(&stack, &cora, chat_ask()).await;
    let request_id = id(&created);
    assert_eq!(created["request"]["required_approvals"], 2);
    let approve = |who: String| {
        let path = format!("/v1/access-requests/{request_id}/approve");
        let stack = &stack;
        async move { api(stack, "POST", &path, &who, json!({})).await }
    };
    let sec1 = stack.person("sec1", &["security"]);
    let (status, body) = approve(sec1.clone()).await;
    assert_eq!(
        (status, body["request"]["status"].as_str()),
        (200, Some("pending"))
    );
    // The same approver again does not count twice.
    let (status, body) = approve(sec1).await;
    assert_eq!(status, 403, "{body}");
    // An approver of another group is not one of this request's approvers.
    let bob = stack.person("bob", &[APPROVERS]);
    let (status, body) = approve(bob).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("not_an_approver"))
    );
    let (status, body) = approve(stack.person("sec2", &["security"])).await;
    assert_eq!(
        (status, body["request"]["status"].as_str()),
        (200, Some("approved"))
    );
    // A third approval comes too late.
    let (status, _) = approve(stack.person("sec3", &["security"])).await;
    assert_eq!(status, 409);

    // A contractor who is also in security cannot approve their own request.
    let dual = stack.person("dual", &["contractors", "security"]);
    let (_, own) = ask(&stack, &dual, chat_ask()).await;
    let (status, body) = api(
        &stack,
        "POST",
        &format!("/v1/access-requests/{}/approve", id(&own)),
        &dual,
        json!({}),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["policy_ids"], json!(["no-self-approval"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_requests_expire_on_the_policys_schedule() {
    let stack = Stack::start().await.unwrap();
    let cora = stack.person("cora", &["contractors"]);
    let (_, created) = ask(&stack, &cora, chat_ask()).await;
    let request_id = id(&created);
    let r = &created["request"];
    // contractors-two-security-approvals: @pending_ttl("30m").
    assert_eq!(
        r["pending_expires_at"].as_u64().unwrap() - r["created_at"].as_u64().unwrap(),
        1800
    );
    stack.gateway.clock().advance(1801);
    let (status, body) = api(
        &stack,
        "GET",
        &format!("/v1/access-requests/{request_id}"),
        &cora,
        Value::Null,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["request"]["status"], "expired");
    let sec = stack.person("sec1", &["security"]);
    let (status, _) = api(
        &stack,
        "POST",
        &format!("/v1/access-requests/{request_id}/approve"),
        &sec,
        json!({}),
    )
    .await;
    assert_eq!(status, 409, "an expired request cannot be approved");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_during_use_stops_the_next_call_and_only_the_right_people_revoke() {
    let stack = Stack::start().await.unwrap();
    let (grant, token) = stack.approved_grant(&["chat"], &[], None).await.unwrap();
    assert_eq!(chat(&stack, &token, "gpt-4o").await.0, 200);
    let mallory = stack.person("mallory", &["developers"]);
    let (status, body) = api(
        &stack,
        "POST",
        &format!("/v1/grants/{grant}/revoke"),
        &mallory,
        json!({}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["explanation"], "no policy permits this");
    let bob = stack.person("bob", &[APPROVERS]);
    let (status, body) = api(
        &stack,
        "POST",
        &format!("/v1/grants/{grant}/revoke"),
        &bob,
        json!({"comment": "left the project"}),
    )
    .await;
    assert_eq!(
        (status, body["request"]["status"].as_str()),
        (200, Some("revoked"))
    );
    let (status, body) = chat(&stack, &token, "gpt-4o").await;
    assert_eq!(status, 403, "{body}");
    assert!(body["error"]["how_to_request_access"].is_object(), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_follows_the_renew_policy() {
    let stack = Stack::start().await.unwrap();
    // Senior engineers renew at once.
    let sam = stack.person("sam", &["senior-engineers"]);
    let (_, first) = ask(&stack, &sam, chat_ask()).await;
    let first_id = id(&first);
    let (status, renewed) = api(
        &stack,
        "POST",
        &format!("/v1/grants/{first_id}/renew"),
        &sam,
        json!({"duration": "2h"}),
    )
    .await;
    assert_eq!(status, 201, "{renewed}");
    let r = &renewed["request"];
    assert_eq!(r["status"], "approved");
    assert_eq!(r["renew_of"], first_id.as_str());
    assert_eq!(r["duration_secs"], 7200);
    assert_eq!(r["policy_ids"], json!(["senior-engineers-renew"]));
    assert_ne!(r["id"], first_id.as_str());

    // Developers go back to an approver.
    let (alice_grant, _) = stack.approved_grant(&["chat"], &[], None).await.unwrap();
    let alice = stack.person("alice", &["developers"]);
    let (status, renewal) = api(
        &stack,
        "POST",
        &format!("/v1/grants/{alice_grant}/renew"),
        &alice,
        json!({}),
    )
    .await;
    assert_eq!(status, 201, "{renewal}");
    assert_eq!(renewal["request"]["status"], "pending");
    assert_eq!(renewal["request"]["approver_groups"], json!([APPROVERS]));
    let bob = stack.person("bob", &[APPROVERS]);
    let (status, body) = api(
        &stack,
        "POST",
        &format!("/v1/access-requests/{}/approve", id(&renewal)),
        &bob,
        json!({}),
    )
    .await;
    assert_eq!(
        (status, body["request"]["status"].as_str()),
        (200, Some("approved"))
    );

    // Nobody renews someone else's grant; a revoked grant is not renewed.
    let (status, body) = api(
        &stack,
        "POST",
        &format!("/v1/grants/{alice_grant}/renew"),
        &sam,
        json!({}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    api(
        &stack,
        "POST",
        &format!("/v1/grants/{first_id}/revoke"),
        &sam,
        json!({}),
    )
    .await;
    let (status, body) = api(
        &stack,
        "POST",
        &format!("/v1/grants/{first_id}/renew"),
        &sam,
        json!({}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("not_renewable"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvers_list_what_they_may_decide_and_see_why() {
    let stack = Stack::start().await.unwrap();
    let alice = stack.person("alice", &["developers"]);
    let cora = stack.person("cora", &["contractors"]);
    let (_, alices) = ask(&stack, &alice, chat_ask()).await;
    let (_, coras) = ask(&stack, &cora, chat_ask()).await;
    let ids = |body: &Value| -> Vec<String> {
        body["requests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect()
    };
    let bob = stack.person("bob", &[APPROVERS]);
    let (status, list) = api(
        &stack,
        "GET",
        "/v1/access-requests?status=pending",
        &bob,
        Value::Null,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        ids(&list),
        vec![id(&alices)],
        "bob decides developers' requests only"
    );
    assert_eq!(list["requests"][0]["you_may_decide"], true);
    let sec = stack.person("sec1", &["security"]);
    let (_, list) = api(
        &stack,
        "GET",
        "/v1/access-requests?status=pending",
        &sec,
        Value::Null,
    )
    .await;
    assert_eq!(ids(&list), vec![id(&coras)]);
    let (_, list) = api(
        &stack,
        "GET",
        "/v1/access-requests?requester=alice",
        &bob,
        Value::Null,
    )
    .await;
    assert_eq!(ids(&list), vec![id(&alices)]);
    let (_, list) = api(
        &stack,
        "GET",
        "/v1/access-requests?older_than=1h",
        &bob,
        Value::Null,
    )
    .await;
    assert!(ids(&list).is_empty());
    let (_, list) = api(
        &stack,
        "GET",
        "/v1/access-requests?newer_than=1h",
        &bob,
        Value::Null,
    )
    .await;
    assert_eq!(ids(&list).len(), 1);
    let (status, _) = api(
        &stack,
        "GET",
        "/v1/access-requests?older_than=soon",
        &bob,
        Value::Null,
    )
    .await;
    assert_eq!(status, 400);
    // Requesters see their own, and may not decide them.
    let (_, list) = api(&stack, "GET", "/v1/access-requests", &alice, Value::Null).await;
    assert_eq!(ids(&list), vec![id(&alices)]);
    assert_eq!(list["requests"][0]["you_may_decide"], false);

    // One request, with its policy explanation.
    let (status, shown) = api(
        &stack,
        "GET",
        &format!("/v1/access-requests/{}", id(&coras)),
        &sec,
        Value::Null,
    )
    .await;
    assert_eq!(status, 200, "{shown}");
    let policy = &shown["request"]["policy"];
    assert_eq!(
        policy["permitted_by"],
        json!(["contractors-two-security-approvals"])
    );
    assert_eq!(policy["requirements"]["min_approvals"], 2);
    assert_eq!(policy["you_may_decide"], true);
    assert!(policy["explanation"]
        .as_str()
        .unwrap()
        .contains("needs 2 approval(s) from security"));
    // Bob may not even see Cora's request.
    let (status, _) = api(
        &stack,
        "GET",
        &format!("/v1/access-requests/{}", id(&coras)),
        &bob,
        Value::Null,
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_use_policy_applies_to_every_call() {
    let stack = Stack::start().await.unwrap();
    let cora = stack.person("cora", &["contractors"]);
    let (_, created) = ask(&stack, &cora, chat_ask()).await;
    let request_id = id(&created);
    for who in ["sec1", "sec2"] {
        let (status, _) = api(
            &stack,
            "POST",
            &format!("/v1/access-requests/{request_id}/approve"),
            &stack.person(who, &["security"]),
            json!({}),
        )
        .await;
        assert_eq!(status, 200);
    }
    let token = token_for(&stack, &cora, &request_id).await;
    assert_eq!(chat(&stack, &token, "gpt-4o").await.0, 200);
    let (status, body) = chat(&stack, &token, "gpt-5-preview").await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        body["error"]["policy_ids"],
        json!(["contractors-no-preview-models"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvers_are_notified_and_a_failing_webhook_never_blocks() {
    let hook = Webhook::start().await.unwrap();
    let stack = Stack::start_with(StackOptions {
        variables: hook.variables().into_iter().collect::<HashMap<_, _>>(),
        ..StackOptions::default()
    })
    .await
    .unwrap();
    let alice = stack.person("alice", &["developers"]);
    let bob = stack.person("bob", &[APPROVERS]);
    let (_, created) = ask(&stack, &alice, chat_ask()).await;
    let request_id = id(&created);
    // Notifications go out after the answer: wait for each.
    let wait_for = |event: &'static str| {
        let hook = &hook;
        async move {
            eventually(|| async {
                hook.messages()
                    .into_iter()
                    .find(|(_, body)| body["copilot_jit"]["event"] == event)
            })
            .await
            .unwrap_or_else(|| panic!("no {event} message: {:?}", hook.messages()))
        }
    };
    let (path, requested) = wait_for("access.requested").await;
    assert_eq!(path, webhook::PATH);
    let text = requested["text"].as_str().unwrap();
    assert!(
        text.contains("alice") && text.contains(APPROVERS) && text.contains(&request_id),
        "{text}"
    );
    api(
        &stack,
        "POST",
        &format!("/v1/access-requests/{request_id}/approve"),
        &bob,
        json!({"comment": "ok"}),
    )
    .await;
    let approved = wait_for("access.approved").await;
    assert_eq!(hook.messages().len(), 2, "one message per event");
    let messages = [(path.clone(), requested.clone()), approved];
    let (_, decided) = &messages[1];
    assert_eq!(decided["copilot_jit"]["event"], "access.approved");
    assert!(
        decided["text"]
            .as_str()
            .unwrap()
            .contains("was approved by bob"),
        "{decided}"
    );

    // The hook fails: the decision stands, and the failure is audited.
    hook.fail_with(Some(500));
    let cora = stack.person("cora", &["contractors"]);
    let (status, body) = ask(&stack, &cora, chat_ask()).await;
    assert_eq!(status, 201, "{body}");
    let failed = stack
        .audit_record("", |r| {
            r["unmapped"]["action"] == "notify.access.requested"
                && r["unmapped"]["outcome"] == "failed"
        })
        .await;
    let failed = failed.expect("the failed delivery is audited");
    assert!(
        failed["status_detail"].as_str().unwrap().contains("500"),
        "{failed}"
    );
    // The webhook's secret path is never recorded.
    let all = stack.audit_records("").await.unwrap();
    assert!(!serde_json::to_string(&all).unwrap().contains("secretpart"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_asks_todays_policy_would_this_call_pass() {
    let stack = Stack::start().await.unwrap();
    let (grant, token) = stack.approved_grant(&["chat"], &[], None).await.unwrap();
    assert_eq!(chat(&stack, &token, "gpt-5-preview").await.0, 200);
    let carol = stack.person("carol", &[copilot_jit_testkit::harness::AUDITORS]);
    let path = format!("/v1/audit/grants/{grant}/replay");
    let find_chat = |body: &Value| {
        body["exchanges"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["action"] == "copilot.chat")
            .cloned()
    };
    let exchange = eventually(|| async {
        let (status, body) = api(&stack, "GET", &path, &carol, Value::Null).await;
        assert_eq!(status, 200, "{body}");
        find_chat(&body)
    })
    .await;
    let exchange = exchange.expect("the chat is recorded");
    // As recorded (a developer): allowed today too.
    assert_eq!(exchange["today"]["policy"]["allowed"], true, "{exchange}");
    assert_eq!(exchange["today"]["would_be_blocked"], false);
    // Had a contractor sent it, today's policy would refuse it.
    let (_, body) = api(
        &stack,
        "GET",
        &format!("{path}?as_groups=contractors"),
        &carol,
        Value::Null,
    )
    .await;
    let exchange = find_chat(&body).unwrap();
    assert_eq!(exchange["today"]["would_be_blocked"], true, "{exchange}");
    assert_eq!(
        exchange["today"]["policy"]["policy_ids"],
        json!(["contractors-no-preview-models"])
    );
    // Approvers are not auditors.
    let bob = stack.person("bob", &[APPROVERS]);
    let (status, body) = api(&stack, "GET", &path, &bob, Value::Null).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("not_an_auditor"))
    );
}

/// More requests than one page holds: newest first, filters applied before
/// the limit, every request reached once by following the cursor, and no
/// listing enumerates the store's keys.
#[tokio::test]
async fn listings_go_newest_first_filter_before_the_limit_and_page_with_a_cursor() {
    let stack = Stack::start().await.expect("stack");
    let client = reqwest::Client::new();
    let bob = stack.person("bob", &[APPROVERS]);
    let mut created = Vec::new();
    for i in 0..520 {
        let who = stack.person(&format!("dev-{:02}", i % 26), &["developers"]);
        let r = harness::send(
            client
                .post(format!("{}/v1/access-requests", stack.url))
                .bearer_auth(&who)
                .json(
                    &json!({"scopes": ["chat"], "reason": format!("work {i}"), "duration": "1h"}),
                ),
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.text);
        created.push(r.json["request"]["id"].as_str().expect("id").to_string());
    }
    // The oldest one approved: a status filter must find it beyond 500.
    let approved = harness::send(
        client
            .post(format!(
                "{}/v1/access-requests/{}/approve",
                stack.url, created[0]
            ))
            .bearer_auth(&bob),
    )
    .await;
    assert_eq!(approved.status, 200, "{}", approved.text);

    let listings_before = stack.gateway.kv().stats().listings();
    let list = |query: String| {
        let client = client.clone();
        let url = format!("{}/v1/access-requests?{query}", stack.url);
        let bob = bob.clone();
        async move { harness::send(client.get(url).bearer_auth(bob)).await }
    };
    let found = list("status=approved&limit=10".into()).await;
    assert_eq!(found.status, 200, "{}", found.text);
    let ids: Vec<&str> = found.json["requests"]
        .as_array()
        .expect("requests")
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    assert_eq!(ids, [created[0].as_str()], "{}", found.text);

    let first = list("status=pending&limit=50".into()).await;
    let page: Vec<String> = first.json["requests"]
        .as_array()
        .expect("requests")
        .iter()
        .filter_map(|r| r["id"].as_str().map(str::to_string))
        .collect();
    let newest: Vec<String> = created.iter().rev().take(50).cloned().collect();
    assert_eq!(page, newest, "the first page is the 50 newest");

    let mut seen = page;
    let mut cursor = first.json["next_cursor"].as_str().map(str::to_string);
    while let Some(c) = cursor {
        let next = list(format!("status=pending&limit=200&cursor={c}")).await;
        assert_eq!(next.status, 200, "{}", next.text);
        seen.extend(
            next.json["requests"]
                .as_array()
                .expect("requests")
                .iter()
                .filter_map(|r| r["id"].as_str().map(str::to_string)),
        );
        cursor = next.json["next_cursor"].as_str().map(str::to_string);
    }
    let expected: Vec<String> = created.iter().skip(1).rev().cloned().collect();
    assert_eq!(seen, expected, "every pending request once, newest first");
    assert_eq!(
        stack.gateway.kv().stats().listings(),
        listings_before,
        "a listing enumerated the store's keys"
    );

    let forged = list("cursor=d1.2x".into()).await;
    assert_eq!(forged.status, 400, "{}", forged.text);
}
