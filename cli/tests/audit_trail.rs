//! The audit trail in real S3-compatible storage (Garage on loopback): records
//! ship as signed, chained JSON Lines under `dt=` partitions; an outage spools
//! them and every record arrives exactly once; the `copilot-jit` CLI verifies
//! the bucket and names each tampered object; nothing stored holds a secret.

use std::collections::{BTreeMap, HashMap};
use std::process::Command;

use copilot_jit_audit_log::layout::parse_object_key;
use copilot_jit_audit_log::sigv4::Credentials;
use copilot_jit_cli::s3::S3;
use copilot_jit_testkit::garage::{self, Garage};
use copilot_jit_testkit::harness::{
    eventually, Stack, StackOptions, AUDITORS, UPSTREAM_GITHUB_TOKEN,
};
use serde_json::{json, Value};

const PROMPT_SECRET: &str = "ghp_0123456789abcdefghijABCDEFGHIJ012345";
const RESPONSE_SECRET: &str = "AKIAZ3MHALQ5WDXY7BCE";
const PREFIX: &str = "audit/";

fn s3(garage: &Garage, secret: &str) -> S3 {
    S3::new(
        &garage.endpoint(),
        garage::BUCKET,
        true,
        garage::REGION,
        Credentials {
            access_key_id: garage::ACCESS_KEY_ID.into(),
            secret_access_key: secret.into(),
            session_token: None,
        },
    )
    .unwrap()
}

async fn stack_on(garage: &Garage, extra: &[(&str, &str)]) -> Stack {
    let mut variables: HashMap<String, String> = garage.audit_variables().into_iter().collect();
    for (k, v) in extra {
        variables.insert(k.to_string(), v.to_string());
    }
    Stack::start_with(StackOptions {
        variables,
        ..StackOptions::default()
    })
    .await
    .unwrap()
}

async fn chat(stack: &Stack, token: &str, text: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(format!("{}/chat/completions", stack.url))
        .bearer_auth(token)
        .json(&json!({"model": "gpt-4o", "stream": false,
                      "messages": [{"role": "user", "content": text}]}))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn auditor(stack: &Stack, method: &str, path: &str) -> (u16, Value) {
    let carol = stack.person("carol", &[AUDITORS]);
    let resp = reqwest::Client::new()
        .request(method.parse().unwrap(), format!("{}{path}", stack.url))
        .bearer_auth(carol)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Every object of the trail: key → bytes.
fn objects(s3: &S3) -> BTreeMap<String, Vec<u8>> {
    s3.list(PREFIX)
        .unwrap()
        .into_iter()
        .map(|k| {
            let bytes = s3.get(&k).unwrap();
            (k, bytes)
        })
        .collect()
}

fn cli(garage: &Garage, public_key: &str, extra: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_copilot-jit"))
        .args(["audit", "verify", "--endpoint", &garage.endpoint()])
        .args(["--bucket", garage::BUCKET, "--region", garage::REGION])
        .args(["--prefix", PREFIX, "--public-key", public_key])
        .args(extra)
        .env("AWS_ACCESS_KEY_ID", garage::ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", garage::SECRET_ACCESS_KEY)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

/// Waits until the trail's head has shipped (records are appended after
/// each answer) and returns the status.
async fn settled_status(stack: &Stack, s3: &S3) -> Value {
    eventually(|| async {
        let (_, status) = auditor(stack, "GET", "/v1/audit/status").await;
        let head = status["head"]["seq"].as_u64().unwrap_or(0);
        // The status read itself is one more record.
        (s3.list(PREFIX).ok()?.len() as u64 > head).then_some(status)
    })
    .await
    .expect("the trail did not settle")
}

#[tokio::test(flavor = "multi_thread")]
async fn records_ship_to_the_bucket_and_the_cli_verifies_them() {
    let garage = Garage::start().await.unwrap();
    let stack = stack_on(&garage, &[]).await;
    let store = s3(&garage, garage::SECRET_ACCESS_KEY);
    let (grant, token) = stack.approved_grant(&["chat"], &[], None).await.unwrap();
    stack
        .upstream
        .set_reply(&format!("use key {RESPONSE_SECRET} for that"));
    for i in 0..3 {
        let (status, answer) = chat(
            &stack,
            &token,
            &format!("{i}: why does {PROMPT_SECRET} fail?"),
        )
        .await;
        assert_eq!(status, 200, "{answer}");
        let text = answer["choices"][0]["message"]["content"].as_str().unwrap();
        assert!(!text.contains(RESPONSE_SECRET), "{text}");
    }

    // Replay: the grant's exchanges in order, as recorded (masked). Records
    // follow the answers, so wait for the third chat's.
    let replay_path = format!("/v1/audit/grants/{grant}/replay");
    let chat_count = |replay: &Value| {
        replay["exchanges"].as_array().map_or(0, |e| {
            e.iter().filter(|e| e["action"] == "copilot.chat").count()
        })
    };
    let settled = eventually(|| async {
        let (status, replay) = auditor(&stack, "GET", &replay_path).await;
        assert_eq!(status, 200, "{replay}");
        (chat_count(&replay) == 3).then_some(replay)
    })
    .await;
    let replay = match settled {
        Some(replay) => replay,
        None => auditor(&stack, "GET", &replay_path).await.1,
    };
    let exchanges = replay["exchanges"].as_array().unwrap();
    let chats: Vec<&Value> = exchanges
        .iter()
        .filter(|e| e["action"] == "copilot.chat")
        .collect();
    assert_eq!(chats.len(), 3, "{replay}");
    let seqs: Vec<u64> = exchanges
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "in chain order: {seqs:?}"
    );
    for (i, c) in chats.iter().enumerate() {
        let prompt = c["prompt"].as_str().unwrap();
        assert!(
            prompt.starts_with(&format!("{i}: why does [REDACTED:github-token]")),
            "{prompt}"
        );
        assert!(c["response"]
            .as_str()
            .unwrap()
            .contains("[REDACTED:aws-access-key-id]"));
        assert_eq!(c["today"]["would_be_blocked"], false);
    }

    let status = settled_status(&stack, &store).await;
    assert_eq!(status["storage"], "s3");
    assert_eq!(status["spool"]["depth"], 0);
    let public_key = status["public_key"]["x"].as_str().unwrap().to_string();
    let head = status["head"]["seq"].as_u64().unwrap();

    // One JSON Lines object per record, under the day's partition.
    let stored = objects(&store);
    let today = copilot_jit_audit_log::time::day_of_ms(copilot_jit_common_now_ms());
    for (key, bytes) in &stored {
        let (day, chain, seq) = parse_object_key(key).unwrap_or_else(|| panic!("{key}"));
        assert_eq!(
            (day.as_str(), chain.as_str()),
            (today.as_str(), "main"),
            "{key}"
        );
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert_eq!(text.lines().count(), 1);
        let record: Value = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(record["integrity"]["seq"], seq);
        assert_eq!(record["class_uid"], 6003);
    }

    // Canaries: the gateway-held credential, the caller's tokens and the
    // detected secrets appear in no stored byte, in the bucket or in KV.
    let upstream_token = stack
        .upstream
        .requests()
        .iter()
        .rev()
        .find(|r| r.path == "/chat/completions")
        .and_then(|r| r.authorization.clone())
        .unwrap();
    let upstream_token = upstream_token.trim_start_matches("Bearer ").to_string();
    let oidc = stack.person("alice", &["developers"]);
    let mut all_bytes: Vec<u8> = stored.values().flatten().copied().collect();
    for (k, v) in stack.gateway.kv().snapshot("default").await.unwrap() {
        if k.starts_with("audit") {
            all_bytes.extend(k.as_bytes());
            all_bytes.extend(v);
        }
    }
    let haystack = String::from_utf8_lossy(&all_bytes);
    for canary in [
        UPSTREAM_GITHUB_TOKEN,
        upstream_token.as_str(),
        token.as_str(),
        &oidc[oidc.len() - 40..],
        PROMPT_SECRET,
        RESPONSE_SECRET,
    ] {
        assert!(!haystack.contains(canary), "a stored record holds {canary}");
    }

    // The CLI finds the trail intact, for the day and with the head.
    let (code, out) = cli(&garage, &public_key, &["--head", &head.to_string()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("intact"), "{out}");
    let (code, out) = cli(&garage, &public_key, &["--day", &today]);
    assert_eq!(code, 0, "{out}");

    // Tampering: edit seq 2, delete seq 4, swap seqs 5 and 6.
    let key_of = |seq: u64| {
        stored
            .keys()
            .find(|k| parse_object_key(k).map(|(_, _, s)| s) == Some(seq))
            .unwrap()
            .clone()
    };
    let mut edited: Value = serde_json::from_slice(&stored[&key_of(2)]).unwrap();
    edited["unmapped"]["outcome"] = json!("nothing to see");
    store
        .put(&key_of(2), format!("{edited}\n").as_bytes())
        .unwrap();
    store.delete(&key_of(4)).unwrap();
    store.put(&key_of(5), &stored[&key_of(6)]).unwrap();
    store.put(&key_of(6), &stored[&key_of(5)]).unwrap();
    let (code, out) = cli(&garage, &public_key, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("NOT INTACT"), "{out}");
    let line_with = |problem: &str, key: &str| {
        out.lines()
            .any(|l| l.trim_start().starts_with(problem) && l.contains(key))
    };
    assert!(line_with("modified", &key_of(2)), "{out}");
    assert!(
        out.lines()
            .any(|l| l.trim_start().starts_with("deleted") && l.contains("seq 4 missing")),
        "{out}"
    );
    assert!(line_with("reordered", &key_of(5)), "{out}");
    assert!(line_with("reordered", &key_of(6)), "{out}");

    // A wrong key is not "intact" either.
    let (code, out) = cli(&garage, &"A".repeat(43), &[]);
    assert_eq!(code, 1, "{out}");
}

fn copilot_jit_common_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[tokio::test(flavor = "multi_thread")]
async fn an_outage_spools_records_and_every_one_arrives_exactly_once() {
    let mut garage = Garage::start().await.unwrap();
    let stack = stack_on(&garage, &[("audit_spool_max", "5")]).await;
    let store = s3(&garage, garage::SECRET_ACCESS_KEY);
    let (_, token) = stack.approved_grant(&["chat"], &[], None).await.unwrap();
    assert_eq!(chat(&stack, &token, "before").await.0, 200);
    // Records are appended after each answer: let the last one ship.
    eventually(|| async { (store.list(PREFIX).unwrap().len() >= 4).then_some(()) }).await;
    assert_eq!(store.list(PREFIX).unwrap().len(), 4);

    garage.stop_server().await.unwrap();
    for i in 0..4 {
        let (status, body) = chat(&stack, &token, &format!("during {i}")).await;
        assert_eq!(status, 200, "storage down must not fail the call: {body}");
    }
    // (The last record is appended just after its answer.)
    let settled = eventually(|| async {
        let (status, report) = auditor(&stack, "GET", "/v1/audit/status").await;
        assert_eq!(status, 200);
        (report["spool"]["depth"].as_u64() >= Some(5)).then_some(report)
    })
    .await;
    let report = match settled {
        Some(report) => report,
        None => auditor(&stack, "GET", "/v1/audit/status").await.1,
    };
    // Four calls and the status reads (each read is recorded too) fill the
    // spool to its bound of five: calls must wait now.
    let depth = report["spool"]["depth"].as_u64().unwrap();
    assert!(depth >= 5, "{report}");
    let (status, body) = chat(&stack, &token, "one too many").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "audit_unavailable");
    let (status, body) = auditor(&stack, "POST", "/v1/audit/flush").await;
    assert_eq!(status, 503, "flush while down: {body}");
    assert!(body["error"]["remaining"].as_u64().unwrap() >= 5, "{body}");

    garage.start_server().await.unwrap();
    let (status, body) = auditor(&stack, "POST", "/v1/audit/flush").await;
    assert_eq!(status, 200, "{body}");
    assert!(body["shipped"].as_u64().unwrap() >= 5, "{body}");
    assert_eq!(body["remaining"], 0, "{body}");
    assert_eq!(chat(&stack, &token, "after").await.0, 200);
    // A second flush finds nothing left to ship.
    let (_, body) = auditor(&stack, "POST", "/v1/audit/flush").await;
    assert_eq!(body["shipped"], 0, "{body}");

    let status = settled_status(&stack, &store).await;
    let head = status["head"]["seq"].as_u64().unwrap();
    let stored = objects(&store);
    let mut seqs: Vec<u64> = Vec::new();
    let mut ids = std::collections::HashSet::new();
    for bytes in stored.values() {
        for line in String::from_utf8_lossy(bytes).lines() {
            let record: Value = serde_json::from_str(line).unwrap();
            seqs.push(record["integrity"]["seq"].as_u64().unwrap());
            assert!(ids.insert(record["metadata"]["uid"].as_str().unwrap().to_string()));
        }
    }
    seqs.sort_unstable();
    let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
    assert_eq!(seqs, expected, "every record once, none missing");
    assert!(seqs.len() as u64 >= head);
    let during = seqs.len();
    assert!(during >= 10, "{during}");
    let public_key = status["public_key"]["x"].as_str().unwrap();
    let (code, out) = cli(&garage, public_key, &["--head", &head.to_string()]);
    assert_eq!(code, 0, "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_store_refuses_bad_signatures_and_records_wait_for_good_ones() {
    let garage = Garage::start().await.unwrap();
    let forged = s3(&garage, &"0".repeat(64));
    let err = forged.put("audit/x.jsonl", b"{}\n").unwrap_err();
    assert!(err.contains("403"), "{err}");
    assert!(forged.list(PREFIX).is_err());

    // A sink with the wrong secret keeps its records in the spool.
    let wrong = "f".repeat(64);
    let stack = stack_on(&garage, &[("audit_s3_secret_access_key", wrong.as_str())]).await;
    let (_, token) = stack.approved_grant(&["chat"], &[], None).await.unwrap();
    assert_eq!(chat(&stack, &token, "hello").await.0, 200);
    // The chat's own record is spooled after its answer: wait for it.
    let status = eventually(|| async {
        let (_, status) = auditor(&stack, "GET", "/v1/audit/status").await;
        (status["spool"]["depth"].as_u64() >= Some(4)).then_some(status)
    })
    .await;
    let status = match status {
        Some(s) => s,
        None => auditor(&stack, "GET", "/v1/audit/status").await.1,
    };
    assert!(status["spool"]["depth"].as_u64().unwrap() >= 4, "{status}");
    assert!(s3(&garage, garage::SECRET_ACCESS_KEY)
        .list(PREFIX)
        .unwrap()
        .is_empty());
}
