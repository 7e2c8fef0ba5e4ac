//! Pipelines without stored secrets: a GitHub Actions run exchanges its OIDC
//! token for a minutes-long gateway token (RFC 8693), under the Actions
//! policy, through the composed artifact.

use copilot_jit_testkit::dev_issuer::{now, Alg};
use copilot_jit_testkit::harness::{eventually, Stack, StackOptions};
use serde_json::{json, Value};

const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ID_TOKEN: &str = "urn:ietf:params:oauth:token-type:id_token";

fn run_token(stack: &Stack, repo: &str, git_ref: &str, environment: &str, event: &str) -> String {
    let actions = stack.actions_issuer.as_ref().expect("actions issuer");
    actions.sign(
        Alg::Rs256,
        json!({
            "iss": actions.issuer(), "aud": "copilot-jit",
            "sub": format!("repo:{repo}:environment:{environment}"),
            "repository": repo, "repository_owner": repo.split('/').next().unwrap(),
            "ref": git_ref, "environment": environment, "event_name": event,
            "workflow": "ci", "job_workflow_ref": format!("{repo}/.github/workflows/ci.yml@{git_ref}"),
            "iat": now(), "exp": now() + 300,
        }),
    )
}

async fn exchange(stack: &Stack, form: &[(&str, &str)]) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}/v1/token-exchange", stack.url))
        .form(form)
        .send()
        .await
        .expect("reachable");
    assert!(resp.headers().get("x-test-host-trap").is_none());
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("JSON"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_actions_runs_exchange_tokens_under_policy() {
    let stack = Stack::start_with(StackOptions {
        github_actions: true,
        ..StackOptions::default()
    })
    .await
    .expect("stack");

    // Accepted: the right repository, ref, environment and event.
    let good = run_token(&stack, "acme/app", "refs/heads/main", "production", "push");
    let (status, issued) = exchange(
        &stack,
        &[
            ("grant_type", GRANT_TYPE),
            ("subject_token", &good),
            ("subject_token_type", ID_TOKEN),
        ],
    )
    .await;
    assert_eq!(status, 200, "{issued}");
    assert_eq!(
        issued["issued_token_type"],
        "urn:ietf:params:oauth:token-type:jwt"
    );
    assert_eq!(issued["token_type"], "Bearer");
    assert_eq!(issued["scope"], "completions");
    // 15 minutes at most (@max_duration of ci-acme-completions-on-main).
    assert!(issued["expires_in"].as_u64().unwrap() <= 900);
    let token = issued["access_token"].as_str().unwrap().to_string();
    let grant_id = issued["grant_id"].as_str().unwrap().to_string();

    // The token works for its scope only.
    let client = reqwest::Client::new();
    let completion = client
        .post(format!(
            "{}/v1/engines/gpt-41-copilot/completions",
            stack.url
        ))
        .bearer_auth(&token)
        .json(&json!({"prompt": "fn main() {", "stream": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(completion.status(), 200);
    let chat = client
        .post(format!("{}/chat/completions", stack.url))
        .bearer_auth(&token)
        .json(&json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(chat.status(), 403);

    // Not renewable: the run cannot mint more tokens for the same grant.
    let renew = client
        .post(format!("{}/v1/grants/{grant_id}/token", stack.url))
        .bearer_auth(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(renew.status(), 403);

    // Refused by policy (nothing permits these runs), each recorded.
    let mut denied_rules: Vec<&str> = Vec::new();
    for (repo, git_ref, environment, event, rule) in [
        (
            "evil/app",
            "refs/heads/main",
            "production",
            "push",
            "actions-repository",
        ),
        (
            "acme/app",
            "refs/heads/feature",
            "production",
            "push",
            "actions-ref",
        ),
        (
            "acme/app",
            "refs/heads/main",
            "staging",
            "push",
            "actions-environment",
        ),
        (
            "acme/app",
            "refs/heads/main",
            "production",
            "pull_request_target",
            "actions-event",
        ),
    ] {
        let t = run_token(&stack, repo, git_ref, environment, event);
        let (status, body) = exchange(
            &stack,
            &[
                ("grant_type", GRANT_TYPE),
                ("subject_token", &t),
                ("subject_token_type", ID_TOKEN),
            ],
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (403, Some("access_denied")),
            "{rule}: {body}"
        );
        denied_rules.push(rule);
    }
    // A tag run of another allowed repository passes.
    let tag = run_token(
        &stack,
        "acme/lib-core",
        "refs/tags/v1.4.0",
        "production",
        "workflow_dispatch",
    );
    let (status, _) = exchange(
        &stack,
        &[
            ("grant_type", GRANT_TYPE),
            ("subject_token", &tag),
            ("subject_token_type", ID_TOKEN),
        ],
    )
    .await;
    assert_eq!(status, 200);

    // People do not exchange; malformed requests get OAuth errors.
    let alice = stack.person("alice", &["developers"]);
    let (status, body) = exchange(
        &stack,
        &[
            ("grant_type", GRANT_TYPE),
            ("subject_token", &alice),
            ("subject_token_type", ID_TOKEN),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let (status, body) = exchange(
        &stack,
        &[("grant_type", "password"), ("subject_token", &good)],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unsupported_grant_type"))
    );
    let (status, body) = exchange(
        &stack,
        &[("grant_type", GRANT_TYPE), ("subject_token_type", ID_TOKEN)],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );
    let (status, body) = exchange(
        &stack,
        &[
            ("grant_type", GRANT_TYPE),
            ("subject_token", &good),
            ("subject_token_type", ID_TOKEN),
            ("scope", "chat"),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_scope"))
    );
    let (status, body) = exchange(
        &stack,
        &[
            ("grant_type", GRANT_TYPE),
            ("subject_token", "garbage"),
            ("subject_token_type", ID_TOKEN),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );

    // The grant is recorded like any other, with the run as its principal.
    // Records follow the answers: wait until the last refusals are in.
    let refusals = |records: &[Value]| {
        records
            .iter()
            .filter(|r| r["unmapped"]["reason"] == "policy: no policy permits this")
            .count()
    };
    let settled = eventually(|| async {
        let records = stack.audit_records("").await.ok()?;
        (refusals(&records) > denied_rules.len()).then_some(records)
    })
    .await;
    let records = match settled {
        Some(records) => records,
        None => stack.audit_records("").await.expect("audit"),
    };
    let exchanges: Vec<&Value> = records
        .iter()
        .filter(|r| r["unmapped"]["action"] == "grant.exchange")
        .collect();
    let allowed = exchanges
        .iter()
        .find(|r| r["unmapped"]["grant_id"] == grant_id.as_str())
        .expect("recorded");
    assert_eq!(allowed["actor"]["user"]["type"], "workload");
    let refused = exchanges
        .iter()
        .filter(|r| r["unmapped"]["reason"] == "policy: no policy permits this")
        .count();
    // The four runs above, and the good run asking for chat.
    assert_eq!(refused, denied_rules.len() + 1, "every refusal is audited");
    assert_eq!(
        allowed["actor"]["authorizations"][0]["policy"]["uid"], "ci-acme-completions-on-main",
        "the permitting policy is named in the record"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchange_needs_a_permitting_policy() {
    let stack = Stack::start_with(StackOptions {
        github_actions: true,
        ..StackOptions::default()
    })
    .await
    .expect("stack");
    // A repository no policy names: refused, and the answer says why.
    let t = run_token(&stack, "other/app", "refs/heads/main", "production", "push");
    let (status, body) = exchange(
        &stack,
        &[
            ("grant_type", GRANT_TYPE),
            ("subject_token", &t),
            ("subject_token_type", ID_TOKEN),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("access_denied")),
        "{body}"
    );
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("no policy permits"),
        "{body}"
    );
}
