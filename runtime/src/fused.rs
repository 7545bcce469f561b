//! A fused attention plan as the compiler made it, sealed so that it may run
//! without wgpu's shader runtime checks.

use weft_compiler::{
    AttentionError, AttentionPlanOptions, FusedAttentionDesc, KernelPlan, PlanStats, plan_attention,
};

use crate::executor::ShaderChecks;

/// The kernel plan of one fused attention node, planned here by
/// [`weft_compiler::plan_attention`] and never modified afterwards: its fields
/// are private and it hands out shared references only. That is what lets
/// [`Executor::prepare`](crate::Executor::prepare) create its
/// shader modules with [`ShaderChecks::Unchecked`] (see the `SAFETY` comment
/// there). Plans from anywhere else run checked, through
/// [`Executor::prepare`](crate::Executor::prepare).
#[derive(Debug)]
pub struct FusedPlan {
    plan: KernelPlan,
    stats: PlanStats,
    options: AttentionPlanOptions,
    checks: ShaderChecks,
}

impl FusedPlan {
    /// Plans `desc` with `options` (rows per invocation resolved for the head
    /// dimension), to run with `checks`.
    pub fn new(
        desc: &FusedAttentionDesc,
        options: &AttentionPlanOptions,
        checks: ShaderChecks,
    ) -> Result<FusedPlan, AttentionError> {
        let options = options.resolved(desc.head_dim);
        let (plan, stats) = plan_attention(desc, &options)?;
        Ok(FusedPlan { plan, stats, options, checks })
    }

    pub fn plan(&self) -> &KernelPlan {
        &self.plan
    }

    pub fn stats(&self) -> &PlanStats {
        &self.stats
    }

    /// The options the plan was made with, rows per invocation resolved.
    pub fn options(&self) -> &AttentionPlanOptions {
        &self.options
    }

    pub fn checks(&self) -> ShaderChecks {
        self.checks
    }
}
