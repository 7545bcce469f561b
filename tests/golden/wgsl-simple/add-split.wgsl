// n2_add: add
@group(0) @binding(0) var<storage, read> a_0: array<f32>;
@group(0) @binding(1) var<storage, read> a_1: array<f32>;
// `a` spans 2 bindings of 256 elements.
fn ld_a(i: u32) -> f32 {
    let part = i / 256u;
    let j = i - part * 256u;
    if (part == 0u) { return a_0[j]; }
    return a_1[j];
}
@group(0) @binding(2) var<storage, read> b_0: array<f32>;
@group(0) @binding(3) var<storage, read> b_1: array<f32>;
// `b` spans 2 bindings of 256 elements.
fn ld_b(i: u32) -> f32 {
    let part = i / 256u;
    let j = i - part * 256u;
    if (part == 0u) { return b_0[j]; }
    return b_1[j];
}
@group(0) @binding(4) var<storage, read_write> y_0: array<f32>;
@group(0) @binding(5) var<storage, read_write> y_1: array<f32>;
// `y` spans 2 bindings of 256 elements.
fn st_y(i: u32, value: f32) {
    let part = i / 256u;
    let j = i - part * 256u;
    if (part == 0u) { y_0[j] = value; return; }
    y_1[j] = value;
}
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = (wid.y * 7u + wid.x) * 64u + lid;
    if (i >= 400u) {
        return;
    }
    st_y(i, ld_a(i) + ld_b(i));
}
