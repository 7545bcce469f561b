// n2_matmul: matmul, transpose_b 8×16×12, narrow_n 8x8/wg64 (loads: a vec4 along k, b vec4 along k)
@group(0) @binding(0) var<storage, read> a: array<vec4<f32>>;
fn ld_a(i: u32) -> vec4<f32> { return a[i]; }
@group(0) @binding(1) var<storage, read> b: array<vec2<u32>>;
fn ld_b(i: u32) -> vec4<f32> {
    let w = b[i];
    return bitcast<vec4<f32>>(vec4<u32>(w.x << 16u, w.x & 0xffff0000u, w.y << 16u, w.y & 0xffff0000u));
}
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
fn st_y(i: u32, value: f32) { y[i] = value; }
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = (wid.y * 1u + wid.x) * 64u + lid;
    if (i >= 2u) {
        return;
    }
    let col0 = (i % 2u) * 8u;
    let row0 = ((i / 2u) % 1u) * 8u;
    let batch = i / 2;
    let abase = batch * 32u;
    let bbase = batch * 48u;
    let r0 = min(row0 + 0u, 7u);
    let r1 = min(row0 + 1u, 7u);
    let r2 = min(row0 + 2u, 7u);
    let r3 = min(row0 + 3u, 7u);
    let r4 = min(row0 + 4u, 7u);
    let r5 = min(row0 + 5u, 7u);
    let r6 = min(row0 + 6u, 7u);
    let r7 = min(row0 + 7u, 7u);
    let c0 = min(col0 + 0u, 11u);
    let c1 = min(col0 + 1u, 11u);
    let c2 = min(col0 + 2u, 11u);
    let c3 = min(col0 + 3u, 11u);
    let c4 = min(col0 + 4u, 11u);
    let c5 = min(col0 + 5u, 11u);
    let c6 = min(col0 + 6u, 11u);
    let c7 = min(col0 + 7u, 11u);
    var acc0_0 = vec4<f32>(0.0);
    var acc0_1 = vec4<f32>(0.0);
    var acc1_0 = vec4<f32>(0.0);
    var acc1_1 = vec4<f32>(0.0);
    var acc2_0 = vec4<f32>(0.0);
    var acc2_1 = vec4<f32>(0.0);
    var acc3_0 = vec4<f32>(0.0);
    var acc3_1 = vec4<f32>(0.0);
    var acc4_0 = vec4<f32>(0.0);
    var acc4_1 = vec4<f32>(0.0);
    var acc5_0 = vec4<f32>(0.0);
    var acc5_1 = vec4<f32>(0.0);
    var acc6_0 = vec4<f32>(0.0);
    var acc6_1 = vec4<f32>(0.0);
    var acc7_0 = vec4<f32>(0.0);
    var acc7_1 = vec4<f32>(0.0);
    for (var q = 0u; q < 4u; q++) {
        let p = q * 4u;
        let va0 = ld_a(abase + r0 * 4u + q);
        let va1 = ld_a(abase + r1 * 4u + q);
        let va2 = ld_a(abase + r2 * 4u + q);
        let va3 = ld_a(abase + r3 * 4u + q);
        let va4 = ld_a(abase + r4 * 4u + q);
        let va5 = ld_a(abase + r5 * 4u + q);
        let va6 = ld_a(abase + r6 * 4u + q);
        let va7 = ld_a(abase + r7 * 4u + q);
        let vb0 = ld_b(bbase + c0 * 4u + q);
        let vb1 = ld_b(bbase + c1 * 4u + q);
        let vb2 = ld_b(bbase + c2 * 4u + q);
        let vb3 = ld_b(bbase + c3 * 4u + q);
        let vb4 = ld_b(bbase + c4 * 4u + q);
        let vb5 = ld_b(bbase + c5 * 4u + q);
        let vb6 = ld_b(bbase + c6 * 4u + q);
        let vb7 = ld_b(bbase + c7 * 4u + q);
        let bv0_0 = vec4<f32>(vb0[0], vb1[0], vb2[0], vb3[0]);
        let bv0_1 = vec4<f32>(vb4[0], vb5[0], vb6[0], vb7[0]);
        acc0_0 += va0[0] * bv0_0;
        acc0_1 += va0[0] * bv0_1;
        acc1_0 += va1[0] * bv0_0;
        acc1_1 += va1[0] * bv0_1;
        acc2_0 += va2[0] * bv0_0;
        acc2_1 += va2[0] * bv0_1;
        acc3_0 += va3[0] * bv0_0;
        acc3_1 += va3[0] * bv0_1;
        acc4_0 += va4[0] * bv0_0;
        acc4_1 += va4[0] * bv0_1;
        acc5_0 += va5[0] * bv0_0;
        acc5_1 += va5[0] * bv0_1;
        acc6_0 += va6[0] * bv0_0;
        acc6_1 += va6[0] * bv0_1;
        acc7_0 += va7[0] * bv0_0;
        acc7_1 += va7[0] * bv0_1;
        let bv1_0 = vec4<f32>(vb0[1], vb1[1], vb2[1], vb3[1]);
        let bv1_1 = vec4<f32>(vb4[1], vb5[1], vb6[1], vb7[1]);
        acc0_0 += va0[1] * bv1_0;
        acc0_1 += va0[1] * bv1_1;
        acc1_0 += va1[1] * bv1_0;
        acc1_1 += va1[1] * bv1_1;
        acc2_0 += va2[1] * bv1_0;
        acc2_1 += va2[1] * bv1_1;
        acc3_0 += va3[1] * bv1_0;
        acc3_1 += va3[1] * bv1_1;
        acc4_0 += va4[1] * bv1_0;
        acc4_1 += va4[1] * bv1_1;
        acc5_0 += va5[1] * bv1_0;
        acc5_1 += va5[1] * bv1_1;
        acc6_0 += va6[1] * bv1_0;
        acc6_1 += va6[1] * bv1_1;
        acc7_0 += va7[1] * bv1_0;
        acc7_1 += va7[1] * bv1_1;
        let bv2_0 = vec4<f32>(vb0[2], vb1[2], vb2[2], vb3[2]);
        let bv2_1 = vec4<f32>(vb4[2], vb5[2], vb6[2], vb7[2]);
        acc0_0 += va0[2] * bv2_0;
        acc0_1 += va0[2] * bv2_1;
        acc1_0 += va1[2] * bv2_0;
        acc1_1 += va1[2] * bv2_1;
        acc2_0 += va2[2] * bv2_0;
        acc2_1 += va2[2] * bv2_1;
        acc3_0 += va3[2] * bv2_0;
        acc3_1 += va3[2] * bv2_1;
        acc4_0 += va4[2] * bv2_0;
        acc4_1 += va4[2] * bv2_1;
        acc5_0 += va5[2] * bv2_0;
        acc5_1 += va5[2] * bv2_1;
        acc6_0 += va6[2] * bv2_0;
        acc6_1 += va6[2] * bv2_1;
        acc7_0 += va7[2] * bv2_0;
        acc7_1 += va7[2] * bv2_1;
        let bv3_0 = vec4<f32>(vb0[3], vb1[3], vb2[3], vb3[3]);
        let bv3_1 = vec4<f32>(vb4[3], vb5[3], vb6[3], vb7[3]);
        acc0_0 += va0[3] * bv3_0;
        acc0_1 += va0[3] * bv3_1;
        acc1_0 += va1[3] * bv3_0;
        acc1_1 += va1[3] * bv3_1;
        acc2_0 += va2[3] * bv3_0;
        acc2_1 += va2[3] * bv3_1;
        acc3_0 += va3[3] * bv3_0;
        acc3_1 += va3[3] * bv3_1;
        acc4_0 += va4[3] * bv3_0;
        acc4_1 += va4[3] * bv3_1;
        acc5_0 += va5[3] * bv3_0;
        acc5_1 += va5[3] * bv3_1;
        acc6_0 += va6[3] * bv3_0;
        acc6_1 += va6[3] * bv3_1;
        acc7_0 += va7[3] * bv3_0;
        acc7_1 += va7[3] * bv3_1;
    }
    let y0 = batch * 96u;
    if (row0 + 0u < 8u && col0 + 0u < 12u) { st_y(y0 + (row0 + 0u) * 12u + col0 + 0u, acc0_0[0]); }
    if (row0 + 0u < 8u && col0 + 1u < 12u) { st_y(y0 + (row0 + 0u) * 12u + col0 + 1u, acc0_0[1]); }
    if (row0 + 0u < 8u && col0 + 2u < 12u) { st_y(y0 + (row0 + 0u) * 12u + col0 + 2u, acc0_0[2]); }
    if (row0 + 0u < 8u && col0 + 3u < 12u) { st_y(y0 + (row0 + 0u) * 12u + col0 + 3u, acc0_0[3]); }
    if (row0 + 0u < 8u && col0 + 4u < 12u) { st_y(y0 + (row0 + 0u) * 12u + col0 + 4u, acc0_1[0]); }
    if (row0 + 0u < 8u && col0 + 5u < 12u) { st_y(y0 + (row0 + 0u) * 12u + col0 + 5u, acc0_1[1]); }
    if (row0 + 0u < 8u && col0 + 6u < 12u) { st_y(y0 + (row0 + 0u) * 12u + col0 + 6u, acc0_1[2]); }
    if (row0 + 0u < 8u && col0 + 7u < 12u) { st_y(y0 + (row0 + 0u) * 12u + col0 + 7u, acc0_1[3]); }
    if (row0 + 1u < 8u && col0 + 0u < 12u) { st_y(y0 + (row0 + 1u) * 12u + col0 + 0u, acc1_0[0]); }
    if (row0 + 1u < 8u && col0 + 1u < 12u) { st_y(y0 + (row0 + 1u) * 12u + col0 + 1u, acc1_0[1]); }
    if (row0 + 1u < 8u && col0 + 2u < 12u) { st_y(y0 + (row0 + 1u) * 12u + col0 + 2u, acc1_0[2]); }
    if (row0 + 1u < 8u && col0 + 3u < 12u) { st_y(y0 + (row0 + 1u) * 12u + col0 + 3u, acc1_0[3]); }
    if (row0 + 1u < 8u && col0 + 4u < 12u) { st_y(y0 + (row0 + 1u) * 12u + col0 + 4u, acc1_1[0]); }
    if (row0 + 1u < 8u && col0 + 5u < 12u) { st_y(y0 + (row0 + 1u) * 12u + col0 + 5u, acc1_1[1]); }
    if (row0 + 1u < 8u && col0 + 6u < 12u) { st_y(y0 + (row0 + 1u) * 12u + col0 + 6u, acc1_1[2]); }
    if (row0 + 1u < 8u && col0 + 7u < 12u) { st_y(y0 + (row0 + 1u) * 12u + col0 + 7u, acc1_1[3]); }
    if (row0 + 2u < 8u && col0 + 0u < 12u) { st_y(y0 + (row0 + 2u) * 12u + col0 + 0u, acc2_0[0]); }
    if (row0 + 2u < 8u && col0 + 1u < 12u) { st_y(y0 + (row0 + 2u) * 12u + col0 + 1u, acc2_0[1]); }
    if (row0 + 2u < 8u && col0 + 2u < 12u) { st_y(y0 + (row0 + 2u) * 12u + col0 + 2u, acc2_0[2]); }
    if (row0 + 2u < 8u && col0 + 3u < 12u) { st_y(y0 + (row0 + 2u) * 12u + col0 + 3u, acc2_0[3]); }
    if (row0 + 2u < 8u && col0 + 4u < 12u) { st_y(y0 + (row0 + 2u) * 12u + col0 + 4u, acc2_1[0]); }
    if (row0 + 2u < 8u && col0 + 5u < 12u) { st_y(y0 + (row0 + 2u) * 12u + col0 + 5u, acc2_1[1]); }
    if (row0 + 2u < 8u && col0 + 6u < 12u) { st_y(y0 + (row0 + 2u) * 12u + col0 + 6u, acc2_1[2]); }
    if (row0 + 2u < 8u && col0 + 7u < 12u) { st_y(y0 + (row0 + 2u) * 12u + col0 + 7u, acc2_1[3]); }
    if (row0 + 3u < 8u && col0 + 0u < 12u) { st_y(y0 + (row0 + 3u) * 12u + col0 + 0u, acc3_0[0]); }
    if (row0 + 3u < 8u && col0 + 1u < 12u) { st_y(y0 + (row0 + 3u) * 12u + col0 + 1u, acc3_0[1]); }
    if (row0 + 3u < 8u && col0 + 2u < 12u) { st_y(y0 + (row0 + 3u) * 12u + col0 + 2u, acc3_0[2]); }
    if (row0 + 3u < 8u && col0 + 3u < 12u) { st_y(y0 + (row0 + 3u) * 12u + col0 + 3u, acc3_0[3]); }
    if (row0 + 3u < 8u && col0 + 4u < 12u) { st_y(y0 + (row0 + 3u) * 12u + col0 + 4u, acc3_1[0]); }
    if (row0 + 3u < 8u && col0 + 5u < 12u) { st_y(y0 + (row0 + 3u) * 12u + col0 + 5u, acc3_1[1]); }
    if (row0 + 3u < 8u && col0 + 6u < 12u) { st_y(y0 + (row0 + 3u) * 12u + col0 + 6u, acc3_1[2]); }
    if (row0 + 3u < 8u && col0 + 7u < 12u) { st_y(y0 + (row0 + 3u) * 12u + col0 + 7u, acc3_1[3]); }
    if (row0 + 4u < 8u && col0 + 0u < 12u) { st_y(y0 + (row0 + 4u) * 12u + col0 + 0u, acc4_0[0]); }
    if (row0 + 4u < 8u && col0 + 1u < 12u) { st_y(y0 + (row0 + 4u) * 12u + col0 + 1u, acc4_0[1]); }
    if (row0 + 4u < 8u && col0 + 2u < 12u) { st_y(y0 + (row0 + 4u) * 12u + col0 + 2u, acc4_0[2]); }
    if (row0 + 4u < 8u && col0 + 3u < 12u) { st_y(y0 + (row0 + 4u) * 12u + col0 + 3u, acc4_0[3]); }
    if (row0 + 4u < 8u && col0 + 4u < 12u) { st_y(y0 + (row0 + 4u) * 12u + col0 + 4u, acc4_1[0]); }
    if (row0 + 4u < 8u && col0 + 5u < 12u) { st_y(y0 + (row0 + 4u) * 12u + col0 + 5u, acc4_1[1]); }
    if (row0 + 4u < 8u && col0 + 6u < 12u) { st_y(y0 + (row0 + 4u) * 12u + col0 + 6u, acc4_1[2]); }
    if (row0 + 4u < 8u && col0 + 7u < 12u) { st_y(y0 + (row0 + 4u) * 12u + col0 + 7u, acc4_1[3]); }
    if (row0 + 5u < 8u && col0 + 0u < 12u) { st_y(y0 + (row0 + 5u) * 12u + col0 + 0u, acc5_0[0]); }
    if (row0 + 5u < 8u && col0 + 1u < 12u) { st_y(y0 + (row0 + 5u) * 12u + col0 + 1u, acc5_0[1]); }
    if (row0 + 5u < 8u && col0 + 2u < 12u) { st_y(y0 + (row0 + 5u) * 12u + col0 + 2u, acc5_0[2]); }
    if (row0 + 5u < 8u && col0 + 3u < 12u) { st_y(y0 + (row0 + 5u) * 12u + col0 + 3u, acc5_0[3]); }
    if (row0 + 5u < 8u && col0 + 4u < 12u) { st_y(y0 + (row0 + 5u) * 12u + col0 + 4u, acc5_1[0]); }
    if (row0 + 5u < 8u && col0 + 5u < 12u) { st_y(y0 + (row0 + 5u) * 12u + col0 + 5u, acc5_1[1]); }
    if (row0 + 5u < 8u && col0 + 6u < 12u) { st_y(y0 + (row0 + 5u) * 12u + col0 + 6u, acc5_1[2]); }
    if (row0 + 5u < 8u && col0 + 7u < 12u) { st_y(y0 + (row0 + 5u) * 12u + col0 + 7u, acc5_1[3]); }
    if (row0 + 6u < 8u && col0 + 0u < 12u) { st_y(y0 + (row0 + 6u) * 12u + col0 + 0u, acc6_0[0]); }
    if (row0 + 6u < 8u && col0 + 1u < 12u) { st_y(y0 + (row0 + 6u) * 12u + col0 + 1u, acc6_0[1]); }
    if (row0 + 6u < 8u && col0 + 2u < 12u) { st_y(y0 + (row0 + 6u) * 12u + col0 + 2u, acc6_0[2]); }
    if (row0 + 6u < 8u && col0 + 3u < 12u) { st_y(y0 + (row0 + 6u) * 12u + col0 + 3u, acc6_0[3]); }
    if (row0 + 6u < 8u && col0 + 4u < 12u) { st_y(y0 + (row0 + 6u) * 12u + col0 + 4u, acc6_1[0]); }
    if (row0 + 6u < 8u && col0 + 5u < 12u) { st_y(y0 + (row0 + 6u) * 12u + col0 + 5u, acc6_1[1]); }
    if (row0 + 6u < 8u && col0 + 6u < 12u) { st_y(y0 + (row0 + 6u) * 12u + col0 + 6u, acc6_1[2]); }
    if (row0 + 6u < 8u && col0 + 7u < 12u) { st_y(y0 + (row0 + 6u) * 12u + col0 + 7u, acc6_1[3]); }
    if (row0 + 7u < 8u && col0 + 0u < 12u) { st_y(y0 + (row0 + 7u) * 12u + col0 + 0u, acc7_0[0]); }
    if (row0 + 7u < 8u && col0 + 1u < 12u) { st_y(y0 + (row0 + 7u) * 12u + col0 + 1u, acc7_0[1]); }
    if (row0 + 7u < 8u && col0 + 2u < 12u) { st_y(y0 + (row0 + 7u) * 12u + col0 + 2u, acc7_0[2]); }
    if (row0 + 7u < 8u && col0 + 3u < 12u) { st_y(y0 + (row0 + 7u) * 12u + col0 + 3u, acc7_0[3]); }
    if (row0 + 7u < 8u && col0 + 4u < 12u) { st_y(y0 + (row0 + 7u) * 12u + col0 + 4u, acc7_1[0]); }
    if (row0 + 7u < 8u && col0 + 5u < 12u) { st_y(y0 + (row0 + 7u) * 12u + col0 + 5u, acc7_1[1]); }
    if (row0 + 7u < 8u && col0 + 6u < 12u) { st_y(y0 + (row0 + 7u) * 12u + col0 + 6u, acc7_1[2]); }
    if (row0 + 7u < 8u && col0 + 7u < 12u) { st_y(y0 + (row0 + 7u) * 12u + col0 + 7u, acc7_1[3]); }
}
