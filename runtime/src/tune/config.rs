//! What the tuner chooses: a kernel configuration, and the pair (forward,
//! backward) that `weft attn` and `weft bench attn` apply.

use std::fmt;
use std::path::PathBuf;

use weft_compiler::{AttentionKernel, AttentionPlanOptions, AttentionTiles, DeviceLimits};

use crate::executor::ShaderChecks;

/// The knobs of a fused attention plan that are measured, not guessed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KernelConfig {
    /// Query rows per tile.
    pub block_q: usize,
    /// Key rows per tile.
    pub block_k: usize,
    /// Rows each invocation owns; `0` is the planner's automatic choice for the
    /// head dimension ([`AttentionPlanOptions::auto_rows`]).
    pub rows_per_invocation: usize,
    pub checks: ShaderChecks,
    /// How visited rows are loaded; the planner falls back to the lane
    /// kernels where the subgroup ones cannot run.
    pub kernel: AttentionKernel,
}

impl Default for KernelConfig {
    /// The planner's defaults with wgpu's runtime checks: what runs untuned.
    fn default() -> Self {
        let d = AttentionPlanOptions::default();
        KernelConfig {
            block_q: d.block_q,
            block_k: d.block_k,
            rows_per_invocation: d.rows_per_invocation,
            checks: ShaderChecks::Checked,
            kernel: d.kernel,
        }
    }
}

impl KernelConfig {
    /// `base` (device limits, `backward`) with this configuration's tiles and rows.
    pub fn plan_options(&self, base: &AttentionPlanOptions) -> AttentionPlanOptions {
        AttentionPlanOptions {
            block_q: self.block_q,
            block_k: self.block_k,
            rows_per_invocation: self.rows_per_invocation,
            kernel: self.kernel,
            ..base.clone()
        }
    }

    /// The tiles and rows of this configuration, rows measured at `head_dim`,
    /// for the fused attention inside op-by-op plans (which keep wgpu's
    /// runtime checks whatever `checks` says).
    pub fn tiles(&self, head_dim: Option<usize>) -> AttentionTiles {
        AttentionTiles {
            block_q: self.block_q,
            block_k: self.block_k,
            rows_per_invocation: self.rows_per_invocation,
            rows_head_dim: head_dim,
            kernel: self.kernel,
        }
    }

    /// This configuration with the automatic rows per invocation resolved for `head_dim`.
    pub fn resolved(&self, head_dim: usize) -> KernelConfig {
        let rows = self.plan_options(&AttentionPlanOptions::default()).resolved(head_dim).rows_per_invocation;
        KernelConfig { rows_per_invocation: rows, ..*self }
    }

    /// Why the planner would reject this configuration, if it would: block
    /// sizes and rows must be positive, rows must divide both blocks, and a
    /// workgroup (`block / rows` invocations) must fit every device.
    pub fn invalid_reason(&self) -> Option<String> {
        self.tiles(None).problem()
    }
}

impl fmt::Display for KernelConfig {
    /// `32x32 r2 checked` (block_q x block_k, rows per invocation, checks);
    /// `r auto` for 0; `32x32 r4 sg checked` for the subgroup kernels.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rows = match self.rows_per_invocation {
            0 => "r auto".to_string(),
            r => format!("r{r}"),
        };
        let shared = if self.kernel == AttentionKernel::Subgroup { " sg" } else { "" };
        let text = format!("{}x{} {rows}{shared} {}", self.block_q, self.block_k, self.checks);
        // Honour width and alignment, so the configuration lines up in tables.
        f.pad(&text)
    }
}

/// Where a [`KernelChoice`] came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChoiceSource {
    /// No tuning result for this adapter: the planner's defaults.
    Default,
    /// A `weft tune` result for this adapter and driver, from this cache file.
    Cached { path: PathBuf, problem: String },
}

/// The configurations to run fused attention with on one adapter: one for
/// forward-only plans and one for plans with the backward kernels (a plan
/// shares one configuration between its forward and backward kernels, so the
/// backward choice is the fastest forward + backward).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelChoice {
    pub forward: KernelConfig,
    pub backward: KernelConfig,
    /// The head dimension the rows per invocation were tuned at (`None` for defaults).
    pub head_dim: Option<usize>,
    pub source: ChoiceSource,
}

impl Default for KernelChoice {
    fn default() -> Self {
        KernelChoice {
            forward: KernelConfig::default(),
            backward: KernelConfig::default(),
            head_dim: None,
            source: ChoiceSource::Default,
        }
    }
}

impl KernelChoice {
    /// What runs on a device nothing was measured on: the planner's tiles
    /// for its kind ([`AttentionTiles::default_for`]) with wgpu's checks.
    pub fn default_for(limits: &DeviceLimits) -> KernelChoice {
        let tiles = AttentionTiles::default_for(limits);
        let config = KernelConfig {
            block_q: tiles.block_q,
            block_k: tiles.block_k,
            rows_per_invocation: tiles.rows_per_invocation,
            checks: ShaderChecks::Checked,
            kernel: tiles.kernel,
        };
        KernelChoice {
            forward: config,
            backward: config,
            head_dim: tiles.rows_head_dim,
            source: ChoiceSource::Default,
        }
    }

    /// The configuration for a plan with (or without) the backward kernels at
    /// `head_dim`. Rows per invocation were measured at one head dimension and
    /// trade registers against loads: at another head dimension they fall back
    /// to the planner's automatic choice, and the note says so.
    pub fn config(&self, backward: bool, head_dim: usize) -> (KernelConfig, Option<String>) {
        let config = if backward { self.backward } else { self.forward };
        let rows = config.tiles(self.head_dim).rows_at(head_dim);
        match self.head_dim {
            Some(tuned) if rows != config.rows_per_invocation => {
                let auto = KernelConfig { rows_per_invocation: 0, ..config }.resolved(head_dim);
                if self.source == ChoiceSource::Default {
                    return (auto, None);
                }
                let note = format!(
                    "rows per invocation were tuned at D = {tuned}; at D = {head_dim} the planner picks {}",
                    auto.rows_per_invocation
                );
                (auto, Some(note))
            }
            _ => (config.resolved(head_dim), None),
        }
    }

    /// One line for the terminal: which configuration runs and why.
    pub fn describe(&self, backward: bool, head_dim: usize) -> String {
        let (config, note) = self.config(backward, head_dim);
        let source = match &self.source {
            ChoiceSource::Default => "defaults; `weft tune` measures this adapter".to_string(),
            ChoiceSource::Cached { path, problem } => {
                format!("tuned for this adapter on {problem}, from {}", path.display())
            }
        };
        let note = note.map(|n| format!("; {n}")).unwrap_or_default();
        format!("kernel config: {config} ({source}{note})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_resolve_like_the_planner() {
        let c = KernelConfig::default();
        assert_eq!(c.to_string(), "32x32 r auto checked");
        let r = c.resolved(64);
        assert_eq!(r.rows_per_invocation, AttentionPlanOptions::default().auto_rows(64));
        assert_eq!(
            format!("{:<24}|", r),
            format!("{:<24}|", format!("32x32 r{} checked", r.rows_per_invocation))
        );
    }

    #[test]
    fn rows_fall_back_to_auto_at_another_head_dim() {
        let tuned = KernelConfig {
            block_q: 64,
            block_k: 32,
            rows_per_invocation: 4,
            checks: ShaderChecks::Unchecked,
            kernel: AttentionKernel::Lanes,
        };
        let choice = KernelChoice {
            forward: tuned,
            backward: tuned,
            head_dim: Some(64),
            source: ChoiceSource::Cached { path: "t.toml".into(), problem: "x".into() },
        };
        assert_eq!(choice.config(true, 64), (tuned, None));
        let (other, note) = choice.config(false, 128);
        assert_eq!(other.rows_per_invocation, AttentionPlanOptions::default().auto_rows(128));
        assert_eq!((other.block_q, other.block_k, other.checks), (64, 32, ShaderChecks::Unchecked));
        assert!(note.is_some_and(|n| n.contains("tuned at D = 64")));
    }

    #[test]
    fn cpu_defaults_take_four_rows_at_d64_only_and_the_subgroup_kernels() {
        let cpu = DeviceLimits { cpu: true, ..DeviceLimits::default() };
        let choice = KernelChoice::default_for(&cpu);
        assert_eq!(choice.config(true, 64).0.rows_per_invocation, 4);
        assert_eq!(choice.config(true, 64).0.kernel, AttentionKernel::Subgroup);
        assert_eq!(choice.config(true, 64).0.to_string(), "32x32 r4 sg checked");
        let (other, note) = choice.config(false, 128);
        assert_eq!(other.rows_per_invocation, AttentionPlanOptions::default().auto_rows(128));
        assert_eq!(note, None, "defaults carry no tuning note");
        let gpu = DeviceLimits { cpu: false, ..DeviceLimits::default() };
        assert_eq!(KernelChoice::default_for(&gpu), KernelChoice::default());
    }

    #[test]
    fn invalid_configurations_are_named() {
        let bad =
            KernelConfig { block_q: 32, block_k: 48, rows_per_invocation: 32, ..KernelConfig::default() };
        assert!(bad.invalid_reason().is_some_and(|p| p.contains("do not divide")));
        let wide =
            KernelConfig { block_q: 512, block_k: 512, rows_per_invocation: 1, ..KernelConfig::default() };
        assert!(wide.invalid_reason().is_some_and(|p| p.contains("invocations")));
        assert_eq!(KernelConfig::default().invalid_reason(), None);
    }
}
