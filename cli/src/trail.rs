//! Where the CLI reads a log from: an S3-compatible bucket, or a directory
//! (e.g. after `aws s3 sync`), both as `Blobs` keyed like the bucket, with
//! a progress bar over the objects read.

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use copilot_jit_audit_log::store::Blobs;
use indicatif::{ProgressBar, ProgressStyle};

use crate::s3::S3;

fn bar() -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg}: {pos} objects read")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message("verifying");
    bar
}

/// A bucket, read-only (the verifier never writes).
pub struct BucketTrail {
    pub s3: S3,
    progress: RefCell<Option<ProgressBar>>,
}

impl BucketTrail {
    pub fn new(s3: S3, show_progress: bool) -> BucketTrail {
        BucketTrail {
            s3,
            progress: RefCell::new(show_progress.then(bar)),
        }
    }

    pub fn finish(&self) {
        if let Some(b) = self.progress.borrow_mut().take() {
            b.finish_and_clear();
        }
    }
}

impl Blobs for BucketTrail {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        if let Some(b) = self.progress.borrow().as_ref() {
            b.inc(1);
        }
        self.s3.get_optional(key)
    }

    fn put(&self, key: &str, _bytes: &[u8]) -> Result<(), String> {
        Err(format!("the verifier does not write ({key})"))
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, String> {
        self.s3.list(prefix)
    }
}

/// A directory holding the bucket's keys as paths (`<dir>/<key>`).
pub struct DirTrail {
    pub dir: PathBuf,
    progress: RefCell<Option<ProgressBar>>,
}

impl DirTrail {
    pub fn new(dir: &Path, show_progress: bool) -> DirTrail {
        DirTrail {
            dir: dir.to_path_buf(),
            progress: RefCell::new(show_progress.then(bar)),
        }
    }

    pub fn finish(&self) {
        if let Some(b) = self.progress.borrow_mut().take() {
            b.finish_and_clear();
        }
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("{}: {e}", dir.display())),
    };
    for entry in entries {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.is_dir() {
            walk(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

impl Blobs for DirTrail {
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, String> {
        if let Some(b) = self.progress.borrow().as_ref() {
            b.inc(1);
        }
        match std::fs::read(self.dir.join(key)) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{key}: {e}")),
        }
    }

    fn put(&self, key: &str, _bytes: &[u8]) -> Result<(), String> {
        Err(format!("the verifier does not write ({key})"))
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>, String> {
        // Walk from the deepest directory the prefix names.
        let base = match prefix.rfind('/') {
            Some(i) => &prefix[..=i],
            None => "",
        };
        let mut files = Vec::new();
        walk(&self.dir.join(base), &mut files)?;
        Ok(files
            .iter()
            .filter_map(|f| f.strip_prefix(&self.dir).ok())
            .map(|f| f.to_string_lossy().replace('\\', "/"))
            .filter(|k| k.starts_with(prefix))
            .collect())
    }
}
