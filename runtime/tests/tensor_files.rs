//! safetensors files: round trips, files written by numpy, and clear errors.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use weft_runtime::io::{HostTensor, IntTensor, TensorFile, TensorFileError, save};

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("tensor_files");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn save_and_load_round_trip() {
    let path = scratch("round.safetensors");
    let t = HostTensor { shape: vec![2, 3], data: vec![1.5, -2.0, 3.25, 0.1, 1e-20, -7.0] };
    save(&path, &BTreeMap::from([("w".to_string(), t.clone())])).unwrap();
    let file = TensorFile::load(&path).unwrap();
    assert_eq!(file.names(), vec!["w".to_string()]);
    assert_eq!(file.f32("w").unwrap(), t);
}

#[test]
fn reads_a_file_written_by_numpy() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/s2attn-roll-input.safetensors");
    let file = TensorFile::load(&path).unwrap();
    assert_eq!(file.names(), vec!["do", "k", "q", "v"]);
    let q = file.f32("q").unwrap();
    assert_eq!(q.shape, vec![2, 4, 64, 16]);
    assert!(q.data.iter().all(|v| v.is_finite()) && q.data.iter().any(|&v| v != 0.0));
}

#[test]
fn errors_name_the_file_and_the_tensor() {
    let path = scratch("f64.safetensors");
    let data: Vec<u8> = [1.0f64, 2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F64, vec![2], &data).unwrap();
    std::fs::write(&path, safetensors::serialize([("x", view)], None).unwrap()).unwrap();
    let file = TensorFile::load(&path).unwrap();
    let err = file.f32("x").unwrap_err();
    assert!(matches!(err, TensorFileError::Dtype { .. }));
    assert_eq!(err.to_string(), format!("tensor `x` in {} is F64; expected F32", path.display()));
    let err = file.f32("y").unwrap_err();
    assert_eq!(err.to_string(), format!("{} has no tensor `y`; it has: x", path.display()));

    let garbage = scratch("garbage.safetensors");
    std::fs::write(&garbage, b"not a tensor file").unwrap();
    let err = TensorFile::load(&garbage).map(|_| ()).unwrap_err();
    assert!(matches!(err, TensorFileError::Format { .. }), "{err}");
    let err = TensorFile::load(Path::new("/no/such/file.safetensors")).map(|_| ()).unwrap_err();
    assert!(err.to_string().starts_with("cannot read /no/such/file.safetensors"), "{err}");
}

#[test]
fn integer_tensors_read_as_i64() {
    let path = scratch("ids.safetensors");
    let ids: Vec<u8> = [3i64, -100, 1 << 40].iter().flat_map(|v| v.to_le_bytes()).collect();
    let targets: Vec<u8> = [7i32, -1].iter().flat_map(|v| v.to_le_bytes()).collect();
    let scores: Vec<u8> = [1.0f32].iter().flat_map(|v| v.to_le_bytes()).collect();
    let view =
        |dtype, shape: Vec<usize>, data| safetensors::tensor::TensorView::new(dtype, shape, data).unwrap();
    let tensors = [
        ("ids", view(safetensors::Dtype::I64, vec![1, 3], &ids)),
        ("targets", view(safetensors::Dtype::I32, vec![2], &targets)),
        ("scores", view(safetensors::Dtype::F32, vec![1], &scores)),
    ];
    std::fs::write(&path, safetensors::serialize(tensors, None).unwrap()).unwrap();
    let file = TensorFile::load(&path).unwrap();
    assert_eq!(file.ints("ids").unwrap(), IntTensor { shape: vec![1, 3], data: vec![3, -100, 1 << 40] });
    assert_eq!(file.ints("targets").unwrap(), IntTensor { shape: vec![2], data: vec![7, -1] });
    let err = file.ints("scores").unwrap_err();
    assert_eq!(err.to_string(), format!("tensor `scores` in {} is F32; expected I32 or I64", path.display()));
    let err = file.f32("ids").unwrap_err();
    assert_eq!(err.to_string(), format!("tensor `ids` in {} is I64; expected F32", path.display()));
}
