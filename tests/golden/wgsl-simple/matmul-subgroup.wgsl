// n2_matmul: matmul 2·20×8×36, small sg2x32/wg8: B shared across each subgroup
@group(0) @binding(0) var<storage, read> a: array<vec4<f32>>;
fn ld_a(i: u32) -> vec4<f32> { return a[i]; }
@group(0) @binding(1) var<storage, read> b: array<vec4<f32>>;
fn ld_b(i: u32) -> vec4<f32> { return b[i]; }
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
fn st_y(i: u32, value: f32) { y[i] = value; }
@compute @workgroup_size(8)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(subgroup_invocation_id) sg_lane: u32) {
    let i = min(wid.y * 8u + wid.x, 7u) * 8u + lid;
    let tile = i / 8u;
    let batch = tile / 4u;
    let in_batch = tile % 4u;
    let band = in_batch / 16u;
    let band_rows = min(2u - band * 8u, 8u);
    let in_band = in_batch % 16u;
    let col0 = (in_band / band_rows) * 32u;
    let row0 = (band * 8u + in_band % band_rows) * 16u + (i % 8u) * 2u;
    let sharer = sg_lane % 8u;
    let abase = batch * 40u;
    let bbase = batch * 72u;
    let r0 = min(row0 + 0u, 19u);
    let r1 = min(row0 + 1u, 19u);
    let cb0 = min(col0 / 4u + 0u + sharer, 8u);
    var acc0_0 = vec4<f32>(0.0);
    var acc0_1 = vec4<f32>(0.0);
    var acc0_2 = vec4<f32>(0.0);
    var acc0_3 = vec4<f32>(0.0);
    var acc0_4 = vec4<f32>(0.0);
    var acc0_5 = vec4<f32>(0.0);
    var acc0_6 = vec4<f32>(0.0);
    var acc0_7 = vec4<f32>(0.0);
    var acc1_0 = vec4<f32>(0.0);
    var acc1_1 = vec4<f32>(0.0);
    var acc1_2 = vec4<f32>(0.0);
    var acc1_3 = vec4<f32>(0.0);
    var acc1_4 = vec4<f32>(0.0);
    var acc1_5 = vec4<f32>(0.0);
    var acc1_6 = vec4<f32>(0.0);
    var acc1_7 = vec4<f32>(0.0);
    for (var q = 0u; q < 2u; q++) {
        let ak0 = ld_a(abase + r0 * 2u + q);
        let ak1 = ld_a(abase + r1 * 2u + q);
        let vb0_0 = ld_b(bbase + (q * 4u + 0u) * 9u + cb0);
        let vb1_0 = ld_b(bbase + (q * 4u + 1u) * 9u + cb0);
        let vb2_0 = ld_b(bbase + (q * 4u + 2u) * 9u + cb0);
        let vb3_0 = ld_b(bbase + (q * 4u + 3u) * 9u + cb0);
        let bn0_0 = subgroupBroadcast(vb0_0, 0u);
        let bn1_0 = subgroupBroadcast(vb1_0, 0u);
        let bn2_0 = subgroupBroadcast(vb2_0, 0u);
        let bn3_0 = subgroupBroadcast(vb3_0, 0u);
        acc0_0 += ak0[0] * bn0_0;
        acc0_0 += ak0[1] * bn1_0;
        acc0_0 += ak0[2] * bn2_0;
        acc0_0 += ak0[3] * bn3_0;
        acc1_0 += ak1[0] * bn0_0;
        acc1_0 += ak1[1] * bn1_0;
        acc1_0 += ak1[2] * bn2_0;
        acc1_0 += ak1[3] * bn3_0;
        let bn0_1 = subgroupBroadcast(vb0_0, 1u);
        let bn1_1 = subgroupBroadcast(vb1_0, 1u);
        let bn2_1 = subgroupBroadcast(vb2_0, 1u);
        let bn3_1 = subgroupBroadcast(vb3_0, 1u);
        acc0_1 += ak0[0] * bn0_1;
        acc0_1 += ak0[1] * bn1_1;
        acc0_1 += ak0[2] * bn2_1;
        acc0_1 += ak0[3] * bn3_1;
        acc1_1 += ak1[0] * bn0_1;
        acc1_1 += ak1[1] * bn1_1;
        acc1_1 += ak1[2] * bn2_1;
        acc1_1 += ak1[3] * bn3_1;
        let bn0_2 = subgroupBroadcast(vb0_0, 2u);
        let bn1_2 = subgroupBroadcast(vb1_0, 2u);
        let bn2_2 = subgroupBroadcast(vb2_0, 2u);
        let bn3_2 = subgroupBroadcast(vb3_0, 2u);
        acc0_2 += ak0[0] * bn0_2;
        acc0_2 += ak0[1] * bn1_2;
        acc0_2 += ak0[2] * bn2_2;
        acc0_2 += ak0[3] * bn3_2;
        acc1_2 += ak1[0] * bn0_2;
        acc1_2 += ak1[1] * bn1_2;
        acc1_2 += ak1[2] * bn2_2;
        acc1_2 += ak1[3] * bn3_2;
        let bn0_3 = subgroupBroadcast(vb0_0, 3u);
        let bn1_3 = subgroupBroadcast(vb1_0, 3u);
        let bn2_3 = subgroupBroadcast(vb2_0, 3u);
        let bn3_3 = subgroupBroadcast(vb3_0, 3u);
        acc0_3 += ak0[0] * bn0_3;
        acc0_3 += ak0[1] * bn1_3;
        acc0_3 += ak0[2] * bn2_3;
        acc0_3 += ak0[3] * bn3_3;
        acc1_3 += ak1[0] * bn0_3;
        acc1_3 += ak1[1] * bn1_3;
        acc1_3 += ak1[2] * bn2_3;
        acc1_3 += ak1[3] * bn3_3;
        let bn0_4 = subgroupBroadcast(vb0_0, 4u);
        let bn1_4 = subgroupBroadcast(vb1_0, 4u);
        let bn2_4 = subgroupBroadcast(vb2_0, 4u);
        let bn3_4 = subgroupBroadcast(vb3_0, 4u);
        acc0_4 += ak0[0] * bn0_4;
        acc0_4 += ak0[1] * bn1_4;
        acc0_4 += ak0[2] * bn2_4;
        acc0_4 += ak0[3] * bn3_4;
        acc1_4 += ak1[0] * bn0_4;
        acc1_4 += ak1[1] * bn1_4;
        acc1_4 += ak1[2] * bn2_4;
        acc1_4 += ak1[3] * bn3_4;
        let bn0_5 = subgroupBroadcast(vb0_0, 5u);
        let bn1_5 = subgroupBroadcast(vb1_0, 5u);
        let bn2_5 = subgroupBroadcast(vb2_0, 5u);
        let bn3_5 = subgroupBroadcast(vb3_0, 5u);
        acc0_5 += ak0[0] * bn0_5;
        acc0_5 += ak0[1] * bn1_5;
        acc0_5 += ak0[2] * bn2_5;
        acc0_5 += ak0[3] * bn3_5;
        acc1_5 += ak1[0] * bn0_5;
        acc1_5 += ak1[1] * bn1_5;
        acc1_5 += ak1[2] * bn2_5;
        acc1_5 += ak1[3] * bn3_5;
        let bn0_6 = subgroupBroadcast(vb0_0, 6u);
        let bn1_6 = subgroupBroadcast(vb1_0, 6u);
        let bn2_6 = subgroupBroadcast(vb2_0, 6u);
        let bn3_6 = subgroupBroadcast(vb3_0, 6u);
        acc0_6 += ak0[0] * bn0_6;
        acc0_6 += ak0[1] * bn1_6;
        acc0_6 += ak0[2] * bn2_6;
        acc0_6 += ak0[3] * bn3_6;
        acc1_6 += ak1[0] * bn0_6;
        acc1_6 += ak1[1] * bn1_6;
        acc1_6 += ak1[2] * bn2_6;
        acc1_6 += ak1[3] * bn3_6;
        let bn0_7 = subgroupBroadcast(vb0_0, 7u);
        let bn1_7 = subgroupBroadcast(vb1_0, 7u);
        let bn2_7 = subgroupBroadcast(vb2_0, 7u);
        let bn3_7 = subgroupBroadcast(vb3_0, 7u);
        acc0_7 += ak0[0] * bn0_7;
        acc0_7 += ak0[1] * bn1_7;
        acc0_7 += ak0[2] * bn2_7;
        acc0_7 += ak0[3] * bn3_7;
        acc1_7 += ak1[0] * bn0_7;
        acc1_7 += ak1[1] * bn1_7;
        acc1_7 += ak1[2] * bn2_7;
        acc1_7 += ak1[3] * bn3_7;
    }
    let y0 = batch * 720u;
    if (row0 + 0u < 20u && col0 + 0u < 36u) { st_y(y0 + (row0 + 0u) * 36u + col0 + 0u, acc0_0[0]); }
    if (row0 + 0u < 20u && col0 + 1u < 36u) { st_y(y0 + (row0 + 0u) * 36u + col0 + 1u, acc0_0[1]); }
    if (row0 + 0u < 20u && col0 + 2u < 36u) { st_y(y0 + (row0 + 0u) * 36u + col0 + 2u, acc0_0[2]); }
    if (row0 + 0u < 20u && col0 + 3u < 36u) { st_y(y0 + (row0 + 0u) * 36u + col0 + 3u, acc0_0[3]); }
    if (row0 + 0u < 20u && col0 + 4u < 36u) { st_y(y0 + (row0 + 0u) * 36u + col0 + 4u, acc0_1[0]); }
    if (row0 + 0u < 20u && col0 + 5u < 36u) { st_y(y0 + (row0 + 0u) * 36u + col0 + 5u, acc0_1[1]); }
    if (row0 + 0u < 20u && col0 + 6u < 36u) { st_y(y0 + (row0 + 0u) * 36u + col0 + 6u, acc0_1[2]); }
    if (row0 + 0u < 20u && col0 + 7u < 36u) { st_y(y0 + (row0 + 0u) * 36u + col0 + 7u, acc0_1[3]); }
    if (row0 + 0u < 20u && col0 + 8u < 36u) { st_y(y0 + (row0 + 0u) * 36u + col0 + 8u, acc0_2[0]); }
    if (row0 + 0u < 20u && col0 + 9u < 36u) { st_y(y0 + (row0 + 0u) * 36u + col0 + 9u, acc0_2[1]); }
    if (row0 + 0u < 20u && col0 + 10u < 36u) { st_y(y0 + (row0 + 0u) * 36u + col0 + 10u, acc0_2[2]); }
    if (row0 + 0u < 20u && col0 + 11u < 36u) { st_y(y0 + (row0 + 0u) * 36u + col0 + 11u, acc0_2[3]); }
    if (row0 + 0u < 20u && col0 + 12u < 36u) { st_y(y0 + (row0 + 0u) * 36u + col0 + 12u, acc0_3[0]); }
    if (row0 + 0u < 20u && col0 + 13u < 36u) { st_y(y0 + (row0 + 0u) * 36u + col0 + 13u, acc0_3[1]); }
    if (row0 + 0u < 20u && col0 + 14u < 36u) { st_y(y0 + (row0 + 0u) * 36u + col0 + 14u, acc0_3[2]); }
    if (row0 + 0u < 20u && col0 + 15u < 36u) { st_y(y0 + (row0 + 0u) * 36u + col0 + 15u, acc0_3[3]); }
    if (row0 + 0u < 20u && col0 + 16u < 36u) { st_y(y0 + (row0 + 0u) * 36u + col0 + 16u, acc0_4[0]); }
    if (row0 + 0u < 20u && col0 + 17u < 36u) { st_y(y0 + (row0 + 0u) * 36u + col0 + 17u, acc0_4[1]); }
    if (row0 + 0u < 20u && col0 + 18u < 36u) { st_y(y0 + (row0 + 0u) * 36u + col0 + 18u, acc0_4[2]); }
    if (row0 + 0u < 20u && col0 + 19u < 36u) { st_y(y0 + (row0 + 0u) * 36u + col0 + 19u, acc0_4[3]); }
    if (row0 + 0u < 20u && col0 + 20u < 36u) { st_y(y0 + (row0 + 0u) * 36u + col0 + 20u, acc0_5[0]); }
    if (row0 + 0u < 20u && col0 + 21u < 36u) { st_y(y0 + (row0 + 0u) * 36u + col0 + 21u, acc0_5[1]); }
    if (row0 + 0u < 20u && col0 + 22u < 36u) { st_y(y0 + (row0 + 0u) * 36u + col0 + 22u, acc0_5[2]); }
    if (row0 + 0u < 20u && col0 + 23u < 36u) { st_y(y0 + (row0 + 0u) * 36u + col0 + 23u, acc0_5[3]); }
    if (row0 + 0u < 20u && col0 + 24u < 36u) { st_y(y0 + (row0 + 0u) * 36u + col0 + 24u, acc0_6[0]); }
    if (row0 + 0u < 20u && col0 + 25u < 36u) { st_y(y0 + (row0 + 0u) * 36u + col0 + 25u, acc0_6[1]); }
    if (row0 + 0u < 20u && col0 + 26u < 36u) { st_y(y0 + (row0 + 0u) * 36u + col0 + 26u, acc0_6[2]); }
    if (row0 + 0u < 20u && col0 + 27u < 36u) { st_y(y0 + (row0 + 0u) * 36u + col0 + 27u, acc0_6[3]); }
    if (row0 + 0u < 20u && col0 + 28u < 36u) { st_y(y0 + (row0 + 0u) * 36u + col0 + 28u, acc0_7[0]); }
    if (row0 + 0u < 20u && col0 + 29u < 36u) { st_y(y0 + (row0 + 0u) * 36u + col0 + 29u, acc0_7[1]); }
    if (row0 + 0u < 20u && col0 + 30u < 36u) { st_y(y0 + (row0 + 0u) * 36u + col0 + 30u, acc0_7[2]); }
    if (row0 + 0u < 20u && col0 + 31u < 36u) { st_y(y0 + (row0 + 0u) * 36u + col0 + 31u, acc0_7[3]); }
    if (row0 + 1u < 20u && col0 + 0u < 36u) { st_y(y0 + (row0 + 1u) * 36u + col0 + 0u, acc1_0[0]); }
    if (row0 + 1u < 20u && col0 + 1u < 36u) { st_y(y0 + (row0 + 1u) * 36u + col0 + 1u, acc1_0[1]); }
    if (row0 + 1u < 20u && col0 + 2u < 36u) { st_y(y0 + (row0 + 1u) * 36u + col0 + 2u, acc1_0[2]); }
    if (row0 + 1u < 20u && col0 + 3u < 36u) { st_y(y0 + (row0 + 1u) * 36u + col0 + 3u, acc1_0[3]); }
    if (row0 + 1u < 20u && col0 + 4u < 36u) { st_y(y0 + (row0 + 1u) * 36u + col0 + 4u, acc1_1[0]); }
    if (row0 + 1u < 20u && col0 + 5u < 36u) { st_y(y0 + (row0 + 1u) * 36u + col0 + 5u, acc1_1[1]); }
    if (row0 + 1u < 20u && col0 + 6u < 36u) { st_y(y0 + (row0 + 1u) * 36u + col0 + 6u, acc1_1[2]); }
    if (row0 + 1u < 20u && col0 + 7u < 36u) { st_y(y0 + (row0 + 1u) * 36u + col0 + 7u, acc1_1[3]); }
    if (row0 + 1u < 20u && col0 + 8u < 36u) { st_y(y0 + (row0 + 1u) * 36u + col0 + 8u, acc1_2[0]); }
    if (row0 + 1u < 20u && col0 + 9u < 36u) { st_y(y0 + (row0 + 1u) * 36u + col0 + 9u, acc1_2[1]); }
    if (row0 + 1u < 20u && col0 + 10u < 36u) { st_y(y0 + (row0 + 1u) * 36u + col0 + 10u, acc1_2[2]); }
    if (row0 + 1u < 20u && col0 + 11u < 36u) { st_y(y0 + (row0 + 1u) * 36u + col0 + 11u, acc1_2[3]); }
    if (row0 + 1u < 20u && col0 + 12u < 36u) { st_y(y0 + (row0 + 1u) * 36u + col0 + 12u, acc1_3[0]); }
    if (row0 + 1u < 20u && col0 + 13u < 36u) { st_y(y0 + (row0 + 1u) * 36u + col0 + 13u, acc1_3[1]); }
    if (row0 + 1u < 20u && col0 + 14u < 36u) { st_y(y0 + (row0 + 1u) * 36u + col0 + 14u, acc1_3[2]); }
    if (row0 + 1u < 20u && col0 + 15u < 36u) { st_y(y0 + (row0 + 1u) * 36u + col0 + 15u, acc1_3[3]); }
    if (row0 + 1u < 20u && col0 + 16u < 36u) { st_y(y0 + (row0 + 1u) * 36u + col0 + 16u, acc1_4[0]); }
    if (row0 + 1u < 20u && col0 + 17u < 36u) { st_y(y0 + (row0 + 1u) * 36u + col0 + 17u, acc1_4[1]); }
    if (row0 + 1u < 20u && col0 + 18u < 36u) { st_y(y0 + (row0 + 1u) * 36u + col0 + 18u, acc1_4[2]); }
    if (row0 + 1u < 20u && col0 + 19u < 36u) { st_y(y0 + (row0 + 1u) * 36u + col0 + 19u, acc1_4[3]); }
    if (row0 + 1u < 20u && col0 + 20u < 36u) { st_y(y0 + (row0 + 1u) * 36u + col0 + 20u, acc1_5[0]); }
    if (row0 + 1u < 20u && col0 + 21u < 36u) { st_y(y0 + (row0 + 1u) * 36u + col0 + 21u, acc1_5[1]); }
    if (row0 + 1u < 20u && col0 + 22u < 36u) { st_y(y0 + (row0 + 1u) * 36u + col0 + 22u, acc1_5[2]); }
    if (row0 + 1u < 20u && col0 + 23u < 36u) { st_y(y0 + (row0 + 1u) * 36u + col0 + 23u, acc1_5[3]); }
    if (row0 + 1u < 20u && col0 + 24u < 36u) { st_y(y0 + (row0 + 1u) * 36u + col0 + 24u, acc1_6[0]); }
    if (row0 + 1u < 20u && col0 + 25u < 36u) { st_y(y0 + (row0 + 1u) * 36u + col0 + 25u, acc1_6[1]); }
    if (row0 + 1u < 20u && col0 + 26u < 36u) { st_y(y0 + (row0 + 1u) * 36u + col0 + 26u, acc1_6[2]); }
    if (row0 + 1u < 20u && col0 + 27u < 36u) { st_y(y0 + (row0 + 1u) * 36u + col0 + 27u, acc1_6[3]); }
    if (row0 + 1u < 20u && col0 + 28u < 36u) { st_y(y0 + (row0 + 1u) * 36u + col0 + 28u, acc1_7[0]); }
    if (row0 + 1u < 20u && col0 + 29u < 36u) { st_y(y0 + (row0 + 1u) * 36u + col0 + 29u, acc1_7[1]); }
    if (row0 + 1u < 20u && col0 + 30u < 36u) { st_y(y0 + (row0 + 1u) * 36u + col0 + 30u, acc1_7[2]); }
    if (row0 + 1u < 20u && col0 + 31u < 36u) { st_y(y0 + (row0 + 1u) * 36u + col0 + 31u, acc1_7[3]); }
}
