//! What one request's instance costs the host in memories and tables, as
//! Spin's pool pays it: counted by the store's resource limiter, which
//! wasmtime asks before it creates or grows any linear memory or table.
//!
//! Spin's pool (no pagemap scan) resets a memory on release by rewriting its
//! first `linear_memory_keep_resident` bytes (2 MiB by default) and handing
//! the rest back to the kernel, so the bytes rewritten per request are
//! Σ min(size at the end, keep-resident) over the instance's memories.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// The memories and tables of one store.
#[derive(Default, Debug, Clone)]
pub struct Footprint {
    memory_bytes: Vec<usize>,
    tables: usize,
}

impl wasmtime::ResourceLimiter for Footprint {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if current == 0 {
            self.memory_bytes.push(desired);
        } else if let Some(size) = self.memory_bytes.iter_mut().find(|s| **s == current) {
            // Two memories of the same size are interchangeable here.
            *size = desired;
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if current == 0 {
            self.tables += 1;
        }
        Ok(true)
    }
}

/// Sums over every instance a gateway served, for per-request means.
#[derive(Default, Debug)]
pub struct FootprintTotals {
    instances: AtomicU64,
    memories: AtomicU64,
    tables: AtomicU64,
    memory_bytes: AtomicU64,
    reset_bytes: AtomicU64,
}

/// Per-instance means of [`FootprintTotals`].
#[derive(Debug, Clone, Copy, Default)]
pub struct FootprintMeans {
    pub instances: u64,
    pub memories: f64,
    pub tables: f64,
    /// Σ memory sizes when the instance ended.
    pub memory_bytes: f64,
    /// What the pool rewrites on release (see the module comment).
    pub reset_bytes: f64,
}

impl FootprintTotals {
    pub fn add(&self, footprint: &Footprint, keep_resident: usize) {
        self.instances.fetch_add(1, Relaxed);
        self.memories
            .fetch_add(footprint.memory_bytes.len() as u64, Relaxed);
        self.tables.fetch_add(footprint.tables as u64, Relaxed);
        let bytes: usize = footprint.memory_bytes.iter().sum();
        let reset: usize = footprint
            .memory_bytes
            .iter()
            .map(|b| (*b).min(keep_resident))
            .sum();
        self.memory_bytes.fetch_add(bytes as u64, Relaxed);
        self.reset_bytes.fetch_add(reset as u64, Relaxed);
    }

    /// The means since the last call, then starts again.
    pub fn take_means(&self) -> FootprintMeans {
        let n = self.instances.swap(0, Relaxed);
        let per = |a: &AtomicU64| a.swap(0, Relaxed) as f64 / n.max(1) as f64;
        FootprintMeans {
            instances: n,
            memories: per(&self.memories),
            tables: per(&self.tables),
            memory_bytes: per(&self.memory_bytes),
            reset_bytes: per(&self.reset_bytes),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::ResourceLimiter;

    #[test]
    fn growth_updates_the_memory_that_grew_and_reset_is_capped() -> wasmtime::Result<()> {
        let mut f = Footprint::default();
        f.memory_growing(0, 1 << 20, None)?;
        f.memory_growing(0, 3 << 20, None)?;
        f.memory_growing(1 << 20, 2 << 20, None)?;
        f.table_growing(0, 10, None)?;
        f.table_growing(10, 20, None)?;
        let totals = FootprintTotals::default();
        totals.add(&f, 2 << 20);
        let m = totals.take_means();
        assert_eq!((m.memories, m.tables), (2.0, 1.0));
        assert_eq!(m.memory_bytes, (5u64 << 20) as f64);
        assert_eq!(m.reset_bytes, (4u64 << 20) as f64);
        Ok(())
    }
}
