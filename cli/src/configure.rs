//! `copilot-jit configure CLIENT [--write]`: exactly the settings that point
//! one client at this gateway, printed, or written with a backup of the
//! file they change; a check that the gateway answers; what is left to do.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::{json, Value};

use crate::args::{parse, Spec};
use crate::context::gateway_url;
use crate::credentials::{self, home_dir};
use crate::error::{CliError, Exit, Result};
use crate::gateway::Gateway;
use crate::output::{print_json, Style};

pub const CONFIGURE: Spec = Spec {
    command: "configure",
    values: &[],
    switches: &["--write"],
    aliases: &[],
    positionals: &["CLIENT"],
};

pub const CLIENTS: &[&str] = &["neovim", "jetbrains", "vim", "vscode", "cli"];

/// What one client needs: the file it reads, what goes in it, what the
/// person must still do.
#[derive(Debug)]
pub struct Plan {
    pub client: &'static str,
    pub path: PathBuf,
    pub edit: Edit,
    /// The settings themselves, as the client names them.
    pub settings: Value,
    pub todo: Vec<String>,
}

#[derive(Debug)]
pub enum Edit {
    /// Keys merged into a JSON object file (VS Code's settings.json).
    JsonKeys(Value),
    /// A file of our own, replaced whole.
    WholeFile(String),
    /// A block between markers in a file others write too (a shell's
    /// startup file), replaced on the next run.
    Block { marker: String, text: String },
}

fn config_home() -> Result<PathBuf> {
    std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| home_dir().map(|h| h.join(".config")))
        .ok_or_else(|| CliError::local("no HOME: cannot tell where the settings go"))
}

fn home() -> Result<PathBuf> {
    home_dir().ok_or_else(|| CliError::local("no HOME: cannot tell where the settings go"))
}

/// VS Code's user settings file.
fn vscode_settings() -> Result<PathBuf> {
    let base = if cfg!(target_os = "macos") {
        home()?.join("Library/Application Support")
    } else if cfg!(windows) {
        std::env::var_os("APPDATA")
            .map(PathBuf::from)
            .ok_or_else(|| CliError::local("no APPDATA"))?
    } else {
        config_home()?
    };
    Ok(base.join("Code/User/settings.json"))
}

/// The startup file of the person's shell: zsh reads `~/.zshenv` in every
/// shell, bash `~/.bashrc` in interactive ones.
fn shell_startup() -> Result<PathBuf> {
    let shell = std::env::var("SHELL").unwrap_or_default();
    Ok(if shell.ends_with("zsh") {
        home()?.join(".zshenv")
    } else {
        home()?.join(".bashrc")
    })
}

/// This very program, so editors started without the shell's PATH find it.
fn this_program() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.to_str().map(str::to_string))
        .unwrap_or_else(|| "copilot-jit".into())
}

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn lua_quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

fn vim_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// `host:port` of a URL, as the Copilot CLI's GH_HOST takes it.
fn host_port(url: &str) -> String {
    url.split("://")
        .nth(1)
        .unwrap_or(url)
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string()
}

pub fn plan(client: &str, url: &str) -> Result<Plan> {
    let api = format!("{url}/");
    let program = this_program();
    let sign_in_first =
        "run `copilot-jit login` first: the editor's language server signs in with that sign-in"
            .to_string();
    let request =
        "ask for access: copilot-jit request --scopes chat,completions --reason \"…\"".to_string();
    // The language server's own settings: the gateway as GitHub's API and
    // server, and the sign-in as its token (read when the editor starts).
    let ls_settings = json!({
        "GH_COPILOT_API_URL": api,
        "GH_COPILOT_SERVER_URL": api,
        "GH_COPILOT_TOKEN": format!("$({program} credential --gateway {url})"),
    });
    Ok(match client {
        "vscode" => Plan {
            client: "vscode",
            path: vscode_settings()?,
            edit: Edit::JsonKeys(json!({
                "github.copilot.advanced.authProvider": "github-enterprise",
                "github-enterprise.uri": url,
            })),
            settings: json!({
                "github.copilot.advanced.authProvider": "github-enterprise",
                "github-enterprise.uri": url,
            }),
            todo: vec![
                "restart VS Code; when Copilot asks, choose *Sign in with GitHub Enterprise* and allow the device in the browser".into(),
                format!("VS Code reaches the API at api.<host of {url}>: that name must resolve to the gateway"),
                request,
            ],
        },
        "neovim" => Plan {
            client: "neovim",
            path: config_home()?.join("nvim/plugin/copilot-jit.lua"),
            edit: Edit::WholeFile(format!(
                "-- Written by `copilot-jit configure neovim`: the Copilot language server\n\
                 -- (copilot.lua, copilot.vim) talks to the copilot-jit gateway {url}.\n\
                 vim.env.GH_COPILOT_API_URL = {api_q}\n\
                 vim.env.GH_COPILOT_SERVER_URL = {api_q}\n\
                 local credential = vim.fn.system({{ {program_q}, \"credential\", \"--gateway\", {url_q} }})\n\
                 if vim.v.shell_error == 0 then\n  vim.env.GH_COPILOT_TOKEN = vim.trim(credential)\nend\n",
                api_q = lua_quote(&api),
                program_q = lua_quote(&program),
                url_q = lua_quote(url),
            )),
            settings: ls_settings,
            todo: vec![sign_in_first, "restart Neovim (copilot.lua or copilot.vim installed)".into(), request],
        },
        "vim" => Plan {
            client: "vim",
            path: home()?.join(".vim/plugin/copilot-jit.vim"),
            edit: Edit::WholeFile(format!(
                "\" Written by `copilot-jit configure vim`: copilot.vim's language server\n\
                 \" talks to the copilot-jit gateway {url}.\n\
                 let $GH_COPILOT_API_URL = {api_q}\n\
                 let $GH_COPILOT_SERVER_URL = {api_q}\n\
                 let s:credential = trim(system(shellescape({program_q}) . ' credential --gateway ' . shellescape({url_q})))\n\
                 if v:shell_error == 0\n  let $GH_COPILOT_TOKEN = s:credential\nendif\n",
                api_q = vim_quote(&api),
                program_q = vim_quote(&program),
                url_q = vim_quote(url),
            )),
            settings: ls_settings,
            todo: vec![sign_in_first, "restart Vim (copilot.vim installed)".into(), request],
        },
        "jetbrains" => Plan {
            client: "jetbrains",
            path: shell_startup()?,
            edit: Edit::Block {
                marker: "copilot-jit jetbrains".into(),
                text: format!(
                    "export GH_COPILOT_API_URL={api_q}\n\
                     export GH_COPILOT_SERVER_URL={api_q}\n\
                     export GH_COPILOT_TOKEN=\"$({program_q} credential --gateway {url_q} 2>/dev/null)\"\n",
                    api_q = sh_quote(&api),
                    program_q = sh_quote(&program),
                    url_q = sh_quote(url),
                ),
            },
            settings: ls_settings,
            todo: vec![
                sign_in_first,
                "start the IDE again from this shell (or log out and in: the IDE reads your shell's environment at start); the GitHub Copilot plugin's language server inherits it".into(),
                request,
            ],
        },
        "cli" => {
            let host = host_port(url);
            let mut todo = vec![
                "run `copilot-jit login` first: `copilot` then signs in with that sign-in".to_string(),
                "open a new shell, then run `copilot` as usual".into(),
                request,
            ];
            if url.starts_with("http://") {
                todo.insert(0, format!("the Copilot CLI speaks HTTPS only: {host} must serve TLS it trusts (NODE_EXTRA_CA_CERTS)"));
            }
            Plan {
                client: "cli",
                path: shell_startup()?,
                edit: Edit::Block {
                    marker: "copilot-jit cli".into(),
                    text: format!(
                        "copilot() {{\n  GH_HOST={host_q} COPILOT_GITHUB_TOKEN=\"$({program_q} credential --gateway {url_q})\" command copilot \"$@\"\n}}\n",
                        host_q = sh_quote(&host),
                        program_q = sh_quote(&program),
                        url_q = sh_quote(url),
                    ),
                },
                settings: json!({
                    "GH_HOST": host,
                    "COPILOT_GITHUB_TOKEN": format!("$({program} credential --gateway {url})"),
                }),
                todo,
            }
        }
        other => {
            return Err(CliError::usage(format!(
                "configure: unknown client {other:?} (one of {})",
                CLIENTS.join(", ")
            )))
        }
    })
}

/// The file's new contents, given what it holds now.
pub fn apply(edit: &Edit, current: Option<&str>, path: &Path) -> Result<String> {
    match edit {
        Edit::WholeFile(text) => Ok(text.clone()),
        Edit::JsonKeys(keys) => {
            let mut doc: Value = match current.map(str::trim) {
                None | Some("") => json!({}),
                Some(text) => serde_json::from_str(text).map_err(|_| {
                    CliError::local(format!(
                        "{} is not plain JSON (comments?): add the settings above by hand",
                        path.display()
                    ))
                })?,
            };
            let (Some(obj), Some(add)) = (doc.as_object_mut(), keys.as_object()) else {
                return Err(CliError::local(format!(
                    "{} is not a JSON object",
                    path.display()
                )));
            };
            for (k, v) in add {
                obj.insert(k.clone(), v.clone());
            }
            Ok(format!("{doc:#}\n"))
        }
        Edit::Block { marker, text } => {
            let begin = format!("# >>> {marker} >>>");
            let end = format!("# <<< {marker} <<<");
            let block = format!("{begin}\n{text}{end}\n");
            let current = current.unwrap_or_default();
            match (current.find(&begin), current.find(&end)) {
                (Some(b), Some(e)) if e > b => {
                    let after = current[e + end.len()..].trim_start_matches('\n');
                    Ok(format!("{}{block}{after}", &current[..b]))
                }
                _ => {
                    let sep = if current.is_empty() || current.ends_with('\n') {
                        ""
                    } else {
                        "\n"
                    };
                    Ok(format!("{current}{sep}{block}"))
                }
            }
        }
    }
}

/// What the settings are, as text a person can paste.
fn shown(edit: &Edit) -> String {
    match edit {
        Edit::WholeFile(text) => text.clone(),
        Edit::JsonKeys(keys) => format!("{keys:#}"),
        Edit::Block { marker, text } => format!("# >>> {marker} >>>\n{text}# <<< {marker} <<<"),
    }
}

/// Writes `contents` to `path`, keeping what was there as `path.bak`.
fn write_with_backup(
    path: &Path,
    current: Option<&str>,
    contents: &str,
) -> Result<Option<PathBuf>> {
    let fail = |e: std::io::Error| CliError::local(format!("{}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let backup = match current {
        Some(old) if old != contents => {
            let mut name = path.as_os_str().to_owned();
            name.push(".bak");
            let backup = PathBuf::from(name);
            std::fs::write(&backup, old).map_err(fail)?;
            Some(backup)
        }
        _ => None,
    };
    std::fs::write(path, contents).map_err(fail)?;
    Ok(backup)
}

/// Whether the gateway answers, and as what: `Ok(None)` when it does.
fn check(url: &str) -> Option<String> {
    match Gateway::new(url, None).get("/healthz") {
        Ok(_) => None,
        Err(e) => Some(e.message),
    }
}

pub fn configure(args: &[String]) -> Result<ExitCode> {
    let p = parse(args, &CONFIGURE)?;
    let client = p.positional(0).ok_or_else(|| {
        CliError::usage(format!(
            "configure needs a client: one of {}",
            CLIENTS.join(", ")
        ))
    })?;
    let url = gateway_url(&p)?;
    let plan = plan(client, &url)?;
    let problem = check(&url);
    let mut todo = plan.todo.clone();
    let needs_login =
        plan.client != "vscode" && credentials::current()?.is_none_or(|l| l.gateway != url);
    if !needs_login {
        todo.retain(|t| !t.starts_with("run `copilot-jit login`"));
    }
    let current = match std::fs::read_to_string(&plan.path) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(CliError::local(format!("{}: {e}", plan.path.display()))),
    };
    let contents = apply(&plan.edit, current.as_deref(), &plan.path)?;
    let (written, backup) = if p.switch("--write") {
        let backup = write_with_backup(&plan.path, current.as_deref(), &contents)?;
        (true, backup)
    } else {
        (false, None)
    };
    if p.json() {
        print_json(&json!({
            "client": plan.client,
            "gateway": url,
            "gateway_answers": problem.is_none(),
            "gateway_problem": problem,
            "file": plan.path,
            "written": written,
            "backup": backup,
            "settings": plan.settings,
            "contents": if written { Value::Null } else { json!(shown(&plan.edit)) },
            "todo": todo,
        }));
    } else {
        let style = Style::detect();
        if written {
            println!("{} Wrote {}", style.green("✓"), plan.path.display());
            if let Some(b) = &backup {
                println!("  (what was there is kept in {})", b.display());
            }
        } else {
            println!(
                "{}",
                style.dim(&format!(
                    "# {} (write it with --write)",
                    plan.path.display()
                ))
            );
            println!("{}", shown(&plan.edit));
        }
        match &problem {
            None => println!("{} {url} answers", style.green("✓")),
            Some(why) => println!("{} {why}", style.red("✗")),
        }
        println!("Still to do:");
        for t in &todo {
            println!("  - {t}");
        }
    }
    Ok(if problem.is_some() {
        ExitCode::from(Exit::Unreachable as u8)
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_settings_are_merged_and_blocks_replaced() {
        let keys = Edit::JsonKeys(json!({"a": 1}));
        let merged = apply(&keys, Some("{\"b\": 2}"), Path::new("s.json")).unwrap();
        let v: Value = serde_json::from_str(&merged).unwrap();
        assert_eq!(v, json!({"a": 1, "b": 2}));
        assert!(apply(&keys, Some("// comment\n{}"), Path::new("s.json")).is_err());

        let block = Edit::Block {
            marker: "m".into(),
            text: "x=1\n".into(),
        };
        let once = apply(&block, Some("alias ll='ls -l'"), Path::new("rc")).unwrap();
        assert_eq!(once, "alias ll='ls -l'\n# >>> m >>>\nx=1\n# <<< m <<<\n");
        let block2 = Edit::Block {
            marker: "m".into(),
            text: "x=2\n".into(),
        };
        let twice = apply(&block2, Some(&format!("{once}echo hi\n")), Path::new("rc")).unwrap();
        assert_eq!(
            twice,
            "alias ll='ls -l'\n# >>> m >>>\nx=2\n# <<< m <<<\necho hi\n"
        );
    }

    #[test]
    fn quoting_survives_odd_paths() {
        assert_eq!(sh_quote("a'b"), r"'a'\''b'");
        assert_eq!(vim_quote("a'b"), "'a''b'");
        assert_eq!(host_port("https://gw.example:8443/x"), "gw.example:8443");
    }
}
