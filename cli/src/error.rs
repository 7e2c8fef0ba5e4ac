//! What can go wrong, as one line and a documented exit status.

use std::fmt;
use std::process::ExitCode;

/// The exit statuses `copilot-jit --help` documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The request was denied, expired or revoked (`request --wait`), or
    /// the policy refused it at once.
    Denied = 1,
    /// Wrong flags or arguments.
    Usage = 2,
    /// Not signed in, or the sign-in has ended: `copilot-jit login`.
    SignIn = 3,
    /// The gateway cannot be reached, or what answers is not a gateway.
    Unreachable = 4,
    /// The gateway refused (not allowed, not found, conflict, storage down).
    Refused = 5,
    /// A local file or the keyring could not be read or written.
    Local = 6,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError {
    pub exit: Exit,
    /// A stable name for scripts (`--json`): the gateway's error code, or ours.
    pub code: String,
    pub message: String,
}

impl CliError {
    pub fn new(exit: Exit, code: &str, message: impl Into<String>) -> CliError {
        CliError {
            exit,
            code: code.to_string(),
            message: message.into(),
        }
    }

    pub fn usage(message: impl Into<String>) -> CliError {
        CliError::new(Exit::Usage, "usage", message)
    }

    pub fn local(message: impl Into<String>) -> CliError {
        CliError::new(Exit::Local, "local", message)
    }

    pub fn not_signed_in(message: impl Into<String>) -> CliError {
        CliError::new(Exit::SignIn, "not_signed_in", message)
    }

    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.exit as u8)
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({"error": {
            "code": self.code,
            "message": self.message,
            "exit": self.exit as u8,
        }})
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // One line, whatever the gateway or the system said.
        let line: String = self
            .message
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        f.write_str(line.trim())
    }
}

pub type Result<T> = std::result::Result<T, CliError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_stay_on_one_line() {
        let e = CliError::usage("bad\nflag\r\n");
        assert_eq!(e.to_string(), "bad flag");
        assert_eq!(e.to_json()["error"]["exit"], 2);
    }
}
