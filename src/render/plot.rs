//! Line plots as PNG: `weft train`'s `loss.png` (train and eval loss
//! against the step), with axes labelled by their ranges.

use std::path::Path;

use image::{ImageFormat, Rgb, RgbImage};

use super::png::draw_text;
use crate::output::write_atomically;

const WIDTH: u32 = 720;
const HEIGHT: u32 = 420;
const LEFT: u32 = 70;
const RIGHT: u32 = 20;
const TOP: u32 = 34;
const BOTTOM: u32 = 40;
const INK: Rgb<u8> = Rgb([20, 20, 20]);
const GRID: Rgb<u8> = Rgb([225, 225, 225]);
/// One colour per series, in order.
const COLOURS: [Rgb<u8>; 7] = [
    Rgb([16, 38, 92]),
    Rgb([200, 80, 20]),
    Rgb([30, 140, 60]),
    Rgb([150, 30, 150]),
    Rgb([0, 150, 170]),
    Rgb([190, 30, 40]),
    Rgb([120, 120, 120]),
];

/// A named series of (x, y) points.
pub struct Series<'a> {
    pub name: &'a str,
    pub points: &'a [(f64, f64)],
}

/// Draws `series` on one pair of axes with `title`; non-finite points are skipped.
pub fn draw(title: &str, x_label: &str, series: &[Series]) -> RgbImage {
    let mut image = RgbImage::from_pixel(WIDTH, HEIGHT, Rgb([255, 255, 255]));
    let finite =
        || series.iter().flat_map(|s| s.points.iter()).filter(|(x, y)| x.is_finite() && y.is_finite());
    let (mut x0, mut x1, mut y0, mut y1) =
        (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY);
    for &(x, y) in finite() {
        (x0, x1, y0, y1) = (x0.min(x), x1.max(x), y0.min(y), y1.max(y));
    }
    if !x0.is_finite() {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    if x1 - x0 < 1e-12 {
        x1 = x0 + 1.0;
    }
    let pad = ((y1 - y0) * 0.05).max(1e-6);
    let (y0, y1) = (y0 - pad, y1 + pad);
    let (w, h) = ((WIDTH - LEFT - RIGHT) as f64, (HEIGHT - TOP - BOTTOM) as f64);
    let px = |x: f64| LEFT as f64 + (x - x0) / (x1 - x0) * w;
    let py = |y: f64| TOP as f64 + (y1 - y) / (y1 - y0) * h;
    for i in 0..=4 {
        let y = TOP + (h as u32) * i / 4;
        for x in LEFT..WIDTH - RIGHT {
            image.put_pixel(x, y, GRID);
        }
        let value = y1 - (y1 - y0) * i as f64 / 4.0;
        draw_text(&mut image, 4, y.saturating_sub(4), &format!("{value:.3}"), 1, INK);
    }
    for y in TOP..=HEIGHT - BOTTOM {
        image.put_pixel(LEFT, y, INK);
    }
    for x in LEFT..WIDTH - RIGHT {
        image.put_pixel(x, HEIGHT - BOTTOM, INK);
    }
    draw_text(&mut image, LEFT, HEIGHT - BOTTOM + 8, &format!("{x0:.0}"), 1, INK);
    let end = format!("{x1:.0}");
    draw_text(&mut image, WIDTH - RIGHT - 8 * end.len() as u32, HEIGHT - BOTTOM + 8, &end, 1, INK);
    draw_text(&mut image, WIDTH / 2 - 4 * x_label.len() as u32, HEIGHT - BOTTOM + 20, x_label, 1, INK);
    draw_text(&mut image, LEFT, 8, title, 2, INK);
    // The legend: one row at the top right while it clears the title, else
    // a column inside the plot's top right corner.
    let row_width: u32 = series.iter().map(|s| 8 * s.name.len() as u32 + 24).sum();
    let title_end = LEFT + 16 * title.len() as u32 + 16;
    let in_row = WIDTH - RIGHT >= title_end + row_width;
    let widest = series.iter().map(|s| 8 * s.name.len() as u32 + 24).max().unwrap_or(0);
    let mut legend_x = WIDTH - RIGHT;
    for (i, s) in series.iter().enumerate().rev() {
        let colour = &COLOURS[i % COLOURS.len()];
        let (x, y) = if in_row {
            legend_x = legend_x.saturating_sub(8 * s.name.len() as u32 + 24);
            (legend_x, 10)
        } else {
            (WIDTH - RIGHT - widest, TOP + 6 + 14 * i as u32)
        };
        for dx in 0..12 {
            for dy in 0..3 {
                image.put_pixel(x + dx, y + 3 + dy, *colour);
            }
        }
        draw_text(&mut image, x + 16, y, s.name, 1, *colour);
    }
    for (i, s) in series.iter().enumerate() {
        let colour = &COLOURS[i % COLOURS.len()];
        let points: Vec<(f64, f64)> = s
            .points
            .iter()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .map(|&(x, y)| (px(x), py(y)))
            .collect();
        for pair in points.windows(2) {
            line(&mut image, pair[0], pair[1], *colour);
        }
        for &(x, y) in &points {
            dot(&mut image, x, y, *colour);
        }
    }
    image
}

/// Writes the plot to `path` atomically.
pub fn write(path: &Path, title: &str, x_label: &str, series: &[Series]) -> anyhow::Result<()> {
    let image = draw(title, x_label, series);
    write_atomically(path, |w| Ok(image.write_to(w, ImageFormat::Png)?))
}

fn put(image: &mut RgbImage, x: f64, y: f64, colour: Rgb<u8>) {
    if x >= 0.0 && y >= 0.0 && (x as u32) < image.width() && (y as u32) < image.height() {
        image.put_pixel(x as u32, y as u32, colour);
    }
}

fn line(image: &mut RgbImage, (ax, ay): (f64, f64), (bx, by): (f64, f64), colour: Rgb<u8>) {
    let steps = (bx - ax).abs().max((by - ay).abs()).ceil().max(1.0) as usize;
    for i in 0..=steps {
        let t = i as f64 / steps as f64;
        put(image, ax + (bx - ax) * t, ay + (by - ay) * t, colour);
    }
}

fn dot(image: &mut RgbImage, x: f64, y: f64, colour: Rgb<u8>) {
    for dx in -1..=1 {
        for dy in -1..=1 {
            put(image, x + dx as f64, y + dy as f64, colour);
        }
    }
}
