// n2_matmul: matmul, transpose_a, transpose_b
@group(0) @binding(0) var<storage, read> a: array<f32>;
fn ld_a(i: u32) -> f32 { return a[i]; }
@group(0) @binding(1) var<storage, read> b: array<f32>;
fn ld_b(i: u32) -> f32 { return b[i]; }
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
fn st_y(i: u32, value: f32) { y[i] = value; }
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = (wid.y * 1u + wid.x) * 64u + lid;
    if (i >= 24u) {
        return;
    }
    let col0 = (i % 2u) * 4u;
    let row0 = ((i / 2u) % 2u) * 4u;
    let batch = i / 4;
    let a0 = batch * 35u;
    let b0 = batch * 42u;
    let r0 = min(row0 + 0u, 4u);
    let c0 = min(col0 + 0u, 5u);
    let r1 = min(row0 + 1u, 4u);
    let c1 = min(col0 + 1u, 5u);
    let r2 = min(row0 + 2u, 4u);
    let c2 = min(col0 + 2u, 5u);
    let r3 = min(row0 + 3u, 4u);
    let c3 = min(col0 + 3u, 5u);
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var p = 0u; p < 7u; p++) {
        let bv = vec4<f32>(ld_b(b0 + c0 * 7u + p), ld_b(b0 + c1 * 7u + p), ld_b(b0 + c2 * 7u + p), ld_b(b0 + c3 * 7u + p));
        acc0 += ld_a(a0 + p * 5u + r0) * bv;
        acc1 += ld_a(a0 + p * 5u + r1) * bv;
        acc2 += ld_a(a0 + p * 5u + r2) * bv;
        acc3 += ld_a(a0 + p * 5u + r3) * bv;
    }
    let y0 = batch * 30u;
    if (row0 + 0u < 5u && col0 + 0u < 6u) { st_y(y0 + (row0 + 0u) * 6u + col0 + 0u, acc0[0]); }
    if (row0 + 0u < 5u && col0 + 1u < 6u) { st_y(y0 + (row0 + 0u) * 6u + col0 + 1u, acc0[1]); }
    if (row0 + 0u < 5u && col0 + 2u < 6u) { st_y(y0 + (row0 + 0u) * 6u + col0 + 2u, acc0[2]); }
    if (row0 + 0u < 5u && col0 + 3u < 6u) { st_y(y0 + (row0 + 0u) * 6u + col0 + 3u, acc0[3]); }
    if (row0 + 1u < 5u && col0 + 0u < 6u) { st_y(y0 + (row0 + 1u) * 6u + col0 + 0u, acc1[0]); }
    if (row0 + 1u < 5u && col0 + 1u < 6u) { st_y(y0 + (row0 + 1u) * 6u + col0 + 1u, acc1[1]); }
    if (row0 + 1u < 5u && col0 + 2u < 6u) { st_y(y0 + (row0 + 1u) * 6u + col0 + 2u, acc1[2]); }
    if (row0 + 1u < 5u && col0 + 3u < 6u) { st_y(y0 + (row0 + 1u) * 6u + col0 + 3u, acc1[3]); }
    if (row0 + 2u < 5u && col0 + 0u < 6u) { st_y(y0 + (row0 + 2u) * 6u + col0 + 0u, acc2[0]); }
    if (row0 + 2u < 5u && col0 + 1u < 6u) { st_y(y0 + (row0 + 2u) * 6u + col0 + 1u, acc2[1]); }
    if (row0 + 2u < 5u && col0 + 2u < 6u) { st_y(y0 + (row0 + 2u) * 6u + col0 + 2u, acc2[2]); }
    if (row0 + 2u < 5u && col0 + 3u < 6u) { st_y(y0 + (row0 + 2u) * 6u + col0 + 3u, acc2[3]); }
    if (row0 + 3u < 5u && col0 + 0u < 6u) { st_y(y0 + (row0 + 3u) * 6u + col0 + 0u, acc3[0]); }
    if (row0 + 3u < 5u && col0 + 1u < 6u) { st_y(y0 + (row0 + 3u) * 6u + col0 + 1u, acc3[1]); }
    if (row0 + 3u < 5u && col0 + 2u < 6u) { st_y(y0 + (row0 + 3u) * 6u + col0 + 2u, acc3[2]); }
    if (row0 + 3u < 5u && col0 + 3u < 6u) { st_y(y0 + (row0 + 3u) * 6u + col0 + 3u, acc3[3]); }
}
