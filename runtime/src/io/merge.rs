//! An adapter merged into its base model's weights: what `weft export`
//! writes as a plain Hugging Face checkpoint.
//!
//! Each adapted projection becomes `W' = W + s·B·A` (PEFT's `merge_and_unload`
//! for LoRA, `s` from [`LoraConfig::scaling`]), computed in f64 and rounded
//! once to f32, so the merged weight is the nearest f32 to the exact sum of
//! the f32 inputs' product; the modules in `modules_to_save` replace their
//! base tensors ([`apply_saved_modules`]).

use std::collections::BTreeMap;

use weft_ir::model::{LlamaConfig, LoraConfig};

use super::adapter::Adapter;
use super::saved_modules::apply_saved_modules;
use super::tensors::HostTensor;

#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("the base model has no tensor `{name}` for the adapter to merge into")]
    MissingBase { name: String },
    #[error("the adapter has no LoRA factor `{name}`")]
    MissingFactor { name: String },
    #[error(
        "cannot merge into `{name}`: W is {weight:?}, lora_B {b:?} and lora_A {a:?}, which do not multiply to W's shape"
    )]
    Shape { name: String, weight: Vec<usize>, a: Vec<usize>, b: Vec<usize> },
}

/// `W + scaling·B·A` for `W [out, in]`, `B [out, r]`, `A [r, in]`, in f64,
/// rounded to f32.
pub fn merge_lora(
    name: &str,
    weight: &HostTensor,
    a: &HostTensor,
    b: &HostTensor,
    scaling: f64,
) -> Result<HostTensor, MergeError> {
    let shape_error = || MergeError::Shape {
        name: name.into(),
        weight: weight.shape.clone(),
        a: a.shape.clone(),
        b: b.shape.clone(),
    };
    let ([out, input], [b_out, rank], [a_rank, a_in]) = (&weight.shape[..], &b.shape[..], &a.shape[..])
    else {
        return Err(shape_error());
    };
    if (out, input, rank) != (b_out, a_in, a_rank) {
        return Err(shape_error());
    }
    let (input, rank) = (*input, *rank);
    let mut data = Vec::with_capacity(weight.data.len());
    let mut row = vec![0f64; input];
    for o in 0..*out {
        row.fill(0.0);
        for k in 0..rank {
            let bk = f64::from(b.data[o * rank + k]);
            for (acc, &ak) in row.iter_mut().zip(&a.data[k * input..(k + 1) * input]) {
                *acc += bk * f64::from(ak);
            }
        }
        let w = &weight.data[o * input..(o + 1) * input];
        data.extend(w.iter().zip(&row).map(|(&w, &ba)| (f64::from(w) + scaling * ba) as f32));
    }
    Ok(HostTensor { shape: weight.shape.clone(), data })
}

/// Merges `adapter` into `weights` (a checkpoint of `config`, as
/// `load_checkpoint` returns it), returning the merged model's config (the
/// base's, untied when a saved module came apart from its tied twin, see
/// `saved_modules.rs`) and exactly the tensors that config lists.
pub fn merge_adapter(
    config: &LlamaConfig,
    mut weights: BTreeMap<String, HostTensor>,
    adapter: &Adapter,
) -> Result<(LlamaConfig, BTreeMap<String, HostTensor>), MergeError> {
    let merged_config =
        apply_saved_modules(config, &mut weights, &adapter.replacements, adapter.ensure_weight_tying);
    fold_lora(&mut weights, &adapter.lora, &adapter.tensors, config.num_hidden_layers)?;
    let mut merged = BTreeMap::new();
    for parameter in merged_config.parameter_shapes() {
        let Some(tensor) = weights.remove(&parameter.name) else {
            return Err(MergeError::MissingBase { name: parameter.name });
        };
        merged.insert(parameter.name, tensor);
    }
    Ok((merged_config, merged))
}

/// Replaces every adapted projection weight in `weights` by its merged value.
fn fold_lora(
    weights: &mut BTreeMap<String, HostTensor>,
    lora: &LoraConfig,
    factors: &BTreeMap<String, HostTensor>,
    layers: usize,
) -> Result<(), MergeError> {
    let scaling = lora.scaling();
    for layer in 0..layers {
        for module in &lora.target_modules {
            let base = format!("model.layers.{layer}.self_attn.{module}");
            let name = format!("{base}.weight");
            let factor = |which: &str| {
                let factor_name = format!("{base}.{which}.weight");
                factors.get(&factor_name).ok_or(MergeError::MissingFactor { name: factor_name })
            };
            let (a, b) = (factor("lora_A")?, factor("lora_B")?);
            let weight = weights.get(&name).ok_or_else(|| MergeError::MissingBase { name: name.clone() })?;
            let merged = merge_lora(&name, weight, a, b, scaling)?;
            weights.insert(name, merged);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(shape: &[usize], data: &[f32]) -> HostTensor {
        HostTensor { shape: shape.to_vec(), data: data.to_vec() }
    }

    #[test]
    fn merging_adds_the_scaled_product() {
        // W [2, 3], B [2, 1], A [1, 3]: W' = W + 2·B·A.
        let w = tensor(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let a = tensor(&[1, 3], &[1.0, 0.5, -1.0]);
        let b = tensor(&[2, 1], &[0.25, -2.0]);
        let merged = merge_lora("w", &w, &a, &b, 2.0).unwrap();
        assert_eq!(merged.data, [1.5, 2.25, 2.5, 0.0, 3.0, 10.0]);
        let err = merge_lora("w", &w, &b, &a, 2.0).unwrap_err();
        assert!(err.to_string().starts_with("cannot merge into `w`: W is [2, 3]"), "{err}");
    }

    #[test]
    fn the_sum_is_rounded_once() {
        // 1 + 2^-24 + 2^-24 rounds up to 1 + 2^-23 when summed exactly; summed
        // in f32 each 2^-24 would be lost to round-half-even.
        let tiny = 2f32.powi(-24);
        let w = tensor(&[1, 1], &[1.0]);
        let a = tensor(&[2, 1], &[1.0, 1.0]);
        let b = tensor(&[1, 2], &[tiny, tiny]);
        let merged = merge_lora("w", &w, &a, &b, 1.0).unwrap();
        assert_eq!(merged.data, [1.0 + 2f32.powi(-23)]);
    }
}
