//! The gateway on Spin's own key-value stores, rebuilt in the test host
//! (`copilot_jit_testkit::kv`): Redis with Spin's command sequence — whose
//! compare-and-swap reports every swap as failed, also applied ones — shared
//! by two instances, and SQLite behind one connection. Under Spin's instance
//! pool (1000 memories, 2000 tables), as real Spin runs it.

use copilot_jit_testkit::harness::{eventually, Peer, Stack, StackOptions, APPROVERS};
use copilot_jit_testkit::kv::redis::RedisServer;
use copilot_jit_testkit::kv::StoreKind;
use copilot_jit_testkit::scenarios::{approval_race, post};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

async fn on_redis() -> (RedisServer, Stack, Peer) {
    let redis = RedisServer::start().await.expect("redis-server");
    let stack = Stack::start_with(StackOptions {
        store: StoreKind::Redis(redis.url.clone()),
        ..StackOptions::default()
    })
    .await
    .expect("stack");
    let peer = stack.peer().await.expect("second instance");
    (redis, stack, peer)
}

fn chat_body() -> Value {
    json!({"model": "gpt-4o", "stream": false,
           "messages": [{"role": "user", "content": "explain: def add(a, b): return a + b"}]})
}

async fn chat(base: &str, token: &str) -> (u16, Value) {
    post(base, "/chat/completions", token, chat_body()).await
}

/// Copilot call records of a grant, as an auditor reads them (on `base`).
async fn copilot_records(stack: &Stack, base: &str, grant: &str) -> Vec<Value> {
    stack
        .audit_records_at(base, &format!("grant={grant}"))
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r["unmapped"]["action"] == "copilot.chat")
        .collect()
}

/// Every record is there once (one object each, named by its own id).
fn assert_each_place_taken_once(records: &[Value]) {
    let mut ids: Vec<&str> = records
        .iter()
        .filter_map(|r| r["metadata"]["uid"].as_str())
        .collect();
    ids.sort_unstable();
    let n = ids.len();
    ids.dedup();
    assert_eq!(ids.len(), n, "a record appears twice");
    assert_eq!(n, records.len(), "a record without an id");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_race_across_two_instances_on_spin_redis() {
    let (_redis, stack, peer) = on_redis().await;
    approval_race(&stack, &[stack.url.as_str(), peer.url.as_str()]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_on_spin_redis_answers_200_and_is_seen_by_the_other_instance() {
    let (_redis, stack, peer) = on_redis().await;
    let alice = stack.person("alice", &["developers"]);
    let bob = stack.person("bob", &[APPROVERS]);
    let (status, created) = post(
        &stack.url,
        "/v1/access-requests",
        &alice,
        json!({"scopes": ["chat"], "reason": "work", "duration": "1h"}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["request"]["id"].as_str().expect("id").to_string();
    // Spin's Redis store reports this swap as failed after applying it.
    let (status, approved) = post(
        &peer.url,
        &format!("/v1/access-requests/{id}/approve"),
        &bob,
        json!({"comment": "ok"}),
    )
    .await;
    assert_eq!(status, 200, "{approved}");
    assert_eq!(approved["request"]["status"], "approved");
    assert_eq!(
        approved["request"]["decisions"].as_array().map(Vec::len),
        Some(1),
        "the approval is stored once"
    );
    // A second vote by the same approver is still refused.
    let (status, _) = post(
        &stack.url,
        &format!("/v1/access-requests/{id}/approve"),
        &bob,
        json!({}),
    )
    .await;
    assert_eq!(status, 409);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoke_on_one_instance_stops_the_next_call_on_the_other() {
    let (_redis, stack, peer) = on_redis().await;
    let (grant, token) = stack.approved_grant(&["chat"], &[], None).await.unwrap();
    assert_eq!(chat(&peer.url, &token).await.0, 200, "served by the peer");
    assert_eq!(chat(&stack.url, &token).await.0, 200);
    let bob = stack.person("bob", &[APPROVERS]);
    let (status, body) = post(
        &peer.url,
        &format!("/v1/grants/{grant}/revoke"),
        &bob,
        json!({"comment": "left the project"}),
    )
    .await;
    assert_eq!(
        (status, body["request"]["status"].as_str()),
        (200, Some("revoked"))
    );
    let (status, body) = chat(&stack.url, &token).await;
    assert_eq!(status, 403, "{body}");
    // Both instances' calls are in the one trail, each in its own place.
    let records = eventually(|| async {
        let r = copilot_records(&stack, &peer.url, &grant).await;
        (r.len() >= 3).then_some(r)
    })
    .await
    .expect("three Copilot call records");
    assert_eq!(records.len(), 3);
    assert_each_place_taken_once(&records);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_flow_runs_on_spin_sqlite() {
    let stack = Stack::start_with(StackOptions {
        store: StoreKind::Sqlite,
        ..StackOptions::default()
    })
    .await
    .expect("stack");
    let (grant, token) = stack.approved_grant(&["chat"], &[], None).await.unwrap();
    for _ in 0..3 {
        assert_eq!(chat(&stack.url, &token).await.0, 200);
    }
    let records = eventually(|| async {
        let r = copilot_records(&stack, &stack.url, &grant).await;
        (r.len() >= 3).then_some(r)
    })
    .await
    .expect("three records");
    assert_each_place_taken_once(&records);
    // Counters and values live in Spin's table shape on disk.
    let stored = stack.gateway.kv().snapshot("default").await.unwrap();
    assert!(stored.iter().any(|(k, _)| k.starts_with("grant-request:")));
}

/// 64 clients for a few seconds on two instances over one Redis, under
/// Spin's pool: no 5xx, and every call served has its record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_clients_on_spin_redis_get_no_5xx_and_lose_no_record() {
    const CLIENTS: usize = 64;
    const PER_CLIENT_MAX: usize = 40;
    let (_redis, stack, peer) = on_redis().await;
    let (grant, token) = stack.approved_grant(&["chat"], &[], None).await.unwrap();
    let until = Instant::now() + Duration::from_secs(3);
    let bases = [stack.url.clone(), peer.url.clone()];
    let clients = (0..CLIENTS).map(|n| {
        let base = bases[n % 2].clone();
        let token = token.clone();
        async move {
            let http = reqwest::Client::new();
            let mut statuses = Vec::new();
            for _ in 0..PER_CLIENT_MAX {
                if Instant::now() > until {
                    break;
                }
                let status = match http
                    .post(format!("{base}/chat/completions"))
                    .bearer_auth(&token)
                    .json(&chat_body())
                    .send()
                    .await
                {
                    Ok(r) => r.status().as_u16(),
                    Err(_) => 0,
                };
                statuses.push(status);
            }
            statuses
        }
    });
    let statuses: Vec<u16> = futures::future::join_all(clients)
        .await
        .into_iter()
        .flatten()
        .collect();
    let served = statuses.iter().filter(|s| **s == 200).count();
    eprintln!(
        "{} calls; instances alive at once: {} and {} at most",
        statuses.len(),
        stack.gateway.live_instances().take_peak(),
        peer.gateway.live_instances().take_peak()
    );
    let failed: Vec<&u16> = statuses.iter().filter(|s| **s != 200).collect();
    assert!(
        failed.is_empty(),
        "{} of {} calls failed: {failed:?}",
        failed.len(),
        statuses.len()
    );
    assert!(served >= CLIENTS, "only {served} calls in the run");
    // Records follow their answers: wait for the last ones.
    let records = eventually(|| async {
        let r = copilot_records(&stack, &stack.url, &grant).await;
        (r.len() >= served).then_some(r)
    })
    .await;
    let found = match records {
        Some(r) => r,
        None => copilot_records(&stack, &stack.url, &grant).await,
    };
    assert_eq!(
        found.len(),
        served,
        "every served call has exactly one record"
    );
    assert_each_place_taken_once(&found);
}
