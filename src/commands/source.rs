//! What `weft compile` and `weft inspect kernels` compile: a pattern spec, a
//! hand-written graph, or a model (a `config.json`, or a Hugging Face
//! checkpoint directory holding one), and how: inference or a training step.
//! Both commands build the graph here and hand it to the one pipeline,
//! `weft_compiler::compile`.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use weft_compiler::{CompileOptions, Compiled, GraphPlanOptions, Mode, compile};
use weft_ir::graph::ValidGraph;
use weft_ir::lower::{LowerOptions, lower_pattern};
use weft_ir::model::{LlamaConfig, LoraConfig, ModelGraphOptions, build_llama_graph};
use weft_ir::{Overrides, Schedule, SourceFile};

use crate::args::{SizeArgs, SpecArgs, pick_layer};
use crate::output::Input;

#[derive(Args, Debug, Clone)]
pub struct SourceArgs {
    /// A pattern spec (.toml), a hand-written graph (.sexpr) with inputs q, k, v,
    /// or a model: a Hugging Face config.json, or a checkpoint directory holding one.
    pub input: PathBuf,
    #[command(flatten)]
    pub sizes: SizeArgs,
    /// Compile a training step: the forward pass, then the backward pass (for a pattern, the
    /// gradients of q, k and v; for a model, LongLoRA's LoRA+ step: LoRA on q, k, v, o, the
    /// embedding and norms trainable, the next-token loss).
    #[arg(long, visible_alias = "backward")]
    pub train: bool,
    /// Layer whose pattern to compile (hybrid schedules; default 0). Patterns only.
    #[arg(long, value_name = "I")]
    pub layer: Option<usize>,
    /// Batch size the plan is made for.
    #[arg(long, default_value_t = 1, value_name = "B", value_parser = crate::args::batch)]
    pub batch: usize,
    /// Models: the attention pattern spec of every layer (or the spec's layer schedule);
    /// default: full causal attention.
    #[arg(long, value_name = "SPEC")]
    pub pattern: Option<PathBuf>,
    /// Models with --train: the LoRA rank (alpha is twice the rank, as in LongLoRA).
    #[arg(long, default_value_t = 8, value_name = "R", value_parser = crate::args::lora_rank)]
    pub lora_rank: usize,
}

/// Models are compiled at this sequence length unless `--seq-len` says otherwise.
const MODEL_SEQ_LEN: usize = 256;

/// What the input path names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceKind {
    Pattern,
    Graph,
    Model,
}

impl SourceArgs {
    pub fn kind(&self) -> SourceKind {
        let path = &self.input;
        match path.extension().and_then(|e| e.to_str()) {
            Some("sexpr") => SourceKind::Graph,
            Some("json") => SourceKind::Model,
            _ if path.is_dir() => SourceKind::Model,
            _ => SourceKind::Pattern,
        }
    }

    /// The files this source reads, for the output guard.
    pub fn inputs(&self) -> Vec<Input<'_>> {
        let what = match self.kind() {
            SourceKind::Pattern => "spec",
            SourceKind::Graph => "graph",
            SourceKind::Model if self.input.is_dir() => "input checkpoint",
            SourceKind::Model => "model config",
        };
        let mut inputs = vec![Input { path: &self.input, what }];
        inputs.extend(self.pattern.as_deref().map(|path| Input { path, what: "pattern spec" }));
        inputs
    }

    /// The graph to compile.
    pub fn graph(&self) -> anyhow::Result<ValidGraph> {
        match self.kind() {
            SourceKind::Graph => read_sexpr(&self.input),
            SourceKind::Pattern => {
                let spec = SpecArgs { spec: self.input.clone(), sizes: self.sizes.clone() };
                pattern_graph(&spec, self.layer, self.batch)
            }
            SourceKind::Model => self.model_graph(),
        }
    }

    /// The pipeline's options: training mode per the flags, plan options for
    /// `plan` (a device's, or the WebGPU defaults when none is open).
    pub fn options(&self, plan: GraphPlanOptions) -> CompileOptions {
        let mode = match (self.train, self.kind()) {
            (false, _) => Mode::Inference,
            // An attention graph's step: the gradients of its inputs.
            (true, SourceKind::Pattern | SourceKind::Graph) => {
                Mode::Training { wrt: ["q", "k", "v"].map(String::from).to_vec(), seeds: Vec::new() }
            }
            // A model's step, as `weft train` runs it: every trainable
            // parameter, seeded by the loss alone.
            (true, SourceKind::Model) => Mode::Training { wrt: Vec::new(), seeds: vec!["loss".to_string()] },
        };
        CompileOptions { mode, plan, ..CompileOptions::default() }
    }

    /// Builds the graph and runs the pipeline on it.
    /// Reads the input, then asks `plan` for the plan options: a bad input is
    /// refused before the adapter is opened (and before anything is printed).
    pub fn compile(&self, plan: impl FnOnce() -> GraphPlanOptions) -> anyhow::Result<Compiled> {
        let graph = self.graph()?;
        let name = graph.name().to_string();
        compile(graph, &self.options(plan())).with_context(|| format!("compiling `{name}`"))
    }

    fn model_graph(&self) -> anyhow::Result<ValidGraph> {
        let config_path =
            if self.input.is_dir() { self.input.join("config.json") } else { self.input.clone() };
        let (config, unknown) = LlamaConfig::from_file_with_unknown_keys(&config_path)?;
        warn_unknown_keys(&config_path, &unknown);
        if self.input.is_dir() {
            // Before the graph is built: the config's layer count must be the checkpoint's.
            weft_runtime::io::check_layer_count(&self.input, &config)?;
        }
        if self.layer.is_some() {
            bail!("--layer picks a layer of a pattern spec; a model compiles every layer");
        }
        for (flag, given) in [("--heads", self.sizes.heads), ("--layers", self.sizes.layers)] {
            if given.is_some() {
                bail!(
                    "{flag} comes from the model's config ({}); it cannot be overridden",
                    config_path.display()
                );
            }
        }
        if self.sizes.head_dim.is_some() {
            bail!("--head-dim comes from the model's config ({})", config_path.display());
        }
        let t = self.sizes.seq_len.unwrap_or(MODEL_SEQ_LEN);
        let schedule = model_schedule(self.pattern.as_deref(), t, &config)?;
        let opts = if self.train {
            if self.lora_rank == 0 {
                bail!("--lora-rank must be at least 1");
            }
            ModelGraphOptions {
                lora: Some(LoraConfig {
                    rank: self.lora_rank,
                    alpha: 2.0 * self.lora_rank as f64,
                    target_modules: ["q_proj", "k_proj", "v_proj", "o_proj"].map(String::from).to_vec(),
                    use_rslora: false,
                }),
                train_embed: true,
                train_norm: true,
                loss: true,
                logits_output: false,
                ..ModelGraphOptions::new(self.batch, t)
            }
        } else {
            ModelGraphOptions::new(self.batch, t)
        };
        Ok(build_llama_graph(&config, schedule.as_ref(), &opts)?)
    }
}

/// Lists the keys of a model or adapter config that weft does not know and
/// ignored (docs/model-fields.md says which keys weft reads or refuses).
pub fn warn_unknown_keys(file: &Path, keys: &[String]) {
    if !keys.is_empty() {
        errln!(
            "warning: {}: ignoring keys weft does not know: {} (see docs/model-fields.md)",
            file.display(),
            keys.join(", ")
        );
    }
}

/// A graph read from an s-expression file.
pub fn read_sexpr(path: &Path) -> anyhow::Result<ValidGraph> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read graph {}", path.display()))?;
    let file = SourceFile::new(path.display().to_string(), text);
    let graph = weft_ir::graph::parse_sexpr(&file).map_err(|e| match e.excerpt(&file) {
        Some(excerpt) => anyhow::anyhow!("{e}\n{excerpt}"),
        None => anyhow::anyhow!("{e}"),
    })?;
    Ok(graph.validate()?)
}

/// The reference graph of a spec's pattern, or a graph read from an s-expression file.
pub fn pattern_graph(spec: &SpecArgs, layer: Option<usize>, batch: usize) -> anyhow::Result<ValidGraph> {
    if spec.spec.extension().is_some_and(|e| e == "sexpr") {
        return read_sexpr(&spec.spec);
    }
    let schedule = spec.load()?;
    let layer = pick_layer(&schedule, layer)?;
    let pattern =
        schedule.pattern_for_layer(layer).with_context(|| format!("layer {layer} has no pattern"))?;
    let d = &schedule.dims;
    Ok(lower_pattern(pattern, &LowerOptions::new(batch, d.seq_len, d.head_dim))?)
}

/// The layer schedule of the pattern spec `spec` for a model of `config` at
/// sequence length `t` (its heads, layers and head dim); `None` without a
/// spec (every layer causal).
pub fn model_schedule(
    spec: Option<&Path>,
    t: usize,
    config: &LlamaConfig,
) -> anyhow::Result<Option<Schedule>> {
    let Some(spec) = spec else { return Ok(None) };
    let overrides = Overrides {
        seq_len: Some(t),
        n_heads: Some(config.num_attention_heads),
        n_layers: Some(config.num_hidden_layers),
        head_dim: Some(config.head_dim),
    };
    Ok(Some(weft_ir::spec::load_schedule(spec, &overrides)?))
}
