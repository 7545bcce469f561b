// n2_matmul: matmul, transpose_a, transpose_b 6·5×7×6, narrow_n 8x8/wg64 (loads: a scalar, b scalar)
@group(0) @binding(0) var<storage, read> a: array<f32>;
fn ld_a(i: u32) -> f32 { return a[i]; }
@group(0) @binding(1) var<storage, read> b: array<f32>;
fn ld_b(i: u32) -> f32 { return b[i]; }
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
fn st_y(i: u32, value: f32) { y[i] = value; }
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = (wid.y * 1u + wid.x) * 64u + lid;
    if (i >= 6u) {
        return;
    }
    let col0 = (i % 1u) * 8u;
    let row0 = ((i / 1u) % 1u) * 8u;
    let batch = i / 1;
    let abase = batch * 35u;
    let bbase = batch * 42u;
    let r0 = min(row0 + 0u, 4u);
    let r1 = min(row0 + 1u, 4u);
    let r2 = min(row0 + 2u, 4u);
    let r3 = min(row0 + 3u, 4u);
    let r4 = min(row0 + 4u, 4u);
    let r5 = min(row0 + 5u, 4u);
    let r6 = min(row0 + 6u, 4u);
    let r7 = min(row0 + 7u, 4u);
    let c0 = min(col0 + 0u, 5u);
    let c1 = min(col0 + 1u, 5u);
    let c2 = min(col0 + 2u, 5u);
    let c3 = min(col0 + 3u, 5u);
    let c4 = min(col0 + 4u, 5u);
    let c5 = min(col0 + 5u, 5u);
    let c6 = min(col0 + 6u, 5u);
    let c7 = min(col0 + 7u, 5u);
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
    for (var q = 0u; q < 1u; q++) {
        let p = q * 4u;
        let sa0_0 = ld_a(abase + (p) * 5u + r0);
        let sa0_1 = ld_a(abase + (p) * 5u + r1);
        let sa0_2 = ld_a(abase + (p) * 5u + r2);
        let sa0_3 = ld_a(abase + (p) * 5u + r3);
        let sa0_4 = ld_a(abase + (p) * 5u + r4);
        let sa0_5 = ld_a(abase + (p) * 5u + r5);
        let sa0_6 = ld_a(abase + (p) * 5u + r6);
        let sa0_7 = ld_a(abase + (p) * 5u + r7);
        let sa1_0 = ld_a(abase + (p + 1u) * 5u + r0);
        let sa1_1 = ld_a(abase + (p + 1u) * 5u + r1);
        let sa1_2 = ld_a(abase + (p + 1u) * 5u + r2);
        let sa1_3 = ld_a(abase + (p + 1u) * 5u + r3);
        let sa1_4 = ld_a(abase + (p + 1u) * 5u + r4);
        let sa1_5 = ld_a(abase + (p + 1u) * 5u + r5);
        let sa1_6 = ld_a(abase + (p + 1u) * 5u + r6);
        let sa1_7 = ld_a(abase + (p + 1u) * 5u + r7);
        let sa2_0 = ld_a(abase + (p + 2u) * 5u + r0);
        let sa2_1 = ld_a(abase + (p + 2u) * 5u + r1);
        let sa2_2 = ld_a(abase + (p + 2u) * 5u + r2);
        let sa2_3 = ld_a(abase + (p + 2u) * 5u + r3);
        let sa2_4 = ld_a(abase + (p + 2u) * 5u + r4);
        let sa2_5 = ld_a(abase + (p + 2u) * 5u + r5);
        let sa2_6 = ld_a(abase + (p + 2u) * 5u + r6);
        let sa2_7 = ld_a(abase + (p + 2u) * 5u + r7);
        let sa3_0 = ld_a(abase + (p + 3u) * 5u + r0);
        let sa3_1 = ld_a(abase + (p + 3u) * 5u + r1);
        let sa3_2 = ld_a(abase + (p + 3u) * 5u + r2);
        let sa3_3 = ld_a(abase + (p + 3u) * 5u + r3);
        let sa3_4 = ld_a(abase + (p + 3u) * 5u + r4);
        let sa3_5 = ld_a(abase + (p + 3u) * 5u + r5);
        let sa3_6 = ld_a(abase + (p + 3u) * 5u + r6);
        let sa3_7 = ld_a(abase + (p + 3u) * 5u + r7);
        let sb0_0 = ld_b(bbase + c0 * 7u + p);
        let sb0_1 = ld_b(bbase + c1 * 7u + p);
        let sb0_2 = ld_b(bbase + c2 * 7u + p);
        let sb0_3 = ld_b(bbase + c3 * 7u + p);
        let sb0_4 = ld_b(bbase + c4 * 7u + p);
        let sb0_5 = ld_b(bbase + c5 * 7u + p);
        let sb0_6 = ld_b(bbase + c6 * 7u + p);
        let sb0_7 = ld_b(bbase + c7 * 7u + p);
        let sb1_0 = ld_b(bbase + c0 * 7u + p + 1u);
        let sb1_1 = ld_b(bbase + c1 * 7u + p + 1u);
        let sb1_2 = ld_b(bbase + c2 * 7u + p + 1u);
        let sb1_3 = ld_b(bbase + c3 * 7u + p + 1u);
        let sb1_4 = ld_b(bbase + c4 * 7u + p + 1u);
        let sb1_5 = ld_b(bbase + c5 * 7u + p + 1u);
        let sb1_6 = ld_b(bbase + c6 * 7u + p + 1u);
        let sb1_7 = ld_b(bbase + c7 * 7u + p + 1u);
        let sb2_0 = ld_b(bbase + c0 * 7u + p + 2u);
        let sb2_1 = ld_b(bbase + c1 * 7u + p + 2u);
        let sb2_2 = ld_b(bbase + c2 * 7u + p + 2u);
        let sb2_3 = ld_b(bbase + c3 * 7u + p + 2u);
        let sb2_4 = ld_b(bbase + c4 * 7u + p + 2u);
        let sb2_5 = ld_b(bbase + c5 * 7u + p + 2u);
        let sb2_6 = ld_b(bbase + c6 * 7u + p + 2u);
        let sb2_7 = ld_b(bbase + c7 * 7u + p + 2u);
        let sb3_0 = ld_b(bbase + c0 * 7u + p + 3u);
        let sb3_1 = ld_b(bbase + c1 * 7u + p + 3u);
        let sb3_2 = ld_b(bbase + c2 * 7u + p + 3u);
        let sb3_3 = ld_b(bbase + c3 * 7u + p + 3u);
        let sb3_4 = ld_b(bbase + c4 * 7u + p + 3u);
        let sb3_5 = ld_b(bbase + c5 * 7u + p + 3u);
        let sb3_6 = ld_b(bbase + c6 * 7u + p + 3u);
        let sb3_7 = ld_b(bbase + c7 * 7u + p + 3u);
        let bv0_0 = vec4<f32>(sb0_0, sb0_1, sb0_2, sb0_3);
        let bv0_1 = vec4<f32>(sb0_4, sb0_5, sb0_6, sb0_7);
        acc0_0 += sa0_0 * bv0_0;
        acc0_1 += sa0_0 * bv0_1;
        acc1_0 += sa0_1 * bv0_0;
        acc1_1 += sa0_1 * bv0_1;
        acc2_0 += sa0_2 * bv0_0;
        acc2_1 += sa0_2 * bv0_1;
        acc3_0 += sa0_3 * bv0_0;
        acc3_1 += sa0_3 * bv0_1;
        acc4_0 += sa0_4 * bv0_0;
        acc4_1 += sa0_4 * bv0_1;
        acc5_0 += sa0_5 * bv0_0;
        acc5_1 += sa0_5 * bv0_1;
        acc6_0 += sa0_6 * bv0_0;
        acc6_1 += sa0_6 * bv0_1;
        acc7_0 += sa0_7 * bv0_0;
        acc7_1 += sa0_7 * bv0_1;
        let bv1_0 = vec4<f32>(sb1_0, sb1_1, sb1_2, sb1_3);
        let bv1_1 = vec4<f32>(sb1_4, sb1_5, sb1_6, sb1_7);
        acc0_0 += sa1_0 * bv1_0;
        acc0_1 += sa1_0 * bv1_1;
        acc1_0 += sa1_1 * bv1_0;
        acc1_1 += sa1_1 * bv1_1;
        acc2_0 += sa1_2 * bv1_0;
        acc2_1 += sa1_2 * bv1_1;
        acc3_0 += sa1_3 * bv1_0;
        acc3_1 += sa1_3 * bv1_1;
        acc4_0 += sa1_4 * bv1_0;
        acc4_1 += sa1_4 * bv1_1;
        acc5_0 += sa1_5 * bv1_0;
        acc5_1 += sa1_5 * bv1_1;
        acc6_0 += sa1_6 * bv1_0;
        acc6_1 += sa1_6 * bv1_1;
        acc7_0 += sa1_7 * bv1_0;
        acc7_1 += sa1_7 * bv1_1;
        let bv2_0 = vec4<f32>(sb2_0, sb2_1, sb2_2, sb2_3);
        let bv2_1 = vec4<f32>(sb2_4, sb2_5, sb2_6, sb2_7);
        acc0_0 += sa2_0 * bv2_0;
        acc0_1 += sa2_0 * bv2_1;
        acc1_0 += sa2_1 * bv2_0;
        acc1_1 += sa2_1 * bv2_1;
        acc2_0 += sa2_2 * bv2_0;
        acc2_1 += sa2_2 * bv2_1;
        acc3_0 += sa2_3 * bv2_0;
        acc3_1 += sa2_3 * bv2_1;
        acc4_0 += sa2_4 * bv2_0;
        acc4_1 += sa2_4 * bv2_1;
        acc5_0 += sa2_5 * bv2_0;
        acc5_1 += sa2_5 * bv2_1;
        acc6_0 += sa2_6 * bv2_0;
        acc6_1 += sa2_6 * bv2_1;
        acc7_0 += sa2_7 * bv2_0;
        acc7_1 += sa2_7 * bv2_1;
        let bv3_0 = vec4<f32>(sb3_0, sb3_1, sb3_2, sb3_3);
        let bv3_1 = vec4<f32>(sb3_4, sb3_5, sb3_6, sb3_7);
        acc0_0 += sa3_0 * bv3_0;
        acc0_1 += sa3_0 * bv3_1;
        acc1_0 += sa3_1 * bv3_0;
        acc1_1 += sa3_1 * bv3_1;
        acc2_0 += sa3_2 * bv3_0;
        acc2_1 += sa3_2 * bv3_1;
        acc3_0 += sa3_3 * bv3_0;
        acc3_1 += sa3_3 * bv3_1;
        acc4_0 += sa3_4 * bv3_0;
        acc4_1 += sa3_4 * bv3_1;
        acc5_0 += sa3_5 * bv3_0;
        acc5_1 += sa3_5 * bv3_1;
        acc6_0 += sa3_6 * bv3_0;
        acc6_1 += sa3_6 * bv3_1;
        acc7_0 += sa3_7 * bv3_0;
        acc7_1 += sa3_7 * bv3_1;
    }
    for (var p = 4u; p < 7u; p++) {
        let sa0_0 = ld_a(abase + (p) * 5u + r0);
        let sa0_1 = ld_a(abase + (p) * 5u + r1);
        let sa0_2 = ld_a(abase + (p) * 5u + r2);
        let sa0_3 = ld_a(abase + (p) * 5u + r3);
        let sa0_4 = ld_a(abase + (p) * 5u + r4);
        let sa0_5 = ld_a(abase + (p) * 5u + r5);
        let sa0_6 = ld_a(abase + (p) * 5u + r6);
        let sa0_7 = ld_a(abase + (p) * 5u + r7);
        let sb0_0 = ld_b(bbase + c0 * 7u + p);
        let sb0_1 = ld_b(bbase + c1 * 7u + p);
        let sb0_2 = ld_b(bbase + c2 * 7u + p);
        let sb0_3 = ld_b(bbase + c3 * 7u + p);
        let sb0_4 = ld_b(bbase + c4 * 7u + p);
        let sb0_5 = ld_b(bbase + c5 * 7u + p);
        let sb0_6 = ld_b(bbase + c6 * 7u + p);
        let sb0_7 = ld_b(bbase + c7 * 7u + p);
        let bv0_0 = vec4<f32>(sb0_0, sb0_1, sb0_2, sb0_3);
        let bv0_1 = vec4<f32>(sb0_4, sb0_5, sb0_6, sb0_7);
        acc0_0 += sa0_0 * bv0_0;
        acc0_1 += sa0_0 * bv0_1;
        acc1_0 += sa0_1 * bv0_0;
        acc1_1 += sa0_1 * bv0_1;
        acc2_0 += sa0_2 * bv0_0;
        acc2_1 += sa0_2 * bv0_1;
        acc3_0 += sa0_3 * bv0_0;
        acc3_1 += sa0_3 * bv0_1;
        acc4_0 += sa0_4 * bv0_0;
        acc4_1 += sa0_4 * bv0_1;
        acc5_0 += sa0_5 * bv0_0;
        acc5_1 += sa0_5 * bv0_1;
        acc6_0 += sa0_6 * bv0_0;
        acc6_1 += sa0_6 * bv0_1;
        acc7_0 += sa0_7 * bv0_0;
        acc7_1 += sa0_7 * bv0_1;
    }
    let y0 = batch * 30u;
    if (row0 + 0u < 5u && col0 + 0u < 6u) { st_y(y0 + (row0 + 0u) * 6u + col0 + 0u, acc0_0[0]); }
    if (row0 + 0u < 5u && col0 + 1u < 6u) { st_y(y0 + (row0 + 0u) * 6u + col0 + 1u, acc0_0[1]); }
    if (row0 + 0u < 5u && col0 + 2u < 6u) { st_y(y0 + (row0 + 0u) * 6u + col0 + 2u, acc0_0[2]); }
    if (row0 + 0u < 5u && col0 + 3u < 6u) { st_y(y0 + (row0 + 0u) * 6u + col0 + 3u, acc0_0[3]); }
    if (row0 + 0u < 5u && col0 + 4u < 6u) { st_y(y0 + (row0 + 0u) * 6u + col0 + 4u, acc0_1[0]); }
    if (row0 + 0u < 5u && col0 + 5u < 6u) { st_y(y0 + (row0 + 0u) * 6u + col0 + 5u, acc0_1[1]); }
    if (row0 + 0u < 5u && col0 + 6u < 6u) { st_y(y0 + (row0 + 0u) * 6u + col0 + 6u, acc0_1[2]); }
    if (row0 + 0u < 5u && col0 + 7u < 6u) { st_y(y0 + (row0 + 0u) * 6u + col0 + 7u, acc0_1[3]); }
    if (row0 + 1u < 5u && col0 + 0u < 6u) { st_y(y0 + (row0 + 1u) * 6u + col0 + 0u, acc1_0[0]); }
    if (row0 + 1u < 5u && col0 + 1u < 6u) { st_y(y0 + (row0 + 1u) * 6u + col0 + 1u, acc1_0[1]); }
    if (row0 + 1u < 5u && col0 + 2u < 6u) { st_y(y0 + (row0 + 1u) * 6u + col0 + 2u, acc1_0[2]); }
    if (row0 + 1u < 5u && col0 + 3u < 6u) { st_y(y0 + (row0 + 1u) * 6u + col0 + 3u, acc1_0[3]); }
    if (row0 + 1u < 5u && col0 + 4u < 6u) { st_y(y0 + (row0 + 1u) * 6u + col0 + 4u, acc1_1[0]); }
    if (row0 + 1u < 5u && col0 + 5u < 6u) { st_y(y0 + (row0 + 1u) * 6u + col0 + 5u, acc1_1[1]); }
    if (row0 + 1u < 5u && col0 + 6u < 6u) { st_y(y0 + (row0 + 1u) * 6u + col0 + 6u, acc1_1[2]); }
    if (row0 + 1u < 5u && col0 + 7u < 6u) { st_y(y0 + (row0 + 1u) * 6u + col0 + 7u, acc1_1[3]); }
    if (row0 + 2u < 5u && col0 + 0u < 6u) { st_y(y0 + (row0 + 2u) * 6u + col0 + 0u, acc2_0[0]); }
    if (row0 + 2u < 5u && col0 + 1u < 6u) { st_y(y0 + (row0 + 2u) * 6u + col0 + 1u, acc2_0[1]); }
    if (row0 + 2u < 5u && col0 + 2u < 6u) { st_y(y0 + (row0 + 2u) * 6u + col0 + 2u, acc2_0[2]); }
    if (row0 + 2u < 5u && col0 + 3u < 6u) { st_y(y0 + (row0 + 2u) * 6u + col0 + 3u, acc2_0[3]); }
    if (row0 + 2u < 5u && col0 + 4u < 6u) { st_y(y0 + (row0 + 2u) * 6u + col0 + 4u, acc2_1[0]); }
    if (row0 + 2u < 5u && col0 + 5u < 6u) { st_y(y0 + (row0 + 2u) * 6u + col0 + 5u, acc2_1[1]); }
    if (row0 + 2u < 5u && col0 + 6u < 6u) { st_y(y0 + (row0 + 2u) * 6u + col0 + 6u, acc2_1[2]); }
    if (row0 + 2u < 5u && col0 + 7u < 6u) { st_y(y0 + (row0 + 2u) * 6u + col0 + 7u, acc2_1[3]); }
    if (row0 + 3u < 5u && col0 + 0u < 6u) { st_y(y0 + (row0 + 3u) * 6u + col0 + 0u, acc3_0[0]); }
    if (row0 + 3u < 5u && col0 + 1u < 6u) { st_y(y0 + (row0 + 3u) * 6u + col0 + 1u, acc3_0[1]); }
    if (row0 + 3u < 5u && col0 + 2u < 6u) { st_y(y0 + (row0 + 3u) * 6u + col0 + 2u, acc3_0[2]); }
    if (row0 + 3u < 5u && col0 + 3u < 6u) { st_y(y0 + (row0 + 3u) * 6u + col0 + 3u, acc3_0[3]); }
    if (row0 + 3u < 5u && col0 + 4u < 6u) { st_y(y0 + (row0 + 3u) * 6u + col0 + 4u, acc3_1[0]); }
    if (row0 + 3u < 5u && col0 + 5u < 6u) { st_y(y0 + (row0 + 3u) * 6u + col0 + 5u, acc3_1[1]); }
    if (row0 + 3u < 5u && col0 + 6u < 6u) { st_y(y0 + (row0 + 3u) * 6u + col0 + 6u, acc3_1[2]); }
    if (row0 + 3u < 5u && col0 + 7u < 6u) { st_y(y0 + (row0 + 3u) * 6u + col0 + 7u, acc3_1[3]); }
    if (row0 + 4u < 5u && col0 + 0u < 6u) { st_y(y0 + (row0 + 4u) * 6u + col0 + 0u, acc4_0[0]); }
    if (row0 + 4u < 5u && col0 + 1u < 6u) { st_y(y0 + (row0 + 4u) * 6u + col0 + 1u, acc4_0[1]); }
    if (row0 + 4u < 5u && col0 + 2u < 6u) { st_y(y0 + (row0 + 4u) * 6u + col0 + 2u, acc4_0[2]); }
    if (row0 + 4u < 5u && col0 + 3u < 6u) { st_y(y0 + (row0 + 4u) * 6u + col0 + 3u, acc4_0[3]); }
    if (row0 + 4u < 5u && col0 + 4u < 6u) { st_y(y0 + (row0 + 4u) * 6u + col0 + 4u, acc4_1[0]); }
    if (row0 + 4u < 5u && col0 + 5u < 6u) { st_y(y0 + (row0 + 4u) * 6u + col0 + 5u, acc4_1[1]); }
    if (row0 + 4u < 5u && col0 + 6u < 6u) { st_y(y0 + (row0 + 4u) * 6u + col0 + 6u, acc4_1[2]); }
    if (row0 + 4u < 5u && col0 + 7u < 6u) { st_y(y0 + (row0 + 4u) * 6u + col0 + 7u, acc4_1[3]); }
    if (row0 + 5u < 5u && col0 + 0u < 6u) { st_y(y0 + (row0 + 5u) * 6u + col0 + 0u, acc5_0[0]); }
    if (row0 + 5u < 5u && col0 + 1u < 6u) { st_y(y0 + (row0 + 5u) * 6u + col0 + 1u, acc5_0[1]); }
    if (row0 + 5u < 5u && col0 + 2u < 6u) { st_y(y0 + (row0 + 5u) * 6u + col0 + 2u, acc5_0[2]); }
    if (row0 + 5u < 5u && col0 + 3u < 6u) { st_y(y0 + (row0 + 5u) * 6u + col0 + 3u, acc5_0[3]); }
    if (row0 + 5u < 5u && col0 + 4u < 6u) { st_y(y0 + (row0 + 5u) * 6u + col0 + 4u, acc5_1[0]); }
    if (row0 + 5u < 5u && col0 + 5u < 6u) { st_y(y0 + (row0 + 5u) * 6u + col0 + 5u, acc5_1[1]); }
    if (row0 + 5u < 5u && col0 + 6u < 6u) { st_y(y0 + (row0 + 5u) * 6u + col0 + 6u, acc5_1[2]); }
    if (row0 + 5u < 5u && col0 + 7u < 6u) { st_y(y0 + (row0 + 5u) * 6u + col0 + 7u, acc5_1[3]); }
    if (row0 + 6u < 5u && col0 + 0u < 6u) { st_y(y0 + (row0 + 6u) * 6u + col0 + 0u, acc6_0[0]); }
    if (row0 + 6u < 5u && col0 + 1u < 6u) { st_y(y0 + (row0 + 6u) * 6u + col0 + 1u, acc6_0[1]); }
    if (row0 + 6u < 5u && col0 + 2u < 6u) { st_y(y0 + (row0 + 6u) * 6u + col0 + 2u, acc6_0[2]); }
    if (row0 + 6u < 5u && col0 + 3u < 6u) { st_y(y0 + (row0 + 6u) * 6u + col0 + 3u, acc6_0[3]); }
    if (row0 + 6u < 5u && col0 + 4u < 6u) { st_y(y0 + (row0 + 6u) * 6u + col0 + 4u, acc6_1[0]); }
    if (row0 + 6u < 5u && col0 + 5u < 6u) { st_y(y0 + (row0 + 6u) * 6u + col0 + 5u, acc6_1[1]); }
    if (row0 + 6u < 5u && col0 + 6u < 6u) { st_y(y0 + (row0 + 6u) * 6u + col0 + 6u, acc6_1[2]); }
    if (row0 + 6u < 5u && col0 + 7u < 6u) { st_y(y0 + (row0 + 6u) * 6u + col0 + 7u, acc6_1[3]); }
    if (row0 + 7u < 5u && col0 + 0u < 6u) { st_y(y0 + (row0 + 7u) * 6u + col0 + 0u, acc7_0[0]); }
    if (row0 + 7u < 5u && col0 + 1u < 6u) { st_y(y0 + (row0 + 7u) * 6u + col0 + 1u, acc7_0[1]); }
    if (row0 + 7u < 5u && col0 + 2u < 6u) { st_y(y0 + (row0 + 7u) * 6u + col0 + 2u, acc7_0[2]); }
    if (row0 + 7u < 5u && col0 + 3u < 6u) { st_y(y0 + (row0 + 7u) * 6u + col0 + 3u, acc7_0[3]); }
    if (row0 + 7u < 5u && col0 + 4u < 6u) { st_y(y0 + (row0 + 7u) * 6u + col0 + 4u, acc7_1[0]); }
    if (row0 + 7u < 5u && col0 + 5u < 6u) { st_y(y0 + (row0 + 7u) * 6u + col0 + 5u, acc7_1[1]); }
    if (row0 + 7u < 5u && col0 + 6u < 6u) { st_y(y0 + (row0 + 7u) * 6u + col0 + 6u, acc7_1[2]); }
    if (row0 + 7u < 5u && col0 + 7u < 6u) { st_y(y0 + (row0 + 7u) * 6u + col0 + 7u, acc7_1[3]); }
}
