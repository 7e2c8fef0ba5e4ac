//! Spin's Redis key-value store (`crates/key-value-redis`, the same from
//! Spin 3.0 to 4.1), rebuilt command for command with the same `redis`
//! crate, against a real `redis-server`:
//! - labels are ignored: every store shares the server's keyspace;
//! - a compare-and-swap opens its own connection; `current` sends WATCH and
//!   GET; `swap` sends MULTI/SET/EXEC and then `UNWATCH <key>`, which Redis
//!   refuses ("wrong number of arguments"), so **every swap reports failure,
//!   also after it was applied**, and a real conflict reports the same;
//! - `increment` is INCR (decimal text); `get_many` sends KEYS with the keys
//!   as arguments, as Spin does.

use anyhow::{Context, Result};
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Client, RedisError};

pub struct RedisKv {
    url: String,
    connection: ConnectionManager,
}

fn err(e: RedisError) -> String {
    format!("{e:?}")
}

impl RedisKv {
    pub async fn connect(url: &str) -> Result<RedisKv> {
        let connection = Client::open(url)
            .with_context(|| format!("redis url {url}"))?
            .get_connection_manager()
            .await
            .with_context(|| format!("connecting to {url}"))?;
        Ok(RedisKv {
            url: url.to_string(),
            connection,
        })
    }

    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        self.connection.clone().get(key).await.map_err(err)
    }

    pub async fn set(&self, key: &str, value: &[u8]) -> Result<(), String> {
        self.connection.clone().set(key, value).await.map_err(err)
    }

    pub async fn delete(&self, key: &str) -> Result<(), String> {
        self.connection.clone().del(key).await.map_err(err)
    }

    pub async fn exists(&self, key: &str) -> Result<bool, String> {
        self.connection.clone().exists(key).await.map_err(err)
    }

    pub async fn keys(&self) -> Result<Vec<String>, String> {
        self.connection.clone().keys("*").await.map_err(err)
    }

    pub async fn get_many(
        &self,
        keys: Vec<String>,
    ) -> Result<Vec<(String, Option<Vec<u8>>)>, String> {
        self.connection.clone().keys(keys).await.map_err(err)
    }

    pub async fn set_many(&self, pairs: &[(String, Vec<u8>)]) -> Result<(), String> {
        self.connection.clone().mset(pairs).await.map_err(err)
    }

    pub async fn delete_many(&self, keys: Vec<String>) -> Result<(), String> {
        self.connection.clone().del(keys).await.map_err(err)
    }

    pub async fn increment(&self, key: &str, delta: i64) -> Result<i64, String> {
        self.connection.clone().incr(key, delta).await.map_err(err)
    }

    /// Every key and value, for tests that inspect what was written.
    pub async fn snapshot(&self) -> Result<Vec<(String, Vec<u8>)>, String> {
        let mut out = Vec::new();
        for key in self.keys().await? {
            if let Some(v) = self.get(&key).await? {
                out.push((key, v));
            }
        }
        Ok(out)
    }

    /// Its own connection: Redis scopes WATCH to a connection.
    pub async fn new_cas(&self, key: &str) -> Result<RedisCas, String> {
        let connection = Client::open(self.url.as_str())
            .map_err(err)?
            .get_connection_manager()
            .await
            .map_err(err)?;
        Ok(RedisCas {
            key: key.to_string(),
            connection,
        })
    }
}

pub struct RedisCas {
    key: String,
    connection: ConnectionManager,
}

impl RedisCas {
    pub async fn current(&mut self) -> Result<Option<Vec<u8>>, String> {
        redis::cmd("WATCH")
            .arg(&self.key)
            .exec_async(&mut self.connection.clone())
            .await
            .map_err(err)?;
        self.connection.clone().get(&self.key).await.map_err(err)
    }

    /// Err: Spin's `SwapError::CasFailed` — which, through the UNWATCH
    /// below, is every outcome.
    pub async fn swap(&self, value: Vec<u8>) -> Result<(), String> {
        let applied: Result<(), RedisError> = redis::pipe()
            .atomic()
            .set(&self.key, value)
            .query_async(&mut self.connection.clone())
            .await;
        redis::cmd("UNWATCH")
            .arg(&self.key)
            .exec_async(&mut self.connection.clone())
            .await
            .map_err(err)?;
        applied.map_err(err)
    }
}

/// A `redis-server` of its own on a loopback port, stopped on drop.
pub struct RedisServer {
    child: std::process::Child,
    pub url: String,
    dir: std::path::PathBuf,
}

impl RedisServer {
    pub async fn start() -> Result<RedisServer> {
        let bin = std::env::var("REDIS_SERVER_BIN").unwrap_or_else(|_| "redis-server".into());
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let dir =
            std::env::temp_dir().join(format!("copilot-jit-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let child = std::process::Command::new(&bin)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .arg("--dir")
            .arg(&dir)
            .stdout(std::process::Stdio::null())
            .spawn()
            .with_context(|| format!("starting {bin} (the test command installs redis-server)"))?;
        let server = RedisServer {
            child,
            url: format!("redis://127.0.0.1:{port}/"),
            dir,
        };
        for _ in 0..100 {
            if let Ok(kv) = RedisKv::connect(&server.url).await {
                let pong: Result<String, _> = redis::cmd("PING")
                    .query_async(&mut kv.connection.clone())
                    .await;
                if pong.is_ok() {
                    return Ok(server);
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        anyhow::bail!("redis-server on port {port} did not answer PING")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
