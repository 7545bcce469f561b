//! `weft attn SPEC --input IN.safetensors --out OUT.safetensors [--unfused]`:
//! run a pattern's attention on the GPU.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use weft_compiler::{AttentionPlanOptions, CompileOptions, Mode, OptimizeOptions, compile, fuse_attention};
use weft_ir::limits::{self, Origin};
use weft_runtime::io::{HostTensor, TensorFile, save};
use weft_runtime::{Executor, FusedPlan};

use crate::args::{SizeArgs, SpecArgs};
use crate::commands::source::pattern_graph;
use crate::commands::tune::kernel_choice;
use crate::output::{Input, guard, out_file, tuning_cache_path};

#[derive(Args, Debug)]
pub struct AttnArgs {
    /// Pattern spec (.toml); N, H and D come from the input tensors.
    pub spec: PathBuf,
    /// safetensors file with q, k, v (f32, [B, H, N, D]) and optionally do (the output's gradient).
    #[arg(long, value_name = "IN")]
    pub input: PathBuf,
    /// safetensors file to write: o, and dq, dk, dv when the input holds do.
    #[arg(long, short, value_name = "OUT")]
    pub out: PathBuf,
    /// Run the unfused reference graph (roll, reshape, dense attention) op by op instead; with `do`,
    /// its backward pass is the one autodiff derives, with the N x N probabilities materialized.
    #[arg(long)]
    pub unfused: bool,
    /// Layer whose pattern to use (hybrid schedules; default 0).
    #[arg(long, value_name = "I")]
    pub layer: Option<usize>,
}

pub fn run(args: &AttnArgs) -> anyhow::Result<()> {
    let cache = tuning_cache_path();
    let mut inputs =
        vec![Input { path: &args.spec, what: "spec" }, Input { path: &args.input, what: "input tensors" }];
    inputs.extend(cache.as_deref().map(|path| Input { path, what: "tuning cache" }));
    guard(out_file(&args.out, "the attention outputs"), &inputs)?;
    let file = TensorFile::load(&args.input)?;
    let q = file.f32("q")?;
    let [b, h, n, d] = q.shape[..] else {
        bail!("tensor `q` in {} has shape {:?}; expected [B, H, N, D]", args.input.display(), q.shape);
    };
    // The sizes come from the file: name it and the tensor, not the spec they are resolved into.
    let file_name = args.input.display().to_string();
    for (axis, size, limit) in [
        ("B", b, &limits::BATCH),
        ("H", h, &limits::HEADS),
        ("N", n, &limits::SEQ_LEN),
        ("D", d, &limits::HEAD_DIM),
    ] {
        limits::check_size(size, Origin::tensor(axis, "q", &file_name), limit)?;
    }
    crate::memory::attention_tensors([b, h, n, d], 16, "the attention's tensors")?;
    let mut inputs = HashMap::from([("q".to_string(), q.data)]);
    for name in ["k", "v"] {
        let t = file.f32(name)?;
        if t.shape != [b, h, n, d] {
            bail!("tensor `{name}` has shape {:?}; expected {:?} like q", t.shape, [b, h, n, d]);
        }
        inputs.insert(name.to_string(), t.data);
    }
    let backward = file.contains("do");
    if backward {
        let t = file.f32("do")?;
        if t.shape != [b, h, n, d] {
            bail!("tensor `do` has shape {:?}; expected {:?} like the output o", t.shape, [b, h, n, d]);
        }
        inputs.insert("do".to_string(), t.data);
    }

    // The pattern is resolved at the sizes of the tensors given.
    let sizes = SizeArgs { seq_len: Some(n), heads: Some(h), layers: None, head_dim: Some(d) };
    let spec = SpecArgs { spec: args.spec.clone(), sizes };
    let reference = pattern_graph(&spec, args.layer, b)?;
    let gpu = crate::gpu::open()?;
    errln!("adapter: {}", gpu.adapter_description());
    let limits = gpu.limits();
    let outputs = if args.unfused {
        // As written, op by op; with `do`, autodiff's backward pass.
        let mode = if backward {
            Mode::Training { wrt: ["q", "k", "v"].map(String::from).to_vec(), seeds: Vec::new() }
        } else {
            Mode::Inference
        };
        let opts = CompileOptions {
            mode,
            optimize: false,
            plan: super::tune::plan_options(&gpu),
            ..Default::default()
        };
        let compiled = compile(reference, &opts)?;
        Executor::new(gpu).run(&compiled.plan, &inputs)
    } else {
        // Tiles, rows per invocation and runtime checks: `weft tune`'s choice
        // for this adapter if there is one, else the defaults.
        let choice = kernel_choice(&gpu, d);
        errln!("{}", choice.describe(backward, d));
        let (config, _) = choice.config(backward, d);
        let base = AttentionPlanOptions { backward, limits, ..AttentionPlanOptions::default() };
        let fused = fuse_attention(reference, &OptimizeOptions::default())?;
        let plan = FusedPlan::new(&fused.desc, &config.plan_options(&base), config.checks)?;
        Executor::new(gpu).run(&plan, &inputs)
    }
    .context("running the plan on the GPU")?;
    let shape = vec![b, h, n, d];
    let mut tensors = BTreeMap::new();
    for name in ["o", "dq", "dk", "dv"] {
        if let Some(data) = outputs.get(name) {
            tensors.insert(name.to_string(), HostTensor { shape: shape.clone(), data: data.clone() });
        }
    }
    save(&args.out, &tensors)?;
    errln!("wrote {} ({})", args.out.display(), tensors.keys().cloned().collect::<Vec<_>>().join(", "));
    Ok(())
}
