//! The configurations the tuner measures.

use weft_compiler::attention::MAX_WORKGROUP_INVOCATIONS;

use crate::executor::ShaderChecks;
use weft_compiler::{AttentionKernel, DeviceLimits};

use super::config::{KernelChoice, KernelConfig};

/// Tile sizes tried (square tiles: `block_q = block_k`).
pub const BLOCKS: [usize; 3] = [32, 64, 16];
/// Tile sizes of the quick search.
pub const QUICK_BLOCKS: [usize; 2] = [32, 64];
/// Rows per invocation tried.
pub const ROWS: [usize; 3] = [2, 4, 1];
/// The most values (rows x head dimension) an invocation may hold in a
/// candidate: twice the planner's automatic limit. Compile time grows steeply
/// with the registers an invocation holds (on lavapipe, seconds per kernel at
/// 4 rows of D = 64), so larger shapes are not worth the tuning time.
pub const MAX_ROW_VALUES: usize = 2 * weft_compiler::attention::AUTO_ROW_VALUES;

/// The space searched: square tiles from `blocks` x `rows` x both checks,
/// keeping what the planner and the device accept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CandidateSpace {
    pub blocks: Vec<usize>,
    pub rows: Vec<usize>,
    pub checks: Vec<ShaderChecks>,
    /// Kernels tried; the subgroup ones only where the device has subgroups
    /// of at least [`weft_compiler::device::SUBGROUP_SHARERS`] lanes and the
    /// workgroup (`block / rows`) is a multiple of that.
    pub kernels: Vec<AttentionKernel>,
}

impl CandidateSpace {
    pub fn full() -> Self {
        CandidateSpace {
            blocks: BLOCKS.to_vec(),
            rows: ROWS.to_vec(),
            checks: vec![ShaderChecks::Checked, ShaderChecks::Unchecked],
            kernels: AttentionKernel::ALL.to_vec(),
        }
    }

    /// Two tile sizes and no single-row shapes.
    pub fn quick() -> Self {
        CandidateSpace {
            blocks: QUICK_BLOCKS.to_vec(),
            rows: vec![2, 4],
            checks: vec![ShaderChecks::Checked, ShaderChecks::Unchecked],
            kernels: AttentionKernel::ALL.to_vec(),
        }
    }

    /// The candidates for `head_dim` on a device with `limits`: the device's
    /// untuned default ([`KernelChoice::default_for`]) first (the tuner checks the others against it), then those
    /// that differ from it in one knob (tiles, rows or checks), then in two,
    /// then in three; in the order of the space's lists within each. Where
    /// compiling is slow and the time budget runs out (lavapipe compiles a
    /// 4-row backward kernel for half a minute), every knob has been tried on
    /// its own before any combination.
    pub fn candidates(&self, head_dim: usize, limits: &DeviceLimits) -> Vec<KernelConfig> {
        let max_wg = (limits.max_invocations_per_workgroup.min(limits.max_workgroup_size_x) as usize)
            .min(MAX_WORKGROUP_INVOCATIONS);
        let sharers = weft_compiler::device::SUBGROUP_SHARERS;
        let subgroups = limits.shares_subgroups();
        // What runs on this device untuned, at this head dimension.
        let (untuned, _) = KernelChoice::default_for(limits).config(true, head_dim);
        let mut out = vec![untuned];
        for &kernel in &self.kernels {
            for &block in &self.blocks {
                for &rows in &self.rows {
                    for &checks in &self.checks {
                        let c = KernelConfig {
                            block_q: block,
                            block_k: block,
                            rows_per_invocation: rows,
                            checks,
                            kernel,
                        };
                        let fits = rows > 0
                            && block.is_multiple_of(rows)
                            && block / rows <= max_wg
                            && rows * head_dim <= MAX_ROW_VALUES
                            && c.invalid_reason().is_none();
                        // A subgroup candidate the planner would run as the lane kernels is a duplicate.
                        let shared = kernel != AttentionKernel::Subgroup
                            || (subgroups && (block / rows.max(1)).is_multiple_of(sharers));
                        if fits && shared && !out.contains(&c) {
                            out.push(c);
                        }
                    }
                }
            }
        }
        let default = out[0];
        // A stable sort: the list order stays within each distance.
        out.sort_by_key(|c| distance(c, &default));
        out
    }
}

/// In how many knobs (tiles, rows per invocation, checks, kernel) `a` and `b` differ.
fn distance(a: &KernelConfig, b: &KernelConfig) -> usize {
    usize::from((a.block_q, a.block_k) != (b.block_q, b.block_k))
        + usize::from(a.rows_per_invocation != b.rows_per_invocation)
        + usize::from(a.checks != b.checks)
        + usize::from(a.kernel != b.kernel)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_invocations: u32) -> DeviceLimits {
        DeviceLimits {
            max_buffer_size: 1 << 30,
            max_invocations_per_workgroup: max_invocations,
            max_workgroup_size_x: max_invocations,
            ..DeviceLimits::default()
        }
    }

    #[test]
    fn the_default_comes_first_and_once_then_one_knob_at_a_time() {
        let c = CandidateSpace::full().candidates(64, &limits(256));
        let default = KernelConfig::default().resolved(64);
        assert_eq!(c[0], default);
        let unique: std::collections::HashSet<_> = c.iter().collect();
        assert_eq!(unique.len(), c.len());
        assert!(
            c.iter().all(|x| x.invalid_reason().is_none() && x.rows_per_invocation * 64 <= MAX_ROW_VALUES)
        );
        // 3 blocks x 3 rows x 2 checks, all valid at D = 64.
        assert_eq!(c.len(), 18);
        let distances: Vec<usize> = c.iter().map(|x| distance(x, &default)).collect();
        assert!(distances.is_sorted(), "{distances:?}");
        // One knob: checks, two other row counts, two other tile sizes.
        assert_eq!(distances.iter().filter(|&&d| d == 1).count(), 5);
        assert_eq!(c[1], KernelConfig { checks: ShaderChecks::Unchecked, ..default });
    }

    #[test]
    fn subgroup_candidates_only_where_they_would_run() {
        let without = CandidateSpace::full().candidates(64, &limits(256));
        assert!(without.iter().all(|c| c.kernel == AttentionKernel::Lanes), "no subgroups: {without:?}");
        let with = DeviceLimits { subgroup_min_size: Some(8), ..limits(256) };
        let c = CandidateSpace::full().candidates(64, &with);
        let shared: Vec<_> = c.iter().filter(|c| c.kernel == AttentionKernel::Subgroup).collect();
        // Workgroups of 8, 16, 32 invocations: every tile/rows pair but 16-row tiles with 4 rows.
        assert_eq!(shared.len(), 16, "{shared:?}");
        assert!(shared.iter().all(|c| (c.block_q / c.rows_per_invocation).is_multiple_of(8)));
        assert_eq!(c.len(), 18 + 16);
        // On a CPU adapter the untuned default, the subgroup kernels, comes first.
        let cpu = DeviceLimits { cpu: true, ..with };
        let first = CandidateSpace::full().candidates(64, &cpu)[0];
        assert_eq!(first, KernelChoice::default_for(&cpu).config(true, 64).0);
        assert_eq!(first.kernel, AttentionKernel::Subgroup);
    }

    #[test]
    fn device_limits_and_head_dim_prune() {
        // Workgroups of at most 16 invocations: 64-row tiles need 4 rows each.
        let small = CandidateSpace::full().candidates(64, &limits(16));
        assert!(small.iter().skip(1).all(|c| c.block_q / c.rows_per_invocation <= 16), "{small:?}");
        // At D = 128, 4 rows hold 512 values: too many.
        let wide = CandidateSpace::full().candidates(128, &limits(256));
        assert!(wide.iter().all(|c| c.rows_per_invocation <= 2));
    }
}
