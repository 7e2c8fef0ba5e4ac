//! The key-value stores behind the test host's `wasi:keyvalue`: in memory
//! (unit speed), or Spin's own two — SQLite (`sqlite.rs`, the laptop default)
//! and Redis (`redis.rs`, scale-out) — with their quirks, so the suite sees
//! what Spin users see. Every call is counted (reads and writes per request
//! for the bench).

pub mod memory;
pub mod redis;
pub mod sqlite;

use anyhow::Result;
use std::sync::atomic::{AtomicU64, Ordering};

/// Which store a stack runs on.
#[derive(Clone, Debug, Default)]
pub enum StoreKind {
    #[default]
    Memory,
    /// Spin's default store, on a temporary file.
    Sqlite,
    /// Spin's Redis store against this server (`redis://…`).
    Redis(String),
}

impl StoreKind {
    /// `memory`, `sqlite` or a `redis://` URL (the bench's and dev server's
    /// `COPILOT_JIT_KV`).
    pub fn parse(text: &str) -> Result<StoreKind> {
        match text {
            "" | "memory" => Ok(StoreKind::Memory),
            "sqlite" | "spin" => Ok(StoreKind::Sqlite),
            url if url.starts_with("redis://") => Ok(StoreKind::Redis(url.to_string())),
            other => {
                anyhow::bail!("unknown store {other:?}: use memory, sqlite or redis://host:port")
            }
        }
    }
}

enum Backend {
    Memory(memory::MemoryKv),
    Sqlite(sqlite::SqliteKv),
    Redis(redis::RedisKv),
}

/// KV calls made by guests, for figures per request.
#[derive(Default)]
pub struct KvStats {
    reads: AtomicU64,
    writes: AtomicU64,
    listings: AtomicU64,
}

impl KvStats {
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }
    /// Calls that enumerate the store's keys (`list-keys`).
    pub fn listings(&self) -> u64 {
        self.listings.load(Ordering::Relaxed)
    }
    fn read(&self) {
        self.reads.fetch_add(1, Ordering::Relaxed);
    }
    fn write(&self) {
        self.writes.fetch_add(1, Ordering::Relaxed);
    }
}

/// One store shared by every request of a host (like Spin's), or by two
/// hosts (scale-out on one Redis).
pub struct KeyValue {
    backend: Backend,
    stats: KvStats,
}

impl Default for KeyValue {
    fn default() -> Self {
        KeyValue::from(Backend::Memory(memory::MemoryKv::default()))
    }
}

/// Why a compare-and-swap did not report success.
pub enum SwapFailure {
    /// Spin's `SwapError::CasFailed`: the guest gets a fresh handle.
    CasFailed,
    Other(String),
}

pub enum Cas {
    Memory(memory::MemoryCas),
    Sqlite(sqlite::SqliteCas),
    Redis(redis::RedisCas),
}

impl KeyValue {
    fn from(backend: Backend) -> KeyValue {
        KeyValue {
            backend,
            stats: KvStats::default(),
        }
    }

    pub async fn open(kind: &StoreKind) -> Result<KeyValue> {
        Ok(KeyValue::from(match kind {
            StoreKind::Memory => Backend::Memory(memory::MemoryKv::default()),
            StoreKind::Sqlite => Backend::Sqlite(sqlite::SqliteKv::temporary()?),
            StoreKind::Redis(url) => Backend::Redis(redis::RedisKv::connect(url).await?),
        }))
    }

    pub fn stats(&self) -> &KvStats {
        &self.stats
    }

    /// Every key and value under `label` (Redis: the whole keyspace).
    pub async fn snapshot(&self, label: &str) -> Result<Vec<(String, Vec<u8>)>> {
        Ok(match &self.backend {
            Backend::Memory(m) => m.snapshot(label),
            Backend::Sqlite(s) => s.snapshot(label).map_err(anyhow::Error::msg)?,
            Backend::Redis(r) => r.snapshot().await.map_err(anyhow::Error::msg)?,
        })
    }

    pub async fn get(&self, label: &str, key: &str) -> Result<Option<Vec<u8>>, String> {
        self.stats.read();
        match &self.backend {
            Backend::Memory(m) => Ok(m.get(label, key)),
            Backend::Sqlite(s) => s.get(label, key),
            Backend::Redis(r) => r.get(key).await,
        }
    }

    pub async fn set(&self, label: &str, key: &str, value: Vec<u8>) -> Result<(), String> {
        self.stats.write();
        match &self.backend {
            Backend::Memory(m) => {
                m.set(label, key, value);
                Ok(())
            }
            Backend::Sqlite(s) => s.set(label, key, &value),
            Backend::Redis(r) => r.set(key, &value).await,
        }
    }

    pub async fn delete(&self, label: &str, key: &str) -> Result<(), String> {
        self.stats.write();
        match &self.backend {
            Backend::Memory(m) => {
                m.delete(label, key);
                Ok(())
            }
            Backend::Sqlite(s) => s.delete(label, key),
            Backend::Redis(r) => r.delete(key).await,
        }
    }

    pub async fn exists(&self, label: &str, key: &str) -> Result<bool, String> {
        self.stats.read();
        match &self.backend {
            Backend::Memory(m) => Ok(m.get(label, key).is_some()),
            Backend::Sqlite(s) => Ok(s.get(label, key)?.is_some()),
            Backend::Redis(r) => r.exists(key).await,
        }
    }

    pub async fn keys(&self, label: &str) -> Result<Vec<String>, String> {
        self.stats.read();
        self.stats.listings.fetch_add(1, Ordering::Relaxed);
        match &self.backend {
            Backend::Memory(m) => Ok(m.keys(label)),
            Backend::Sqlite(s) => s.keys(label),
            Backend::Redis(r) => r.keys().await,
        }
    }

    pub async fn get_many(
        &self,
        label: &str,
        keys: Vec<String>,
    ) -> Result<Vec<(String, Option<Vec<u8>>)>, String> {
        self.stats.read();
        match &self.backend {
            Backend::Redis(r) => r.get_many(keys).await,
            Backend::Memory(m) => Ok(keys
                .into_iter()
                .map(|k| {
                    let v = m.get(label, &k);
                    (k, v)
                })
                .collect()),
            // Spin's SQLite store leaves absent keys out.
            Backend::Sqlite(s) => {
                let mut out = Vec::with_capacity(keys.len());
                for key in keys {
                    if let Some(v) = s.get(label, &key)? {
                        out.push((key, Some(v)));
                    }
                }
                Ok(out)
            }
        }
    }

    pub async fn set_many(&self, label: &str, pairs: Vec<(String, Vec<u8>)>) -> Result<(), String> {
        self.stats.write();
        match &self.backend {
            Backend::Memory(m) => {
                for (k, v) in pairs {
                    m.set(label, &k, v);
                }
                Ok(())
            }
            Backend::Sqlite(s) => s.set_many(label, &pairs),
            Backend::Redis(r) => r.set_many(&pairs).await,
        }
    }

    pub async fn delete_many(&self, label: &str, keys: Vec<String>) -> Result<(), String> {
        self.stats.write();
        match &self.backend {
            Backend::Memory(m) => {
                for k in keys {
                    m.delete(label, &k);
                }
                Ok(())
            }
            Backend::Sqlite(s) => {
                for k in keys {
                    s.delete(label, &k)?;
                }
                Ok(())
            }
            Backend::Redis(r) => r.delete_many(keys).await,
        }
    }

    pub async fn increment(&self, label: &str, key: &str, delta: i64) -> Result<i64, String> {
        self.stats.write();
        match &self.backend {
            Backend::Memory(m) => m.increment(label, key, delta),
            Backend::Sqlite(s) => s.increment(label, key, delta),
            Backend::Redis(r) => r.increment(key, delta).await,
        }
    }

    pub async fn new_cas(&self, label: &str, key: &str) -> Result<Cas, String> {
        Ok(match &self.backend {
            Backend::Memory(m) => Cas::Memory(m.new_cas(label, key)),
            Backend::Sqlite(s) => Cas::Sqlite(s.new_cas(label, key)),
            Backend::Redis(r) => Cas::Redis(r.new_cas(key).await?),
        })
    }

    pub async fn cas_current(&self, cas: &mut Cas) -> Result<Option<Vec<u8>>, String> {
        self.stats.read();
        match cas {
            Cas::Memory(c) => Ok(c.current()),
            Cas::Sqlite(c) => c.current(),
            Cas::Redis(c) => c.current().await,
        }
    }

    pub async fn cas_swap(&self, cas: &Cas, value: Vec<u8>) -> Result<(), SwapFailure> {
        self.stats.write();
        let applied = match cas {
            Cas::Memory(c) => c.swap(value),
            Cas::Sqlite(c) => c.swap(&value).map_err(SwapFailure::Other)?,
            // Spin maps every Redis error here to CasFailed.
            Cas::Redis(c) => c.swap(value).await.is_ok(),
        };
        if applied {
            Ok(())
        } else {
            Err(SwapFailure::CasFailed)
        }
    }
}
