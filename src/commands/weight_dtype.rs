//! `--weight-dtype`: how a model's frozen weights are stored on the device.

use std::collections::{BTreeMap, BTreeSet};

use clap::ValueEnum;
use serde::{Deserialize, Serialize};
use weft_compiler::ElemType;
use weft_runtime::HostValues;

/// How frozen weights are stored on the device. Trained tensors are always f32.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WeightDtype {
    /// As the checkpoint holds them: a tensor whose every value is exactly a bf16 (or f16)
    /// stays bf16 (or f16) on the device, at half the memory of f32, and the kernels widen
    /// it on load. Nothing is rounded, so the results are those of f32.
    #[default]
    Auto,
    /// Every weight in f32.
    F32,
}

/// The storage of weights the host holds in their exact type
/// ([`host_values`]): each 16-bit tensor stays 16-bit on the device. Reports what it
/// packed on stderr.
pub fn host_storage<'a>(
    weights: impl Iterator<Item = (&'a str, &'a HostValues)>,
) -> BTreeMap<String, ElemType> {
    storage_of(weights.map(|(name, values)| (name, values.len(), values.elem())))
}

/// How the host keeps a weight read from a checkpoint under `dtype`: in 16
/// bits when every value is exactly a bf16 (or f16), as a checkpoint saved in
/// that type holds it (`auto`), else, or under `f32`, in f32.
pub fn host_values(values: Vec<f32>, dtype: WeightDtype) -> HostValues {
    match dtype {
        WeightDtype::Auto => HostValues::exact(values),
        WeightDtype::F32 => HostValues::F32(values),
    }
}

/// The packed entries of `tensors` (name, number of values, type), reported.
fn storage_of<'a>(tensors: impl Iterator<Item = (&'a str, usize, ElemType)>) -> BTreeMap<String, ElemType> {
    let mut storage = BTreeMap::new();
    let (mut packed_values, mut frozen_values) = (0usize, 0usize);
    let mut kinds = BTreeSet::new();
    for (name, len, elem) in tensors {
        frozen_values += len;
        if elem.is_packed() {
            packed_values += len;
            kinds.insert(elem.name());
            storage.insert(name.to_string(), elem);
        }
    }
    if !storage.is_empty() {
        // Two bytes saved per packed value.
        let saved = (packed_values * 2) as f64;
        let saved = if saved < 1048576.0 {
            format!("{:.1} KiB", saved / 1024.0)
        } else {
            format!("{:.1} MiB", saved / 1048576.0)
        };
        errln!(
            "weights: {packed_values} of {frozen_values} frozen values stored as {} ({saved} saved; \
             --weight-dtype f32 keeps them f32)",
            kinds.into_iter().collect::<Vec<_>>().join(" and "),
        );
    }
    storage
}
