//! What the sealer and the verifier need from storage: objects by key,
//! written whole, listed by prefix. The component implements it over a
//! bucket (or KV without one), the CLI over a bucket or a directory, the
//! tests in memory.

use std::cell::RefCell;
use std::collections::BTreeMap;

pub trait Blobs {
    /// The object's bytes, `None` when there is none.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, String>;
    fn put(&self, key: &str, bytes: &[u8]) -> Result<(), String>;
    /// Every key under `prefix`, in any order.
    fn list(&self, prefix: &str) -> Result<Vec<String>, String>;
}

/// Where the log lives under the audit prefix.
pub fn log_prefix(prefix: &str) -> String {
    format!("{prefix}log/")
}

/// Objects in memory (tests, and a scratch copy).
#[derive(Default)]
pub struct MemoryBlobs {
    pub objects: RefCell<BTreeMap<String, Vec<u8>>>,
}

impl Blobs for MemoryBlobs {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        Ok(self.objects.borrow().get(key).cloned())
    }

    fn put(&self, key: &str, bytes: &[u8]) -> Result<(), String> {
        self.objects
            .borrow_mut()
            .insert(key.to_string(), bytes.to_vec());
        Ok(())
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, String> {
        Ok(self
            .objects
            .borrow()
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect())
    }
}

impl MemoryBlobs {
    pub fn delete(&self, key: &str) {
        self.objects.borrow_mut().remove(key);
    }
}
