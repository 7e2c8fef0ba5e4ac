//! Where the sign-in credential is kept: the OS keyring where there is one,
//! else a file only its owner can read (0600, in a 0700 directory) under
//! the user's config directory. Beside it, `login.json` says which gateway,
//! who, and where the secret is (never the secret itself).

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::error::{CliError, Result};
use crate::keyring;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    Keyring,
    File,
}

impl StoreKind {
    pub fn name(self) -> &'static str {
        match self {
            StoreKind::Keyring => "keyring",
            StoreKind::File => "file",
        }
    }
}

/// Who is signed in where (the non-secret half).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    pub gateway: String,
    pub login: String,
    pub store: StoreKind,
}

/// `$XDG_CONFIG_HOME/copilot-jit`, else `~/.config/copilot-jit`
/// (`%APPDATA%\copilot-jit` on Windows).
pub fn config_dir() -> Result<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("APPDATA")
                .filter(|_| cfg!(windows))
                .map(PathBuf::from)
        })
        .or_else(|| home_dir().map(|h| h.join(".config")))
        .ok_or_else(|| CliError::local("no HOME: cannot tell where to keep the sign-in"))?;
    Ok(base.join("copilot-jit"))
}

pub fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .or_else(|| std::env::var_os("USERPROFILE"))
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

fn login_path() -> Result<PathBuf> {
    Ok(config_dir()?.join("login.json"))
}

pub fn credential_path() -> Result<PathBuf> {
    Ok(config_dir()?.join("credential"))
}

/// Which store to use now: `COPILOT_JIT_CREDENTIAL_STORE=file|keyring`
/// forces one; otherwise the keyring when it answers.
fn chosen_store() -> Result<StoreKind> {
    match std::env::var("COPILOT_JIT_CREDENTIAL_STORE").as_deref() {
        Ok("file") => Ok(StoreKind::File),
        Ok("keyring") if keyring::available() => Ok(StoreKind::Keyring),
        Ok("keyring") => Err(CliError::local(
            "COPILOT_JIT_CREDENTIAL_STORE=keyring, but no Secret Service answers here",
        )),
        _ if keyring::available() => Ok(StoreKind::Keyring),
        _ => Ok(StoreKind::File),
    }
}

/// Writes `contents` to `path`, readable by its owner only, replacing it
/// whole (a reader never sees half a file).
pub fn write_private(path: &Path, contents: &str) -> Result<()> {
    let fail = |e: std::io::Error| CliError::local(format!("{}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        create_private_dir(dir).map_err(fail)?;
    }
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    {
        use std::io::Write;
        let mut file = options.open(&tmp).map_err(fail)?;
        file.write_all(contents.as_bytes()).map_err(fail)?;
        file.sync_all().map_err(fail)?;
    }
    std::fs::rename(&tmp, path).map_err(fail)
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Keeps a new sign-in, replacing any earlier one.
pub fn save(gateway: &str, login: &str, credential: &str) -> Result<Login> {
    let store = chosen_store()?;
    // An earlier sign-in elsewhere leaves nothing behind.
    let _ = forget();
    match store {
        StoreKind::Keyring => keyring::store(gateway, credential).map_err(CliError::local)?,
        StoreKind::File => write_private(&credential_path()?, &format!("{credential}\n"))?,
    }
    let record = json!({"gateway": gateway, "login": login, "store": store.name()});
    write_private(&login_path()?, &format!("{record:#}\n"))?;
    Ok(Login {
        gateway: gateway.to_string(),
        login: login.to_string(),
        store,
    })
}

/// Who is signed in, if anyone (without reading the secret).
pub fn current() -> Result<Option<Login>> {
    let path = login_path()?;
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(CliError::local(format!("{}: {e}", path.display()))),
    };
    let v: Value = serde_json::from_str(&text).map_err(|_| {
        CliError::local(format!(
            "{} is damaged; run copilot-jit login",
            path.display()
        ))
    })?;
    let text = |k: &str| v[k].as_str().map(str::to_string);
    let (Some(gateway), Some(login)) = (text("gateway"), text("login")) else {
        return Ok(None);
    };
    let store = match v["store"].as_str() {
        Some("keyring") => StoreKind::Keyring,
        _ => StoreKind::File,
    };
    Ok(Some(Login {
        gateway,
        login,
        store,
    }))
}

/// The secret of the current sign-in.
pub fn secret(login: &Login) -> Result<String> {
    let missing = || CliError::not_signed_in("not signed in: run `copilot-jit login`");
    match login.store {
        StoreKind::Keyring => keyring::load(&login.gateway)
            .map_err(|e| {
                CliError::not_signed_in(format!("the keyring: {e}; run `copilot-jit login`"))
            })?
            .ok_or_else(missing),
        StoreKind::File => {
            let path = credential_path()?;
            match std::fs::read_to_string(&path) {
                Ok(t) if !t.trim().is_empty() => Ok(t.trim().to_string()),
                Ok(_) => Err(missing()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(missing()),
                Err(e) => Err(CliError::local(format!("{}: {e}", path.display()))),
            }
        }
    }
}

/// Where the secret is, in words, for `status`.
pub fn where_kept(login: &Login) -> String {
    match login.store {
        StoreKind::Keyring => "the OS keyring (Secret Service)".to_string(),
        StoreKind::File => credential_path()
            .map(|p| format!("a file only you can read (0600): {}", p.display()))
            .unwrap_or_else(|_| "a file".into()),
    }
}

/// Forgets the sign-in here (whichever store held it).
pub fn forget() -> Result<()> {
    if let Some(login) = current()? {
        if login.store == StoreKind::Keyring {
            let _ = keyring::forget(&login.gateway);
        }
    }
    for path in [credential_path()?, login_path()?] {
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(CliError::local(format!("{}: {e}", path.display()))),
        }
    }
    Ok(())
}
