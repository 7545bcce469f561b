// n3_fused: fused: silu, mul
@group(0) @binding(0) var<storage, read> in0: array<f32>;
fn ld_in0(i: u32) -> f32 { return in0[i]; }
@group(0) @binding(1) var<storage, read> in1: array<f32>;
fn ld_in1(i: u32) -> f32 { return in1[i]; }
@group(0) @binding(2) var<storage, read_write> out0: array<f32>;
fn st_out0(i: u32, value: f32) { out0[i] = value; }
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = (wid.y * 1u + wid.x) * 64u + lid;
    if (i >= 24u) {
        return;
    }
    let a0 = ld_in0(i);
    let a1 = ld_in1(i);
    let n2 = a0 / (1.0 + exp(-a0));
    let n3 = n2 * a1;
    st_out0(i, n3);
}
