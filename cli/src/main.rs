//! `copilot-jit audit verify`: checks the signatures and chains of an audit
//! trail in an S3-compatible bucket or a directory, and says which records
//! were modified, deleted, inserted or reordered.

use std::path::PathBuf;
use std::process::ExitCode;

use copilot_jit_audit_log::record::Keyring;
use copilot_jit_audit_log::sigv4::Credentials;
use copilot_jit_audit_log::time::{day_of_ms, parse_day};
use copilot_jit_audit_log::verify::{check_head, verify, Report};
use copilot_jit_cli::{s3::S3, trail};

const USAGE: &str = "\
usage: copilot-jit audit verify --public-key KEY [--public-key KEY ...]
           (--dir DIR | --endpoint URL --bucket NAME [--region REGION]
                        [--path-style true|false] [--prefix PREFIX])
           [--day YYYY-MM-DD | --since YYYY-MM-DD [--until YYYY-MM-DD]]
           [--head SEQ] [--json]

  --public-key   the audit signing key's public half (base64url, as
                 GET /v1/audit/status shows it); repeat for rotated keys
  --endpoint     the S3 origin (path style) or the bucket's own host
  --prefix       the audit prefix (default copilot-jit/audit/)
  --head         the chain head's seq (GET /v1/audit/status): a deleted
                 tail shows only against it
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
    head: Option<u64>,
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
            "--head" => {
                a.head = Some(
                    value()?
                        .parse()
                        .map_err(|_| "--head is a sequence number".to_string())?,
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

fn print_report(report: &Report, objects: usize, json: bool) {
    if json {
        let findings: Vec<_> = report
            .findings
            .iter()
            .map(|f| serde_json::json!({"problem": f.problem.name(), "location": f.location, "detail": f.detail}))
            .collect();
        let chains: serde_json::Map<String, serde_json::Value> = report
            .chains
            .iter()
            .map(|(name, c)| {
                (
                    name.clone(),
                    serde_json::json!({"records": c.records, "first_seq": c.first_seq, "last_seq": c.last_seq, "last_hash": c.last_hash}),
                )
            })
            .collect();
        println!(
            "{}",
            serde_json::json!({"intact": report.is_clean(), "objects": objects, "records": report.records, "chains": chains, "findings": findings})
        );
        return;
    }
    println!("checked {} records in {objects} objects", report.records);
    for (name, c) in &report.chains {
        println!(
            "  chain {name}: {} records, seq {}–{}, last hash {}",
            c.records, c.first_seq, c.last_seq, c.last_hash
        );
    }
    if report.is_clean() {
        println!("intact: every signature verifies and every chain is unbroken");
    } else {
        println!("NOT INTACT: {} problem(s)", report.findings.len());
        for f in &report.findings {
            println!("  {:<10} {}: {}", f.problem.name(), f.location, f.detail);
        }
    }
}

fn run(args: &[String]) -> Result<ExitCode, String> {
    match args.first().map(String::as_str) {
        Some("audit") if args.get(1).map(String::as_str) == Some("verify") => {}
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            return Ok(ExitCode::SUCCESS);
        }
        _ => return Err("unknown command".into()),
    }
    let a = parse(&args[2..])?;
    let mut keys = Keyring::default();
    for k in &a.keys {
        keys.add_encoded(k)?;
    }
    let (objects, stored) = match (&a.dir, &a.endpoint) {
        (Some(dir), _) => trail::from_dir(dir, &a.days)?,
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
            trail::from_bucket(&s3, &trail::prefixes(&a.prefix, &a.days))?
        }
        (None, None) => return Err("give either --dir or --endpoint".into()),
    };
    let mut report = verify(stored, &keys);
    if let Some(head) = a.head {
        check_head(&mut report, "main", head);
    }
    print_report(&report, objects, a.json);
    Ok(if report.is_clean() {
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
