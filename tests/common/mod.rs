//! Helpers shared by the end-to-end tests: run the `weft` binary and read its outputs.

#![allow(dead_code)]

pub mod hostile;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn example(name: &str) -> PathBuf {
    root().join("examples/patterns").join(name)
}

/// Whether this test may run `weft` commands that need a GPU (`attn`,
/// `forward`, `bench`, `tune`): the runtime's one GPU test helper decides, by
/// opening the adapter the binary would. Without one the test should return:
/// the skip is reported, and `WEFT_REQUIRE_GPU=1` makes it a failure instead.
#[track_caller]
pub fn gpu() -> bool {
    weft_runtime::testing::gpu_available()
}

/// Runs `weft` with `args`; panics only if the process cannot start.
///
/// The tuning cache points at a file that does not exist, so that the user's
/// own `weft tune` results never change what a test sees.
pub fn weft(args: &[&str]) -> Output {
    let no_cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("no-such-dir/tuning.toml");
    weft_with_cache(args, &no_cache)
}

/// Runs `weft` with `args` and the tuning cache at `cache`.
pub fn weft_with_cache(args: &[&str], cache: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(args)
        .env("WEFT_TUNING_CACHE", cache)
        .current_dir(root())
        .output()
        .expect("weft runs")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts success and returns stdout.
pub fn ok(args: &[&str]) -> String {
    let o = weft(args);
    assert!(o.status.success(), "weft {args:?} failed:\n{}", stderr(&o));
    stdout(&o)
}

/// Where [`scratch`] puts `test`'s directory.
pub fn scratch_path(test: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(test)
}

/// A fresh scratch directory under the target directory.
pub fn scratch(test: &str) -> PathBuf {
    let dir = scratch_path(test);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Reads a uint8 .npy file: (shape, data).
pub fn read_npy_u8(path: &Path) -> (Vec<u64>, Vec<u8>) {
    let bytes = std::fs::read(path).expect("npy file exists");
    let npy = npyz::NpyFile::new(&bytes[..]).expect("valid npy");
    let shape = npy.shape().to_vec();
    (shape, npy.into_vec::<u8>().expect("uint8 data"))
}

/// `value` rounded toward zero to a bf16 (or, with `f16`, to an f16 near
/// it): a value a checkpoint saved in that type can hold exactly.
pub fn to_16_bit(value: f32, f16: bool) -> f32 {
    if f16 {
        // Three decimal digits survive f16's 11 bits for values in (-1, 1).
        let near = (value * 1024.0).round() / 1024.0;
        weft_runtime::io::f16_from_f32_exact(near).map(weft_runtime::io::f16_to_f32).unwrap_or(0.0)
    } else {
        f32::from_bits(value.to_bits() & 0xffff_0000)
    }
}

/// Writes `tensors` as a safetensors file of 16-bit floats: F16 for the names
/// `f16` picks, BF16 for the rest. Every value must be exact in its type.
pub fn save_16_bit(
    path: &Path,
    tensors: &std::collections::BTreeMap<String, weft_runtime::io::HostTensor>,
    f16: impl Fn(&str) -> bool,
) {
    use weft_runtime::io::{bf16_from_f32_exact, f16_from_f32_exact};
    let encoded: Vec<(String, safetensors::Dtype, Vec<u8>, Vec<usize>)> = tensors
        .iter()
        .map(|(name, t)| {
            let (dtype, narrow): (_, fn(f32) -> Option<u16>) = if f16(name) {
                (safetensors::Dtype::F16, f16_from_f32_exact)
            } else {
                (safetensors::Dtype::BF16, bf16_from_f32_exact)
            };
            let bytes =
                t.data.iter().flat_map(|&v| narrow(v).expect("a 16-bit value").to_le_bytes()).collect();
            (name.clone(), dtype, bytes, t.shape.clone())
        })
        .collect();
    let views = encoded.iter().map(|(name, dtype, bytes, shape)| {
        (name.as_str(), safetensors::tensor::TensorView::new(*dtype, shape.clone(), bytes).unwrap())
    });
    std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
}

/// Rewrites the safetensors file `from` into `to` in bf16, each value rounded
/// toward zero (`to_16_bit`): a checkpoint as one saved in bf16 holds it.
pub fn save_as_bf16(from: &Path, to: &Path) {
    let file = weft_runtime::io::TensorFile::load(from).unwrap();
    let mut tensors = std::collections::BTreeMap::new();
    for name in file.names() {
        let mut t = file.float_as_f32(&name).unwrap();
        t.data.iter_mut().for_each(|v| *v = to_16_bit(*v, false));
        tensors.insert(name, t);
    }
    save_16_bit(to, &tensors, |_| false);
}

/// A copy of the model directory `from` (its `config.json`, and
/// `model.safetensors` in bf16 as [`save_as_bf16`] writes it) at `to`:
/// a checkpoint as one saved in bf16 holds it.
pub fn bf16_model_copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    std::fs::copy(from.join("config.json"), to.join("config.json")).unwrap();
    save_as_bf16(&from.join("model.safetensors"), &to.join("model.safetensors"));
}
