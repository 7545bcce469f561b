// n2_embedding_grad: embedding gradient (gather)
@group(0) @binding(0) var<storage, read> ids: array<i32>;
fn ld_ids(i: u32) -> i32 { return ids[i]; }
@group(0) @binding(1) var<storage, read> dy: array<f32>;
fn ld_dy(i: u32) -> f32 { return dy[i]; }
@group(0) @binding(2) var<storage, read_write> dtable: array<f32>;
fn ld_dtable(i: u32) -> f32 { return dtable[i]; }
fn st_dtable(i: u32, value: f32) { dtable[i] = value; }
@compute @workgroup_size(64)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = (wid.y * 1u + wid.x) * 64u + lid;
    if (i >= 7u) {
        return;
    }
    let row = i32(i);
    let base = i * 3u;
    for (var j = 0u; j < 3u; j++) {
        st_dtable(base + j, 0.0);
    }
    for (var p = 0u; p < 140u; p++) {
        if (ld_ids(p) == row) {
            for (var j = 0u; j < 3u; j++) {
                st_dtable(base + j, ld_dtable(base + j) + ld_dy(p * 3u + j));
            }
        }
    }
}
