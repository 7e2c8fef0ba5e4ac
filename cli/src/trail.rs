//! Reads an audit trail (objects of a bucket, or `.jsonl` files of a
//! directory) into lines for the verifier, with progress.

use std::path::{Path, PathBuf};

use copilot_jit_audit_log::layout;
use copilot_jit_audit_log::verify::Stored;
use indicatif::{ProgressBar, ProgressStyle};

use crate::s3::S3;

fn progress(total: usize, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({eta} left)")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

fn lines_of(location: &str, slot: Option<(String, u64)>, text: &str, out: &mut Vec<Stored>) {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    for (i, line) in lines.iter().enumerate() {
        out.push(Stored {
            location: if lines.len() == 1 {
                location.to_string()
            } else {
                format!("{location}:{}", i + 1)
            },
            // A slot names one record: only a single-line object fills it.
            slot: if lines.len() == 1 { slot.clone() } else { None },
            line: line.to_string(),
        });
    }
}

/// The prefixes to read: whole trail, or the `dt=` partitions of some days.
pub fn prefixes(prefix: &str, days: &[String]) -> Vec<String> {
    if days.is_empty() {
        vec![prefix.to_string()]
    } else {
        days.iter().map(|d| layout::day_prefix(prefix, d)).collect()
    }
}

pub fn from_bucket(s3: &S3, prefixes: &[String]) -> Result<(usize, Vec<Stored>), String> {
    let mut keys = Vec::new();
    for prefix in prefixes {
        keys.extend(
            s3.list(prefix)?
                .into_iter()
                .filter(|k| k.ends_with(".jsonl")),
        );
    }
    let bar = progress(keys.len(), "reading objects");
    let mut out = Vec::new();
    for key in &keys {
        let bytes = s3.get(key)?;
        let slot = layout::parse_object_key(key).map(|(_, chain, seq)| (chain, seq));
        lines_of(key, slot, &String::from_utf8_lossy(&bytes), &mut out);
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok((keys.len(), out))
}

fn jsonl_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.is_dir() {
            jsonl_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "jsonl") {
            out.push(path);
        }
    }
    Ok(())
}

/// Every `.jsonl` file under `dir` (e.g. a bucket synced with `aws s3 sync`),
/// restricted to the `dt=` partitions of `days` when given.
pub fn from_dir(dir: &Path, days: &[String]) -> Result<(usize, Vec<Stored>), String> {
    let mut files = Vec::new();
    jsonl_files(dir, &mut files)?;
    files.sort();
    if !days.is_empty() {
        files.retain(|f| {
            let text = f.to_string_lossy();
            days.iter().any(|d| text.contains(&format!("dt={d}/")))
        });
    }
    let bar = progress(files.len(), "reading files");
    let mut out = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
        let name = file.to_string_lossy().replace('\\', "/");
        let slot = layout::parse_object_key(&name).map(|(_, chain, seq)| (chain, seq));
        lines_of(&name, slot, &text, &mut out);
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok((files.len(), out))
}
