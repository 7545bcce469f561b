// n1_rope: rope(theta=10000.0, position_scale=4.0), table [N, (cos, signed sin), D]
@group(0) @binding(0) var<storage, read> x: array<f32>;
fn ld_x(i: u32) -> f32 { return x[i]; }
@group(0) @binding(1) var<storage, read> t: array<f32>;
fn ld_t(i: u32) -> f32 { return t[i]; }
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
fn st_y(i: u32, value: f32) { y[i] = value; }
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = (wid.y * 3u + wid.x) * 64u + lid;
    if (i >= 144u) {
        return;
    }
    let j = i % 8u;
    let p = (i / 8u) % 9u;
    let t = p * 16u + j;
    var partner: f32;
    if (j < 4u) {
        partner = ld_x(i + 4u);
    } else {
        partner = ld_x(i - 4u);
    }
    st_y(i, ld_x(i) * ld_t(t) + partner * ld_t(t + 8u));
}
