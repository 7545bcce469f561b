//! Laying work out within device limits: grid folding and chunking by (batch, head).

use super::AttentionError;

/// A run of consecutive (batch, head) pairs dispatched and bound together.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chunk {
    /// The first pair, `b * n_heads + h`.
    pub bh0: usize,
    pub count: usize,
}

/// The alignment of storage binding offsets: the largest WebGPU allows.
const OFFSET_ALIGNMENT: u64 = 256;

/// Splits `bh_total` (batch, head) pairs into chunks whose tensors each fit one
/// storage binding of `max_binding` bytes.
///
/// The largest per-pair slab is a `[seq_len, head_dim]` f32 tensor. Chunk
/// boundaries are placed so every bound range starts at a multiple of 256
/// bytes, for the per-row buffers (`lse`, 4 bytes a row) and so for all others.
pub fn chunks(
    name: &str,
    bh_total: usize,
    seq_len: usize,
    head_dim: usize,
    max_binding: u64,
) -> Result<Vec<Chunk>, AttentionError> {
    let slab = (seq_len * head_dim * 4) as u64;
    if bh_total as u64 * slab <= max_binding {
        return Ok(vec![Chunk { bh0: 0, count: bh_total }]);
    }
    let row_bytes = seq_len as u64 * 4;
    let granule = OFFSET_ALIGNMENT / gcd(OFFSET_ALIGNMENT, row_bytes);
    let per_chunk = (max_binding / slab) / granule * granule;
    if per_chunk == 0 {
        return Err(AttentionError::TooLarge {
            name: name.to_string(),
            what: format!(
                "one chunk of {granule} (batch, head) pair{} (256-byte aligned bindings)",
                if granule == 1 { "" } else { "s" }
            ),
            needed: granule * slab,
            limit: max_binding,
        });
    }
    let per_chunk = per_chunk as usize;
    Ok((0..bh_total)
        .step_by(per_chunk)
        .map(|bh0| Chunk { bh0, count: per_chunk.min(bh_total - bh0) })
        .collect())
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Workgroup counts for `total` workgroups with at most `max_per_dim` per
/// dimension: `[total, 1, 1]`, or `[x, y, 1]` with `x * y >= total` (kernels
/// linearize `wid.y * nwg.x + wid.x` and skip indices past the end). `None`
/// when even two dimensions are not enough.
pub fn fold_grid(total: u64, max_per_dim: u32) -> Option<[u32; 3]> {
    let max = u64::from(max_per_dim.max(1));
    if total <= max {
        return Some([total.max(1) as u32, 1, 1]);
    }
    let y = total.div_ceil(max);
    let x = total.div_ceil(y);
    (y <= max).then_some([x as u32, y as u32, 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grids_fold_into_two_dimensions() {
        assert_eq!(fold_grid(10, 65_535), Some([10, 1, 1]));
        assert_eq!(fold_grid(100_000, 65_535), Some([50_000, 2, 1]));
        let [x, y, _] = fold_grid(7, 3).unwrap();
        assert!(x <= 3 && y <= 3 && x * y >= 7);
        assert_eq!(fold_grid(10, 3), None);
    }

    #[test]
    fn chunks_respect_the_binding_limit_and_alignment() {
        // N = 100: a row of lse is 400 bytes, so chunks are multiples of 16 pairs.
        let slab = 100 * 16 * 4;
        let chunks = chunks("t", 40, 100, 16, 20 * slab).unwrap();
        assert_eq!(
            chunks,
            vec![Chunk { bh0: 0, count: 16 }, Chunk { bh0: 16, count: 16 }, Chunk { bh0: 32, count: 8 }]
        );
        for c in &chunks {
            assert_eq!(c.bh0 as u64 * 400 % 256, 0);
        }
        assert_eq!(super::chunks("t", 40, 100, 16, 41 * slab).unwrap().len(), 1);
        assert!(matches!(super::chunks("t", 40, 100, 16, 15 * slab), Err(AttentionError::TooLarge { .. })));
        // N = 64: every pair starts aligned.
        assert_eq!(super::chunks("t", 5, 64, 16, 2 * 64 * 16 * 4).unwrap().len(), 3);
    }
}
