// n7_cached_attention_partials: cached attention partials, 64 slots per invocation; scale 0.35f
@group(0) @binding(0) var<storage, read> q: array<f32>;
fn ld_q(i: u32) -> f32 { return q[i]; }
@group(0) @binding(1) var<storage, read> kc: array<f32>;
fn ld_kc(i: u32) -> f32 { return kc[i]; }
@group(0) @binding(2) var<storage, read> vc: array<f32>;
fn ld_vc(i: u32) -> f32 { return vc[i]; }
@group(0) @binding(3) var<storage, read> slots: array<i32>;
fn ld_slots(i: u32) -> i32 { return slots[i]; }
@group(0) @binding(4) var<storage, read> pos: array<i32>;
fn ld_pos(i: u32) -> i32 { return pos[i]; }
@group(0) @binding(5) var<storage, read_write> part: array<f32>;
fn st_part(i: u32, value: f32) { part[i] = value; }
var<private> n_seq: i32;
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

// heads 0..2: causal & (sink(3) | window(20))
fn mask_0(h: i32, q: i32, k: i32) -> bool {
    return ((k <= q) && ((k < 3) || (abs(q - k) < 20)));
}

// heads 2..4: roll(3, causal & groups(8))
fn mask_1(h: i32, q: i32, k: i32) -> bool {
    let q0 = fmod(q - 3, n_seq);
    let k0 = fmod(k - 3, n_seq);
    return ((k0 <= q0) && (fdiv(q0, 8) == fdiv(k0, 8)));
}

fn mask_allows(h: i32, q: i32, k: i32) -> bool {
    if (h < 2) {
        return mask_0(h, q, k);
    }
    return mask_1(h, q, k);
}
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = (wid.y * 1u + wid.x) * 64u + lid;
    if (i >= 16u) {
        return;
    }
    let chunk = i % 2u;
    let head = (i / 2u) % 4u;
    let row = i / (2u * 4u);
    let kv = head / 2u;
    let p = ld_pos(row);
    n_seq = p + 1;
    let qo = (row * 4u + head) * 8u;
    var m = 0.0;
    var l = 0.0;
    var acc: array<f32, 6>;
    for (var j = 0u; j < 6u; j++) {
        acc[j] = 0.0;
    }
    let first = chunk * 64u;
    let last = min(first + 64u, 70u);
    for (var slot = first; slot < last; slot++) {
        let at = (row * 2u + kv) * 70u + slot;
        let s = ld_slots(at);
        if (s < 0 || s >= p || !mask_allows(i32(head), p, s)) {
            continue;
        }
        var score = 0.0;
        for (var j = 0u; j < 8u; j++) {
            score += ld_q(qo + j) * ld_kc(at * 8u + j);
        }
        score *= 0.35f;
        // Online softmax: rescale what is summed so far to the new max.
        let m_new = select(score, max(m, score), l > 0.0);
        let old = select(0.0, exp(m - m_new), l > 0.0);
        let e = exp(score - m_new);
        l = l * old + e;
        for (var j = 0u; j < 6u; j++) {
            acc[j] = acc[j] * old + e * ld_vc(at * 6u + j);
        }
        m = m_new;
    }
    let po = i * 8u;
    st_part(po, m);
    st_part(po + 1u, l);
    for (var j = 0u; j < 6u; j++) {
        st_part(po + 2u + j, acc[j]);
    }
}

// n7_cached_attention_combine: cached attention: combine 2 chunks and the new key; scale 0.35f
@group(0) @binding(0) var<storage, read> q: array<f32>;
fn ld_q(i: u32) -> f32 { return q[i]; }
@group(0) @binding(1) var<storage, read> kn: array<f32>;
fn ld_kn(i: u32) -> f32 { return kn[i]; }
@group(0) @binding(2) var<storage, read> vn: array<f32>;
fn ld_vn(i: u32) -> f32 { return vn[i]; }
@group(0) @binding(3) var<storage, read> pos: array<i32>;
fn ld_pos(i: u32) -> i32 { return pos[i]; }
@group(0) @binding(4) var<storage, read> part: array<f32>;
fn ld_part(i: u32) -> f32 { return part[i]; }
@group(0) @binding(5) var<storage, read_write> o: array<f32>;
fn st_o(i: u32, value: f32) { o[i] = value; }
var<private> n_seq: i32;
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

// heads 0..2: causal & (sink(3) | window(20))
fn mask_0(h: i32, q: i32, k: i32) -> bool {
    return ((k <= q) && ((k < 3) || (abs(q - k) < 20)));
}

// heads 2..4: roll(3, causal & groups(8))
fn mask_1(h: i32, q: i32, k: i32) -> bool {
    let q0 = fmod(q - 3, n_seq);
    let k0 = fmod(k - 3, n_seq);
    return ((k0 <= q0) && (fdiv(q0, 8) == fdiv(k0, 8)));
}

fn mask_allows(h: i32, q: i32, k: i32) -> bool {
    if (h < 2) {
        return mask_0(h, q, k);
    }
    return mask_1(h, q, k);
}
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = (wid.y * 1u + wid.x) * 64u + lid;
    if (i >= 48u) {
        return;
    }
    let col = i % 6u;
    let head = (i / 6u) % 4u;
    let row = i / (6u * 4u);
    let kv = head / 2u;
    let p = ld_pos(row);
    n_seq = p + 1;
    let qo = (row * 4u + head) * 8u;
    let ko = (row * 2u + kv) * 8u;
    // The new key's score, when the mask lets the query see itself.
    let own = mask_allows(i32(head), p, p);
    var s_own = 0.0;
    for (var j = 0u; j < 8u; j++) {
        s_own += ld_q(qo + j) * ld_kn(ko + j);
    }
    s_own *= 0.35f;
    var m = select(0.0, s_own, own);
    var any = own;
    let base = (row * 4u + head) * 2u;
    for (var chunk = 0u; chunk < 2u; chunk++) {
        let po = (base + chunk) * 8u;
        if (ld_part(po + 1u) > 0.0) {
            m = select(ld_part(po), max(m, ld_part(po)), any);
            any = true;
        }
    }
    var l = select(0.0, exp(s_own - m), own);
    var o = select(0.0, exp(s_own - m) * ld_vn((row * 2u + kv) * 6u + col), own);
    for (var chunk = 0u; chunk < 2u; chunk++) {
        let po = (base + chunk) * 8u;
        let lc = ld_part(po + 1u);
        if (lc > 0.0) {
            let w = exp(ld_part(po) - m);
            l += lc * w;
            o += ld_part(po + 2u + col) * w;
        }
    }
    st_o(i, select(0.0, o / l, l > 0.0));
}
