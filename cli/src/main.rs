//! `copilot-jit audit verify`: checks an audit log in an S3-compatible
//! bucket or a directory — every record's signature, the sealed tree
//! against its signed checkpoints (and a witness's copy), every sealed
//! record's presence — and says which records were modified, deleted,
//! inserted or reordered, and which wait to be sealed.
//! `copilot-jit audit seal`: asks a gateway to seal (for a scheduler).

use std::path::PathBuf;
use std::process::ExitCode;

mod link;

use copilot_jit_audit_log::record::Keyring;
use copilot_jit_audit_log::sigv4::Credentials;
use copilot_jit_audit_log::time::{day_of_ms, parse_day};
use copilot_jit_audit_log::verify::{verify, Options, Report};
use copilot_jit_cli::s3::S3;
use copilot_jit_cli::trail::{BucketTrail, DirTrail};

const USAGE: &str = "\
usage: copilot-jit audit verify --public-key KEY [--public-key KEY ...]
           (--dir DIR | --endpoint URL --bucket NAME [--region REGION]
                        [--path-style true|false])
           [--prefix PREFIX] [--day YYYY-MM-DD | --since YYYY-MM-DD [--until YYYY-MM-DD]]
           [--checkpoint FILE] [--max-unsealed-age SECS] [--json]
       copilot-jit audit seal --url GATEWAY_URL   (token in COPILOT_JIT_TOKEN)

  --public-key        the audit signing key's public half (base64url, as
                      GET /v1/audit/status shows it); repeat for rotated keys
  --endpoint          the S3 origin (path style) or the bucket's own host
  --prefix            the audit prefix (default copilot-jit/audit/)
  --checkpoint        a checkpoint kept elsewhere (a witness copy of
                      /v1/audit/status log.checkpoint): the log must extend it
  --max-unsealed-age  fail when a record waits longer than this to be sealed
  Credentials come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
  AWS_SESSION_TOKEN. Exit status: 0 intact, 1 problems found, 2 could not check.";

#[derive(Default)]
struct Args {
    keys: Vec<String>,
    dir: Option<PathBuf>,
    endpoint: Option<String>,
    bucket: Option<String>,
    region: String,
    path_style: bool,
    prefix: String,
    days: Vec<String>,
    checkpoint: Option<PathBuf>,
    max_unsealed_age_s: Option<u64>,
    json: bool,
}

fn parse(args: &[String]) -> Result<Args, String> {
    let mut a = Args {
        region: "us-east-1".into(),
        path_style: true,
        prefix: "copilot-jit/audit/".into(),
        ..Args::default()
    };
    let (mut since, mut until) = (None, None);
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--public-key" => a.keys.push(value()?),
            "--dir" => a.dir = Some(PathBuf::from(value()?)),
            "--endpoint" => a.endpoint = Some(value()?),
            "--bucket" => a.bucket = Some(value()?),
            "--region" => a.region = value()?,
            "--path-style" => {
                a.path_style = match value()?.as_str() {
                    "true" => true,
                    "false" => false,
                    _ => return Err("--path-style is true or false".into()),
                }
            }
            "--prefix" => {
                a.prefix = value()?;
                if !a.prefix.is_empty() && !a.prefix.ends_with('/') {
                    a.prefix.push('/');
                }
            }
            "--day" => {
                let day = value()?;
                since = Some(parse_day(&day).ok_or(format!("--day {day}: not a date"))?);
                until = since;
            }
            "--since" => {
                let day = value()?;
                since = Some(parse_day(&day).ok_or(format!("--since {day}: not a date"))?);
            }
            "--until" => {
                let day = value()?;
                until = Some(parse_day(&day).ok_or(format!("--until {day}: not a date"))?);
            }
            "--checkpoint" => a.checkpoint = Some(PathBuf::from(value()?)),
            "--max-unsealed-age" => {
                a.max_unsealed_age_s = Some(
                    value()?
                        .parse()
                        .map_err(|_| "--max-unsealed-age is a number of seconds".to_string())?,
                )
            }
            "--json" => a.json = true,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if a.keys.is_empty() {
        return Err("--public-key is required".into());
    }
    if a.dir.is_some() == a.endpoint.is_some() {
        return Err("give either --dir or --endpoint and --bucket".into());
    }
    if let Some(first) = since {
        let last = until.unwrap_or(
            first.max(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs() / 86_400)
                    .unwrap_or(first),
            ),
        );
        if last < first || last - first > 3660 {
            return Err("the day range is empty or longer than ten years".into());
        }
        a.days = (first..=last).map(|d| day_of_ms(d * 86_400_000)).collect();
    } else if until.is_some() {
        return Err("--until needs --since".into());
    }
    Ok(a)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn print_report(report: &Report, overdue: usize, json: bool) {
    let checkpoint = report.checkpoint.as_ref();
    if json {
        let findings: Vec<_> = report
            .findings
            .iter()
            .map(|f| serde_json::json!({"problem": f.problem.name(), "location": f.location, "detail": f.detail}))
            .collect();
        let unsealed: Vec<_> = report
            .unsealed
            .iter()
            .map(|u| serde_json::json!({"location": u.location, "age_ms": u.age_ms}))
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "intact": report.is_clean() && overdue == 0,
                "objects": report.objects,
                "records": report.records,
                "sealed": report.sealed,
                "checkpoint": checkpoint.map(|c| serde_json::json!({"origin": c.origin, "size": c.size, "root": hex_of(&c.root)})),
                "consistent_checkpoints": report.consistent_checkpoints,
                "unsealed": unsealed,
                "overdue": overdue,
                "findings": findings,
            })
        );
        return;
    }
    println!(
        "checked {} records in {} objects; {} sealed",
        report.records, report.objects, report.sealed
    );
    match checkpoint {
        Some(c) => println!(
            "  log {}: {} records, root {}, {} checkpoint(s) consistent",
            c.origin,
            c.size,
            hex_of(&c.root),
            report.consistent_checkpoints
        ),
        None => println!("  no checkpoint yet: nothing is sealed"),
    }
    if !report.unsealed.is_empty() {
        let oldest = report.unsealed.iter().map(|u| u.age_ms).max().unwrap_or(0);
        println!(
            "  {} record(s) not sealed yet, the oldest {} s old",
            report.unsealed.len(),
            oldest / 1000
        );
    }
    if report.is_clean() && overdue == 0 {
        println!("intact: every signature verifies, every sealed record is present and unchanged, and the log only grew");
    } else {
        println!("NOT INTACT: {} problem(s)", report.findings.len() + overdue);
        for f in &report.findings {
            println!("  {:<10} {}: {}", f.problem.name(), f.location, f.detail);
        }
        if overdue > 0 {
            println!("  {overdue} record(s) unsealed for longer than --max-unsealed-age");
        }
    }
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn seal(args: &[String]) -> Result<ExitCode, String> {
    let url = match args {
        [flag, url] if flag == "--url" => url.trim_end_matches('/'),
        _ => return Err("audit seal needs --url GATEWAY_URL".into()),
    };
    let token = std::env::var("COPILOT_JIT_TOKEN")
        .map_err(|_| "COPILOT_JIT_TOKEN is not set (an auditor's or the scheduler's token)")?;
    let answer = ureq::post(&format!("{url}/v1/audit/seal"))
        .set("authorization", &format!("Bearer {}", token.trim()))
        .timeout(std::time::Duration::from_secs(120))
        .call();
    let (status, body) = match answer {
        Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
        Err(e) => return Err(format!("{url}: {e}")),
    };
    println!("{body}");
    Ok(match status {
        200 => ExitCode::SUCCESS,
        409 => ExitCode::from(3),
        _ => ExitCode::from(1),
    })
}

fn run(args: &[String]) -> Result<ExitCode, String> {
    match (
        args.first().map(String::as_str),
        args.get(1).map(String::as_str),
    ) {
        (Some("audit"), Some("verify")) => {}
        (Some("audit"), Some("seal")) => return seal(&args[2..]),
        (Some("github"), _) => return link::run(&args[1..]),
        (Some("-h" | "--help" | "help"), _) => {
            println!("{USAGE}");
            return Ok(ExitCode::SUCCESS);
        }
        _ => return Err("unknown command".into()),
    }
    let a = parse(&args[2..])?;
    let mut keys = Keyring::default();
    let mut checkpoint_keys = Vec::new();
    for k in &a.keys {
        keys.add_encoded(k)?;
        let bytes = copilot_jit_common::decode_seed(k).map_err(|e| format!("public key: {e}"))?;
        checkpoint_keys.push(
            ed25519_dalek::VerifyingKey::from_bytes(&bytes)
                .map_err(|_| "not an Ed25519 public key")?,
        );
    }
    let witness = match &a.checkpoint {
        Some(path) => {
            Some(std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?)
        }
        None => None,
    };
    let options = Options {
        prefix: &a.prefix,
        keys: &keys,
        checkpoint_keys: &checkpoint_keys,
        witness: witness.as_deref(),
        days: &a.days,
        now_ms: now_ms(),
    };
    let report = match (&a.dir, &a.endpoint) {
        (Some(dir), _) => {
            let trail = DirTrail::new(dir, !a.json);
            let report = verify(&trail, &options);
            trail.finish();
            report?
        }
        (None, Some(endpoint)) => {
            let env = |name: &str| {
                std::env::var(name).map_err(|_| format!("{name} is not set (bucket credentials)"))
            };
            let credentials = Credentials {
                access_key_id: env("AWS_ACCESS_KEY_ID")?,
                secret_access_key: env("AWS_SECRET_ACCESS_KEY")?,
                session_token: std::env::var("AWS_SESSION_TOKEN").ok(),
            };
            let bucket = a.bucket.as_deref().ok_or("--bucket is required")?;
            let s3 = S3::new(endpoint, bucket, a.path_style, &a.region, credentials)?;
            let trail = BucketTrail::new(s3, !a.json);
            let report = verify(&trail, &options);
            trail.finish();
            report?
        }
        (None, None) => return Err("give either --dir or --endpoint".into()),
    };
    let overdue = a.max_unsealed_age_s.map_or(0, |max| {
        report
            .unsealed
            .iter()
            .filter(|u| u.age_ms > max * 1000)
            .count()
    });
    print_report(&report, overdue, a.json);
    Ok(if report.is_clean() && overdue == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("copilot-jit: {e}\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}
