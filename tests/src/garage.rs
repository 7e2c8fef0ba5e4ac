//! A real S3-compatible server for the tests: Garage, single node, SQLite
//! metadata, on loopback ports, in a temporary directory. It checks SigV4
//! like AWS does. Stopped (and its directory removed) on drop; `stop` and
//! `start` simulate an outage with the same data.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tokio::process::{Child, Command};

pub const BUCKET: &str = "copilot-audit";
pub const REGION: &str = "garage";
/// Test credentials, imported into Garage (its key id format: GK + 24 hex).
pub const ACCESS_KEY_ID: &str = "GK0123456789abcdef01234567";
pub const SECRET_ACCESS_KEY: &str =
    "5ec7e7000000000000000000000000000000000000000000000000000000aced";

pub struct Garage {
    dir: PathBuf,
    config: PathBuf,
    pub s3_port: u16,
    server: Option<Child>,
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The `garage` binary: `GARAGE_BIN`, else on PATH (`cargo install garage`).
fn binary() -> String {
    std::env::var("GARAGE_BIN").unwrap_or_else(|_| "garage".into())
}

impl Garage {
    pub async fn start() -> Result<Garage> {
        let dir = std::env::temp_dir().join(format!(
            "copilot-jit-garage-{}-{}",
            std::process::id(),
            free_port()?
        ));
        std::fs::create_dir_all(&dir)?;
        let (rpc, s3, admin) = (free_port()?, free_port()?, free_port()?);
        let config = dir.join("garage.toml");
        std::fs::write(
            &config,
            format!(
                r#"metadata_dir = "{dir}/meta"
data_dir = "{dir}/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:{rpc}"
rpc_public_addr = "127.0.0.1:{rpc}"
rpc_secret = "{secret}"
[s3_api]
s3_region = "{REGION}"
api_bind_addr = "127.0.0.1:{s3}"
root_domain = ".s3.garage.localhost"
[admin]
api_bind_addr = "127.0.0.1:{admin}"
"#,
                dir = dir.display(),
                secret = "c0ffee".repeat(10) + "c0ff",
            ),
        )?;
        let mut garage = Garage {
            dir,
            config,
            s3_port: s3,
            server: None,
        };
        garage.start_server().await?;
        let node = garage.cli(&["node", "id", "-q"]).await?;
        let node = node.trim().split('@').next().unwrap_or("").to_string();
        garage
            .cli(&["layout", "assign", "-z", "dc1", "-c", "1G", &node])
            .await?;
        garage.cli(&["layout", "apply", "--version", "1"]).await?;
        garage.cli(&["bucket", "create", BUCKET]).await?;
        garage
            .cli(&[
                "key",
                "import",
                "--yes",
                "-n",
                "tests",
                ACCESS_KEY_ID,
                SECRET_ACCESS_KEY,
            ])
            .await?;
        garage
            .cli(&[
                "bucket", "allow", "--read", "--write", "--owner", BUCKET, "--key", "tests",
            ])
            .await?;
        Ok(garage)
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    /// Spin variables that point the audit sink at this bucket.
    pub fn audit_variables(&self) -> Vec<(String, String)> {
        [
            ("audit_s3_bucket", BUCKET.to_string()),
            ("audit_s3_endpoint", self.endpoint()),
            ("audit_s3_region", REGION.to_string()),
            ("audit_s3_path_style", "true".to_string()),
            ("audit_s3_access_key_id", ACCESS_KEY_ID.to_string()),
            ("audit_s3_secret_access_key", SECRET_ACCESS_KEY.to_string()),
            ("audit_s3_prefix", "audit/".to_string()),
            ("audit_s3_timeout_ms", "1000".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    async fn cli(&self, args: &[&str]) -> Result<String> {
        let out = Command::new(binary())
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .output()
            .await
            .context("running garage (install it: cargo install garage --locked)")?;
        if !out.status.success() {
            bail!(
                "garage {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Starts the server (again) on the same ports and data.
    pub async fn start_server(&mut self) -> Result<()> {
        let log = std::fs::File::create(self.dir.join("server.log"))?;
        let child = Command::new(binary())
            .arg("-c")
            .arg(&self.config)
            .arg("server")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("starting garage (install it: cargo install garage --locked)")?;
        self.server = Some(child);
        for _ in 0..100 {
            if self.cli(&["status"]).await.is_ok()
                && tokio::net::TcpStream::connect(("127.0.0.1", self.s3_port))
                    .await
                    .is_ok()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!(
            "garage did not start: {}",
            std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
        )
    }

    /// Stops the server: storage is down until `start_server`.
    pub async fn stop_server(&mut self) -> Result<()> {
        if let Some(mut child) = self.server.take() {
            child.kill().await?;
            child.wait().await?;
        }
        Ok(())
    }
}

impl Drop for Garage {
    fn drop(&mut self) {
        if let Some(child) = self.server.as_mut() {
            let _ = child.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
