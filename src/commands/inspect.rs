//! `weft inspect SPEC`: per head, how sparse the mask is and what a block-sparse kernel saves.

use std::collections::{HashMap, HashSet};
use std::fmt::Write;

use clap::Args;
use weft_ir::mask::{HeadStats, causal_stats, head_stats};
use weft_ir::{ConcreteMask, Pattern, Schedule};

use std::path::PathBuf;

use crate::args::SizeArgs;

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Pattern spec file (TOML), e.g. examples/patterns/s2attn-roll.toml.
    pub spec: Option<PathBuf>,
    #[command(flatten)]
    pub sizes: SizeArgs,
    /// Tile edge in tokens: the kernel's query and key block size.
    #[arg(long, default_value_t = 64, value_name = "B", value_parser = crate::args::block)]
    pub block: usize,
    /// Only the pattern of this layer (default: every pattern of the schedule).
    #[arg(long, value_name = "I")]
    pub layer: Option<usize>,
    /// Print each layer's decode KV cache instead: the keys its masks can still
    /// reach, as a formula in N and in bytes at the spec's N.
    #[arg(long)]
    pub kv_cache: bool,
    /// KV heads for --kv-cache (grouped-query attention; default: one per head).
    #[arg(long, value_name = "K", requires = "kv_cache")]
    pub kv_heads: Option<usize>,
}

pub fn run(args: &InspectArgs) -> anyhow::Result<()> {
    let Some(spec) = &args.spec else {
        anyhow::bail!("weft inspect needs a SPEC, or `kernels SPEC` (see weft inspect --help)");
    };
    let schedule = weft_ir::spec::load_schedule(spec, &args.sizes.overrides())?;
    if args.kv_cache {
        let n_kv_heads = args.kv_heads.unwrap_or(schedule.dims.n_heads);
        out!("{}", super::kv_cache::report(&schedule, n_kv_heads)?);
        return Ok(());
    }
    let block = args.block;
    let patterns: Vec<usize> = match args.layer {
        Some(layer) => {
            let index = crate::args::pick_layer(&schedule, Some(layer))?;
            schedule.layers.iter().filter(|r| r.layers.contains(&index)).map(|r| r.pattern).collect()
        }
        None => (0..schedule.patterns.len()).collect(),
    };
    // Full causal and every distinct mask shown are classified tile by tile:
    // bound that work before starting.
    let distinct: HashSet<&ConcreteMask> =
        patterns.iter().flat_map(|&i| schedule.patterns[i].head_masks()).collect();
    let n_blocks = schedule.dims.seq_len.div_ceil(block) as u64;
    weft_ir::limits::check_product(
        &[distinct.len() as u64 + 1, n_blocks, n_blocks],
        "the tiles to classify (masks × (N / block)²)",
        &weft_ir::limits::Limit { escape: Some("pass a larger --block"), ..weft_ir::limits::TILES },
    )?;
    let causal = causal_stats(schedule.dims.seq_len, block);
    for index in patterns {
        out!("{}", report(&schedule, index, block, &causal));
    }
    outln!("density: allowed pairs / N^2. vs causal (first): allowed pairs / causal pairs.");
    outln!("GFLOP fwd: QK^T and PV over the non-empty tiles, one sequence. vs causal (second): that work");
    outln!(
        "relative to full causal at the same block size. Empty tiles are skipped; full tiles skip the mask."
    );
    Ok(())
}

/// One table for pattern `index`: a row per run of heads with the same mask.
fn report(schedule: &Schedule, index: usize, block: usize, causal: &HeadStats) -> String {
    let pattern: &Pattern = &schedule.patterns[index];
    let d = &schedule.dims;
    let n_blocks = d.seq_len.div_ceil(block);
    let layers = schedule.layers_using(index);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "pattern {} (layers {}): N = {}, head_dim = {}, block {block} -> {n_blocks} x {n_blocks} tiles",
        pattern.name, layers, d.seq_len, d.head_dim
    );
    let _ = writeln!(
        out,
        "  {:<9} {:>8} {:>9} {:>8} {:>8} {:>8} {:>10} {:>9}  mask",
        "heads", "density", "vs causal", "empty", "full", "partial", "GFLOP fwd", "vs causal"
    );

    // Heads with equal masks share their statistics.
    let mut cache: HashMap<&ConcreteMask, HeadStats> = HashMap::new();
    let masks = pattern.head_masks();
    let mut total_flops = 0.0;
    let mut start = 0;
    while start < masks.len() {
        let mut end = start + 1;
        while end < masks.len() && masks[end] == masks[start] {
            end += 1;
        }
        let stats = cache.entry(&masks[start]).or_insert_with(|| head_stats(&masks[start], d.seq_len, block));
        let flops = stats.kernel_flops(d.head_dim);
        total_flops += flops * (end - start) as f64;
        let heads = if end - start == 1 { start.to_string() } else { format!("{start}..{end}") };
        let _ = writeln!(
            out,
            "  {:<9} {:>8.4} {:>9.4} {:>8} {:>8} {:>8} {:>10.3} {:>9.4}  {}",
            heads,
            stats.density(),
            stats.pairs_vs_causal(),
            stats.tiles.empty,
            stats.tiles.full,
            stats.tiles.partial,
            flops / 1e9,
            flops / causal.kernel_flops(d.head_dim),
            masks[start]
        );
        start = end;
    }
    let causal_total = causal.kernel_flops(d.head_dim) * masks.len() as f64;
    let _ = writeln!(
        out,
        "  all {} heads: {:.3} GFLOP forward per layer and sequence, {:.4}x of full causal ({:.3} GFLOP)\n",
        masks.len(),
        total_flops / 1e9,
        total_flops / causal_total,
        causal_total / 1e9
    );
    out
}
