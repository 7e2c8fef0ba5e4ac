//! Scenarios that more than one test runs, on different stores and numbers
//! of instances.

use crate::harness::{eventually, Stack};
use serde_json::{json, Value};

/// POSTs JSON to `{base}{path}`; a trap fails the test.
pub async fn post(base: &str, path: &str, token: &str, body: Value) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("reachable");
    assert!(
        resp.headers().get("x-test-host-trap").is_none(),
        "trap on {path}"
    );
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("JSON answer"))
}

fn ask() -> Value {
    json!({"scopes": ["chat"], "reason": "platform test"})
}

/// 60 approve, deny and revoke calls race on one request needing two
/// approvals from security (contractors' policy), spread over `instances`
/// (base URLs of instances sharing one store). Whatever wins, the stored
/// request is one consistent story, every accepted call is in it exactly
/// once (an applied decision is never answered as a failure), and the audit
/// trail holds every attempt.
pub async fn approval_race(stack: &Stack, instances: &[&str]) {
    let cora = stack.person("cora", &["contractors"]);
    let (_, created) = post(instances[0], "/v1/access-requests", &cora, ask()).await;
    let id = created["request"]["id"].as_str().expect("id").to_string();
    assert_eq!(created["request"]["required_approvals"], 2);
    assert_eq!(created["request"]["approver_groups"], json!(["security"]));

    let mut calls = Vec::new();
    for i in 0..30 {
        calls.push(("approve", format!("sec-{i}")));
    }
    for i in 30..42 {
        calls.push(("deny", format!("sec-{i}")));
    }
    for i in 42..52 {
        calls.push(("revoke", format!("sec-{i}")));
    }
    // Second votes by the same people, and the requester herself.
    for i in 0..6 {
        calls.push(("approve", format!("sec-{i}")));
    }
    calls.push(("approve", "cora".into()));
    calls.push(("deny", "cora".into()));
    assert!(calls.len() >= 50);
    let futures = calls.iter().enumerate().map(|(n, (verb, who))| {
        let token = if who == "cora" {
            cora.clone()
        } else {
            stack.person(who, &["security"])
        };
        let path = if *verb == "revoke" {
            format!("/v1/grants/{id}/revoke")
        } else {
            format!("/v1/access-requests/{id}/{verb}")
        };
        // Calls alternate between the instances.
        let base = instances[n % instances.len()];
        async move {
            (
                *verb,
                post(base, &path, &token, json!({"comment": "race"}))
                    .await
                    .0,
            )
        }
    });
    let results = futures::future::join_all(futures).await;
    assert!(
        results
            .iter()
            .all(|(_, s)| matches!(s, 200 | 403 | 409 | 503)),
        "{results:?}"
    );
    let accepted = |verb: &str| {
        results
            .iter()
            .filter(|(v, s)| *v == verb && *s == 200)
            .count()
    };

    let sec = stack.person("sec-0", &["security"]);
    let request: Value = reqwest::Client::new()
        .get(format!(
            "{}/v1/access-requests/{id}",
            instances[instances.len() - 1]
        ))
        .bearer_auth(&sec)
        .send()
        .await
        .expect("reachable")
        .json()
        .await
        .expect("JSON");
    let request = &request["request"];
    let decisions = request["decisions"].as_array().expect("decisions");
    let recorded = |kind: &str| decisions.iter().filter(|d| d["kind"] == kind).count();
    // Every accepted call is recorded once; nothing else is.
    assert_eq!(recorded("approve"), accepted("approve"), "{decisions:?}");
    assert_eq!(recorded("deny"), accepted("deny"), "{decisions:?}");
    assert_eq!(recorded("revoke"), accepted("revoke"), "{decisions:?}");
    let mut voters: Vec<String> = decisions
        .iter()
        .filter(|d| d["kind"] != "revoke")
        .map(|d| d["by"].as_str().unwrap_or("").to_string())
        .collect();
    let votes = voters.len();
    voters.sort_unstable();
    voters.dedup();
    assert_eq!(voters.len(), votes, "each approver counts once");
    assert!(!voters.contains(&"cora".to_string()), "no self-approval");
    // One consistent story, whichever call won.
    match request["status"].as_str().unwrap() {
        "denied" => {
            assert_eq!(recorded("deny"), 1);
            assert!(recorded("approve") <= 1 && recorded("revoke") == 0);
            assert_eq!(decisions.last().unwrap()["kind"], "deny");
        }
        status @ ("approved" | "revoked") => {
            assert_eq!(recorded("approve"), 2, "exactly the threshold");
            assert_eq!(recorded("deny"), 0);
            assert_eq!(recorded("revoke"), usize::from(status == "revoked"));
            assert!(request["granted_at"].is_u64());
        }
        other => panic!("unexpected final state {other}: {request}"),
    }

    // The audit trail shows every attempt, accepted or not.
    let count = |records: &[Value]| {
        records
            .iter()
            .filter(|r| {
                matches!(
                    r["unmapped"]["action"].as_str(),
                    Some("access.approve" | "access.deny" | "grant.revoke")
                )
            })
            .count()
    };
    let query = format!("grant={id}");
    let settled = eventually(|| async {
        let n = count(&stack.audit_records(&query).await.ok()?);
        (n >= calls.len()).then_some(n)
    })
    .await;
    let attempts = match settled {
        Some(n) => n,
        None => count(&stack.audit_records(&query).await.unwrap()),
    };
    assert_eq!(attempts, calls.len(), "every attempt is audited");
}
