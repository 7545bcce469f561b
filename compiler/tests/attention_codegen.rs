//! Fused attention planning and codegen: golden WGSL, SPIR-V validity, block
//! tables, statistics, chunking and errors. GPU results are checked in
//! `runtime/tests/attention_gpu.rs`.

use std::path::{Path, PathBuf};
use std::process::Command;

use expect_test::expect_file;
use weft_compiler::attention::EMPTY_ROW_LSE;
use weft_compiler::attention::{
    AttentionKernel, AttentionPlanOptions, AttentionTiles, BlockTables, FusedAttentionDesc, attention_sources,
};
use weft_compiler::mask::mask_functions;
use weft_compiler::{Access, AttentionError, BufferRole, DeviceLimits, KernelPlan, plan_attention, to_spirv};
use weft_ir::expr::parse_mask;
use weft_ir::graph::RopeParams;
use weft_ir::{Mask, Overrides, Schedule};

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/patterns")
}

fn example(file: &str, n: usize, h: usize) -> Schedule {
    let overrides = Overrides { seq_len: Some(n), n_heads: Some(h), ..Overrides::default() };
    weft_ir::spec::load_schedule(&examples_dir().join(file), &overrides).unwrap()
}

/// Every example spec file name, sorted.
fn example_files() -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(examples_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".toml"))
        .collect();
    files.sort();
    files
}

/// `(snapshot name, desc)` for every pattern of every example, at N=256, H=4, D=64.
fn example_descs(batch: usize) -> Vec<(String, FusedAttentionDesc)> {
    let mut out = Vec::new();
    for file in example_files() {
        let schedule = example(&file, 256, 4);
        for pattern in &schedule.patterns {
            let label = if schedule.patterns.len() == 1 {
                schedule.name.clone()
            } else {
                format!("{}-{}", schedule.name, pattern.name)
            };
            let mut desc = FusedAttentionDesc::from_pattern(pattern, 256, batch, 64);
            desc.name = label.clone();
            out.push((label, desc));
        }
    }
    out
}

fn mask(src: &str) -> Mask {
    Mask::new(parse_mask(src).unwrap()).unwrap()
}

fn desc(
    name: &str,
    heads: Vec<(std::ops::Range<usize>, &str)>,
    n: usize,
    b: usize,
    d: usize,
) -> FusedAttentionDesc {
    let n_heads = heads.last().map_or(0, |(r, _)| r.end);
    FusedAttentionDesc {
        name: name.to_string(),
        batch: b,
        n_heads,
        seq_len: n,
        head_dim: d,
        heads: heads.into_iter().map(|(r, m)| (r, mask(m))).collect(),
        scale: 1.0 / (d as f32).sqrt(),
        rope: None,
    }
}

fn backward() -> AttentionPlanOptions {
    AttentionPlanOptions { backward: true, ..AttentionPlanOptions::default() }
}

/// [`backward`] with the subgroup kernels, on a device with 8-lane subgroups.
fn subgroup_backward() -> AttentionPlanOptions {
    let base = backward();
    AttentionPlanOptions {
        kernel: AttentionKernel::Subgroup,
        limits: DeviceLimits { subgroup_min_size: Some(8), ..base.limits },
        ..base
    }
}

/// The subgroup kernels in full, for the causal example without and with
/// RoPE on load (`tests/golden/wgsl/causal-subgroup{,-rope}/<kind>.wgsl`; the
/// delta kernel is the lane kernels' and is not repeated). Bless with `UPDATE_EXPECT=1`.
#[test]
fn subgroup_kernels_match_the_golden_snapshots() {
    let (_, causal) =
        example_descs(1).into_iter().find(|(label, _)| label == FULL_SNAPSHOT).expect("the causal example");
    let rope = FusedAttentionDesc { rope: Some(RopeParams::new(10000.0, 2.0)), ..causal.clone() };
    for (dir, desc) in [("causal-subgroup", &causal), ("causal-subgroup-rope", &rope)] {
        let opts = subgroup_backward();
        assert_eq!(opts.resolved(desc.head_dim).kernel_for(desc), AttentionKernel::Subgroup);
        let sources = attention_sources(desc, &opts).unwrap();
        for source in sources.iter().filter(|s| s.kind != "bwd_delta") {
            assert!(source.wgsl.contains("subgroupBroadcast"), "{dir} {}", source.kind);
            expect_file![format!("../../tests/golden/wgsl/{dir}/{}.wgsl", source.kind)]
                .assert_eq(&source.wgsl);
        }
    }
}

/// The planner runs the subgroup kernels only where they are correct: 8-lane
/// subgroups, workgroups of whole multiples of 8, and with RoPE a head
/// dimension that is a multiple of 64; elsewhere the lane kernels.
#[test]
fn subgroup_kernels_fall_back_to_lane_kernels_where_they_cannot_run() {
    let d64 = desc("c", vec![(0..2, "causal")], 100, 1, 64);
    let d32 = desc("c", vec![(0..2, "causal")], 100, 1, 32);
    let with_rope =
        |d: &FusedAttentionDesc| FusedAttentionDesc { rope: Some(RopeParams::new(500.0, 1.0)), ..d.clone() };
    let sg = subgroup_backward().resolved(64);
    assert_eq!(sg.kernel_for(&d64), AttentionKernel::Subgroup);
    assert_eq!(sg.kernel_for(&d32), AttentionKernel::Subgroup);
    assert_eq!(sg.kernel_for(&with_rope(&d64)), AttentionKernel::Subgroup);
    assert_eq!(sg.kernel_for(&with_rope(&d32)), AttentionKernel::Lanes, "RoPE partners in other lanes");
    let no_subgroups = AttentionPlanOptions {
        limits: DeviceLimits { subgroup_min_size: Some(4), ..sg.limits },
        ..sg.clone()
    };
    assert_eq!(no_subgroups.kernel_for(&d64), AttentionKernel::Lanes, "4-lane subgroups");
    let small = AttentionPlanOptions { block_q: 16, block_k: 16, rows_per_invocation: 4, ..sg.clone() };
    assert_eq!(small.kernel_for(&d64), AttentionKernel::Lanes, "workgroups of 4");
    let lanes = AttentionPlanOptions { kernel: AttentionKernel::Lanes, ..sg.clone() };
    assert_eq!(lanes.kernel_for(&d64), AttentionKernel::Lanes);
    let (_, stats) = plan_attention(&d64, &sg).unwrap();
    assert_eq!(stats.kernel, AttentionKernel::Subgroup);
    assert!(stats.to_string().contains("subgroup kernels"), "{stats}");
    assert_eq!("subgroup".parse::<AttentionKernel>(), Ok(AttentionKernel::Subgroup));
    let err = "warp".parse::<AttentionKernel>().unwrap_err();
    assert!(err.contains("`warp` is neither `lanes` nor `subgroup`"), "{err}");
}

/// The pattern whose kernels are snapshotted in full.
const FULL_SNAPSHOT: &str = "causal";

/// Golden snapshots, bless with `UPDATE_EXPECT=1`: every kernel kind in full
/// for one pattern (`tests/golden/wgsl/causal/<kind>.wgsl`), and every
/// example pattern's mask functions (`tests/golden/masks/<pattern>.wgsl`).
/// Kernels differ between patterns only in their mask functions and name, so
/// every pattern's kernels must equal the full snapshot's with those swapped:
/// an edit to a kernel body re-blesses four files, an edit to the mask
/// emitter one file per pattern.
#[test]
fn emitted_wgsl_matches_the_golden_snapshots() {
    let descs = example_descs(1);
    assert!(descs.len() >= 7, "expected every example pattern, found {}", descs.len());
    let sources = |desc: &FusedAttentionDesc| {
        let sources = attention_sources(desc, &backward()).unwrap();
        let kinds: Vec<&str> = sources.iter().map(|s| s.kind).collect();
        assert_eq!(kinds, ["fwd", "bwd_delta", "bwd_dkdv", "bwd_dq"], "{}", desc.name);
        sources
    };
    // The mask functions, from the emitter the kernels use, with the fused
    // kernels' name for the signed sequence length.
    let masks = |desc: &FusedAttentionDesc| mask_functions(&desc.heads, desc.seq_len, "NI").unwrap();
    let (_, full) = descs.iter().find(|(label, _)| label == FULL_SNAPSHOT).expect("the causal example");
    let full_sources = sources(full);
    let full_masks = masks(full);
    for source in &full_sources {
        expect_file![format!("../../tests/golden/wgsl/{FULL_SNAPSHOT}/{}.wgsl", source.kind)]
            .assert_eq(&source.wgsl);
    }
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        std::fs::create_dir_all(Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/golden/masks")).unwrap();
    }
    for (label, desc) in &descs {
        let pattern_masks = masks(desc);
        expect_file![format!("../../tests/golden/masks/{label}.wgsl")].assert_eq(&pattern_masks);
        for (source, full_source) in sources(desc).iter().zip(&full_sources) {
            // The delta kernel has no mask; the others hold it once.
            let uses = if source.kind == "bwd_delta" { 0 } else { 1 };
            assert_eq!(full_source.wgsl.matches(&full_masks).count(), uses, "{}", source.kind);
            let want = full_source.wgsl.replacen(&full_masks, &pattern_masks, uses).replacen(
                &format!("fused attention `{FULL_SNAPSHOT}`"),
                &format!("fused attention `{label}`"),
                1,
            );
            assert!(
                source.wgsl == want,
                "`{label}` {}: the kernel differs from the `{FULL_SNAPSHOT}` snapshot by more than its mask \
                 functions and name; first differing line: {:?}",
                source.kind,
                source.wgsl.lines().zip(want.lines()).find(|(a, b)| a != b)
            );
        }
    }
}

/// Runs `spirv-val` on the SPIR-V of `wgsl`; the error names the kernel and carries the validator's message.
fn spirv_val(kernel: &str, wgsl: &str) -> Result<(), String> {
    let words = to_spirv(kernel, wgsl).map_err(|e| e.to_string())?;
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("spirv-val");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let path = dir.join(format!("{kernel}-{}.spv", std::process::id()));
    std::fs::write(&path, bytes).map_err(|e| e.to_string())?;
    let out = Command::new("spirv-val")
        .arg("--target-env")
        .arg("vulkan1.1")
        .arg(&path)
        .output()
        .map_err(|e| format!("cannot run spirv-val (Debian package spirv-tools): {e}"))?;
    let _ = std::fs::remove_file(&path);
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "spirv-val rejects kernel `{kernel}`:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

#[test]
fn every_emitted_module_passes_spirv_val() {
    let mut descs = example_descs(2);
    descs.push((
        "odd".into(),
        desc("odd", vec![(0..3, "roll(-7, causal & !sink(1)) | groups(5, h - 2)")], 100, 1, 16),
    ));
    let variants = [
        backward(),
        AttentionPlanOptions { rows_per_invocation: 2, block_q: 16, block_k: 64, ..backward() },
        {
            let base = backward();
            AttentionPlanOptions {
                rows_per_invocation: 4,
                limits: DeviceLimits { max_storage_binding: 256 * 64 * 4 * 2, ..base.limits },
                ..base
            }
        },
        subgroup_backward(),
    ];
    let mut failures = Vec::new();
    let mut checked = 0;
    for (label, desc) in &descs {
        for opts in &variants {
            let (plan, _) = plan_attention(desc, opts).unwrap();
            let mut seen = std::collections::HashSet::new();
            for kernel in &plan.kernels {
                if seen.insert(kernel.wgsl.clone()) {
                    checked += 1;
                    if let Err(e) = spirv_val(&kernel.name, &kernel.wgsl) {
                        failures.push(format!("{label}: {e}"));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(checked >= descs.len() * 4, "checked only {checked} modules");
}

fn buffer<'a>(plan: &'a KernelPlan, name: &str) -> &'a weft_compiler::BufferDecl {
    plan.buffers.get(name).unwrap_or_else(|| panic!("no buffer `{name}` in {:?}", plan.buffers.keys()))
}

#[test]
fn plans_declare_their_buffers_and_kernels_in_order() {
    let d =
        desc("s2", vec![(0..2, "causal & groups(64)"), (2..4, "roll(32, causal & groups(64))")], 256, 2, 64);
    let (plan, stats) = plan_attention(&d, &AttentionPlanOptions::default()).unwrap();
    let names: Vec<&str> = plan.buffers.keys().map(String::as_str).collect();
    assert_eq!(names, ["blocks_fwd", "k", "lse", "o", "params", "q", "v"]);
    assert_eq!(plan.kernels.len(), 1);
    assert_eq!(plan.kernels[0].name, "attn_fwd_s2");
    assert_eq!(buffer(&plan, "q").shape, [2, 4, 256, 64]);
    assert_eq!(buffer(&plan, "q").bytes, 2 * 4 * 256 * 64 * 4);
    assert_eq!(buffer(&plan, "lse").role, BufferRole::Output);
    assert!(matches!(buffer(&plan, "blocks_fwd").role, BufferRole::Const(_)));
    assert_eq!(stats.dispatches, 1);

    let (plan, _) = plan_attention(&d, &backward()).unwrap();
    let kernels: Vec<&str> = plan.kernels.iter().map(|k| k.name.as_str()).collect();
    assert_eq!(kernels, ["attn_fwd_s2", "attn_bwd_delta_s2", "attn_bwd_dkdv_s2", "attn_bwd_dq_s2"]);
    assert_eq!(buffer(&plan, "do").role, BufferRole::Input);
    assert_eq!(buffer(&plan, "delta").role, BufferRole::Scratch);
    for name in ["dq", "dk", "dv"] {
        assert_eq!(buffer(&plan, name).role, BufferRole::Output);
    }
    for kernel in &plan.kernels {
        assert_eq!(kernel.entry_point, "main");
        for (i, b) in kernel.bindings.iter().enumerate() {
            assert_eq!(b.index as usize, i);
            assert!(plan.buffers.contains_key(&b.buffer), "{} binds unknown `{}`", kernel.name, b.buffer);
            assert_eq!(b.range, None);
            let writes = matches!(b.access, Access::ReadWrite);
            let role = &buffer(&plan, &b.buffer).role;
            assert!(
                !writes || matches!(role, BufferRole::Output | BufferRole::Scratch),
                "{} writes {}",
                kernel.name,
                b.buffer
            );
        }
        let storage = kernel.bindings.iter().filter(|b| b.access != Access::Uniform).count();
        assert!(storage <= 8, "{} binds {storage} storage buffers", kernel.name);
    }
}

#[test]
fn a_saved_forward_pass_leaves_the_backward_kernels_alone() {
    let d =
        desc("s2", vec![(0..2, "causal & groups(64)"), (2..4, "roll(32, causal & groups(64))")], 256, 2, 64);
    let (full, full_stats) = plan_attention(&d, &backward()).unwrap();
    let saved = AttentionPlanOptions { saved_forward: true, ..backward() };
    let (plan, stats) = plan_attention(&d, &saved).unwrap();
    let kernels: Vec<&str> = plan.kernels.iter().map(|k| k.name.as_str()).collect();
    assert_eq!(kernels, ["attn_bwd_delta_s2", "attn_bwd_dkdv_s2", "attn_bwd_dq_s2"]);
    // `o` and the log-sum-exp come in from the forward pass.
    for name in ["o", "lse", "do", "q", "k", "v"] {
        assert_eq!(buffer(&plan, name).role, BufferRole::Input, "{name}");
    }
    assert_eq!(buffer(&plan, "lse").bytes, buffer(&full, "lse").bytes);
    // The backward kernels and their bindings are the full plan's.
    assert_eq!(plan.kernels[..], full.kernels[1..]);
    assert_eq!((stats.flops_forward, stats.flops_backward), (0, full_stats.flops_backward));

    let err =
        plan_attention(&d, &AttentionPlanOptions { saved_forward: true, ..AttentionPlanOptions::default() })
            .unwrap_err();
    assert!(matches!(err, AttentionError::InvalidOptions { .. }), "{err:?}");
    assert!(err.to_string().contains("a saved forward pass is only of use to a backward plan"), "{err}");
}

#[test]
fn attention_tiles_keep_their_rows_only_at_the_head_dim_they_were_measured_at() {
    let tiles = AttentionTiles {
        block_q: 64,
        block_k: 16,
        rows_per_invocation: 4,
        rows_head_dim: Some(64),
        kernel: AttentionKernel::Lanes,
    };
    let at64 = tiles.apply(backward(), 64);
    assert_eq!((at64.block_q, at64.block_k, at64.rows_per_invocation, at64.backward), (64, 16, 4, true));
    let at128 = tiles.apply(backward(), 128);
    assert_eq!((at128.block_q, at128.block_k, at128.rows_per_invocation), (64, 16, 0));
    let anywhere = AttentionTiles { rows_head_dim: None, ..tiles };
    assert_eq!(anywhere.apply(AttentionPlanOptions::default(), 128).rows_per_invocation, 4);
    assert_eq!(
        AttentionTiles::default().apply(AttentionPlanOptions::default(), 64),
        AttentionPlanOptions::default()
    );
}

#[test]
fn large_tensors_are_split_into_aligned_chunks_and_wide_grids_fold() {
    // N = 100 (rows of lse are 400 bytes): chunks are multiples of 16 (batch, head) pairs.
    let d = desc("chunked", vec![(0..20, "causal & window(9)")], 100, 2, 16);
    let slab = 100 * 16 * 4;
    let opts = {
        let base = backward();
        AttentionPlanOptions {
            limits: DeviceLimits {
                max_storage_binding: 17 * slab,
                max_workgroups_per_dimension: 9,
                ..base.limits
            },
            ..base
        }
    };
    let (plan, stats) = plan_attention(&d, &opts).unwrap();
    assert_eq!(stats.chunks, 3, "40 pairs in chunks of 16");
    assert_eq!(plan.kernels.len(), 4 * 3);
    let params = match &buffer(&plan, "params").role {
        BufferRole::Const(bytes) => bytes.clone(),
        other => panic!("params is {other:?}"),
    };
    for kernel in &plan.kernels {
        let chunk: usize = kernel.name.rsplit("_c").next().unwrap().parse().unwrap();
        let [x, y, z] = kernel.workgroups;
        assert!(x <= 9 && y <= 9 && z == 1, "{}: {:?}", kernel.name, kernel.workgroups);
        for b in &kernel.bindings {
            if b.buffer.starts_with("blocks") {
                assert_eq!(b.range, None, "block tables are bound whole");
                continue;
            }
            let (offset, size) =
                b.range.unwrap_or_else(|| panic!("{} binds all of {}", kernel.name, b.buffer));
            if b.buffer == "params" {
                assert_eq!((offset, size), (256 * chunk as u64, 16));
                let at = offset as usize;
                let bh0 = u32::from_le_bytes(params[at..at + 4].try_into().unwrap());
                let count = u32::from_le_bytes(params[at + 4..at + 8].try_into().unwrap());
                assert_eq!((bh0, count), (16 * chunk as u32, if chunk == 2 { 8 } else { 16 }));
                continue;
            }
            assert_eq!(offset % 256, 0, "{} binds {} at {offset}", kernel.name, b.buffer);
            assert!(size <= opts.limits.max_storage_binding);
            assert!(offset + size <= buffer(&plan, &b.buffer).bytes);
        }
        // The grid covers every block of the chunk.
        let count = if chunk == 2 { 8 } else { 16 };
        let needed = match kernel.name.split('_').nth(2) {
            Some("delta") => (count * 100usize).div_ceil(64),
            _ => 4 * count,
        };
        assert!((x * y) as usize >= needed, "{}: {:?} < {needed}", kernel.name, kernel.workgroups);
    }
    // One pair does not fit: the plan says so instead of binding past the limit.
    let err = plan_attention(&d, &{
        let base = backward();
        AttentionPlanOptions { limits: DeviceLimits { max_storage_binding: slab - 4, ..base.limits }, ..base }
    })
    .unwrap_err();
    assert!(matches!(err, AttentionError::TooLarge { .. }), "{err}");
}

#[test]
fn heads_with_equal_canonical_masks_share_a_table() {
    let by_name = |descs: &[(String, FusedAttentionDesc)], name: &str| {
        descs.iter().find(|(label, _)| label == name).map(|(_, d)| d.clone()).unwrap()
    };
    let descs = example_descs(1);
    let tables = |d: &FusedAttentionDesc| {
        let (_, stats) = plan_attention(d, &AttentionPlanOptions::default()).unwrap();
        stats.tables.iter().map(|t| t.heads.clone()).collect::<Vec<_>>()
    };
    assert_eq!(tables(&by_name(&descs, "causal")), [vec![0, 1, 2, 3]]);
    assert_eq!(tables(&by_name(&descs, "s2attn-roll")), [vec![0, 1], vec![2, 3]]);
    // Vertical stride 8 with offset h: four distinct masks at H = 4 ...
    assert_eq!(tables(&by_name(&descs, "longgen-local-stride")).len(), 4);
    // ... and offsets h and h + 8 are the same mask.
    let d = desc("ls", vec![(0..16, "causal & local_stride(16, 2, 8, h)")], 256, 1, 16);
    let table_heads = tables(&d);
    assert_eq!(table_heads.len(), 8);
    assert_eq!(table_heads[0], [0, 8]);
}

#[test]
fn statistics_count_tiles_flops_and_bytes() {
    let d = desc("causal", vec![(0..2, "causal")], 256, 3, 64);
    let opts = AttentionPlanOptions { block_q: 32, block_k: 32, ..backward() };
    let (_, stats) = plan_attention(&d, &opts).unwrap();
    // 8 x 8 tiles: 28 below the diagonal, 8 on it, 28 above; times B * H = 6.
    assert_eq!((stats.tiles_full, stats.tiles_partial, stats.tiles_empty), (6 * 28, 6 * 8, 6 * 28));
    assert_eq!(stats.visited_pairs, 6 * 36 * 32 * 32);
    assert_eq!(stats.flops_forward, 4 * 64 * stats.visited_pairs);
    assert_eq!(stats.flops_backward, 14 * 64 * stats.visited_pairs + 6 * 2 * 64 * 256);
    assert!(stats.bytes_forward > 6 * 3 * 256 * 64 * 4);
    assert!(stats.bytes_backward > stats.bytes_forward);
    let text = stats.to_string();
    assert!(text.contains("168 full + 48 partial of 384"), "{text}");
    assert!(text.contains("table 0 (heads 0..2): causal: 28 full, 8 partial, 28 empty tiles"), "{text}");

    // N not a multiple of the block: the last tiles are clipped.
    let d = desc("odd", vec![(0..1, "full")], 100, 1, 16);
    let (_, stats) = plan_attention(&d, &AttentionPlanOptions::default()).unwrap();
    assert_eq!(stats.visited_pairs, 100 * 100);
    assert_eq!((stats.tiles_full, stats.tiles_partial), (16, 0));
}

#[test]
fn empty_tiles_are_never_visited_and_full_tiles_skip_the_mask() {
    for (_, d) in example_descs(1) {
        let masks = d.head_masks().unwrap();
        let tables = BlockTables::build(&masks, d.seq_len, 32, 32);
        for (t, table) in tables.tables.iter().enumerate() {
            let mut listed = 0;
            for (qb, row) in table.rows.iter().enumerate() {
                for tile in row {
                    listed += 1;
                    let (q, k) =
                        (qb * 32..qb * 32 + 32, tile.block as usize * 32..tile.block as usize * 32 + 32);
                    let allowed = q
                        .clone()
                        .flat_map(|q| k.clone().map(move |k| (q, k)))
                        .filter(|&(q, k)| table.mask.allows(256, q as i64, k as i64))
                        .count();
                    assert!(allowed > 0, "{}: table {t} lists an empty tile", d.name);
                    assert_eq!(
                        tile.partial,
                        allowed < 32 * 32,
                        "{}: table {t}, tile ({qb}, {})",
                        d.name,
                        tile.block
                    );
                }
            }
            assert_eq!(listed, table.visited());
        }
    }
}

#[test]
fn bad_nodes_and_options_are_errors() {
    let good = desc("g", vec![(0..4, "causal")], 64, 1, 16);
    let check = |d: &FusedAttentionDesc, opts: &AttentionPlanOptions, expected: &str| {
        let err = plan_attention(d, opts).unwrap_err().to_string();
        assert!(err.contains(expected), "expected `{expected}` in: {err}");
    };
    let mut gap = good.clone();
    gap.heads = vec![(0..2, mask("causal")), (3..4, mask("causal"))];
    check(&gap, &AttentionPlanOptions::default(), "head ranges must tile 0..4 in order; found 3..4");
    let mut short = good.clone();
    short.n_heads = 5;
    check(&short, &AttentionPlanOptions::default(), "head ranges cover 0..4, not 0..5");
    let mut odd_dim = good.clone();
    odd_dim.head_dim = 6;
    check(&odd_dim, &AttentionPlanOptions::default(), "head dimension 6 is not a positive multiple of 4");
    let shrinking = desc("s", vec![(0..4, "groups(3 - h)")], 64, 1, 16);
    check(&shrinking, &AttentionPlanOptions::default(), "fused attention `s`, head 3: `g` of `groups` is 0");
    check(
        &good,
        &AttentionPlanOptions { rows_per_invocation: 3, ..AttentionPlanOptions::default() },
        "3 rows per invocation do not divide",
    );
    check(
        &good,
        &AttentionPlanOptions { block_q: 1024, rows_per_invocation: 1, ..AttentionPlanOptions::default() },
        "a workgroup of 1024 invocations",
    );
    let mut nan = good.clone();
    nan.scale = f32::NAN;
    check(&nan, &AttentionPlanOptions::default(), "scale NaN is not finite");
}

#[test]
fn the_empty_row_sentinel_is_finite_and_kills_every_weight() {
    assert!(EMPTY_ROW_LSE.is_finite());
    // The largest score f32 inputs of sane magnitude give is far below it.
    assert_eq!((1.0e6f32 - EMPTY_ROW_LSE).exp(), 0.0);
}

#[test]
fn descs_come_from_patterns_and_schedules() {
    let overrides =
        Overrides { seq_len: Some(128), n_heads: Some(8), head_dim: Some(32), ..Overrides::default() };
    let schedule =
        weft_ir::spec::load_schedule(&examples_dir().join("s2attn-roll.toml"), &overrides).unwrap();
    let desc = FusedAttentionDesc::from_schedule(&schedule, 0, 3).unwrap();
    assert_eq!((desc.batch, desc.n_heads, desc.seq_len, desc.head_dim), (3, 8, 128, 32));
    assert_eq!(desc.scale, 1.0 / 32f32.sqrt());
    let ranges: Vec<_> = desc.heads.iter().map(|(r, m)| (r.clone(), m.to_string())).collect();
    assert_eq!(
        ranges,
        [(0..4, "causal & groups(32)".to_string()), (4..8, "roll(16, causal & groups(32))".to_string())]
    );
    assert_eq!(desc, FusedAttentionDesc::from_pattern(&schedule.patterns[0], 128, 3, 32));
    assert!(FusedAttentionDesc::from_schedule(&schedule, 1, 1).is_none());
}
