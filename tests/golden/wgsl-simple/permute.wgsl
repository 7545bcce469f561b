// n1_permute: permute(perm=[2, 0, 3, 1])
@group(0) @binding(0) var<storage, read> x: array<f32>;
fn ld_x(i: u32) -> f32 { return x[i]; }
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
fn st_y(i: u32, value: f32) { y[i] = value; }
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = (wid.y * 2u + wid.x) * 64u + lid;
    if (i >= 120u) {
        return;
    }
    let c3 = i % 3u;
    let c2 = (i / 3u) % 5u;
    let c1 = (i / 15u) % 2u;
    let c0 = i / 30u;
    st_y(i, ld_x(c0 * 5u + c1 * 60u + c2 * 1u + c3 * 20u));
}
