//! The OS keyring, where there is one: the Secret Service (GNOME Keyring,
//! KWallet) through libsecret's `secret-tool`. The secret goes through a
//! pipe, never an argument another user could read in the process list.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SERVICE: &str = "copilot-jit";
const PATIENCE: Duration = Duration::from_secs(10);

/// Whether a Secret Service may answer here: the tool and a session bus.
pub fn available() -> bool {
    cfg!(target_os = "linux")
        && std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some()
        && Command::new("secret-tool")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok()
}

/// Runs `secret-tool ARGS` with `input` on stdin; its stdout on success.
fn secret_tool(args: &[&str], input: Option<&str>) -> Result<String, String> {
    let mut child = Command::new("secret-tool")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("secret-tool: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        if let Some(text) = input {
            stdin
                .write_all(text.as_bytes())
                .map_err(|e| format!("secret-tool: {e}"))?;
        }
    }
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if started.elapsed() < PATIENCE => {
                std::thread::sleep(Duration::from_millis(50))
            }
            Ok(None) => {
                let _ = child.kill();
                return Err("the keyring did not answer (locked?)".into());
            }
            Err(e) => return Err(format!("secret-tool: {e}")),
        }
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("secret-tool: {e}"))?;
    if !out.status.success() {
        return Err("the keyring refused".into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

pub fn store(gateway: &str, secret: &str) -> Result<(), String> {
    let label = format!("copilot-jit sign-in at {gateway}");
    secret_tool(
        &[
            "store", "--label", &label, "service", SERVICE, "gateway", gateway,
        ],
        Some(secret),
    )
    .map(|_| ())
}

pub fn load(gateway: &str) -> Result<Option<String>, String> {
    let found = secret_tool(&["lookup", "service", SERVICE, "gateway", gateway], None)?;
    Ok((!found.is_empty()).then_some(found))
}

pub fn forget(gateway: &str) -> Result<(), String> {
    secret_tool(&["clear", "service", SERVICE, "gateway", gateway], None).map(|_| ())
}
