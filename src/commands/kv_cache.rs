//! `weft inspect SPEC --kv-cache`: how many keys each layer's decode cache
//! keeps, from the reach of its masks, as a formula in N and at the spec's N.

use std::fmt::Write;

use weft_ir::Schedule;
use weft_ir::mask::Reach;

/// Bytes of one cached key or value element: the runtime keeps f32.
const ELEMENT_BYTES: u64 = 4;

/// One run of layers with the same pattern, and what its KV heads keep.
struct LayerRun {
    layers: std::ops::Range<usize>,
    pattern: String,
    /// Per KV head.
    reach: Vec<Reach>,
    /// Whether a mask reads the sequence length (a roll).
    reads_length: bool,
}

/// The report, or why the schedule cannot be decoded with `n_kv_heads`.
pub fn report(schedule: &Schedule, n_kv_heads: usize) -> anyhow::Result<String> {
    let d = &schedule.dims;
    let n = d.seq_len as u64;
    let mut runs = Vec::new();
    for range in &schedule.layers {
        let pattern = &schedule.patterns[range.pattern];
        let Some(reach) = pattern.kv_reach(n_kv_heads) else {
            anyhow::bail!(
                "--kv-heads {n_kv_heads} does not divide the {} heads of pattern `{}`",
                pattern.n_heads(),
                pattern.name
            );
        };
        let reads_length = pattern.head_masks().iter().any(|m| m.mentions_length());
        runs.push(LayerRun {
            layers: range.layers.clone(),
            pattern: pattern.name.clone(),
            reach,
            reads_length,
        });
    }

    // K and V, per KV head, per kept key.
    let bytes_per_key = 2 * d.head_dim as u64 * ELEMENT_BYTES;
    let mib = |keys: u64| (keys * bytes_per_key) as f64 / (1 << 20) as f64;
    let full_keys_per_layer = n * n_kv_heads as u64;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "KV cache of {} while decoding N = {n} positions: {} layers, {n_kv_heads} KV heads of {} (f32 keys and values)",
        schedule.name, d.n_layers, d.head_dim
    );
    let pw = runs.iter().map(|r| r.pattern.len()).max().unwrap_or(0).max("pattern".len());
    let fw = runs.iter().flat_map(|r| r.reach.iter().map(|x| x.to_string().len())).max().unwrap_or(0).max(21);
    let _ = writeln!(
        out,
        "  {:<9} {:<pw$} {:<8} {:<fw$} {:>8} {:>10} {:>8}",
        "layers", "pattern", "KV heads", "keys kept per KV head", "at N", "MiB/layer", "vs full"
    );
    let mut total_keys = 0u64;
    let mut notes = Vec::new();
    for run in &runs {
        // KV heads whose caches have the same formula and size share a row
        // (LongGen's strided heads differ only in which blocks they keep).
        let row_of = |r: &Reach| (r.to_string(), r.capacity(n));
        let mut start = 0;
        let mut layer_keys = 0u64;
        while start < run.reach.len() {
            let mut end = start + 1;
            while end < run.reach.len() && row_of(&run.reach[end]) == row_of(&run.reach[start]) {
                end += 1;
            }
            let (formula, keys) = row_of(&run.reach[start]);
            layer_keys += keys * (end - start) as u64;
            let heads = if end - start == 1 { start.to_string() } else { format!("{start}..{end}") };
            let _ = writeln!(
                out,
                "  {:<9} {:<pw$} {:<8} {:<fw$} {:>8} {:>10.3} {:>8.4}",
                format!("{}..{}", run.layers.start, run.layers.end),
                run.pattern,
                heads,
                formula,
                keys,
                mib(keys * (end - start) as u64),
                keys as f64 / n as f64,
            );
            start = end;
        }
        total_keys += layer_keys * run.layers.len() as u64;
        let layers = format!("layers {}..{}", run.layers.start, run.layers.end);
        if run.reads_length {
            notes.push(format!(
                "{layers}: a mask reads the sequence length (roll), so cached keys would change as the \
                 sequence grows: `weft generate` refuses it (decode with `--pattern causal`, as LongLoRA evaluates)"
            ));
        } else if run.reach.iter().any(|r| !r.is_bounded()) {
            notes.push(format!("{layers}: the cache grows with the sequence (no finite reach)"));
        }
    }
    let full_total = full_keys_per_layer * d.n_layers as u64;
    let _ = writeln!(
        out,
        "  all {} layers: {:.3} MiB, {:.4}x of a full cache ({:.3} MiB); {:.1}% smaller",
        d.n_layers,
        mib(total_keys),
        total_keys as f64 / full_total as f64,
        mib(full_total),
        100.0 * (1.0 - total_keys as f64 / full_total as f64)
    );
    for note in notes {
        let _ = writeln!(out, "  note: {note}");
    }
    let _ = writeln!(
        out,
        "keys kept: an upper bound on the keys a KV head holds at once, as a formula in N (N: every key)."
    );
    Ok(out)
}
