//! Which matmul kernel shape runs for which problem.
//!
//! One shape does not suit every matmul of a model. A subgroup tile is 32 to
//! 128 columns wide and `rows × workgroup` rows tall; on a rank-8 LoRA matmul
//! most of it computes clamped copies of the edge that are thrown away, and
//! on a small problem a tall workgroup may leave too few workgroups to keep
//! every core busy. So the choice is made per [`MatmulClass`], a bucket
//! of problem shapes, and `weft tune` measures each class on a representative
//! problem of it ([`MatmulClass::representative`]).

use std::fmt;

use super::MatmulConfig;
use super::MatmulKernel;
use crate::device::DeviceLimits;

/// An output side at most this long is a LoRA rank (PEFT's usual ranks are
/// 4 to 16), too narrow for a wide tile.
pub const NARROW: u64 = 16;
/// Problems with fewer multiply-adds (batch · M · N · K) than this are
/// small: 512³ = 2^27 is, 1024 × 1024 × 512 = 2^29 is not. Below it a tall
/// tile leaves few workgroups to share between the cores, so the best shape
/// can differ from the large problems' (on lavapipe it has not, so far).
pub const SMALL_WORK: u64 = 1 << 28;

/// A bucket of matmul problems that share a best kernel shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MatmulClass {
    /// N ≤ [`NARROW`]: the input side of a LoRA adapter (`x·Aᵀ`), and the
    /// gradients with the rank as their last axis.
    NarrowN,
    /// M ≤ [`NARROW`] (and N wider): the LoRA weight gradient `dA = gᵀ·x`.
    /// Apart from narrow N because the shape that suits narrow N on lavapipe
    /// is the worst here (0.5 GFLOP/s where the register kernel reaches 8).
    NarrowM,
    /// Fewer than [`SMALL_WORK`] multiply-adds.
    Small,
    /// Everything else: the projections and MLPs of a model.
    Large,
}

impl MatmulClass {
    pub const ALL: [MatmulClass; 4] =
        [MatmulClass::NarrowN, MatmulClass::NarrowM, MatmulClass::Small, MatmulClass::Large];

    /// The class of a `[M, K] × [K, N]` problem repeated `batch` times, with
    /// M and N per batch entry (a tile never spans two of them).
    pub fn of(batch: u64, m: u64, n: u64, k: u64) -> MatmulClass {
        if n <= NARROW {
            MatmulClass::NarrowN
        } else if m <= NARROW {
            MatmulClass::NarrowM
        } else if batch.saturating_mul(m).saturating_mul(n).saturating_mul(k) < SMALL_WORK {
            MatmulClass::Small
        } else {
            MatmulClass::Large
        }
    }

    /// The name in the tuning cache and in messages.
    pub fn name(self) -> &'static str {
        match self {
            MatmulClass::NarrowN => "narrow_n",
            MatmulClass::NarrowM => "narrow_m",
            MatmulClass::Small => "small",
            MatmulClass::Large => "large",
        }
    }

    pub fn from_name(name: &str) -> Option<MatmulClass> {
        MatmulClass::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The problem `weft tune` times for this class, `(M, K, N)`: a rank-8
    /// LoRA matmul of a 1024-wide model over 2048 tokens for the narrow
    /// classes, 512³ and 1024³ for the others. Each takes well under a second
    /// per candidate on lavapipe.
    pub fn representative(self) -> (usize, usize, usize) {
        match self {
            MatmulClass::NarrowN => (2048, 1024, 8),
            MatmulClass::NarrowM => (8, 2048, 1024),
            MatmulClass::Small => (512, 512, 512),
            MatmulClass::Large => (1024, 1024, 1024),
        }
    }
}

impl fmt::Display for MatmulClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// The matmul kernel shape for each [`MatmulClass`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MatmulTable {
    pub narrow_n: MatmulConfig,
    pub narrow_m: MatmulConfig,
    pub small: MatmulConfig,
    pub large: MatmulConfig,
}

impl Default for MatmulTable {
    /// [`MatmulConfig::default`] for every class.
    fn default() -> Self {
        MatmulTable::uniform(MatmulConfig::default())
    }
}

impl MatmulTable {
    /// Narrow N on lavapipe: subgroup tiles of 8 × 64 in 32-thread
    /// workgroups. Most of the 64 columns are clamped copies, yet the shared
    /// loads still beat the register kernel: median of three runs at
    /// [2048×1024]×[1024×8], 12.6 GFLOP/s against 10.1 (8x8/wg256) and 5.5
    /// (the large default, sg4x64/wg8).
    pub const CPU_NARROW_N: MatmulConfig =
        MatmulConfig { kernel: MatmulKernel::Subgroup, rows: 8, cols: 64, workgroup: 32 };
    /// Narrow M on lavapipe: the register kernel, 8×8 per thread, 256
    /// threads. A subgroup workgroup spans 32 to 256 rows, of which M ≤ 16 are
    /// real: at [8×2048]×[2048×1024], 8.1 GFLOP/s against 3.4 (sg4x64/wg8)
    /// and 0.5 (sg8x64/wg32).
    pub const CPU_NARROW_M: MatmulConfig =
        MatmulConfig { kernel: MatmulKernel::Registers, rows: 8, cols: 8, workgroup: 256 };
    /// Small problems on lavapipe: the large problems' shape. At 512³ over
    /// four runs on a shared 2-core machine it measured 24.2, 16.0, 16.8 and
    /// 17.9 GFLOP/s, sg4x64/wg32 26.0, 15.0, 18.6 and 14.5, sg8x64/wg32 at
    /// most 15.9: no other shape is ahead beyond the noise. The class stays
    /// so that `weft tune` measures it apart.
    pub const CPU_SMALL: MatmulConfig = MatmulConfig::CPU_DEFAULT;

    /// `config` for every class (a cache from before classes existed).
    pub fn uniform(config: MatmulConfig) -> MatmulTable {
        MatmulTable { narrow_n: config, narrow_m: config, small: config, large: config }
    }

    /// The shapes to use on a device before any measurement. CPU adapters
    /// with subgroups of 8+ get the shapes measured on lavapipe (the
    /// constants above; the subgroup kernel is 3-4× the register kernel on
    /// square problems), other devices the register kernel that suits GPUs,
    /// for every class (nothing was measured on one).
    pub fn default_for(limits: &DeviceLimits) -> MatmulTable {
        let large = MatmulConfig::default_for(limits);
        if large == MatmulConfig::CPU_DEFAULT {
            MatmulTable {
                narrow_n: MatmulTable::CPU_NARROW_N,
                narrow_m: MatmulTable::CPU_NARROW_M,
                small: MatmulTable::CPU_SMALL,
                large,
            }
        } else {
            MatmulTable::uniform(large)
        }
    }

    pub fn get(&self, class: MatmulClass) -> MatmulConfig {
        match class {
            MatmulClass::NarrowN => self.narrow_n,
            MatmulClass::NarrowM => self.narrow_m,
            MatmulClass::Small => self.small,
            MatmulClass::Large => self.large,
        }
    }

    pub fn set(&mut self, class: MatmulClass, config: MatmulConfig) {
        match class {
            MatmulClass::NarrowN => self.narrow_n = config,
            MatmulClass::NarrowM => self.narrow_m = config,
            MatmulClass::Small => self.small = config,
            MatmulClass::Large => self.large = config,
        }
    }

    /// The class of a problem (see [`MatmulClass::of`]) and the shape it runs with.
    pub fn lookup(&self, batch: u64, m: u64, n: u64, k: u64) -> (MatmulClass, MatmulConfig) {
        let class = MatmulClass::of(batch, m, n, k);
        (class, self.get(class))
    }

    /// Why one of the shapes cannot be generated, naming its class.
    pub fn problem(&self) -> Option<String> {
        MatmulClass::ALL
            .into_iter()
            .find_map(|c| self.get(c).problem().map(|why| format!("{c} matmuls: {why}")))
    }
}

impl fmt::Display for MatmulTable {
    /// `narrow_n sg8x64/wg32, narrow_m 8x8/wg256, small sg4x64/wg8, large sg4x64/wg8`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = MatmulClass::ALL.iter().map(|&c| format!("{c} {}", self.get(c))).collect();
        f.write_str(&parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_follow_the_buckets() {
        // A rank-8 LoRA: x·Aᵀ over 2048 tokens, its weight gradient, and
        // x_a·Bᵀ (narrow K only: a wide output, but little work).
        assert_eq!(MatmulClass::of(1, 2048, 8, 4096), MatmulClass::NarrowN);
        assert_eq!(MatmulClass::of(1, 8, 4096, 2048), MatmulClass::NarrowM);
        assert_eq!(MatmulClass::of(1, 2048, 4096, 8), MatmulClass::Small);
        assert_eq!(MatmulClass::of(1, 2048, 4096, 64), MatmulClass::Large);
        assert_eq!(MatmulClass::of(1, 16, 16, 1 << 20), MatmulClass::NarrowN);
        assert_eq!(MatmulClass::of(1, 512, 512, 512), MatmulClass::Small);
        assert_eq!(MatmulClass::of(2, 512, 512, 512), MatmulClass::Large);
        assert_eq!(MatmulClass::of(1, 1024, 1024, 1024), MatmulClass::Large);
        // Sizes near u64::MAX do not overflow into "small".
        assert_eq!(MatmulClass::of(u64::MAX, 1 << 20, 1 << 20, 1 << 20), MatmulClass::Large);
        for class in MatmulClass::ALL {
            let (m, k, n) = class.representative();
            assert_eq!(MatmulClass::of(1, m as u64, n as u64, k as u64), class);
            assert_eq!(MatmulClass::from_name(class.name()), Some(class));
        }
        assert_eq!(MatmulClass::from_name("huge"), None);
    }

    #[test]
    fn defaults_depend_on_the_device_and_class() {
        let cpu = DeviceLimits { cpu: true, subgroup_min_size: Some(8), ..DeviceLimits::default() };
        let table = MatmulTable::default_for(&cpu);
        assert_eq!(table.lookup(1, 2048, 8, 1024).1, MatmulTable::CPU_NARROW_N);
        assert_eq!(table.lookup(1, 8, 2048, 1024).1, MatmulTable::CPU_NARROW_M);
        assert_eq!(table.lookup(1, 512, 512, 512).1, MatmulTable::CPU_SMALL);
        assert_eq!(table.lookup(1, 1024, 1024, 1024).1, MatmulConfig::CPU_DEFAULT);
        assert_eq!(MatmulTable::default_for(&DeviceLimits::default()), MatmulTable::default());
        assert_eq!(table.problem(), None);
        assert_eq!(
            table.to_string(),
            "narrow_n sg8x64/wg32, narrow_m 8x8/wg256, small sg4x64/wg8, large sg4x64/wg8"
        );
    }

    #[test]
    fn a_bad_shape_is_named_with_its_class() {
        let mut table = MatmulTable::default();
        table.set(MatmulClass::Small, MatmulConfig { workgroup: 12, ..MatmulConfig::default() });
        let why = table.problem().expect("a problem");
        assert!(why.starts_with("small matmuls: matmul workgroup 12"), "{why}");
    }
}
