//! The Merkle tree stored as C2SP tlog-tiles: hash tiles `tile/<L>/<N>` of
//! 256 hashes (level 0 the leaf hashes, level L the roots of 256^L-leaf
//! subtrees), partial tiles `….p/<W>` at the right edge, and entry bundles
//! `tile/entries/<N>` holding the leaves' data (each entry a big-endian
//! u16 length and its bytes). Appending needs only the right edge of each
//! level, never the whole tree.

use crate::merkle::{self, Hash};

pub const WIDTH: u64 = 256;

/// `N` of a tile path: groups of three digits, all but the last prefixed
/// with `x` (`1234067` → `x001/x234/067`).
pub fn encode_index(mut n: u64) -> String {
    let mut groups = vec![format!("{:03}", n % 1000)];
    n /= 1000;
    while n > 0 {
        groups.push(format!("x{:03}", n % 1000));
        n /= 1000;
    }
    groups.reverse();
    groups.join("/")
}

fn with_width(base: String, width: u64) -> String {
    if width == WIDTH {
        base
    } else {
        format!("{base}.p/{width}")
    }
}

/// `tile/<level>/<index>[.p/<width>]`.
pub fn tile_path(level: u32, index: u64, width: u64) -> String {
    with_width(format!("tile/{level}/{}", encode_index(index)), width)
}

/// `tile/entries/<index>[.p/<width>]`.
pub fn entries_path(index: u64, width: u64) -> String {
    with_width(format!("tile/entries/{}", encode_index(index)), width)
}

/// One object to write: its path under the log's prefix and its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TileWrite {
    pub path: String,
    pub bytes: Vec<u8>,
}

pub fn hashes_of(bytes: &[u8]) -> Result<Vec<Hash>, String> {
    if !bytes.len().is_multiple_of(32) {
        return Err(format!(
            "a tile of {} bytes is not whole hashes",
            bytes.len()
        ));
    }
    Ok(bytes
        .chunks_exact(32)
        .map(|c| {
            let mut h = [0u8; 32];
            h.copy_from_slice(c);
            h
        })
        .collect())
}

fn bytes_of(hashes: &[Hash]) -> Vec<u8> {
    hashes.iter().flat_map(|h| h.iter().copied()).collect()
}

pub fn encode_bundle(entries: &[Vec<u8>]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for e in entries {
        let len = u16::try_from(e.len()).map_err(|_| "an entry over 65535 bytes".to_string())?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(e);
    }
    Ok(out)
}

pub fn decode_bundle(bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let (len, tail) = rest
            .split_first_chunk::<2>()
            .ok_or("an entry bundle ends inside a length")?;
        let len = u16::from_be_bytes(*len) as usize;
        if tail.len() < len {
            return Err("an entry bundle ends inside an entry".into());
        }
        out.push(tail[..len].to_vec());
        rest = &tail[len..];
    }
    Ok(out)
}

/// Number of hashes stored at `level` for a tree of `size` leaves.
fn stored_at(size: u64, level: u32) -> u64 {
    let mut n = size;
    for _ in 0..level {
        n /= WIDTH;
    }
    n
}

/// The levels with any stored hash for `size` leaves.
fn levels(size: u64) -> u32 {
    let mut level = 0;
    while stored_at(size, level) > 0 {
        level += 1;
    }
    level
}

/// The right edge of the tree: for each level, the hashes of its last,
/// partial tile (empty when that level's tiles are all full).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Edge {
    pub size: u64,
    pub levels: Vec<Vec<Hash>>,
}

impl Edge {
    /// The partial tiles to read for a tree of `size`: (level, index, width).
    pub fn tiles_to_read(size: u64) -> Vec<(u32, u64, u64)> {
        (0..levels(size))
            .filter_map(|level| {
                let n = stored_at(size, level);
                let width = n % WIDTH;
                (width > 0).then_some((level, n / WIDTH, width))
            })
            .collect()
    }

    /// Builds the edge from the partial tiles `read` returns (by path).
    pub fn load(
        size: u64,
        mut read: impl FnMut(&str) -> Result<Vec<u8>, String>,
    ) -> Result<Edge, String> {
        let mut edge = Edge {
            size,
            levels: vec![Vec::new(); levels(size) as usize],
        };
        for (level, index, width) in Edge::tiles_to_read(size) {
            let path = tile_path(level, index, width);
            let hashes = hashes_of(&read(&path)?)?;
            if hashes.len() as u64 != width {
                return Err(format!("{path} holds {} hashes", hashes.len()));
            }
            edge.levels[level as usize] = hashes;
        }
        Ok(edge)
    }

    /// `MTH` of the tree: each level's partial tile split into perfect
    /// subtrees, from the top level down, folded from the right.
    pub fn root(&self) -> Hash {
        let mut range: Vec<Hash> = Vec::new();
        for hashes in self.levels.iter().rev() {
            let mut start = 0;
            let mut rest = hashes.len();
            while rest > 0 {
                let block = 1usize << (usize::BITS - 1 - rest.leading_zeros());
                range.push(merkle::root(&hashes[start..start + block]));
                start += block;
                rest -= block;
            }
        }
        let mut iter = range.iter().rev();
        let Some(mut acc) = iter.next().copied() else {
            return merkle::empty_root();
        };
        for left in iter {
            acc = merkle::node_hash(left, &acc);
        }
        acc
    }

    /// Appends leaf hashes: the tiles to write (full tiles that completed,
    /// and the new partial tile at each level that changed).
    pub fn append(&mut self, leaves: &[Hash]) -> Vec<TileWrite> {
        let mut writes = Vec::new();
        let mut incoming: Vec<Hash> = leaves.to_vec();
        let mut level = 0u32;
        let old_size = self.size;
        while !incoming.is_empty() {
            if self.levels.len() <= level as usize {
                self.levels.push(Vec::new());
            }
            let stored_before = stored_at(old_size, level);
            let mut index = stored_before / WIDTH;
            let mut current = std::mem::take(&mut self.levels[level as usize]);
            let mut completed = Vec::new();
            for h in incoming {
                current.push(h);
                if current.len() as u64 == WIDTH {
                    writes.push(TileWrite {
                        path: tile_path(level, index, WIDTH),
                        bytes: bytes_of(&current),
                    });
                    completed.push(merkle::root(&current));
                    current.clear();
                    index += 1;
                }
            }
            if !current.is_empty() {
                writes.push(TileWrite {
                    path: tile_path(level, index, current.len() as u64),
                    bytes: bytes_of(&current),
                });
            }
            self.levels[level as usize] = current;
            incoming = completed;
            level += 1;
        }
        self.size += leaves.len() as u64;
        writes
    }
}

/// Entry bundles for entries `[first, first + entries.len())`, given the
/// entries already in the partial bundle at `first` (`carried`).
pub fn bundle_writes(
    first: u64,
    carried: &[Vec<u8>],
    entries: &[Vec<u8>],
) -> Result<Vec<TileWrite>, String> {
    let mut writes = Vec::new();
    let mut index = first / WIDTH;
    let mut current: Vec<Vec<u8>> = carried.to_vec();
    for e in entries {
        current.push(e.clone());
        if current.len() as u64 == WIDTH {
            writes.push(TileWrite {
                path: entries_path(index, WIDTH),
                bytes: encode_bundle(&current)?,
            });
            current.clear();
            index += 1;
        }
    }
    if !current.is_empty() {
        writes.push(TileWrite {
            path: entries_path(index, current.len() as u64),
            bytes: encode_bundle(&current)?,
        });
    }
    Ok(writes)
}

/// The bundles holding entries `[0, size)`: (index, width, path).
pub fn bundles_of(size: u64) -> Vec<(u64, u64, String)> {
    let full = size / WIDTH;
    let mut out: Vec<(u64, u64, String)> = (0..full)
        .map(|i| (i, WIDTH, entries_path(i, WIDTH)))
        .collect();
    if !size.is_multiple_of(WIDTH) {
        out.push((full, size % WIDTH, entries_path(full, size % WIDTH)));
    }
    out
}

/// Level-0 tiles holding leaf hashes `[0, size)`: (index, width, path).
pub fn leaf_tiles_of(size: u64) -> Vec<(u64, u64, String)> {
    let full = size / WIDTH;
    let mut out: Vec<(u64, u64, String)> = (0..full)
        .map(|i| (i, WIDTH, tile_path(0, i, WIDTH)))
        .collect();
    if !size.is_multiple_of(WIDTH) {
        out.push((full, size % WIDTH, tile_path(0, full, size % WIDTH)));
    }
    out
}

/// Every tile a tree of `leaves` consists of (all levels), as the sealer
/// should have written them: for a verifier to compare with what is stored.
pub fn all_tiles(leaves: &[Hash]) -> Vec<TileWrite> {
    let mut edge = Edge::default();
    let mut latest = std::collections::BTreeMap::new();
    for w in edge.append(leaves) {
        latest.insert(w.path.clone(), w);
    }
    latest.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::merkle::leaf_hash;
    use std::collections::HashMap;

    fn leaves(range: std::ops::Range<u64>) -> Vec<Hash> {
        range.map(|i| leaf_hash(&i.to_be_bytes())).collect()
    }

    #[test]
    fn paths_follow_c2sp_tlog_tiles() {
        assert_eq!(encode_index(0), "000");
        assert_eq!(encode_index(1234067), "x001/x234/067");
        assert_eq!(encode_index(1000), "x001/000");
        assert_eq!(tile_path(0, 1234067, 256), "tile/0/x001/x234/067");
        assert_eq!(tile_path(1, 3, 7), "tile/1/003.p/7");
        assert_eq!(entries_path(2, 256), "tile/entries/002");
        assert_eq!(entries_path(0, 5), "tile/entries/000.p/5");
    }

    #[test]
    fn appending_in_batches_matches_the_tree_and_reads_only_the_edge() {
        // Batches that cross tile boundaries at level 0 and level 1.
        let sizes = [1u64, 254, 2, 300, 65_000, 1_000];
        let mut stored: HashMap<String, Vec<u8>> = HashMap::new();
        let mut size = 0u64;
        for batch in sizes {
            let mut edge = Edge::load(size, |path| {
                stored.get(path).cloned().ok_or(format!("{path} missing"))
            })
            .unwrap();
            assert_eq!(edge.root(), merkle::root(&leaves(0..size)));
            for w in edge.append(&leaves(size..size + batch)) {
                stored.insert(w.path, w.bytes);
            }
            size += batch;
            assert_eq!(edge.root(), merkle::root(&leaves(0..size)), "size {size}");
        }
        // The full level-1 tile holds the roots of 256 leaf tiles.
        let level1 = hashes_of(&stored["tile/1/000"]).unwrap();
        assert_eq!(level1[3], merkle::root(&leaves(768..1024)));
        // Everything the batches wrote agrees with writing the tree at once.
        for w in all_tiles(&leaves(0..size)) {
            assert_eq!(stored.get(&w.path), Some(&w.bytes), "{}", w.path);
        }
    }

    #[test]
    fn entry_bundles_round_trip_and_refuse_truncation() {
        let entries: Vec<Vec<u8>> = (0..300u32).map(|i| format!("e{i}").into_bytes()).collect();
        let writes = bundle_writes(0, &[], &entries[..10]).unwrap();
        assert_eq!(writes[0].path, "tile/entries/000.p/10");
        let carried = decode_bundle(&writes[0].bytes).unwrap();
        let writes = bundle_writes(10, &carried, &entries[10..]).unwrap();
        assert_eq!(writes[0].path, "tile/entries/000");
        assert_eq!(writes[1].path, "tile/entries/001.p/44");
        let back = decode_bundle(&writes[0].bytes).unwrap();
        assert_eq!(back, entries[..256].to_vec());
        let bytes = &writes[1].bytes;
        assert!(decode_bundle(&bytes[..bytes.len() - 1]).is_err());
    }
}
