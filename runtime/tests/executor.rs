//! The executor on hand-written plans: buffers, binding ranges, the pipeline
//! cache, and errors for bad inputs.

use std::collections::{BTreeMap, HashMap};

use rand::{Rng, SeedableRng, rngs::StdRng};
use weft_compiler::{Access, Binding, BufferDecl, BufferRole, ElemType, Kernel, KernelPlan};
use weft_runtime::testing::executor;
use weft_runtime::{HostValues, RuntimeError};

const AXPY: &str = "
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if (id.x < arrayLength(&out)) { out[id.x] = 3.0 * x[id.x] + y[id.x]; }
}
";

fn buffer(name: &str, n: usize, role: BufferRole) -> (String, BufferDecl) {
    (
        name.to_string(),
        BufferDecl { name: name.into(), bytes: 4 * n as u64, role, shape: vec![n], elem: ElemType::F32 },
    )
}

fn binding(index: u32, buffer: &str, access: Access, range: Option<(u64, u64)>) -> Binding {
    Binding { index, buffer: buffer.into(), access, range }
}

/// out = 3x + y over n values, optionally over the second half only (a binding range).
fn axpy_plan(n: usize, half: bool) -> KernelPlan {
    let range = half.then_some(((n / 2 * 4) as u64, (n / 2 * 4) as u64));
    let len = if half { n / 2 } else { n };
    KernelPlan {
        buffers: BTreeMap::from([
            buffer("x", n, BufferRole::Input),
            buffer("y", n, BufferRole::Const(bytemuck::cast_slice(&vec![1.5f32; n]).to_vec())),
            buffer("out", len, BufferRole::Output),
        ]),
        kernels: vec![Kernel {
            name: "axpy".into(),
            wgsl: AXPY.into(),
            entry_point: "main".into(),
            workgroup_size: [64, 1, 1],
            workgroups: [len.div_ceil(64) as u32, 1, 1],
            bindings: vec![
                binding(0, "x", Access::Read, range),
                binding(1, "y", Access::Read, range),
                binding(2, "out", Access::ReadWrite, None),
            ],
            flops: 2 * len as u64,
            bytes: 12 * len as u64,
        }],
    }
}

fn seed() -> u64 {
    let seed = std::env::var("WEFT_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    eprintln!("seed {seed} (rerun with WEFT_TEST_SEED={seed})");
    seed
}

#[test]
fn runs_a_plan_and_reuses_its_pipeline() {
    let mut rng = StdRng::seed_from_u64(seed());
    let Some(mut ex) = executor() else { return };
    let n = 1000; // not a multiple of the workgroup size
    let x: Vec<f32> = (0..n).map(|_| rng.random_range(-4.0..4.0)).collect();
    let out = ex.run(&axpy_plan(n, false), &HashMap::from([("x".to_string(), x.clone())])).unwrap();
    let want: Vec<f32> = x.iter().map(|v| 3.0 * v + 1.5).collect();
    assert_eq!(out["out"], want);
    // The second half through binding ranges (offsets aligned to 256 bytes); the
    // same kernel source, so no new pipeline.
    let n = 1024;
    let x: Vec<f32> = (0..n).map(|_| rng.random_range(-4.0..4.0)).collect();
    let out = ex.run(&axpy_plan(n, true), &HashMap::from([("x".to_string(), x.clone())])).unwrap();
    let want: Vec<f32> = x[n / 2..].iter().map(|v| 3.0 * v + 1.5).collect();
    assert_eq!(out["out"], want);
    assert_eq!(ex.cached_pipelines(), 1);
    // A misaligned range is refused with the alignment the device needs.
    let mut plan = axpy_plan(n, true);
    plan.kernels[0].bindings[0].range = Some((4, 64));
    let err = ex.prepare(&plan).map(|_| ()).unwrap_err();
    assert!(matches!(err, RuntimeError::BindingMisaligned { .. }), "{err}");
}

/// The compiler heads every kernel with `// name: title`; kernels that
/// differ only there (a model's layers) share one pipeline, and a kernel
/// whose code differs gets its own.
/// An input above the executor's flush size (16 MiB) is flushed to the device
/// as it is written: the values must arrive whole.
#[test]
fn an_upload_larger_than_the_flush_size_arrives_whole() {
    let mut rng = StdRng::seed_from_u64(seed());
    let Some(mut ex) = executor() else { return };
    // 18 MB of x; the kernel reads its second half (under 65535 workgroups of 64).
    let n = 4_500_480;
    let x: Vec<f32> = (0..n).map(|_| rng.random_range(-4.0..4.0)).collect();
    let out = ex.run(&axpy_plan(n, true), &HashMap::from([("x".to_string(), x.clone())])).unwrap();
    let want: Vec<f32> = x[n / 2..].iter().map(|v| 3.0 * v + 1.5).collect();
    assert!(out["out"] == want, "the flushed upload differs from x");
}

#[test]
fn kernels_that_differ_only_in_their_header_comment_share_a_pipeline() {
    let mut rng = StdRng::seed_from_u64(seed());
    let Some(mut ex) = executor() else { return };
    let n = 256;
    let mut plan = axpy_plan(n, false);
    plan.kernels[0].wgsl = format!("// n7_axpy: layer 0\n{AXPY}");
    let mut second = plan.kernels[0].clone();
    second.name = "n9_axpy".into();
    second.wgsl = format!("// n9_axpy: layer 1\n// another comment line\n{AXPY}");
    plan.kernels.push(second);
    let x: Vec<f32> = (0..n).map(|_| rng.random_range(-4.0..4.0)).collect();
    let out = ex.run(&plan, &HashMap::from([("x".to_string(), x.clone())])).unwrap();
    let want: Vec<f32> = x.iter().map(|v| 3.0 * v + 1.5).collect();
    assert_eq!(out["out"], want);
    assert_eq!(ex.cached_pipelines(), 1);
    plan.kernels[1].wgsl = plan.kernels[1].wgsl.replace("3.0 *", "2.0 *");
    ex.prepare(&plan).unwrap();
    assert_eq!(ex.cached_pipelines(), 2);
}

#[test]
fn bad_inputs_get_clear_errors() {
    let Some(mut ex) = executor() else { return };
    let plan = axpy_plan(128, false);
    let err = ex.run(&plan, &HashMap::<String, Vec<f32>>::new()).unwrap_err();
    assert!(matches!(err, RuntimeError::MissingInput { .. }));
    assert_eq!(err.to_string(), "plan input `x` was not given; the plan expects: x");
    let err = ex.run(&plan, &HashMap::from([("x".to_string(), vec![1.0; 127])])).unwrap_err();
    assert_eq!(err.to_string(), "plan input `x` has 127 values, expected 128 (shape [128])");
    let inputs = HashMap::from([("x".to_string(), vec![1.0; 128]), ("z".to_string(), vec![])]);
    let err = ex.run(&plan, &inputs).unwrap_err();
    assert_eq!(err.to_string(), "`z` is not an input of the plan; the plan expects: x");
}

const DOUBLE_IDS: &str = "
@group(0) @binding(0) var<storage, read> ids: array<i32>;
@group(0) @binding(1) var<storage, read_write> out: array<i32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if (id.x < arrayLength(&out)) { out[id.x] = 2 * ids[id.x]; }
}
";

/// out = 2 * ids over n i32 values: an integer input and output.
fn double_ids_plan(n: usize) -> KernelPlan {
    let int = |name: &str, role| {
        let (name, decl) = buffer(name, n, role);
        (name, BufferDecl { elem: ElemType::I32, ..decl })
    };
    KernelPlan {
        buffers: BTreeMap::from([int("ids", BufferRole::Input), int("out", BufferRole::Output)]),
        kernels: vec![Kernel {
            name: "double".into(),
            wgsl: DOUBLE_IDS.into(),
            entry_point: "main".into(),
            workgroup_size: [64, 1, 1],
            workgroups: [n.div_ceil(64) as u32, 1, 1],
            bindings: vec![binding(0, "ids", Access::Read, None), binding(1, "out", Access::ReadWrite, None)],
            flops: n as u64,
            bytes: 8 * n as u64,
        }],
    }
}

#[test]
fn integer_buffers_take_i32_or_narrowed_i64_and_check_types() {
    let Some(mut ex) = executor() else { return };
    let plan = double_ids_plan(100);
    let prepared = ex.prepare(&plan).unwrap();
    let ids: Vec<i64> = (0..100).map(|i| i * 1000 - 50_000).collect();
    let inputs = HashMap::from([("ids".to_string(), HostValues::I64(ids.clone()))]);
    ex.upload(&prepared, &inputs).unwrap();
    ex.execute(&prepared).unwrap();
    let out: HashMap<String, HostValues> = ex.download(&prepared).unwrap();
    let want: Vec<i32> = ids.iter().map(|&v| 2 * v as i32).collect();
    assert_eq!(out["out"], HostValues::I32(want));
    // As f32, an integer output is an error.
    let err = ex.download::<Vec<f32>>(&prepared).unwrap_err();
    assert_eq!(err.to_string(), "plan output `out` holds i32 values; download it as `HostValues`");

    let mut wide = ids.clone();
    wide[7] = 1 << 31;
    let inputs = HashMap::from([("ids".to_string(), HostValues::I64(wide))]);
    let err = ex.upload(&prepared, &inputs).unwrap_err();
    assert!(matches!(err, RuntimeError::InputOutOfRange { position: 7, .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "plan input `ids`: value 2147483648 at position 7 does not fit the i32 buffer"
    );

    let err = ex.upload(&prepared, &HashMap::from([("ids".to_string(), vec![1.0; 100])])).unwrap_err();
    assert_eq!(err.to_string(), "plan input `ids` holds i32 values, but f32 values were given");
    let f32_plan = ex.prepare(&axpy_plan(128, false)).unwrap();
    let inputs = HashMap::from([("x".to_string(), HostValues::I32(vec![1; 128]))]);
    let err = ex.upload(&f32_plan, &inputs).unwrap_err();
    assert!(matches!(err, RuntimeError::InputType { .. }), "{err}");
    assert_eq!(err.to_string(), "plan input `x` holds f32 values, but i32 values were given");
    // Sizes are still checked first, in values.
    let inputs = HashMap::from([("ids".to_string(), HostValues::I32(vec![1; 99]))]);
    let err = ex.upload(&prepared, &inputs).unwrap_err();
    assert_eq!(err.to_string(), "plan input `ids` has 99 values, expected 100 (shape [100])");
}

#[test]
fn plans_that_exceed_device_limits_are_refused_before_dispatch() {
    let Some(mut ex) = executor() else { return };
    let limit = ex.gpu().limits().max_workgroups_per_dimension;
    let mut plan = axpy_plan(64, false);
    plan.kernels[0].workgroups = [limit + 1, 1, 1];
    let err = ex.prepare(&plan).map(|_| ()).unwrap_err();
    assert!(matches!(err, RuntimeError::DispatchTooLarge { .. }), "{err}");
    let mut plan = axpy_plan(64, false);
    plan.kernels[0].bindings[0].buffer = "nope".into();
    let err = ex.prepare(&plan).map(|_| ()).unwrap_err();
    assert_eq!(err.to_string(), "kernel `axpy` binds `nope`, which the plan does not declare");
}

#[test]
fn a_kernel_the_device_rejects_is_an_error_not_a_panic() {
    let Some(mut ex) = executor() else { return };
    let mut plan = axpy_plan(64, false);
    plan.kernels[0].entry_point = "no_such_entry".into();
    let err = ex.prepare(&plan).map(|_| ()).unwrap_err();
    assert!(matches!(err, RuntimeError::Pipeline { .. }), "{err}");
    assert!(err.to_string().starts_with("kernel `axpy` was rejected by the device"), "{err}");
}
