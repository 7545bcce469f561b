//! `--weight-dtype`: how a model's frozen weights are stored on the device.

use std::collections::{BTreeMap, BTreeSet};

use clap::ValueEnum;
use serde::{Deserialize, Serialize};
use weft_compiler::ElemType;

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

/// The storage of each frozen weight (`frozen`: names and values) that can
/// be stored in 16 bits without changing a value, for
/// `GraphPlanOptions::leaf_storage`. Reports what it packed on stderr.
pub fn frozen_storage<'a>(
    frozen: impl Iterator<Item = (&'a str, &'a [f32])>,
    dtype: WeightDtype,
) -> BTreeMap<String, ElemType> {
    let mut storage = BTreeMap::new();
    if dtype == WeightDtype::F32 {
        return storage;
    }
    let (mut packed_values, mut frozen_values) = (0usize, 0usize);
    let mut kinds = BTreeSet::new();
    for (name, values) in frozen {
        frozen_values += values.len();
        let elem = weft_runtime::exact_storage(values);
        if elem.is_packed() {
            packed_values += values.len();
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
