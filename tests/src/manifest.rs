//! Reads `spin.toml` the way Spin does for what the test host needs: the
//! component's source, its KV labels, its allowed outbound hosts and its
//! variables (application defaults, `required`, `{{ }}` templates and
//! `SPIN_VARIABLE_*` overrides).

use anyhow::{anyhow, bail, Context, Result};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct AppVariable {
    pub default: Option<String>,
    pub required: bool,
    pub secret: bool,
}

#[derive(Debug, Clone)]
pub struct Manifest {
    pub root: PathBuf,
    pub component_id: String,
    pub source: PathBuf,
    pub variables: BTreeMap<String, AppVariable>,
    pub component_variables: BTreeMap<String, String>,
    pub allowed_outbound_hosts: Vec<String>,
    pub key_value_stores: Vec<String>,
}

/// Settings resolved for one run: what the component sees through wasi:config.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub config: HashMap<String, String>,
    pub allowed_outbound_hosts: Vec<String>,
    pub key_value_stores: Vec<String>,
}

fn string_list(table: &toml::Table, key: &str) -> Result<Vec<String>> {
    match table.get(key) {
        None => Ok(Vec::new()),
        Some(toml::Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| anyhow!("{key} must hold strings"))
            })
            .collect(),
        Some(_) => bail!("{key} must be a list"),
    }
}

impl Manifest {
    pub fn load(path: &Path) -> Result<Manifest> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let doc: toml::Table = toml::from_str(&text).context("spin.toml is not valid TOML")?;
        if doc
            .get("spin_manifest_version")
            .and_then(|v| v.as_integer())
            != Some(2)
        {
            bail!("spin.toml must declare spin_manifest_version = 2");
        }
        let mut variables = BTreeMap::new();
        if let Some(vars) = doc.get("variables").and_then(|v| v.as_table()) {
            for (name, def) in vars {
                let def = def
                    .as_table()
                    .ok_or_else(|| anyhow!("variable {name} must be a table"))?;
                for key in def.keys() {
                    if !["default", "required", "secret", "description"].contains(&key.as_str()) {
                        bail!("variable {name} has unknown field {key}");
                    }
                }
                let required = def
                    .get("required")
                    .and_then(|v| v.as_bool())
                    .unwrap_or(false);
                let default = def
                    .get("default")
                    .and_then(|v| v.as_str())
                    .map(str::to_string);
                if required && default.is_some() {
                    bail!("variable {name} cannot be both required and have a default");
                }
                if !name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                {
                    bail!("variable name {name} must be lower_snake_case");
                }
                variables.insert(
                    name.clone(),
                    AppVariable {
                        default,
                        required,
                        secret: def.get("secret").and_then(|v| v.as_bool()).unwrap_or(false),
                    },
                );
            }
        }
        let triggers = doc
            .get("trigger")
            .and_then(|t| t.get("http"))
            .and_then(|h| h.as_array())
            .ok_or_else(|| anyhow!("spin.toml has no [[trigger.http]]"))?;
        let component_id = triggers
            .iter()
            .find(|t| t.get("route").and_then(|r| r.as_str()) == Some("/..."))
            .and_then(|t| t.get("component"))
            .and_then(|c| c.as_str())
            .ok_or_else(|| anyhow!("no [[trigger.http]] routes /... to a component"))?
            .to_string();
        let component = doc
            .get("component")
            .and_then(|c| c.get(&component_id))
            .and_then(|c| c.as_table())
            .ok_or_else(|| anyhow!("component {component_id} is not defined"))?;
        let source = component
            .get("source")
            .and_then(|s| s.as_str())
            .ok_or_else(|| anyhow!("component {component_id} has no source"))?;
        let component_variables = component
            .get("variables")
            .and_then(|v| v.as_table())
            .map(|t| {
                t.iter()
                    .map(|(k, v)| {
                        v.as_str()
                            .map(|s| (k.clone(), s.to_string()))
                            .ok_or_else(|| anyhow!("component variable {k} must be a string"))
                    })
                    .collect::<Result<BTreeMap<_, _>>>()
            })
            .transpose()?
            .unwrap_or_default();
        let root = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        Ok(Manifest {
            source: root.join(source),
            root,
            component_id,
            variables,
            component_variables,
            allowed_outbound_hosts: string_list(component, "allowed_outbound_hosts")?,
            key_value_stores: string_list(component, "key_value_stores")?,
        })
    }

    /// Resolves every variable: `overrides` (like `spin up --variable`) first,
    /// then `SPIN_VARIABLE_<NAME>` from `env`, then the default.
    pub fn resolve(
        &self,
        overrides: &HashMap<String, String>,
        env: &HashMap<String, String>,
    ) -> Result<Resolved> {
        let mut app = HashMap::new();
        for (name, def) in &self.variables {
            let from_env = env.get(&format!("SPIN_VARIABLE_{}", name.to_uppercase()));
            match overrides.get(name).or(from_env).or(def.default.as_ref()) {
                Some(v) => {
                    app.insert(name.clone(), v.clone());
                }
                None if def.required => bail!("required variable {name} has no value"),
                None => {}
            }
        }
        let mut config = HashMap::new();
        for (name, template) in &self.component_variables {
            config.insert(name.clone(), expand(template, &app)?);
        }
        let allowed_outbound_hosts = self
            .allowed_outbound_hosts
            .iter()
            .map(|h| expand(h, &app))
            .collect::<Result<Vec<_>>>()?;
        Ok(Resolved {
            config,
            allowed_outbound_hosts,
            key_value_stores: self.key_value_stores.clone(),
        })
    }
}

/// Expands `{{ name }}` from application variables; unknown names are errors.
pub fn expand(template: &str, vars: &HashMap<String, String>) -> Result<String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find("}}")
            .ok_or_else(|| anyhow!("unterminated template in {template:?}"))?;
        let name = rest[start + 2..start + end].trim();
        let value = vars.get(name).ok_or_else(|| {
            anyhow!("template {template:?} names unknown or unset variable {name}")
        })?;
        out.push_str(value);
        rest = &rest[start + end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// One `allowed_outbound_hosts` entry: `scheme://host[:port]`, `*` wildcards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    scheme: String,
    host: String,
    port: Option<String>,
}

impl AllowedHost {
    pub fn parse(entry: &str) -> Result<AllowedHost> {
        let (scheme, rest) = entry
            .split_once("://")
            .ok_or_else(|| anyhow!("allowed host {entry:?} needs a scheme"))?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('/') {
            bail!("allowed host {entry:?} must not have a path");
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || p.is_empty() => {
                (h.to_string(), Some(p.to_string()))
            }
            _ => (rest.to_string(), None),
        };
        if host.is_empty() {
            bail!("allowed host {entry:?} has no host");
        }
        Ok(AllowedHost {
            scheme: scheme.to_ascii_lowercase(),
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    pub fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        let default_port = match self.scheme.as_str() {
            "https" => Some(443),
            "http" => Some(80),
            _ => None,
        };
        let scheme_ok = self.scheme == "*" || self.scheme == scheme;
        let host_ok = self.host == "*"
            || self.host == host
            || self
                .host
                .strip_prefix("*.")
                .is_some_and(|suffix| host.ends_with(&format!(".{suffix}")));
        let port_ok = match &self.port {
            Some(p) if p == "*" => true,
            Some(p) => p.parse::<u16>().ok() == Some(port),
            None => default_port == Some(port),
        };
        scheme_ok && host_ok && port_ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_expand_and_fail_on_unknown_names() {
        let vars = HashMap::from([("a".to_string(), "x".to_string())]);
        assert_eq!(expand("pre {{ a }}-{{a}}", &vars).unwrap(), "pre x-x");
        assert!(expand("{{ b }}", &vars).is_err());
        assert!(expand("{{ a", &vars).is_err());
    }

    #[test]
    fn allowed_hosts_match_like_spin() {
        let h = AllowedHost::parse("https://api.github.com").unwrap();
        assert!(h.allows("https", "api.github.com", 443));
        assert!(!h.allows("https", "api.github.com", 8443));
        assert!(!h.allows("http", "api.github.com", 443));
        let local = AllowedHost::parse("http://127.0.0.1:8080").unwrap();
        assert!(local.allows("http", "127.0.0.1", 8080));
        assert!(!local.allows("http", "127.0.0.1", 8081));
        assert!(AllowedHost::parse("https://example.com/path").is_err());
        assert!(AllowedHost::parse("example.com").is_err());
    }
}
