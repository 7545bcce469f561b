// n2_matmul: matmul, transpose_b 2·20×8×36, small sg2x32/wg8: B shared across each subgroup
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
    let cb0 = min(col0 + 0u + sharer, 35u);
    let cb1 = min(col0 + 8u + sharer, 35u);
    let cb2 = min(col0 + 16u + sharer, 35u);
    let cb3 = min(col0 + 24u + sharer, 35u);
    var acc0_0 = 0.0;
    var acc0_1 = 0.0;
    var acc0_2 = 0.0;
    var acc0_3 = 0.0;
    var acc0_4 = 0.0;
    var acc0_5 = 0.0;
    var acc0_6 = 0.0;
    var acc0_7 = 0.0;
    var acc0_8 = 0.0;
    var acc0_9 = 0.0;
    var acc0_10 = 0.0;
    var acc0_11 = 0.0;
    var acc0_12 = 0.0;
    var acc0_13 = 0.0;
    var acc0_14 = 0.0;
    var acc0_15 = 0.0;
    var acc0_16 = 0.0;
    var acc0_17 = 0.0;
    var acc0_18 = 0.0;
    var acc0_19 = 0.0;
    var acc0_20 = 0.0;
    var acc0_21 = 0.0;
    var acc0_22 = 0.0;
    var acc0_23 = 0.0;
    var acc0_24 = 0.0;
    var acc0_25 = 0.0;
    var acc0_26 = 0.0;
    var acc0_27 = 0.0;
    var acc0_28 = 0.0;
    var acc0_29 = 0.0;
    var acc0_30 = 0.0;
    var acc0_31 = 0.0;
    var acc1_0 = 0.0;
    var acc1_1 = 0.0;
    var acc1_2 = 0.0;
    var acc1_3 = 0.0;
    var acc1_4 = 0.0;
    var acc1_5 = 0.0;
    var acc1_6 = 0.0;
    var acc1_7 = 0.0;
    var acc1_8 = 0.0;
    var acc1_9 = 0.0;
    var acc1_10 = 0.0;
    var acc1_11 = 0.0;
    var acc1_12 = 0.0;
    var acc1_13 = 0.0;
    var acc1_14 = 0.0;
    var acc1_15 = 0.0;
    var acc1_16 = 0.0;
    var acc1_17 = 0.0;
    var acc1_18 = 0.0;
    var acc1_19 = 0.0;
    var acc1_20 = 0.0;
    var acc1_21 = 0.0;
    var acc1_22 = 0.0;
    var acc1_23 = 0.0;
    var acc1_24 = 0.0;
    var acc1_25 = 0.0;
    var acc1_26 = 0.0;
    var acc1_27 = 0.0;
    var acc1_28 = 0.0;
    var acc1_29 = 0.0;
    var acc1_30 = 0.0;
    var acc1_31 = 0.0;
    for (var q = 0u; q < 2u; q++) {
        let ak0 = ld_a(abase + r0 * 2u + q);
        let ak1 = ld_a(abase + r1 * 2u + q);
        let vb0 = ld_b(bbase + cb0 * 2u + q);
        let bk0 = subgroupBroadcast(vb0, 0u);
        acc0_0 += dot(ak0, bk0);
        acc1_0 += dot(ak1, bk0);
        let bk1 = subgroupBroadcast(vb0, 1u);
        acc0_1 += dot(ak0, bk1);
        acc1_1 += dot(ak1, bk1);
        let bk2 = subgroupBroadcast(vb0, 2u);
        acc0_2 += dot(ak0, bk2);
        acc1_2 += dot(ak1, bk2);
        let bk3 = subgroupBroadcast(vb0, 3u);
        acc0_3 += dot(ak0, bk3);
        acc1_3 += dot(ak1, bk3);
        let bk4 = subgroupBroadcast(vb0, 4u);
        acc0_4 += dot(ak0, bk4);
        acc1_4 += dot(ak1, bk4);
        let bk5 = subgroupBroadcast(vb0, 5u);
        acc0_5 += dot(ak0, bk5);
        acc1_5 += dot(ak1, bk5);
        let bk6 = subgroupBroadcast(vb0, 6u);
        acc0_6 += dot(ak0, bk6);
        acc1_6 += dot(ak1, bk6);
        let bk7 = subgroupBroadcast(vb0, 7u);
        acc0_7 += dot(ak0, bk7);
        acc1_7 += dot(ak1, bk7);
        let vb1 = ld_b(bbase + cb1 * 2u + q);
        let bk8 = subgroupBroadcast(vb1, 0u);
        acc0_8 += dot(ak0, bk8);
        acc1_8 += dot(ak1, bk8);
        let bk9 = subgroupBroadcast(vb1, 1u);
        acc0_9 += dot(ak0, bk9);
        acc1_9 += dot(ak1, bk9);
        let bk10 = subgroupBroadcast(vb1, 2u);
        acc0_10 += dot(ak0, bk10);
        acc1_10 += dot(ak1, bk10);
        let bk11 = subgroupBroadcast(vb1, 3u);
        acc0_11 += dot(ak0, bk11);
        acc1_11 += dot(ak1, bk11);
        let bk12 = subgroupBroadcast(vb1, 4u);
        acc0_12 += dot(ak0, bk12);
        acc1_12 += dot(ak1, bk12);
        let bk13 = subgroupBroadcast(vb1, 5u);
        acc0_13 += dot(ak0, bk13);
        acc1_13 += dot(ak1, bk13);
        let bk14 = subgroupBroadcast(vb1, 6u);
        acc0_14 += dot(ak0, bk14);
        acc1_14 += dot(ak1, bk14);
        let bk15 = subgroupBroadcast(vb1, 7u);
        acc0_15 += dot(ak0, bk15);
        acc1_15 += dot(ak1, bk15);
        let vb2 = ld_b(bbase + cb2 * 2u + q);
        let bk16 = subgroupBroadcast(vb2, 0u);
        acc0_16 += dot(ak0, bk16);
        acc1_16 += dot(ak1, bk16);
        let bk17 = subgroupBroadcast(vb2, 1u);
        acc0_17 += dot(ak0, bk17);
        acc1_17 += dot(ak1, bk17);
        let bk18 = subgroupBroadcast(vb2, 2u);
        acc0_18 += dot(ak0, bk18);
        acc1_18 += dot(ak1, bk18);
        let bk19 = subgroupBroadcast(vb2, 3u);
        acc0_19 += dot(ak0, bk19);
        acc1_19 += dot(ak1, bk19);
        let bk20 = subgroupBroadcast(vb2, 4u);
        acc0_20 += dot(ak0, bk20);
        acc1_20 += dot(ak1, bk20);
        let bk21 = subgroupBroadcast(vb2, 5u);
        acc0_21 += dot(ak0, bk21);
        acc1_21 += dot(ak1, bk21);
        let bk22 = subgroupBroadcast(vb2, 6u);
        acc0_22 += dot(ak0, bk22);
        acc1_22 += dot(ak1, bk22);
        let bk23 = subgroupBroadcast(vb2, 7u);
        acc0_23 += dot(ak0, bk23);
        acc1_23 += dot(ak1, bk23);
        let vb3 = ld_b(bbase + cb3 * 2u + q);
        let bk24 = subgroupBroadcast(vb3, 0u);
        acc0_24 += dot(ak0, bk24);
        acc1_24 += dot(ak1, bk24);
        let bk25 = subgroupBroadcast(vb3, 1u);
        acc0_25 += dot(ak0, bk25);
        acc1_25 += dot(ak1, bk25);
        let bk26 = subgroupBroadcast(vb3, 2u);
        acc0_26 += dot(ak0, bk26);
        acc1_26 += dot(ak1, bk26);
        let bk27 = subgroupBroadcast(vb3, 3u);
        acc0_27 += dot(ak0, bk27);
        acc1_27 += dot(ak1, bk27);
        let bk28 = subgroupBroadcast(vb3, 4u);
        acc0_28 += dot(ak0, bk28);
        acc1_28 += dot(ak1, bk28);
        let bk29 = subgroupBroadcast(vb3, 5u);
        acc0_29 += dot(ak0, bk29);
        acc1_29 += dot(ak1, bk29);
        let bk30 = subgroupBroadcast(vb3, 6u);
        acc0_30 += dot(ak0, bk30);
        acc1_30 += dot(ak1, bk30);
        let bk31 = subgroupBroadcast(vb3, 7u);
        acc0_31 += dot(ak0, bk31);
        acc1_31 += dot(ak1, bk31);
    }
    let y0 = batch * 720u;
    if (row0 + 0u < 20u && col0 + 0u < 36u) { st_y(y0 + (row0 + 0u) * 36u + col0 + 0u, acc0_0); }
    if (row0 + 0u < 20u && col0 + 1u < 36u) { st_y(y0 + (row0 + 0u) * 36u + col0 + 1u, acc0_1); }
    if (row0 + 0u < 20u && col0 + 2u < 36u) { st_y(y0 + (row0 + 0u) * 36u + col0 + 2u, acc0_2); }
    if (row0 + 0u < 20u && col0 + 3u < 36u) { st_y(y0 + (row0 + 0u) * 36u + col0 + 3u, acc0_3); }
    if (row0 + 0u < 20u && col0 + 4u < 36u) { st_y(y0 + (row0 + 0u) * 36u + col0 + 4u, acc0_4); }
    if (row0 + 0u < 20u && col0 + 5u < 36u) { st_y(y0 + (row0 + 0u) * 36u + col0 + 5u, acc0_5); }
    if (row0 + 0u < 20u && col0 + 6u < 36u) { st_y(y0 + (row0 + 0u) * 36u + col0 + 6u, acc0_6); }
    if (row0 + 0u < 20u && col0 + 7u < 36u) { st_y(y0 + (row0 + 0u) * 36u + col0 + 7u, acc0_7); }
    if (row0 + 0u < 20u && col0 + 8u < 36u) { st_y(y0 + (row0 + 0u) * 36u + col0 + 8u, acc0_8); }
    if (row0 + 0u < 20u && col0 + 9u < 36u) { st_y(y0 + (row0 + 0u) * 36u + col0 + 9u, acc0_9); }
    if (row0 + 0u < 20u && col0 + 10u < 36u) { st_y(y0 + (row0 + 0u) * 36u + col0 + 10u, acc0_10); }
    if (row0 + 0u < 20u && col0 + 11u < 36u) { st_y(y0 + (row0 + 0u) * 36u + col0 + 11u, acc0_11); }
    if (row0 + 0u < 20u && col0 + 12u < 36u) { st_y(y0 + (row0 + 0u) * 36u + col0 + 12u, acc0_12); }
    if (row0 + 0u < 20u && col0 + 13u < 36u) { st_y(y0 + (row0 + 0u) * 36u + col0 + 13u, acc0_13); }
    if (row0 + 0u < 20u && col0 + 14u < 36u) { st_y(y0 + (row0 + 0u) * 36u + col0 + 14u, acc0_14); }
    if (row0 + 0u < 20u && col0 + 15u < 36u) { st_y(y0 + (row0 + 0u) * 36u + col0 + 15u, acc0_15); }
    if (row0 + 0u < 20u && col0 + 16u < 36u) { st_y(y0 + (row0 + 0u) * 36u + col0 + 16u, acc0_16); }
    if (row0 + 0u < 20u && col0 + 17u < 36u) { st_y(y0 + (row0 + 0u) * 36u + col0 + 17u, acc0_17); }
    if (row0 + 0u < 20u && col0 + 18u < 36u) { st_y(y0 + (row0 + 0u) * 36u + col0 + 18u, acc0_18); }
    if (row0 + 0u < 20u && col0 + 19u < 36u) { st_y(y0 + (row0 + 0u) * 36u + col0 + 19u, acc0_19); }
    if (row0 + 0u < 20u && col0 + 20u < 36u) { st_y(y0 + (row0 + 0u) * 36u + col0 + 20u, acc0_20); }
    if (row0 + 0u < 20u && col0 + 21u < 36u) { st_y(y0 + (row0 + 0u) * 36u + col0 + 21u, acc0_21); }
    if (row0 + 0u < 20u && col0 + 22u < 36u) { st_y(y0 + (row0 + 0u) * 36u + col0 + 22u, acc0_22); }
    if (row0 + 0u < 20u && col0 + 23u < 36u) { st_y(y0 + (row0 + 0u) * 36u + col0 + 23u, acc0_23); }
    if (row0 + 0u < 20u && col0 + 24u < 36u) { st_y(y0 + (row0 + 0u) * 36u + col0 + 24u, acc0_24); }
    if (row0 + 0u < 20u && col0 + 25u < 36u) { st_y(y0 + (row0 + 0u) * 36u + col0 + 25u, acc0_25); }
    if (row0 + 0u < 20u && col0 + 26u < 36u) { st_y(y0 + (row0 + 0u) * 36u + col0 + 26u, acc0_26); }
    if (row0 + 0u < 20u && col0 + 27u < 36u) { st_y(y0 + (row0 + 0u) * 36u + col0 + 27u, acc0_27); }
    if (row0 + 0u < 20u && col0 + 28u < 36u) { st_y(y0 + (row0 + 0u) * 36u + col0 + 28u, acc0_28); }
    if (row0 + 0u < 20u && col0 + 29u < 36u) { st_y(y0 + (row0 + 0u) * 36u + col0 + 29u, acc0_29); }
    if (row0 + 0u < 20u && col0 + 30u < 36u) { st_y(y0 + (row0 + 0u) * 36u + col0 + 30u, acc0_30); }
    if (row0 + 0u < 20u && col0 + 31u < 36u) { st_y(y0 + (row0 + 0u) * 36u + col0 + 31u, acc0_31); }
    if (row0 + 1u < 20u && col0 + 0u < 36u) { st_y(y0 + (row0 + 1u) * 36u + col0 + 0u, acc1_0); }
    if (row0 + 1u < 20u && col0 + 1u < 36u) { st_y(y0 + (row0 + 1u) * 36u + col0 + 1u, acc1_1); }
    if (row0 + 1u < 20u && col0 + 2u < 36u) { st_y(y0 + (row0 + 1u) * 36u + col0 + 2u, acc1_2); }
    if (row0 + 1u < 20u && col0 + 3u < 36u) { st_y(y0 + (row0 + 1u) * 36u + col0 + 3u, acc1_3); }
    if (row0 + 1u < 20u && col0 + 4u < 36u) { st_y(y0 + (row0 + 1u) * 36u + col0 + 4u, acc1_4); }
    if (row0 + 1u < 20u && col0 + 5u < 36u) { st_y(y0 + (row0 + 1u) * 36u + col0 + 5u, acc1_5); }
    if (row0 + 1u < 20u && col0 + 6u < 36u) { st_y(y0 + (row0 + 1u) * 36u + col0 + 6u, acc1_6); }
    if (row0 + 1u < 20u && col0 + 7u < 36u) { st_y(y0 + (row0 + 1u) * 36u + col0 + 7u, acc1_7); }
    if (row0 + 1u < 20u && col0 + 8u < 36u) { st_y(y0 + (row0 + 1u) * 36u + col0 + 8u, acc1_8); }
    if (row0 + 1u < 20u && col0 + 9u < 36u) { st_y(y0 + (row0 + 1u) * 36u + col0 + 9u, acc1_9); }
    if (row0 + 1u < 20u && col0 + 10u < 36u) { st_y(y0 + (row0 + 1u) * 36u + col0 + 10u, acc1_10); }
    if (row0 + 1u < 20u && col0 + 11u < 36u) { st_y(y0 + (row0 + 1u) * 36u + col0 + 11u, acc1_11); }
    if (row0 + 1u < 20u && col0 + 12u < 36u) { st_y(y0 + (row0 + 1u) * 36u + col0 + 12u, acc1_12); }
    if (row0 + 1u < 20u && col0 + 13u < 36u) { st_y(y0 + (row0 + 1u) * 36u + col0 + 13u, acc1_13); }
    if (row0 + 1u < 20u && col0 + 14u < 36u) { st_y(y0 + (row0 + 1u) * 36u + col0 + 14u, acc1_14); }
    if (row0 + 1u < 20u && col0 + 15u < 36u) { st_y(y0 + (row0 + 1u) * 36u + col0 + 15u, acc1_15); }
    if (row0 + 1u < 20u && col0 + 16u < 36u) { st_y(y0 + (row0 + 1u) * 36u + col0 + 16u, acc1_16); }
    if (row0 + 1u < 20u && col0 + 17u < 36u) { st_y(y0 + (row0 + 1u) * 36u + col0 + 17u, acc1_17); }
    if (row0 + 1u < 20u && col0 + 18u < 36u) { st_y(y0 + (row0 + 1u) * 36u + col0 + 18u, acc1_18); }
    if (row0 + 1u < 20u && col0 + 19u < 36u) { st_y(y0 + (row0 + 1u) * 36u + col0 + 19u, acc1_19); }
    if (row0 + 1u < 20u && col0 + 20u < 36u) { st_y(y0 + (row0 + 1u) * 36u + col0 + 20u, acc1_20); }
    if (row0 + 1u < 20u && col0 + 21u < 36u) { st_y(y0 + (row0 + 1u) * 36u + col0 + 21u, acc1_21); }
    if (row0 + 1u < 20u && col0 + 22u < 36u) { st_y(y0 + (row0 + 1u) * 36u + col0 + 22u, acc1_22); }
    if (row0 + 1u < 20u && col0 + 23u < 36u) { st_y(y0 + (row0 + 1u) * 36u + col0 + 23u, acc1_23); }
    if (row0 + 1u < 20u && col0 + 24u < 36u) { st_y(y0 + (row0 + 1u) * 36u + col0 + 24u, acc1_24); }
    if (row0 + 1u < 20u && col0 + 25u < 36u) { st_y(y0 + (row0 + 1u) * 36u + col0 + 25u, acc1_25); }
    if (row0 + 1u < 20u && col0 + 26u < 36u) { st_y(y0 + (row0 + 1u) * 36u + col0 + 26u, acc1_26); }
    if (row0 + 1u < 20u && col0 + 27u < 36u) { st_y(y0 + (row0 + 1u) * 36u + col0 + 27u, acc1_27); }
    if (row0 + 1u < 20u && col0 + 28u < 36u) { st_y(y0 + (row0 + 1u) * 36u + col0 + 28u, acc1_28); }
    if (row0 + 1u < 20u && col0 + 29u < 36u) { st_y(y0 + (row0 + 1u) * 36u + col0 + 29u, acc1_29); }
    if (row0 + 1u < 20u && col0 + 30u < 36u) { st_y(y0 + (row0 + 1u) * 36u + col0 + 30u, acc1_30); }
    if (row0 + 1u < 20u && col0 + 31u < 36u) { st_y(y0 + (row0 + 1u) * 36u + col0 + 31u, acc1_31); }
}
