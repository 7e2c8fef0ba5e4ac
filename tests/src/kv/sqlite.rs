//! Spin's default key-value store (`crates/key-value-spin`), rebuilt: one
//! SQLite connection behind a mutex for every label, the same table, the
//! same statements, every write its own transaction, a file on disk, and the
//! calls made with `block_in_place` on the runtime's worker thread. Its
//! compare-and-swap compares the value `current` read, and when the key was
//! absent it writes unconditionally, as Spin's does.

use anyhow::{Context, Result};
use rusqlite::{named_params, Connection, OptionalExtension};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

pub struct SqliteKv {
    connection: Arc<Mutex<Connection>>,
    path: PathBuf,
    /// Removed with the store (a temporary file the store created).
    owned: bool,
}

impl Drop for SqliteKv {
    fn drop(&mut self) {
        if self.owned {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Spin runs these with `task::block_in_place`; so do we, on a
/// multi-threaded runtime (elsewhere the call simply blocks).
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

fn err(e: rusqlite::Error) -> String {
    format!("{e:?}")
}

const UPSERT: &str = "INSERT INTO spin_key_value (store, key, value) VALUES ($1, $2, $3)
                     ON CONFLICT(store, key) DO UPDATE SET value=$3";
const SELECT: &str = "SELECT value FROM spin_key_value WHERE store=$1 AND key=$2";

impl SqliteKv {
    /// A new database file in the system's temporary folder, removed on drop.
    pub fn temporary() -> Result<SqliteKv> {
        let path = std::env::temp_dir().join(format!(
            "copilot-jit-kv-{}-{}.db",
            std::process::id(),
            hex::encode(rand::random::<[u8; 8]>())
        ));
        let mut kv = SqliteKv::open(&path)?;
        kv.owned = true;
        Ok(kv)
    }

    pub fn open(path: &Path) -> Result<SqliteKv> {
        let connection = Connection::open(path)
            .with_context(|| format!("opening SQLite store {}", path.display()))?;
        connection.execute(
            "CREATE TABLE IF NOT EXISTS spin_key_value (
                           store TEXT NOT NULL,
                           key   TEXT NOT NULL,
                           value BLOB NOT NULL,
                           PRIMARY KEY (store, key)
                        )",
            [],
        )?;
        Ok(SqliteKv {
            connection: Arc::new(Mutex::new(connection)),
            path: path.to_path_buf(),
            owned: false,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.connection.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(&self, label: &str, key: &str) -> Result<Option<Vec<u8>>, String> {
        blocking(|| {
            self.lock()
                .prepare_cached(SELECT)
                .map_err(err)?
                .query_row([label, key], |row| row.get::<_, Vec<u8>>(0))
                .optional()
                .map_err(err)
        })
    }

    pub fn set(&self, label: &str, key: &str, value: &[u8]) -> Result<(), String> {
        blocking(|| {
            self.lock()
                .prepare_cached(UPSERT)
                .map_err(err)?
                .execute(rusqlite::params![label, key, value])
                .map(drop)
                .map_err(err)
        })
    }

    pub fn delete(&self, label: &str, key: &str) -> Result<(), String> {
        blocking(|| {
            self.lock()
                .prepare_cached("DELETE FROM spin_key_value WHERE store=$1 AND key=$2")
                .map_err(err)?
                .execute([label, key])
                .map(drop)
                .map_err(err)
        })
    }

    pub fn keys(&self, label: &str) -> Result<Vec<String>, String> {
        blocking(|| {
            let conn = self.lock();
            let mut stmt = conn
                .prepare_cached("SELECT key FROM spin_key_value WHERE store=$1")
                .map_err(err)?;
            let rows = stmt
                .query_map([label], |row| row.get::<_, String>(0))
                .map_err(err)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(err)
        })
    }

    pub fn snapshot(&self, label: &str) -> Result<Vec<(String, Vec<u8>)>, String> {
        blocking(|| {
            let conn = self.lock();
            let mut stmt = conn
                .prepare_cached("SELECT key, value FROM spin_key_value WHERE store=$1")
                .map_err(err)?;
            let rows = stmt
                .query_map([label], |row| Ok((row.get(0)?, row.get(1)?)))
                .map_err(err)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(err)
        })
    }

    pub fn set_many(&self, label: &str, pairs: &[(String, Vec<u8>)]) -> Result<(), String> {
        blocking(|| {
            let mut conn = self.lock();
            let tx = conn.transaction().map_err(err)?;
            for (k, v) in pairs {
                tx.prepare_cached(UPSERT)
                    .map_err(err)?
                    .execute(rusqlite::params![label, k, v])
                    .map_err(err)?;
            }
            tx.commit().map_err(err)
        })
    }

    /// Counters are 8 little-endian bytes; any other value is refused (Spin
    /// panics on it: "incorrect length").
    pub fn increment(&self, label: &str, key: &str, delta: i64) -> Result<i64, String> {
        blocking(|| {
            let mut conn = self.lock();
            let tx = conn.transaction().map_err(err)?;
            let value: Option<Vec<u8>> = tx
                .prepare_cached(SELECT)
                .map_err(err)?
                .query_row([label, key], |row| row.get(0))
                .optional()
                .map_err(err)?;
            let current = match value {
                None => 0,
                Some(v) => i64::from_le_bytes(<[u8; 8]>::try_from(v.as_slice()).map_err(|_| {
                    format!("{key} is not an 8-byte counter (Spin's SQLite store would panic)")
                })?),
            };
            let next = current + delta;
            tx.prepare_cached(UPSERT)
                .map_err(err)?
                .execute(rusqlite::params![label, key, next.to_le_bytes()])
                .map_err(err)?;
            tx.commit().map_err(err)?;
            Ok(next)
        })
    }

    pub fn new_cas(&self, label: &str, key: &str) -> SqliteCas {
        SqliteCas {
            connection: self.connection.clone(),
            label: label.to_string(),
            key: key.to_string(),
            seen: None,
        }
    }
}

pub struct SqliteCas {
    connection: Arc<Mutex<Connection>>,
    label: String,
    key: String,
    seen: Option<Vec<u8>>,
}

impl SqliteCas {
    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.connection.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn current(&mut self) -> Result<Option<Vec<u8>>, String> {
        let value = blocking(|| {
            self.lock()
                .prepare_cached(SELECT)
                .map_err(err)?
                .query_row([&self.label, &self.key], |row| row.get::<_, Vec<u8>>(0))
                .optional()
                .map_err(err)
        })?;
        self.seen.clone_from(&value);
        Ok(value)
    }

    /// Ok(false): no row held the value `current` read.
    pub fn swap(&self, value: &[u8]) -> Result<bool, String> {
        blocking(|| {
            let mut conn = self.lock();
            let rows = match &self.seen {
                Some(old) => conn
                    .prepare_cached(
                        "UPDATE spin_key_value SET value=:new_value WHERE store=:name and key=:key and value=:old_value",
                    )
                    .map_err(err)?
                    .execute(named_params! {
                        ":name": &self.label,
                        ":key": &self.key,
                        ":old_value": old,
                        ":new_value": value,
                    })
                    .map_err(err)?,
                None => {
                    let tx = conn.transaction().map_err(err)?;
                    let rows = tx
                        .prepare_cached(UPSERT)
                        .map_err(err)?
                        .execute(rusqlite::params![&self.label, &self.key, value])
                        .map_err(err)?;
                    tx.commit().map_err(err)?;
                    rows
                }
            };
            Ok(rows == 1)
        })
    }
}
