// n1_softmax: softmax(axis=1)
@group(0) @binding(0) var<storage, read> x: array<f32>;
fn ld_x(i: u32) -> f32 { return x[i]; }
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
fn st_y(i: u32, value: f32) { y[i] = value; }
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = (wid.y * 1u + wid.x) * 64u + lid;
    if (i >= 15u) {
        return;
    }
    let base = (i / 5u) * 35u + i % 5u;
    var m = ld_x(base + 0u * 5u);
    for (var j = 1u; j < 7u; j++) {
        m = max(m, ld_x(base + j * 5u));
    }
    var total = 0.0;
    for (var j = 0u; j < 7u; j++) {
        total += exp(ld_x(base + j * 5u) - m);
    }
    let inv = 1.0 / total;
    for (var j = 0u; j < 7u; j++) {
        st_y(base + j * 5u, exp(ld_x(base + j * 5u) - m) * inv);
    }
}
