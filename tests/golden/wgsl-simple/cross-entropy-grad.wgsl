// n3_cross_entropy_grad_weight: dloss / count
@group(0) @binding(0) var<storage, read> targets: array<i32>;
fn ld_targets(i: u32) -> i32 { return targets[i]; }
@group(0) @binding(1) var<storage, read> dloss: array<f32>;
fn ld_dloss(i: u32) -> f32 { return dloss[i]; }
@group(0) @binding(2) var<storage, read_write> weight: array<f32>;
fn st_weight(i: u32, value: f32) { weight[i] = value; }
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = (wid.y * 1u + wid.x) * 64u + lid;
    if (i >= 1u) {
        return;
    }
    var count = 0u;
    for (var r = 0u; r < 40u; r++) {
        if (ld_targets(r) >= 0) {
            count += 1u;
        }
    }
    st_weight(0u, select(0.0, ld_dloss(0u) / f32(count), count > 0u));
}

// n3_cross_entropy_grad_rows: cross-entropy gradient per row
@group(0) @binding(0) var<storage, read> logits: array<f32>;
fn ld_logits(i: u32) -> f32 { return logits[i]; }
@group(0) @binding(1) var<storage, read> targets: array<i32>;
fn ld_targets(i: u32) -> i32 { return targets[i]; }
@group(0) @binding(2) var<storage, read> weight: array<f32>;
fn ld_weight(i: u32) -> f32 { return weight[i]; }
@group(0) @binding(3) var<storage, read_write> dlogits: array<f32>;
fn st_dlogits(i: u32, value: f32) { dlogits[i] = value; }
fn quiet_nan(seed: u32) -> f32 {
    return bitcast<f32>(0x7fc00000u | (seed & 0u));
}
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = (wid.y * 1u + wid.x) * 64u + lid;
    if (i >= 40u) {
        return;
    }
    let t = ld_targets(i);
    let base = i * 9u;
    if (t < 0) {
        for (var j = 0u; j < 9u; j++) {
            st_dlogits(base + j, 0.0);
        }
        return;
    }
    var m = ld_logits(base);
    for (var j = 1u; j < 9u; j++) {
        m = max(m, ld_logits(base + j));
    }
    var total = 0.0;
    for (var j = 0u; j < 9u; j++) {
        total += exp(ld_logits(base + j) - m);
    }
    // A target outside the row poisons the row (see the module doc).
    let w = select(quiet_nan(i), ld_weight(0u), t < 9);
    let scale = w / total;
    for (var j = 0u; j < 9u; j++) {
        var g = exp(ld_logits(base + j) - m) * scale;
        if (i32(j) == t) {
            g -= w;
        }
        st_dlogits(base + j, g);
    }
}
