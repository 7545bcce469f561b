// n2_cross_entropy_rows: cross-entropy per row
@group(0) @binding(0) var<storage, read> logits: array<f32>;
fn ld_logits(i: u32) -> f32 { return logits[i]; }
@group(0) @binding(1) var<storage, read> targets: array<i32>;
fn ld_targets(i: u32) -> i32 { return targets[i]; }
@group(0) @binding(2) var<storage, read_write> rows: array<f32>;
fn st_rows(i: u32, value: f32) { rows[i] = value; }
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
    if (t < 0) {
        st_rows(i, 0.0);
        return;
    }
    let base = i * 9u;
    var m = ld_logits(base);
    for (var j = 1u; j < 9u; j++) {
        m = max(m, ld_logits(base + j));
    }
    var total = 0.0;
    for (var j = 0u; j < 9u; j++) {
        total += exp(ld_logits(base + j) - m);
    }
    var loss = quiet_nan(i);
    if (t < 9) {
        loss = log(total) + m - ld_logits(base + u32(t));
    }
    st_rows(i, loss);
}

// n2_cross_entropy_mean: cross-entropy mean
@group(0) @binding(0) var<storage, read> rows: array<f32>;
fn ld_rows(i: u32) -> f32 { return rows[i]; }
@group(0) @binding(1) var<storage, read> targets: array<i32>;
fn ld_targets(i: u32) -> i32 { return targets[i]; }
@group(0) @binding(2) var<storage, read_write> loss: array<f32>;
fn st_loss(i: u32, value: f32) { loss[i] = value; }
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = (wid.y * 1u + wid.x) * 64u + lid;
    if (i >= 1u) {
        return;
    }
    var total = 0.0;
    var count = 0u;
    for (var r = 0u; r < 40u; r++) {
        if (ld_targets(r) >= 0) {
            total += ld_rows(r);
            count += 1u;
        }
    }
    st_loss(0u, select(0.0, total / f32(count), count > 0u));
}
