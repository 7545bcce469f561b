//! `weft mask` gives LongLoRA's S2-Attn semantics, checked against masks built
//! by pushing token indices through the operations LongLoRA's code performs,
//! not by restating the mask formula.

mod common;

use common::{ok, read_npy_u8, scratch};

/// `torch.roll(x, shift)` on a 1-D sequence: `out[i] = x[(i - shift) mod n]`.
fn roll(x: &[usize], shift: i64) -> Vec<usize> {
    let n = x.len() as i64;
    (0..n).map(|i| x[(i - shift).rem_euclid(n) as usize]).collect()
}

/// The roll form (LongLoRA's PyTorch path) on one head: roll the token ids by
/// `shift`, reshape into groups of `g`, attend causally inside each group.
/// Returns the allowed (query token, key token) pairs as an N x N matrix.
fn roll_form_mask(n: usize, g: usize, shift: i64) -> Vec<u8> {
    let tokens: Vec<usize> = (0..n).collect();
    let rolled = roll(&tokens, shift);
    let mut mask = vec![0u8; n * n];
    for group in rolled.chunks(g) {
        // Inside a group, position i attends to positions j <= i.
        for (i, &q) in group.iter().enumerate() {
            for &k in &group[..=i] {
                mask[q * n + k] = 1;
            }
        }
    }
    mask
}

/// The flash form (LongLoRA's FlashAttention path) on one head: build the
/// cu_seqlens boundaries the way its code does, then causal attention inside
/// each packed segment.
fn flash_form_mask(n: usize, g: usize, shifted: bool) -> Vec<u8> {
    // torch.arange(0, n, g), plus g/2 on the shifted heads, then the sequence end;
    // the previous row's end (0 here) opens the first segment.
    let mut bounds: Vec<usize> = vec![0];
    bounds.extend((0..n).step_by(g).map(|b| if shifted { b + g / 2 } else { b }).filter(|&b| b > 0 && b < n));
    bounds.push(n);
    let mut mask = vec![0u8; n * n];
    for seg in bounds.windows(2) {
        for q in seg[0]..seg[1] {
            for k in seg[0]..=q {
                mask[q * n + k] = 1;
            }
        }
    }
    mask
}

fn weft_mask(spec: &str, n: usize, heads: usize, dir: &std::path::Path) -> Vec<Vec<u8>> {
    let out = dir.join(format!("{n}.npy"));
    let spec = common::example(spec);
    ok(&[
        "mask",
        spec.to_str().unwrap(),
        "--seq-len",
        &n.to_string(),
        "--heads",
        &heads.to_string(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let (shape, data) = read_npy_u8(&out);
    assert_eq!(shape, vec![heads as u64, n as u64, n as u64]);
    data.chunks(n * n).map(<[u8]>::to_vec).collect()
}

#[test]
fn roll_form_is_longloras_roll_and_reshape() {
    let dir = scratch("roll_form");
    for n in [16, 64, 256] {
        let (g, h) = (n / 4, 4);
        let masks = weft_mask("s2attn-roll.toml", n, h, &dir);
        for (head, mask) in masks.iter().enumerate() {
            // LongLoRA rolls the second half of the heads by -G/2.
            let shift = if head >= h / 2 { -((g / 2) as i64) } else { 0 };
            assert_eq!(mask, &roll_form_mask(n, g, shift), "N = {n}, head {head}");
        }
        // On shifted heads, token 0 sees itself and the last G/2 tokens.
        let row0: Vec<usize> = (0..n).filter(|&k| masks[h - 1][k] == 1).collect();
        let expected: Vec<usize> = std::iter::once(0).chain(n - g / 2..n).collect();
        assert_eq!(row0, expected, "N = {n}");
    }
}

#[test]
fn flash_form_is_longloras_cu_seqlens_packing() {
    let dir = scratch("flash_form");
    for n in [16, 64, 256] {
        let (g, h) = (n / 4, 4);
        let masks = weft_mask("s2attn-flash.toml", n, h, &dir);
        for (head, mask) in masks.iter().enumerate() {
            assert_eq!(mask, &flash_form_mask(n, g, head >= h / 2), "N = {n}, head {head}");
        }
        // No wrap-around: token 0 sees only itself, and nothing sees the future.
        let row0: Vec<usize> = (0..n).filter(|&k| masks[h - 1][k] == 1).collect();
        assert_eq!(row0, vec![0]);
        for q in 0..n {
            assert!((q + 1..n).all(|k| masks[h - 1][q * n + k] == 0), "N = {n}: query {q} sees the future");
        }
        // The forms agree on unshifted heads and differ on shifted ones.
        let roll = weft_mask("s2attn-roll.toml", n, h, &dir);
        assert_eq!(roll[0], masks[0]);
        assert_ne!(roll[h - 1], masks[h - 1]);
    }
}

#[test]
fn ascii_and_npy_agree() {
    let dir = scratch("ascii_npy");
    let spec = common::example("longgen-local-stride.toml");
    let spec = spec.to_str().unwrap();
    let npy = dir.join("m.npy");
    let args = ["--seq-len", "48", "--heads", "3", "--head", "2"];
    ok(&[&["mask", spec], &args[..], &["--out", npy.to_str().unwrap()]].concat());
    let (shape, data) = read_npy_u8(&npy);
    assert_eq!(shape, vec![48, 48]);
    let ascii = ok(&[&["mask", spec], &args[..], &["--out", "-"]].concat());
    let rows: Vec<&str> =
        ascii.lines().filter(|l| !l.starts_with('#') || l.len() == 48 && !l.contains(' ')).collect();
    let from_ascii: Vec<u8> = rows.concat().bytes().map(|b| u8::from(b == b'#')).collect();
    assert_eq!(from_ascii, data);
    assert!(data.contains(&0) && data.contains(&1));
}
