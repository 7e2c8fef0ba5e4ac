//! The audit log in real S3-compatible storage (Garage on loopback): one
//! signed object per record under `dt=` partitions, no KV write on a healthy
//! call; `POST /v1/audit/seal` grows the Merkle tree (C2SP tiles) and signs
//! a checkpoint; the `copilot-jit` CLI verifies it and names each tampered
//! object, and a rewritten log is caught by a witness's checkpoint; an
//! outage spools records, and every one is shipped and sealed exactly once.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::process::Command;

use copilot_jit_audit_log::layout::parse_object_key;
use copilot_jit_audit_log::merkle;
use copilot_jit_audit_log::seal::{self, parse_entry};
use copilot_jit_audit_log::sigv4::Credentials;
use copilot_jit_cli::s3::S3;
use copilot_jit_cli::trail::BucketTrail;
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

async fn chat_at(base: &str, token: &str, text: &str, request_id: Option<&str>) -> (u16, Value) {
    let mut call = reqwest::Client::new()
        .post(format!("{base}/chat/completions"))
        .bearer_auth(token)
        .json(&json!({"model": "gpt-4o", "stream": false,
                      "messages": [{"role": "user", "content": text}]}));
    if let Some(id) = request_id {
        call = call.header("x-request-id", id);
    }
    let resp = call.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn chat(stack: &Stack, token: &str, text: &str) -> (u16, Value) {
    chat_at(&stack.url, token, text, None).await
}

async fn auditor_at(stack: &Stack, base: &str, method: &str, path: &str) -> (u16, Value) {
    let carol = stack.person("carol", &[AUDITORS]);
    let resp = reqwest::Client::new()
        .request(method.parse().unwrap(), format!("{base}{path}"))
        .bearer_auth(carol)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn auditor(stack: &Stack, method: &str, path: &str) -> (u16, Value) {
    auditor_at(stack, &stack.url, method, path).await
}

/// Record objects of the trail: key → bytes.
fn record_objects(s3: &S3) -> BTreeMap<String, Vec<u8>> {
    s3.list(&format!("{PREFIX}dt="))
        .unwrap()
        .into_iter()
        .map(|k| {
            let bytes = s3.get(&k).unwrap();
            (k, bytes)
        })
        .collect()
}

/// The sealed leaves' record names, in tree order.
fn sealed_names(garage: &Garage, size: u64) -> Vec<String> {
    let trail = BucketTrail::new(s3(garage, garage::SECRET_ACCESS_KEY), false);
    copilot_jit_audit_log::seal::read_entries(&trail, PREFIX, 0, size)
        .unwrap()
        .iter()
        .map(|e| parse_entry(e).unwrap().0)
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

/// Seals until nothing new is left (each seal call is itself recorded,
/// after its answer), then returns the status.
async fn sealed_status(stack: &Stack) -> Value {
    let (status, first) = auditor(stack, "POST", "/v1/audit/seal").await;
    assert_eq!(status, 200, "{first}");
    eventually(|| async {
        let (_, s) = auditor(stack, "GET", "/v1/audit/status").await;
        // The status read and the seal calls are records too: one may wait.
        (s["log"]["unsealed"].as_u64() <= Some(2)).then_some(s)
    })
    .await
    .expect("the log did not settle")
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

#[tokio::test(flavor = "multi_thread")]
async fn records_ship_seal_and_verify_and_each_tampering_is_named() {
    let garage = Garage::start().await.unwrap();
    let stack = stack_on(&garage, &[]).await;
    let store = s3(&garage, garage::SECRET_ACCESS_KEY);
    let (grant, token) = stack.approved_grant(&["chat"], &[], None).await.unwrap();
    stack
        .upstream
        .set_reply(&format!("use key {RESPONSE_SECRET} for that"));
    for i in 0..6 {
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

    // Replay: the grant's exchanges in time order, as recorded (masked).
    let replay_path = format!("/v1/audit/grants/{grant}/replay");
    let chat_count = |replay: &Value| {
        replay["exchanges"].as_array().map_or(0, |e| {
            e.iter().filter(|e| e["action"] == "copilot.chat").count()
        })
    };
    let replay = eventually(|| async {
        let (status, replay) = auditor(&stack, "GET", &replay_path).await;
        assert_eq!(status, 200, "{replay}");
        (chat_count(&replay) == 6).then_some(replay)
    })
    .await
    .expect("six chats replayed");
    let chats: Vec<&Value> = replay["exchanges"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "copilot.chat")
        .collect();
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

    let status = sealed_status(&stack).await;
    assert_eq!(status["storage"], "s3");
    assert_eq!(status["spool"]["depth"], 0);
    assert_eq!(status["records_lost"], 0);
    let public_key = status["public_key"]["x"].as_str().unwrap().to_string();
    let checkpoint = status["log"]["checkpoint"].as_str().unwrap().to_string();
    assert!(
        checkpoint.starts_with("127.0.0.1"),
        "origin names the deployment: {checkpoint}"
    );
    let size = status["log"]["size"].as_u64().unwrap();
    assert!(size >= 10, "{status}");

    // One JSON object per record, under the day's partition, named by its id.
    let stored = record_objects(&store);
    let today = copilot_jit_audit_log::time::day_of_ms(now_ms());
    for (key, bytes) in &stored {
        let (day, id) = parse_object_key(key).unwrap_or_else(|| panic!("{key}"));
        assert_eq!(day, today, "{key}");
        let record: Value = serde_json::from_slice(bytes).unwrap();
        assert_eq!(record["metadata"]["uid"], id);
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

    // The CLI finds the log intact, whole and for the day.
    let (code, out) = cli(&garage, &public_key, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("intact"), "{out}");
    let (code, out) = cli(&garage, &public_key, &["--day", &today, "--json"]);
    assert_eq!(code, 0, "{out}");
    let report: Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(report["checkpoint"]["size"], size);
    let witness = std::env::temp_dir().join(format!("witness-{}.txt", std::process::id()));
    std::fs::write(&witness, &checkpoint).unwrap();
    // A copy of the bucket in a directory (as `aws s3 sync` leaves it)
    // verifies the same way.
    let copy_dir = std::env::temp_dir().join(format!("audit-copy-{}", std::process::id()));
    for k in store.list(PREFIX).unwrap() {
        let path = copy_dir.join(&k);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, store.get(&k).unwrap()).unwrap();
    }
    let out = Command::new(env!("CARGO_BIN_EXE_copilot-jit"))
        .args(["audit", "verify", "--dir"])
        .arg(&copy_dir)
        .args(["--prefix", PREFIX, "--public-key", &public_key])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains(&format!("{size} records")), "{text}");
    let _ = std::fs::remove_dir_all(&copy_dir);

    // Tampering with sealed records: edit, delete, swap two, insert a copy
    // under a new name, truncate the two newest.
    let names = sealed_names(&garage, size);
    let key = |i: usize| format!("{PREFIX}{}", names[i]);
    let mut edited: Value = serde_json::from_slice(&stored[&key(1)]).unwrap();
    edited["unmapped"]["outcome"] = json!("nothing to see");
    store.put(&key(1), edited.to_string().as_bytes()).unwrap();
    store.delete(&key(2)).unwrap();
    store.put(&key(3), &stored[&key(4)]).unwrap();
    store.put(&key(4), &stored[&key(3)]).unwrap();
    let copy = format!("{PREFIX}dt={today}/aud_{}_00000000000000ff.json", now_ms());
    store.put(&copy, &stored[&key(5)]).unwrap();
    store.delete(&key(size as usize - 1)).unwrap();
    store.delete(&key(size as usize - 2)).unwrap();
    let (code, out) = cli(&garage, &public_key, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("NOT INTACT"), "{out}");
    let line_with = |problem: &str, key: &str| {
        out.lines()
            .any(|l| l.trim_start().starts_with(problem) && l.contains(key))
    };
    assert!(line_with("modified", &key(1)), "{out}");
    assert!(line_with("deleted", &key(2)), "{out}");
    assert!(line_with("reordered", &key(3)), "{out}");
    assert!(line_with("reordered", &key(4)), "{out}");
    assert!(line_with("inserted", &copy), "{out}");
    assert!(line_with("deleted", &key(size as usize - 1)), "{out}");
    assert!(line_with("deleted", &key(size as usize - 2)), "{out}");

    // Rewriting the log (new tiles and checkpoint over fewer records, as
    // someone holding the signing key could) passes on its own, but not
    // against the witness's checkpoint from before.
    for k in store.list(&format!("{PREFIX}log/")).unwrap() {
        store.delete(&k).unwrap();
    }
    for k in store.list(&format!("{PREFIX}dt=")).unwrap() {
        store.delete(&k).unwrap();
    }
    store.put(&key(0), &stored[&key(0)]).unwrap();
    let (status, resealed) = auditor(&stack, "POST", "/v1/audit/seal").await;
    assert_eq!(status, 200, "{resealed}");
    let witness_arg = witness.to_string_lossy().to_string();
    let (code, out) = cli(&garage, &public_key, &["--checkpoint", &witness_arg]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.lines().any(|l| l.trim_start().starts_with("rewritten")),
        "{out}"
    );
    let _ = std::fs::remove_file(&witness);

    // A wrong key is not "intact" either.
    let (code, out) = cli(&garage, &"A".repeat(43), &[]);
    assert_eq!(code, 1, "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_healthy_call_writes_nothing_to_kv() {
    let garage = Garage::start().await.unwrap();
    let stack = stack_on(&garage, &[]).await;
    let store = s3(&garage, garage::SECRET_ACCESS_KEY);
    let (_, token) = stack
        .approved_grant(&["chat", "completions", "models"], &[], None)
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let calls: Vec<(&str, reqwest::RequestBuilder)> = vec![
        (
            "streamed chat",
            http.post(format!("{}/chat/completions", stack.url))
                .json(&json!({"model": "gpt-4o", "stream": true,
                              "messages": [{"role": "user", "content": "hi"}]})),
        ),
        (
            "streamed completion",
            http.post(format!(
                "{}/v1/engines/gpt-41-copilot/completions",
                stack.url
            ))
            .json(&json!({"prompt": "def add(a, b):\n    ", "max_tokens": 5, "stream": true})),
        ),
        ("/models", http.get(format!("{}/models", stack.url))),
    ];
    // One call of each kind first: the upstream token is cached then.
    for (_, call) in &calls {
        let r = call
            .try_clone()
            .unwrap()
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        r.bytes().await.unwrap();
    }
    let objects = || store.list(&format!("{PREFIX}dt=")).unwrap().len();
    let settled =
        |n: usize| async move { eventually(|| async { (objects() >= n).then_some(()) }).await };
    settled(objects()).await;
    for (what, call) in calls {
        let before_objects = objects();
        let stats = stack.gateway.kv().stats();
        let (reads, writes) = (stats.reads(), stats.writes());
        let r = call.bearer_auth(&token).send().await.unwrap();
        assert_eq!(r.status(), 200, "{what}");
        r.bytes().await.unwrap();
        // The record is written after the answer: wait for its object.
        settled(before_objects + 1)
            .await
            .expect("the record arrives");
        let stats = stack.gateway.kv().stats();
        let (reads, writes) = (stats.reads() - reads, stats.writes() - writes);
        eprintln!("{what}: {reads} KV reads, {writes} KV writes");
        // The grant only: it holds a copy of the upstream token, and the
        // spool is read only for a grant whose last record was spooled.
        assert_eq!(writes, 0, "{what} wrote to KV");
        assert_eq!(reads, 1, "{what}: {reads} KV reads");
    }

    // Unauthenticated noise with fresh request ids leaves nothing in KV.
    let stats = stack.gateway.kv().stats();
    let writes = stats.writes();
    let before = objects();
    for i in 0..5 {
        let r = http
            .post(format!("{}/chat/completions", stack.url))
            .header("x-request-id", format!("fresh-noise-{i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    // Their records are written after the answers: wait for all five.
    settled(before + 5).await.expect("the noise is recorded");
    assert_eq!(
        stack.gateway.kv().stats().writes(),
        writes,
        "noise wrote to KV"
    );
    let kv = stack.gateway.kv().snapshot("default").await.unwrap();
    assert!(
        !kv.iter()
            .any(|(k, _)| k.contains("fresh-noise") || k.starts_with("audit-client-request:")),
        "a request id became a KV key"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_sealers_at_once_one_wins_and_the_tree_holds_each_record_once() {
    let garage = Garage::start().await.unwrap();
    let stack = stack_on(&garage, &[]).await;
    let peer = stack.peer().await.unwrap();
    let store = s3(&garage, garage::SECRET_ACCESS_KEY);
    let (_, token) = stack.approved_grant(&["chat"], &[], None).await.unwrap();
    for i in 0..8 {
        assert_eq!(chat(&stack, &token, &format!("call {i}")).await.0, 200);
    }
    eventually(|| async {
        (store.list(&format!("{PREFIX}dt=")).unwrap().len() >= 12).then_some(())
    })
    .await;
    let (a, b) = tokio::join!(
        auditor_at(&stack, &stack.url, "POST", "/v1/audit/seal"),
        auditor_at(&stack, &peer.url, "POST", "/v1/audit/seal"),
    );
    let statuses = [a.0, b.0];
    assert!(statuses.contains(&200), "{a:?} {b:?}");
    for (status, body) in [&a, &b] {
        assert!(
            *status == 200 || (*status == 409 && body["error"]["code"] == "invalid_state"),
            "{status} {body}"
        );
    }
    // The winner's tree is what a single sealer makes of the same records:
    // their entries in name order, each leaf the record's own hash.
    let winner = [&a, &b]
        .into_iter()
        .filter(|(s, _)| *s == 200)
        .max_by_key(|(_, body)| body["size"].as_u64())
        .map(|(_, body)| body.clone())
        .unwrap();
    let first = winner["size"].as_u64().unwrap();
    let names = sealed_names(&garage, first);
    assert!(
        names.windows(2).all(|w| w[0] < w[1]),
        "name order: {names:?}"
    );
    let leaves: Vec<_> = names
        .iter()
        .map(|name| {
            let bytes = store.get(&format!("{PREFIX}{name}")).unwrap();
            let record: copilot_jit_audit_log::record::Record =
                serde_json::from_slice(&bytes).unwrap();
            merkle::leaf_hash(&seal::entry(name, &record.integrity.hash))
        })
        .collect();
    assert_eq!(winner["root"], hex::encode(merkle::root(&leaves)));

    // The scheduler's command does the same.
    let carol = stack.person("carol", &[AUDITORS]);
    let out = Command::new(env!("CARGO_BIN_EXE_copilot-jit"))
        .args(["audit", "seal", "--url", &stack.url])
        .env("COPILOT_JIT_TOKEN", &carol)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{text}");
    let answer: Value = serde_json::from_str(text.trim()).unwrap();
    assert!(answer["size"].as_u64() >= Some(first), "{answer}");

    let status = sealed_status(&stack).await;
    let size = status["log"]["size"].as_u64().unwrap();
    let names = sealed_names(&garage, size);
    let unique: HashSet<&String> = names.iter().collect();
    assert_eq!(unique.len(), names.len(), "a record sealed twice");
    let (code, out) = cli(&garage, status["public_key"]["x"].as_str().unwrap(), &[]);
    assert_eq!(code, 0, "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_outage_spools_records_and_each_is_shipped_and_sealed_exactly_once() {
    let mut garage = Garage::start().await.unwrap();
    let stack = stack_on(&garage, &[("audit_spool_max", "6")]).await;
    let store = s3(&garage, garage::SECRET_ACCESS_KEY);
    let (grant, token) = stack.approved_grant(&["chat"], &[], None).await.unwrap();
    assert_eq!(chat(&stack, &token, "before").await.0, 200);
    eventually(|| async {
        (store.list(&format!("{PREFIX}dt=")).unwrap().len() >= 4).then_some(())
    })
    .await;

    garage.stop_server().await.unwrap();
    // Nothing from here on lists the store's keys: the spool is read by
    // number (flushes, catch-up, queries).
    let listings = stack.gateway.kv().stats().listings();
    // A client retry with the same request id, and noise without a token.
    for i in 0..2 {
        let (status, body) =
            chat_at(&stack.url, &token, "during", Some("retry-during-outage")).await;
        assert_eq!(
            status, 200,
            "storage down must not fail the call ({i}): {body}"
        );
    }
    for _ in 0..5 {
        let resp = reqwest::Client::new()
            .post(format!("{}/chat/completions", stack.url))
            .header("x-request-id", format!("noise-{}", now_ms()))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401);
    }
    for i in 0..2 {
        assert_eq!(chat(&stack, &token, &format!("during {i}")).await.0, 200);
    }
    let report = eventually(|| async {
        let (_, report) = auditor(&stack, "GET", "/v1/audit/status").await;
        (report["spool"]["depth"].as_u64() >= Some(6)).then_some(report)
    })
    .await
    .expect("the spool fills");
    // Four calls and the status reads fill the spool to its bound; the
    // unauthenticated noise took no place in it.
    assert!(
        report["unauthenticated_not_spooled"].as_u64() >= Some(5),
        "{report}"
    );
    assert_eq!(report["records_lost"], 0, "{report}");
    let (status, body) = chat(&stack, &token, "one too many").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "audit_unavailable");
    let (status, body) = auditor(&stack, "POST", "/v1/audit/flush").await;
    assert_eq!(status, 503, "flush while down: {body}");

    garage.start_server().await.unwrap();
    let (status, body) = auditor(&stack, "POST", "/v1/audit/flush").await;
    assert_eq!(status, 200, "{body}");
    assert!(body["shipped"].as_u64().unwrap() >= 6, "{body}");
    assert_eq!(body["remaining"], 0, "{body}");
    assert_eq!(chat(&stack, &token, "after").await.0, 200);
    let (_, body) = auditor(&stack, "POST", "/v1/audit/flush").await;
    assert_eq!(body["shipped"], 0, "{body}");
    assert_eq!(
        stack.gateway.kv().stats().listings(),
        listings,
        "the spool was read by listing the store's keys"
    );
    // Stored again: once a record of the grant is, its calls stop reading
    // the spool and cost one KV read (the grant) and no write.
    let cost = eventually(|| async {
        let objects = || store.list(&format!("{PREFIX}dt=")).unwrap().len();
        let before = objects();
        let stats = stack.gateway.kv().stats();
        let (reads, writes) = (stats.reads(), stats.writes());
        assert_eq!(chat(&stack, &token, "healthy again").await.0, 200);
        eventually(|| async { (objects() > before).then_some(()) }).await?;
        let stats = stack.gateway.kv().stats();
        let cost = (stats.reads() - reads, stats.writes() - writes);
        (cost == (1, 0)).then_some(cost)
    })
    .await;
    assert_eq!(cost, Some((1, 0)), "after the outage");

    let status = sealed_status(&stack).await;
    assert_eq!(status["records_lost"], 0, "{status}");
    let size = status["log"]["size"].as_u64().unwrap();
    let names = sealed_names(&garage, size);
    let unique: HashSet<&String> = names.iter().collect();
    assert_eq!(unique.len(), names.len(), "each record sealed once");
    let stored = record_objects(&store);
    let mut ids = HashSet::new();
    for bytes in stored.values() {
        let record: Value = serde_json::from_slice(bytes).unwrap();
        assert!(ids.insert(record["metadata"]["uid"].as_str().unwrap().to_string()));
    }
    assert!(ids.len() >= 10, "{}", ids.len());
    // The two calls with one request id: two records, the second linked.
    let (_, trail) = auditor(
        &stack,
        "GET",
        &format!("/v1/audit/records?grant={grant}&limit=1000"),
    )
    .await;
    let retried: Vec<&Value> = trail["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["unmapped"]["client_request_id"] == "retry-during-outage")
        .collect();
    assert_eq!(retried.len(), 2, "{trail}");
    let first = retried[0]["metadata"]["uid"].as_str().unwrap();
    let second = retried[1]["metadata"]["uid"].as_str().unwrap();
    assert_eq!(trail["retries"][second], first);
    let public_key = status["public_key"]["x"].as_str().unwrap();
    let (code, out) = cli(&garage, public_key, &[]);
    assert_eq!(code, 0, "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_store_refuses_bad_signatures_and_records_wait_for_good_ones() {
    let garage = Garage::start().await.unwrap();
    let forged = s3(&garage, &"0".repeat(64));
    let err = forged.put("audit/x.json", b"{}").unwrap_err();
    assert!(err.contains("403"), "{err}");
    assert!(forged.list(PREFIX).is_err());

    // A sink with the wrong secret keeps its records in the spool.
    let wrong = "f".repeat(64);
    let stack = stack_on(&garage, &[("audit_s3_secret_access_key", wrong.as_str())]).await;
    let (_, token) = stack.approved_grant(&["chat"], &[], None).await.unwrap();
    assert_eq!(chat(&stack, &token, "hello").await.0, 200);
    let status = eventually(|| async {
        let (_, status) = auditor(&stack, "GET", "/v1/audit/status").await;
        (status["spool"]["depth"].as_u64() >= Some(4)).then_some(status)
    })
    .await
    .expect("records spooled");
    assert_eq!(status["records_lost"], 0);
    assert!(s3(&garage, garage::SECRET_ACCESS_KEY)
        .list(PREFIX)
        .unwrap()
        .is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_audit_configuration_that_cannot_record_refuses_calls_before_upstream() {
    let garage = Garage::start().await.unwrap();
    for bad in [
        ("audit_signing_key", "abc"),
        ("audit_s3_timeout_ms", "3s"),
        ("audit_s3_access_key_id", ""),
    ] {
        let stack = stack_on(&garage, &[bad]).await;
        // Refused before anything else is looked at, the token included.
        let before = stack.upstream.requests().len();
        let (status, body) = chat(&stack, "any-token", "hello").await;
        assert_eq!(status, 503, "{bad:?}: {body}");
        assert_eq!(body["error"]["code"], "audit_unavailable", "{bad:?}");
        let upstream_calls = stack
            .upstream
            .requests()
            .iter()
            .skip(before)
            .filter(|r| r.path == "/chat/completions")
            .count();
        assert_eq!(upstream_calls, 0, "{bad:?}: upstream was called");
    }
}
