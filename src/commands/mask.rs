//! `weft mask SPEC --out FILE`: the dense mask as .npy, .png or ASCII.

use std::path::{Path, PathBuf};

use anyhow::bail;
use clap::Args;
use weft_ir::ConcreteMask;

use crate::args::{SpecArgs, pick_layer};
use crate::output::{Input, guard, out_file};
use crate::render;

#[derive(Args, Debug)]
pub struct MaskArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    /// Layer whose pattern to draw (hybrid schedules; default 0).
    #[arg(long, value_name = "I")]
    pub layer: Option<usize>,
    /// Only this head (default: every head).
    #[arg(long, value_name = "J")]
    pub head: Option<usize>,
    /// Output: FILE.npy (uint8 [heads, N, N], or [N, N] with --head), FILE.png (a picture), or - (ASCII on stdout).
    #[arg(long, short, value_name = "FILE")]
    pub out: PathBuf,
}

/// What `weft mask` draws: one or more heads of one layer.
pub struct MaskSelection<'a> {
    pub title: String,
    pub seq_len: usize,
    /// (head index, mask) in head order.
    pub heads: Vec<(usize, &'a ConcreteMask)>,
    /// Whether one head was picked with `--head` (the .npy then drops the head axis).
    pub single_head: bool,
}

pub fn run(args: &MaskArgs) -> anyhow::Result<()> {
    guard(out_file(&args.out, "the mask"), &[Input { path: &args.spec.spec, what: "spec" }])?;
    let schedule = args.spec.load()?;
    let layer = pick_layer(&schedule, args.layer)?;
    let Some(pattern) = schedule.pattern_for_layer(layer) else {
        bail!("layer {layer} has no pattern");
    };
    let n_heads = pattern.n_heads();
    let heads: Vec<(usize, &ConcreteMask)> = match args.head {
        Some(h) => match pattern.head_mask(h) {
            Some(mask) => vec![(h, mask)],
            None => bail!("--head {h} is out of range: the pattern has {n_heads} heads (0..{n_heads})"),
        },
        None => pattern.head_masks().iter().enumerate().collect(),
    };
    let layer_note =
        if schedule.is_hybrid() { format!(", layer {layer} ({})", pattern.name) } else { String::new() };
    let selection = MaskSelection {
        title: format!("{}: N={}, H={}{layer_note}", schedule.name, schedule.dims.seq_len, n_heads),
        seq_len: schedule.dims.seq_len,
        heads,
        single_head: args.head.is_some(),
    };
    write_mask(&selection, &args.out)
}

fn write_mask(selection: &MaskSelection, out: &Path) -> anyhow::Result<()> {
    if out == Path::new("-") {
        return render::ascii::write(selection, &mut std::io::stdout().lock());
    }
    match out.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("npy") => render::npy::write(selection, out),
        Some("png") => render::png::write(selection, out),
        _ => bail!("cannot tell the format of {}: use a .npy or .png file, or - for ASCII", out.display()),
    }?;
    eprintln!("wrote {}", out.display());
    Ok(())
}
