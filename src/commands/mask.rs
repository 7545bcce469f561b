//! `weft mask SPEC --out FILE`: the dense mask as .npy, .png or ASCII.

use std::path::{Path, PathBuf};

use anyhow::bail;
use clap::Args;
use weft_ir::ConcreteMask;
use weft_ir::limits;

use crate::args::{SpecArgs, pick_layer};
use crate::output::{Input, guard, out_text};
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
    /// Write a dense output larger than 1 GiB (or a picture that counts that many pairs).
    #[arg(long)]
    pub force: bool,
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
    guard(out_text(&args.out, "the mask"), &[Input { path: &args.spec.spec, what: "spec" }])?;
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
    if !args.force {
        check_output_size(&selection, &args.out)?;
    }
    write_mask(&selection, &args.out)
}

/// Refuses an output whose size (or, for a picture, whose pair-by-pair work)
/// passes the dense-output bound, before a byte is computed.
fn check_output_size(selection: &MaskSelection, out: &Path) -> anyhow::Result<()> {
    let (h, n) = (selection.heads.len() as u64, selection.seq_len as u64);
    let is_png = out.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case("png"));
    let (factors, what) = if out == Path::new("-") {
        ([h, n, n + 1], "the ASCII mask (heads × N × (N + 1) bytes)")
    } else if is_png {
        let tokens = render::png::tokens_per_pixel(selection.seq_len, selection.heads.len()) as u64;
        ([h, n, tokens], "the pairs the picture may count one by one (heads × N × N per pixel)")
    } else {
        ([h, n, n], "the dense mask (heads × N × N bytes)")
    };
    limits::check_product(&factors, what, &limits::DENSE_OUTPUT_BYTES)?;
    Ok(())
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
    errln!("wrote {}", out.display());
    Ok(())
}
