// n3_attention_scores: attention scores; mask `causal & local_stride(2, 1, 3, h)`, head_offset 1, scale 0.3f
@group(0) @binding(0) var<storage, read> q: array<f32>;
fn ld_q(i: u32) -> f32 { return q[i]; }
@group(0) @binding(1) var<storage, read> k: array<f32>;
fn ld_k(i: u32) -> f32 { return k[i]; }
@group(0) @binding(2) var<storage, read_write> p: array<f32>;
fn st_p(i: u32, value: f32) { p[i] = value; }
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = (wid.y * 8u + wid.x) * 64u + lid;
    if (i >= 512u) {
        return;
    }
    let r = 0u + i / 8u;
    let key = i % 8u;
    let qo = r * 6u;
    let ko = ((r / 8u) * 8u + key) * 6u;
    var acc = 0.0;
    for (var j = 0u; j < 6u; j++) {
        acc += ld_q(qo + j) * ld_k(ko + j);
    }
    st_p(i, acc * 0.3f);
}

// n3_attention_softmax: attention masked softmax; mask `causal & local_stride(2, 1, 3, h)`, head_offset 1, scale 0.3f
@group(0) @binding(0) var<storage, read_write> p: array<f32>;
fn ld_p(i: u32) -> f32 { return p[i]; }
fn st_p(i: u32, value: f32) { p[i] = value; }
// Floor division and modulo (DESIGN.md): the quotient rounds towards negative
// infinity and the remainder has the sign of the divisor.
fn fdiv(a: i32, b: i32) -> i32 {
    let t = a / b;
    return select(t, t - 1, (a % b != 0) && ((a < 0) != (b < 0)));
}

fn fmod(a: i32, b: i32) -> i32 {
    let r = a % b;
    return select(r, r + b, (r != 0) && ((r < 0) != (b < 0)));
}

// heads 1..5: causal & local_stride(2, 1, 3, h)
fn mask_0(h: i32, q: i32, k: i32) -> bool {
    return ((k <= q) && ((fdiv(q, 2) - fdiv(k, 2) < 1) || (fmod(fdiv(k, 2) + h, 3) == 0)));
}

fn mask_allows(h: i32, q: i32, k: i32) -> bool {
    return mask_0(h, q, k);
}
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = (wid.y * 1u + wid.x) * 64u + lid;
    if (i >= 64u) {
        return;
    }
    let r = 0u + i;
    let h = i32(1u + (r / 8u) % 4u);
    let q = i32(r % 8u);
    let base = i * 8u;
    var m = 0.0;
    var seen = false;
    for (var key = 0u; key < 8u; key++) {
        if (mask_allows(h, q, i32(key))) {
            let s = ld_p(base + key);
            if (!seen || s > m) {
                m = s;
            }
            seen = true;
        }
    }
    var total = 0.0;
    for (var key = 0u; key < 8u; key++) {
        var e = 0.0;
        if (mask_allows(h, q, i32(key))) {
            e = exp(ld_p(base + key) - m);
        }
        st_p(base + key, e);
        total += e;
    }
    // A query that may see no key outputs zeros.
    let inv = select(0.0, 1.0 / total, total > 0.0);
    for (var key = 0u; key < 8u; key++) {
        st_p(base + key, ld_p(base + key) * inv);
    }
}

// n3_attention_pv: attention P·V; mask `causal & local_stride(2, 1, 3, h)`, head_offset 1, scale 0.3f
@group(0) @binding(0) var<storage, read> p: array<f32>;
fn ld_p(i: u32) -> f32 { return p[i]; }
@group(0) @binding(1) var<storage, read> v: array<f32>;
fn ld_v(i: u32) -> f32 { return v[i]; }
@group(0) @binding(2) var<storage, read_write> o: array<f32>;
fn st_o(i: u32, value: f32) { o[i] = value; }
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = (wid.y * 6u + wid.x) * 64u + lid;
    if (i >= 384u) {
        return;
    }
    let r = 0u + i / 6u;
    let c = i % 6u;
    let po = (i / 6u) * 8u;
    let vo = (r / 8u) * 48u + c;
    var acc = 0.0;
    for (var key = 0u; key < 8u; key++) {
        acc += ld_p(po + key) * ld_v(vo + key * 6u);
    }
    st_o(r * 6u + c, acc);
}
