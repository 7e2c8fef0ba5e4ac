//! Spin variables through `wasi:config/store`.

mod bindings {
    wit_bindgen::generate!({
        inline: "
            package copilot-jit:wasi-config;
            world variables {
                import wasi:config/store@0.2.0-draft-2024-09-27;
            }
        ",
        path: "../../wit/deps/config",
        world: "copilot-jit:wasi-config/variables",
        generate_all,
    });
}

/// wasi:config/store, for `with` mappings.
pub use bindings::wasi::config::store;

/// A variable's value as configured, without surrounding whitespace (a
/// secret from Vault or a file often ends in a newline, which would make a
/// URL invalid or a key wrong); unset, blank or unreadable is `None`.
pub fn variable(name: &str) -> Option<String> {
    store::get(name)
        .ok()
        .flatten()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// Why a required variable has no value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VariableError {
    Unset(String),
    Unreadable(String),
}

impl std::fmt::Display for VariableError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VariableError::Unset(name) => write!(f, "variable {name} is not set"),
            VariableError::Unreadable(name) => write!(f, "variable {name} cannot be read"),
        }
    }
}

/// A variable that must be set: blank counts as unset, and a store that
/// cannot be read says so rather than looking unset.
pub fn required(name: &str) -> Result<String, VariableError> {
    match store::get(name) {
        Ok(Some(v)) if !v.trim().is_empty() => Ok(v.trim().to_string()),
        Ok(_) => Err(VariableError::Unset(name.to_string())),
        Err(_) => Err(VariableError::Unreadable(name.to_string())),
    }
}
