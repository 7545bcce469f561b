//! Batched matmul over the last two axes, either operand transposed.
//!
//! Two generators, chosen by [`MatmulConfig::kernel`]:
//! - [`registers`]: each thread computes a tile in registers from its own
//!   loads; runs on every device.
//! - [`subgroup`]: each thread computes a tile of rows, and the threads of a
//!   subgroup load the shared columns of B once, between them, and pass them
//!   round with `subgroupBroadcast`. It needs subgroup operations with
//!   subgroups of at least 8 and operands that can be read as `vec4`; where
//!   either is missing the register kernel at its default shape runs instead.
//!
//! Which is faster depends on the device, so the choice is measured (`weft
//! bench matmul`, BENCHMARKS.md): on lavapipe, where every storage load is a
//! loop over the SIMD lanes, sharing the loads is 3-4x faster. Which shape is
//! best also depends on the problem, so each matmul looks its shape up by its
//! [`MatmulClass`] in the plan's [`MatmulTable`] (`table.rs`).

mod registers;
mod subgroup;
mod table;

use super::CodegenError;
use super::{Ctx, Operand};
use crate::device::DeviceLimits;
use crate::kernel::Kernel;

pub use table::{MatmulClass, MatmulTable};

/// Which matmul generator runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MatmulKernel {
    /// Per-thread register tiles, every load the thread's own.
    Registers,
    /// Per-thread rows; B's columns loaded once per subgroup and broadcast.
    Subgroup,
}

/// The shape of the matmul kernel: outputs per thread and threads per workgroup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MatmulConfig {
    pub kernel: MatmulKernel,
    /// Output rows per thread: 1 to 16 (registers), 1 to 8 (subgroup).
    pub rows: u32,
    /// Output columns per thread: 4, 8, 12 or 16 (registers); per subgroup,
    /// shared by its threads: 32, 64, 96 or 128 (subgroup).
    pub cols: u32,
    /// Threads per workgroup: a multiple of 32 up to 256 (registers), of 8 up
    /// to 256 (subgroup).
    pub workgroup: u32,
}

impl Default for MatmulConfig {
    /// The register kernel, 8×8 outputs per thread, 64 threads per workgroup:
    /// a moderate 16 `vec4` accumulators and 64-thread workgroups that every
    /// device runs well. CPU adapters get [`MatmulConfig::CPU_DEFAULT`].
    fn default() -> Self {
        MatmulConfig { kernel: MatmulKernel::Registers, rows: 8, cols: 8, workgroup: 64 }
    }
}

impl MatmulConfig {
    /// The fastest shape on lavapipe (BENCHMARKS.md): 4 rows × 64 columns per
    /// thread, one 8-wide subgroup per workgroup.
    pub const CPU_DEFAULT: MatmulConfig =
        MatmulConfig { kernel: MatmulKernel::Subgroup, rows: 4, cols: 64, workgroup: 8 };

    /// The shape to use on a device before any measurement: on CPU adapters
    /// with subgroups of 8 or more, the subgroup kernel (3-4x faster on
    /// lavapipe, BENCHMARKS.md); elsewhere the register kernel that suits GPUs.
    pub fn default_for(limits: &DeviceLimits) -> MatmulConfig {
        if limits.cpu && limits.shares_subgroups() {
            MatmulConfig::CPU_DEFAULT
        } else {
            MatmulConfig::default()
        }
    }

    /// The configurations `weft bench matmul` measures; the subgroup ones
    /// only where the device has subgroups of at least 8.
    pub fn candidates(subgroups: bool) -> Vec<MatmulConfig> {
        let mut out = Vec::new();
        for (rows, cols) in [(4, 4), (8, 4), (4, 8), (8, 8)] {
            for workgroup in [64, 128, 256] {
                out.push(MatmulConfig { kernel: MatmulKernel::Registers, rows, cols, workgroup });
            }
        }
        if subgroups {
            for (rows, cols) in [(4, 32), (4, 64), (8, 64), (4, 128)] {
                for workgroup in [8, 32] {
                    out.push(MatmulConfig { kernel: MatmulKernel::Subgroup, rows, cols, workgroup });
                }
            }
        }
        out
    }

    /// Why this configuration cannot be generated, if it cannot.
    pub fn problem(&self) -> Option<String> {
        match self.kernel {
            MatmulKernel::Registers => {
                if !(1..=16).contains(&self.rows) {
                    return Some(format!("matmul rows per thread {} is not in 1..=16", self.rows));
                }
                if !(4..=16).contains(&self.cols) || !self.cols.is_multiple_of(4) {
                    return Some(format!("matmul columns per thread {} is not 4, 8, 12 or 16", self.cols));
                }
                if self.workgroup == 0 || self.workgroup > 256 || !self.workgroup.is_multiple_of(32) {
                    return Some(format!(
                        "matmul workgroup {} is not a multiple of 32 up to 256",
                        self.workgroup
                    ));
                }
            }
            MatmulKernel::Subgroup => {
                if !(1..=8).contains(&self.rows) {
                    return Some(format!("subgroup matmul rows per thread {} is not in 1..=8", self.rows));
                }
                if !(32..=128).contains(&self.cols) || !self.cols.is_multiple_of(32) {
                    return Some(format!(
                        "subgroup matmul columns per subgroup {} is not 32, 64, 96 or 128",
                        self.cols
                    ));
                }
                if self.workgroup == 0 || self.workgroup > 256 || !self.workgroup.is_multiple_of(8) {
                    return Some(format!(
                        "subgroup matmul workgroup {} is not a multiple of 8 up to 256",
                        self.workgroup
                    ));
                }
            }
        }
        None
    }
}

impl std::fmt::Display for MatmulConfig {
    /// `8x8/wg64` (registers), `sg4x64/wg8` (subgroup).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let prefix = match self.kernel {
            MatmulKernel::Registers => "",
            MatmulKernel::Subgroup => "sg",
        };
        write!(f, "{prefix}{}x{}/wg{}", self.rows, self.cols, self.workgroup)
    }
}

/// The problem in a kernel's title, `M×K×N` (`4·M×K×N` when batched): it is
/// what a profile needs to tell one matmul of a model from another.
fn problem_name(batch: u64, m: u64, k: u64, n: u64) -> String {
    let batch = if batch == 1 { String::new() } else { format!("{batch}·") };
    format!("{batch}{m}×{k}×{n}")
}

/// `(batch, M, N, K)` of a matmul whose operands have the ranks it needs
/// (the generators report the ones that do not).
fn shape(inputs: &[Operand], out: &Operand, ta: bool) -> Option<(u64, u64, u64, u64)> {
    let [a, _] = inputs else { return None };
    let r = out.shape.len();
    if r < 2 || a.shape.len() != r {
        return None;
    }
    let dim = |s: &[usize], i: usize| s[i] as u64;
    let k = if ta { dim(a.shape, r - 2) } else { dim(a.shape, r - 1) };
    let batch = out.shape[..r - 2].iter().map(|&d| d as u64).product();
    Some((batch, dim(out.shape, r - 2), dim(out.shape, r - 1), k))
}

/// The kernels of one matmul node, in the shape its class gets from the table.
pub(crate) fn emit(
    cx: &Ctx,
    ta: bool,
    tb: bool,
    inputs: &[Operand],
    out: &Operand,
) -> Result<Vec<Kernel>, CodegenError> {
    // `GraphPlanOptions::check` has ruled out configurations with a `problem()`.
    let (class, cfg) = match shape(inputs, out, ta) {
        Some((batch, m, n, k)) => cx.matmul.lookup(batch, m, n, k),
        None => (MatmulClass::Large, cx.matmul.large),
    };
    match cfg.kernel {
        MatmulKernel::Registers => registers::emit(cx, class, cfg, ta, tb, inputs, out),
        MatmulKernel::Subgroup => match subgroup::emit(cx, class, cfg, ta, tb, inputs, out)? {
            Some(kernels) => Ok(kernels),
            None => registers::emit(cx, class, MatmulConfig::default(), ta, tb, inputs, out),
        },
    }
}
