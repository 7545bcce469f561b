//! PNG masks: heads tiled in a grid, allowed pairs dark, with a title and legend.
//!
//! Each pixel covers a square block of (query, key) pairs and is shaded by the
//! fraction of them that are allowed. The fraction comes from tile
//! classification, so only blocks that are partially allowed are counted pair by
//! pair, and a picture of N = 128K stays cheap.

use std::collections::HashMap;
use std::path::Path;

use image::{ImageFormat, Rgb, RgbImage};
use weft_ir::ConcreteMask;
use weft_ir::mask::{TileClass, classify_tile};

use crate::commands::mask::MaskSelection;
use crate::output::write_atomically;

const MARGIN: u32 = 12;
const GAP: u32 = 14;
const LABEL: u32 = 12;
const BACKGROUND: Rgb<u8> = Rgb([255, 255, 255]);
const INK: Rgb<u8> = Rgb([20, 20, 20]);
const FRAME: Rgb<u8> = Rgb([170, 170, 170]);
/// Colour of an allowed pair; masked pairs are white.
const ALLOWED: Rgb<u8> = Rgb([16, 38, 92]);

pub fn write(selection: &MaskSelection, path: &Path) -> anyhow::Result<()> {
    let image = draw(selection);
    write_atomically(path, |w| Ok(image.write_to(w, ImageFormat::Png)?))
}

/// How a panel maps tokens to pixels.
#[derive(Clone, Copy)]
struct Scale {
    /// Tokens per pixel side (>= 1).
    tokens: usize,
    /// Pixels per token side (>= 1, > 1 only when tokens == 1).
    pixels: u32,
    /// Panel side in pixels.
    side: u32,
}

impl Scale {
    fn new(n: usize, target: u32) -> Scale {
        if n as u32 <= target {
            let pixels = (target / n.max(1) as u32).max(1);
            Scale { tokens: 1, pixels, side: n as u32 * pixels }
        } else {
            let tokens = n.div_ceil(target as usize);
            Scale { tokens, pixels: 1, side: n.div_ceil(tokens) as u32 }
        }
    }
}

/// Panel columns and the panel side aimed for, given the number of heads drawn.
fn layout(n_heads: usize) -> (u32, u32) {
    let cols = (n_heads.max(1) as f64).sqrt().ceil() as u32;
    let target = if n_heads <= 1 { 768 } else { (1536 / cols).clamp(96, 384) };
    (cols, target)
}

/// Query/key pairs one pixel side covers: a partially allowed pixel counts its pairs one by one.
pub fn tokens_per_pixel(n: usize, n_heads: usize) -> usize {
    Scale::new(n, layout(n_heads).1).tokens
}

pub fn draw(selection: &MaskSelection) -> RgbImage {
    let n = selection.seq_len;
    let n_heads = selection.heads.len().max(1);
    let (cols, target) = layout(n_heads);
    let rows = (n_heads as u32).div_ceil(cols);
    let scale = Scale::new(n, target);

    let legend = format!(
        "rows: queries 0..{n}, top to bottom; columns: keys; dark = attends{}",
        if scale.tokens > 1 {
            format!("; 1 px = {0}x{0} pairs, shaded by the allowed fraction", scale.tokens)
        } else {
            String::new()
        }
    );
    let grid_width = cols * scale.side + (cols - 1) * GAP;
    let text_width = (selection.title.len() as u32 * 16).max(legend.len() as u32 * 8);
    let width = 2 * MARGIN + grid_width.max(text_width);
    let header = 16 + 6 + 8 + 10;
    let height = 2 * MARGIN + header + rows * (LABEL + scale.side) + (rows - 1) * GAP;
    let mut image = RgbImage::from_pixel(width, height, BACKGROUND);

    draw_text(&mut image, MARGIN, MARGIN, &selection.title, 2, INK);
    draw_text(&mut image, MARGIN, MARGIN + 22, &legend, 1, INK);

    let mut panels: HashMap<&ConcreteMask, Vec<f32>> = HashMap::new();
    for (slot, &(head, mask)) in selection.heads.iter().enumerate() {
        let (col, row) = (slot as u32 % cols, slot as u32 / cols);
        let x0 = MARGIN + col * (scale.side + GAP);
        let y0 = MARGIN + header + row * (LABEL + scale.side + GAP);
        let max_chars = (scale.side / 8).max(4) as usize;
        draw_text(&mut image, x0, y0, &truncate(&format!("head {head}: {mask}"), max_chars), 1, INK);
        let panel = panels.entry(mask).or_insert_with(|| fractions(mask, n, scale));
        paint_panel(&mut image, x0, y0 + LABEL, scale, panel);
    }
    image
}

/// The allowed fraction of each pixel's block of pairs, row-major.
fn fractions(mask: &ConcreteMask, n: usize, scale: Scale) -> Vec<f32> {
    let side = n.div_ceil(scale.tokens);
    let mut out = Vec::with_capacity(side * side);
    for py in 0..side {
        let q = py * scale.tokens..((py + 1) * scale.tokens).min(n);
        for px in 0..side {
            let k = px * scale.tokens..((px + 1) * scale.tokens).min(n);
            out.push(match classify_tile(mask, n, q.clone(), k.clone()) {
                TileClass::Empty => 0.0,
                TileClass::Full => 1.0,
                TileClass::Partial => {
                    let area = (q.len() * k.len()) as f32;
                    let allowed = q
                        .clone()
                        .flat_map(|qq| k.clone().map(move |kk| (qq, kk)))
                        .filter(|&(qq, kk)| mask.allows(n as i64, qq as i64, kk as i64))
                        .count();
                    allowed as f32 / area
                }
            });
        }
    }
    out
}

fn paint_panel(image: &mut RgbImage, x0: u32, y0: u32, scale: Scale, fractions: &[f32]) {
    let side_tokens = (scale.side / scale.pixels) as usize;
    for y in 0..scale.side {
        for x in 0..scale.side {
            let cell = (y / scale.pixels) as usize * side_tokens + (x / scale.pixels) as usize;
            let f = fractions.get(cell).copied().unwrap_or(0.0);
            image.put_pixel(x0 + x, y0 + y, blend(BACKGROUND, ALLOWED, f));
        }
    }
    // A frame, so that an all-masked head is still visible as a square.
    for i in 0..scale.side {
        for (x, y) in
            [(x0 + i, y0), (x0 + i, y0 + scale.side - 1), (x0, y0 + i), (x0 + scale.side - 1, y0 + i)]
        {
            if image.get_pixel(x, y) == &BACKGROUND {
                image.put_pixel(x, y, FRAME);
            }
        }
    }
}

fn blend(a: Rgb<u8>, b: Rgb<u8>, t: f32) -> Rgb<u8> {
    let mix = |x: u8, y: u8| (x as f32 + (y as f32 - x as f32) * t.clamp(0.0, 1.0)).round() as u8;
    Rgb([mix(a[0], b[0]), mix(a[1], b[1]), mix(a[2], b[2])])
}

fn truncate(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        text.to_string()
    } else {
        let mut t: String = text.chars().take(max_chars.saturating_sub(3)).collect();
        t.push_str("...");
        t
    }
}

/// Draws ASCII text with the public-domain 8x8 bitmap font, magnified `scale` times.
pub(crate) fn draw_text(image: &mut RgbImage, x: u32, y: u32, text: &str, scale: u32, colour: Rgb<u8>) {
    for (i, ch) in text.chars().enumerate() {
        let glyph = font8x8::legacy::BASIC_LEGACY.get(ch as usize).copied().unwrap_or([0; 8]);
        for (row, bits) in glyph.iter().enumerate() {
            for col in 0..8u32 {
                if bits & (1 << col) == 0 {
                    continue;
                }
                for dy in 0..scale {
                    for dx in 0..scale {
                        let px = x + (i as u32 * 8 + col) * scale + dx;
                        let py = y + row as u32 * scale + dy;
                        if px < image.width() && py < image.height() {
                            image.put_pixel(px, py, colour);
                        }
                    }
                }
            }
        }
    }
}
