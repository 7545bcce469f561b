//! The optimizer step's kernels: gradient accumulation, the global gradient
//! norm with torch's clipping, and AdamW with torch's semantics.
//!
//! They read their run-time scalars (learning rate, bias corrections, …) from
//! one small `hyper` buffer the host uploads before each update, laid out as
//! [`Hyper`] says, so one compiled plan serves every step of a schedule.

use super::CodegenError;
use super::Site;
use super::builder::{KernelBuilder, Region};
use crate::device::DeviceLimits;
use crate::kernel::Kernel;

/// Threads of the one workgroup that sums a gradient's squares.
const SUM_THREADS: u32 = 256;

/// The slots of the `hyper` buffer, in order; each an `f32`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Hyper {
    /// `1 − lr · weight_decay`: decoupled weight decay, applied first.
    Decay,
    /// `1 − β₁`: the weight of torch's `exp_avg.lerp_(grad, 1 − β₁)`.
    OneMinusBeta1,
    Beta2,
    OneMinusBeta2,
    Eps,
    /// `lr / (1 − β₁ᵗ)`.
    StepSize,
    /// `√(1 − β₂ᵗ)`.
    BiasCorrection2Sqrt,
    /// Clip the global gradient norm to this; 0 disables clipping.
    MaxGradNorm,
    /// 0 on an update's first micro-batch (the accumulator restarts), 1 after.
    KeepAccumulated,
}

impl Hyper {
    /// How many slots the buffer holds.
    pub const COUNT: usize = 9;

    fn at(self) -> String {
        format!("ld_hyper({}u)", self as u32)
    }
}

/// `acc = (keep ? acc : 0) + grad`, one thread per element: the sum of an update's
/// micro-batch gradients (each already scaled by 1 / micro-batches through
/// the loss seed).
pub(crate) fn accumulate(
    site: Site,
    limits: &DeviceLimits,
    name: &str,
    acc: &Region,
    grad: &Region,
    hyper: &Region,
) -> Result<Kernel, CodegenError> {
    let mut k = KernelBuilder::new(site, limits, name, "accumulate a micro-batch gradient");
    k.read_write("acc", acc)?;
    k.read("grad", grad)?;
    k.read("hyper", hyper)?;
    // A select, not a product: restarting must drop whatever the buffer held.
    let body = format!(
        "let kept = select(0.0, ld_acc(i), {} > 0.5);\nst_acc(i, kept + ld_grad(i));\n",
        Hyper::KeepAccumulated.at()
    );
    k.finish(acc.elems, &body)
}

/// Elements each workgroup of [`sum_squares`] sums, about: enough work per
/// workgroup to amortize its tree, enough workgroups to fill a device.
const ELEMS_PER_GROUP: u64 = 1 << 14;
/// At most this many partial sums per gradient.
const MAX_GROUPS: u64 = 1024;

/// How many workgroups (and partial sums) [`sum_squares`] uses for `elems` values.
pub(crate) fn sum_groups(elems: u64) -> u64 {
    elems.div_ceil(ELEMS_PER_GROUP).clamp(1, MAX_GROUPS)
}

/// `sumsq[first + w] = Σ grad²` over workgroup `w`'s share, for the
/// [`sum_groups`] workgroups: each thread a strided partial sum, then a tree
/// in workgroup memory. Deterministic: the same order every run.
pub(crate) fn sum_squares(
    site: Site,
    limits: &DeviceLimits,
    name: &str,
    grad: &Region,
    sumsq: &Region,
    first: u64,
) -> Result<Kernel, CodegenError> {
    let mut k = KernelBuilder::new(site, limits, name, "sum of squares of a gradient, per workgroup");
    k.read("grad", grad)?;
    k.read_write("sumsq", sumsq)?;
    k.workgroup_size(SUM_THREADS);
    // The barriers below need every invocation to reach them.
    k.without_early_return();
    k.helper(&format!("var<workgroup> partial: array<f32, {SUM_THREADS}>;"));
    let n = grad.elems;
    let groups = sum_groups(n);
    let stride = groups * u64::from(SUM_THREADS);
    let body = format!(
        "let group = i / {SUM_THREADS}u;\n\
         var sum = 0.0;\n\
         for (var j = i; j < {n}u; j += {stride}u) {{\n\
         \x20   let g = ld_grad(j);\n\
         \x20   sum += g * g;\n\
         }}\n\
         partial[lid] = sum;\n\
         for (var half = {half}u; half > 0u; half /= 2u) {{\n\
         \x20   workgroupBarrier();\n\
         \x20   if (lid < half) {{\n\
         \x20       partial[lid] += partial[lid + half];\n\
         \x20   }}\n\
         }}\n\
         if (lid == 0u) {{\n\
         \x20   st_sumsq({first}u + group, partial[0]);\n\
         }}\n",
        half = SUM_THREADS / 2
    );
    k.finish(stride, &body)
}

/// `stats = [‖g‖, clip]` from the partial sums of squares: the global norm
/// and torch's `clip_grad_norm_` factor `min(1, max / (‖g‖ + 1e-6))` (1 when
/// clipping is off). One thread; the partial sums are at most a few thousand.
pub(crate) fn grad_norm(
    site: Site,
    limits: &DeviceLimits,
    name: &str,
    sumsq: &Region,
    hyper: &Region,
    stats: &Region,
) -> Result<Kernel, CodegenError> {
    let mut k = KernelBuilder::new(site, limits, name, "global gradient norm and clipping factor");
    k.read("sumsq", sumsq)?;
    k.read("hyper", hyper)?;
    k.write("stats", stats)?;
    let body = format!(
        "var total = 0.0;\n\
         for (var j = 0u; j < {n}u; j++) {{\n\
         \x20   total += ld_sumsq(j);\n\
         }}\n\
         let norm = sqrt(total);\n\
         let max_norm = {max};\n\
         var clip = 1.0;\n\
         if (max_norm > 0.0) {{\n\
         \x20   clip = min(1.0, max_norm / (norm + 1e-6));\n\
         }}\n\
         st_stats(0u, norm);\n\
         st_stats(1u, clip);\n",
        n = sumsq.elems,
        max = Hyper::MaxGradNorm.at(),
    );
    k.finish(1, &body)
}

/// What one parameter's AdamW update binds.
pub(crate) struct AdamWBuffers {
    pub param: Region,
    pub grad: Region,
    /// The first and second moments.
    pub m: Region,
    pub v: Region,
    pub hyper: Region,
    /// `[‖g‖, clip factor]` from [`grad_norm`].
    pub stats: Region,
}

/// One AdamW update of a parameter, as `torch.optim.AdamW` computes it for
/// one tensor: decay, then the moments, then `p −= step · m / (√v / √bc₂ + ε)`,
/// with the gradient scaled by the clipping factor first.
pub(crate) fn adamw(
    site: Site,
    limits: &DeviceLimits,
    name: &str,
    buffers: &AdamWBuffers,
) -> Result<Kernel, CodegenError> {
    let mut k = KernelBuilder::new(site, limits, name, "AdamW update (torch semantics)");
    k.read_write("param", &buffers.param)?;
    k.read("grad", &buffers.grad)?;
    k.read_write("m", &buffers.m)?;
    k.read_write("v", &buffers.v)?;
    k.read("hyper", &buffers.hyper)?;
    k.read("stats", &buffers.stats)?;
    let body = format!(
        "let g = ld_grad(i) * ld_stats(1u);\n\
         let p = ld_param(i) * {decay};\n\
         // torch: exp_avg.lerp_(grad, 1 - beta1), exp_avg_sq.mul_(beta2).addcmul_(grad, grad, 1 - beta2)\n\
         let m0 = ld_m(i);\n\
         let m = m0 + {w1} * (g - m0);\n\
         let v = ld_v(i) * {b2} + g * g * {w2};\n\
         st_m(i, m);\n\
         st_v(i, v);\n\
         let denom = sqrt(v) / {bc2} + {eps};\n\
         st_param(i, p - {step} * (m / denom));\n",
        decay = Hyper::Decay.at(),
        w1 = Hyper::OneMinusBeta1.at(),
        b2 = Hyper::Beta2.at(),
        w2 = Hyper::OneMinusBeta2.at(),
        bc2 = Hyper::BiasCorrection2Sqrt.at(),
        eps = Hyper::Eps.at(),
        step = Hyper::StepSize.at(),
    );
    k.finish(buffers.param.elems, &body)
}
