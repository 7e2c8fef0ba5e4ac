//! Flags and arguments of the people's commands: `--flag value`,
//! `--flag=value`, switches, short aliases, positionals. Every command
//! also takes `--json`, `--gateway URL` and `--help`.

use crate::error::{CliError, Result};

/// What one command accepts. Names are long flags; `aliases` maps short
/// ones (`-m`) to them.
pub struct Spec {
    pub command: &'static str,
    pub values: &'static [&'static str],
    pub switches: &'static [&'static str],
    pub aliases: &'static [(&'static str, &'static str)],
    /// Names of the positional arguments, in order (all optional here;
    /// commands say which they need).
    pub positionals: &'static [&'static str],
}

/// A command with no flags of its own.
pub const fn plain(command: &'static str) -> Spec {
    Spec {
        command,
        values: &[],
        switches: &[],
        aliases: &[],
        positionals: &[],
    }
}

#[derive(Debug, Default)]
pub struct Parsed {
    values: Vec<(String, String)>,
    switches: Vec<String>,
    pub positionals: Vec<String>,
}

const GLOBAL_VALUES: &[&str] = &["--gateway"];
const GLOBAL_SWITCHES: &[&str] = &["--json", "--help"];

impl Parsed {
    pub fn value(&self, name: &str) -> Option<&str> {
        self.values
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value given for a repeatable flag.
    pub fn values(&self, name: &str) -> Vec<&str> {
        self.values
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn switch(&self, name: &str) -> bool {
        self.switches.iter().any(|s| s == name)
    }

    pub fn json(&self) -> bool {
        self.switch("--json")
    }

    pub fn required(&self, name: &str, command: &str) -> Result<&str> {
        self.value(name)
            .ok_or_else(|| CliError::usage(format!("{command} needs {name}")))
    }

    pub fn positional(&self, i: usize) -> Option<&str> {
        self.positionals.get(i).map(String::as_str)
    }
}

/// Whether `--json` is among raw arguments (for errors found before or
/// while parsing).
pub fn wants_json(args: &[String]) -> bool {
    args.iter().any(|a| a == "--json")
}

pub fn parse(args: &[String], spec: &Spec) -> Result<Parsed> {
    let mut parsed = Parsed::default();
    let mut it = args.iter();
    let mut only_positionals = false;
    while let Some(arg) = it.next() {
        if only_positionals || !arg.starts_with('-') || arg == "-" {
            if parsed.positionals.len() >= spec.positionals.len() {
                return Err(CliError::usage(format!(
                    "{}: unexpected argument {arg:?}",
                    spec.command
                )));
            }
            parsed.positionals.push(arg.clone());
            continue;
        }
        if arg == "--" {
            only_positionals = true;
            continue;
        }
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let flag = match spec.aliases.iter().find(|(short, _)| *short == flag) {
            Some((_, long)) => long.to_string(),
            None if flag == "-h" => "--help".to_string(),
            None => flag,
        };
        let takes_value =
            spec.values.contains(&flag.as_str()) || GLOBAL_VALUES.contains(&flag.as_str());
        let is_switch =
            spec.switches.contains(&flag.as_str()) || GLOBAL_SWITCHES.contains(&flag.as_str());
        if takes_value {
            let value = match inline {
                Some(v) => v,
                None => it
                    .next()
                    .cloned()
                    .ok_or_else(|| CliError::usage(format!("{flag} needs a value")))?,
            };
            parsed.values.push((flag, value));
        } else if is_switch {
            if inline.is_some() {
                return Err(CliError::usage(format!("{flag} takes no value")));
            }
            parsed.switches.push(flag);
        } else {
            return Err(CliError::usage(format!(
                "{}: unknown flag {flag} (see copilot-jit {} --help)",
                spec.command, spec.command
            )));
        }
    }
    Ok(parsed)
}

/// A comma- (or space-) separated list: `chat,completions`.
pub fn list(value: &str) -> Vec<String> {
    value
        .split([',', ' '])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: Spec = Spec {
        command: "deny",
        values: &["--message"],
        switches: &["--all"],
        aliases: &[("-m", "--message")],
        positionals: &["ID"],
    };

    fn strings(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn flags_values_aliases_and_positionals() {
        let p = parse(
            &strings(&["abc", "-m", "no", "--json", "--gateway=http://x"]),
            &SPEC,
        )
        .unwrap();
        assert_eq!(p.positional(0), Some("abc"));
        assert_eq!(p.value("--message"), Some("no"));
        assert_eq!(p.value("--gateway"), Some("http://x"));
        assert!(p.json() && !p.switch("--all"));
    }

    #[test]
    fn wrong_flags_are_usage_errors() {
        for bad in [&["--nope"][..], &["-m"], &["a", "b"], &["--all=yes"]] {
            let e = parse(&strings(bad), &SPEC).unwrap_err();
            assert_eq!(e.exit, crate::error::Exit::Usage, "{bad:?}");
        }
    }

    #[test]
    fn lists_split_on_commas_and_spaces() {
        assert_eq!(list("chat, completions,,"), vec!["chat", "completions"]);
    }
}
