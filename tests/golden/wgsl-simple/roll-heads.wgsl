// n1_roll: roll(axis=2, shift=3, heads=1[2..4])
@group(0) @binding(0) var<storage, read> x: array<f32>;
fn ld_x(i: u32) -> f32 { return x[i]; }
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
fn st_y(i: u32, value: f32) { y[i] = value; }
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = (wid.y * 6u + wid.x) * 64u + lid;
    if (i >= 384u) {
        return;
    }
    let c = (i / 6u) % 8u;
    var src = i - c * 6u + ((c + 5u) % 8u) * 6u;
    let head = (i / 48u) % 4u;
    if (head < 2u) {
        src = i;
    }
    st_y(i, ld_x(src));
}
