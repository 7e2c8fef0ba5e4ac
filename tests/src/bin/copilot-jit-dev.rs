//! Runs copilot-jit locally with embedded defaults: the composed artifact in
//! the test host (in-memory KV unless `--kv sqlite` or `--kv redis://…` picks
//! one of Spin's stores), a dev OIDC issuer and, unless a real one is
//! configured, the mock Copilot upstream. Prints how to try the flow.
//!
//! Settings come from `spin.toml`; `SPIN_VARIABLE_<NAME>` overrides any of
//! them, as with `spin up` (e.g. a real `SPIN_VARIABLE_UPSTREAM_GITHUB_TOKEN`
//! together with `SPIN_VARIABLE_GITHUB_API_URL` etc.). People use their own
//! seat (`upstream_mode = "own-seat"`, the product's default): they link an
//! account of the mock's GitHub, whose `/login/device` page plays github.com.

use copilot_jit_testkit::harness::{Stack, StackOptions, APPROVERS, AUDITORS};
use copilot_jit_testkit::kv::StoreKind;
use std::net::SocketAddr;

fn usage() -> ! {
    eprintln!(
        "usage: copilot-jit-dev [--listen 127.0.0.1:3000] [--kv memory|sqlite|redis://HOST:PORT]"
    );
    std::process::exit(2)
}

#[tokio::main]
async fn main() {
    let mut listen: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 3000));
    let mut store = StoreKind::Memory;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--kv" => match args.next().map(|a| StoreKind::parse(&a)) {
                Some(Ok(s)) => store = s,
                Some(Err(e)) => {
                    eprintln!("copilot-jit-dev: {e}");
                    std::process::exit(2)
                }
                None => usage(),
            },
            "--listen" => match args.next().and_then(|a| a.parse().ok()) {
                Some(a) => listen = a,
                None => usage(),
            },
            _ => usage(),
        }
    }
    let options = StackOptions {
        listen,
        store,
        ..StackOptions::dev_server()
    };
    let stack = match Stack::start_with(options).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("copilot-jit-dev: {e:#}");
            std::process::exit(1);
        }
    };
    let gw = &stack.url;
    let idp = stack.issuer.issuer();
    println!(
        r#"copilot-jit is listening on {gw}
  dev OIDC issuer:       {idp}   (tokens: {idp}/token?sub=NAME&groups=G1,G2)
  mock Copilot upstream: {upstream}
  state is in memory and signing keys are fresh on every start.

Sign in from a browser: {gw}/access   (the dev issuer asks for a name and
groups, no password; bob in {APPROVERS} approves at {gw}/approvals).
Editors and the Copilot CLI sign in with the device flow at {gw}/login/device
(the CLI and VS Code need HTTPS: see the README's Client setup).

Try the flow (needs curl and jq):

  ALICE=$(curl -s "{idp}/token?sub=alice&groups=developers" | jq -r .id_token)
  BOB=$(curl -s "{idp}/token?sub=bob&groups={APPROVERS}" | jq -r .id_token)
  CAROL=$(curl -s "{idp}/token?sub=carol&groups={AUDITORS}" | jq -r .id_token)

  # 0. Alice links her GitHub account once: her calls use her own Copilot seat
  #    (in a browser: {gw}/github/link; the mock's {upstream}/login/device plays github.com)
  CODE=$(curl -s -X POST {gw}/v1/github/link -H "authorization: Bearer $ALICE" | jq -r .user_code)
  curl -s -o /dev/null {upstream}/login/device -d "user_code=$CODE&login=alice-gh"
  sleep 2; curl -s {gw}/v1/github/link -H "authorization: Bearer $ALICE" | jq

  # 1. Alice asks for 30 minutes of Copilot chat
  ID=$(curl -s -X POST {gw}/v1/access-requests -H "authorization: Bearer $ALICE" \
        -d '{{"scopes":["chat","completions"],"reason":"pairing on the parser","duration":"30m"}}' | jq -r .request.id)

  # 2. Bob sees it and approves
  curl -s {gw}/v1/access-requests?status=pending -H "authorization: Bearer $BOB" | jq
  curl -s -X POST {gw}/v1/access-requests/$ID/approve -H "authorization: Bearer $BOB" -d '{{"comment":"ok"}}' | jq .request.status

  # 3. Alice gets a short-lived gateway token and uses Copilot through the gateway
  TOKEN=$(curl -s -X POST {gw}/v1/grants/$ID/token -H "authorization: Bearer $ALICE" | jq -r .access_token)
  curl -s {gw}/chat/completions -H "authorization: Bearer $TOKEN" \
        -d '{{"model":"gpt-4o","stream":true,"messages":[{{"role":"user","content":"hello"}}]}}'

  # 4. Bob revokes; the same token is refused at once. Carol reads the audit trail.
  curl -s -X POST {gw}/v1/grants/$ID/revoke -H "authorization: Bearer $BOB" | jq .request.status
  curl -s "{gw}/v1/audit/records?grant=$ID" -H "authorization: Bearer $CAROL" | jq '.records[] | {{action: .unmapped.action, outcome: .unmapped.outcome, status: .status_code, policies: .unmapped.policy_ids, seat: .unmapped.upstream_login}}'

Ctrl-C stops it."#,
        upstream = stack.upstream.base_url(),
    );
    let _ = tokio::signal::ctrl_c().await;
}
