//! The in-memory store: fast, for unit speed. A compare-and-swap fails only
//! on a real conflict (unlike Spin's Redis store, see `redis.rs`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// One label's data: value and a version bumped on every write.
#[derive(Default)]
pub struct MemoryBucket {
    entries: Mutex<HashMap<String, (Vec<u8>, u64)>>,
    next_version: Mutex<u64>,
}

impl MemoryBucket {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, (Vec<u8>, u64)>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn version(&self) -> u64 {
        let mut v = self.next_version.lock().unwrap_or_else(|e| e.into_inner());
        *v += 1;
        *v
    }
}

#[derive(Default)]
pub struct MemoryKv {
    buckets: Mutex<HashMap<String, Arc<MemoryBucket>>>,
}

impl MemoryKv {
    fn bucket(&self, label: &str) -> Arc<MemoryBucket> {
        self.buckets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(label.to_string())
            .or_default()
            .clone()
    }

    pub fn get(&self, label: &str, key: &str) -> Option<Vec<u8>> {
        self.bucket(label).lock().get(key).map(|(v, _)| v.clone())
    }

    pub fn set(&self, label: &str, key: &str, value: Vec<u8>) {
        let bucket = self.bucket(label);
        let version = bucket.version();
        bucket.lock().insert(key.to_string(), (value, version));
    }

    pub fn delete(&self, label: &str, key: &str) {
        self.bucket(label).lock().remove(key);
    }

    pub fn keys(&self, label: &str) -> Vec<String> {
        let mut keys: Vec<String> = self.bucket(label).lock().keys().cloned().collect();
        keys.sort();
        keys
    }

    pub fn snapshot(&self, label: &str) -> Vec<(String, Vec<u8>)> {
        self.bucket(label)
            .lock()
            .iter()
            .map(|(k, (v, _))| (k.clone(), v.clone()))
            .collect()
    }

    /// Counters as decimal text, like Redis's INCR.
    pub fn increment(&self, label: &str, key: &str, delta: i64) -> Result<i64, String> {
        let bucket = self.bucket(label);
        let version = bucket.version();
        let mut entries = bucket.lock();
        let current = match entries.get(key) {
            Some((v, _)) => std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.parse::<i64>().ok())
                .ok_or_else(|| "value is not a number".to_string())?,
            None => 0,
        };
        let next = current + delta;
        entries.insert(key.to_string(), (next.to_string().into_bytes(), version));
        Ok(next)
    }

    pub fn new_cas(&self, label: &str, key: &str) -> MemoryCas {
        MemoryCas {
            bucket: self.bucket(label),
            key: key.to_string(),
            seen: None,
        }
    }
}

pub struct MemoryCas {
    bucket: Arc<MemoryBucket>,
    key: String,
    /// The version `current` saw; `None` when the key was absent.
    seen: Option<u64>,
}

impl MemoryCas {
    pub fn current(&mut self) -> Option<Vec<u8>> {
        let entry = self.bucket.lock().get(&self.key).cloned();
        self.seen = entry.as_ref().map(|(_, version)| *version);
        entry.map(|(v, _)| v)
    }

    /// Ok(false): the key changed since `current`.
    pub fn swap(&self, value: Vec<u8>) -> bool {
        let version = self.bucket.version();
        let mut entries = self.bucket.lock();
        let now = entries.get(&self.key).map(|(_, v)| *v);
        if now != self.seen {
            return false;
        }
        entries.insert(self.key.clone(), (value, version));
        true
    }
}
