//! `copilot-jit`: one command for developers, approvers and auditors.
//! Each command lives in its own module; this file only dispatches.

use std::process::ExitCode;

use copilot_jit_cli::error::CliError;
use copilot_jit_cli::{access, approvals, args, audit, configure, help, session};

mod link;

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let (command, rest) = match argv.split_first() {
        Some((c, rest)) => (c.as_str(), rest),
        None => ("help", &argv[..]),
    };
    if command == "audit" {
        return match audit::run(rest) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("copilot-jit: {e}\n\n{}", audit::USAGE);
                ExitCode::from(2)
            }
        };
    }
    if command == "github" {
        return match link::run(rest) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("copilot-jit: {e}\n\n{}", link::USAGE);
                ExitCode::from(2)
            }
        };
    }
    if rest.iter().any(|a| a == "--help" || a == "-h") {
        println!("{}", help::USAGE);
        return ExitCode::SUCCESS;
    }
    let result = match command {
        "login" => session::login(rest),
        "logout" => session::logout(rest),
        "status" => session::status(rest),
        "credential" => session::credential(rest),
        "request" => access::request(rest),
        "renew" => access::renew(rest),
        "revoke" => access::revoke(rest),
        "approvals" => approvals::approvals(rest),
        "approve" => approvals::approve(rest),
        "deny" => approvals::deny(rest),
        "configure" => configure::configure(rest),
        "help" | "--help" | "-h" => {
            println!("{}", help::USAGE);
            Ok(ExitCode::SUCCESS)
        }
        other => Err(CliError::usage(format!(
            "unknown command {other:?} (copilot-jit --help lists them)"
        ))),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            if args::wants_json(rest) {
                println!("{}", e.to_json());
            }
            eprintln!("copilot-jit: {e}");
            e.exit_code()
        }
    }
}
