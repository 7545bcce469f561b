//! An adapter merged into its base model's weights: what `weft export`
//! writes as a plain Hugging Face checkpoint.
//!
//! Each adapted projection becomes `W' = W + s·B·A` (PEFT's `merge_and_unload`
//! for LoRA, `s` from [`LoraConfig::scaling`](weft_ir::model::LoraConfig::scaling)),
//! computed in f64 and rounded once to f32, so the merged weight is the
//! nearest f32 to the exact sum of the f32 inputs' product; the modules in
//! `modules_to_save` replace their base tensors ([`apply_saved_modules`]).
//!
//! The merge is planned from names and shapes first ([`plan_merge`]), and
//! each tensor computed only when the writer asks for it
//! ([`MergePlan::values`]): exporting a 7B model holds one base tensor and
//! its merged value on the host, not the 27 GB of the whole model in f32.

use std::borrow::Cow;
use std::collections::BTreeMap;

use weft_ir::model::{LlamaConfig, ParameterShape};

use super::adapter::Adapter;
use super::saved_modules::apply_saved_modules;
use super::tensors::HostTensor;

#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("the base model has no tensor `{name}` for the adapter to merge into")]
    MissingBase { name: String },
    #[error("the adapter has no LoRA factor `{name}`")]
    MissingFactor { name: String },
    #[error("the adapter has no saved module `{name}`")]
    MissingSaved { name: String },
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
    check_factors(name, &weight.shape, &a.shape, &b.shape)?;
    let (out, input, rank) = (weight.shape[0], weight.shape[1], b.shape[1]);
    let mut data = Vec::with_capacity(weight.data.len());
    let mut row = vec![0f64; input];
    for o in 0..out {
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

/// Where one tensor of the merged checkpoint comes from, by name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MergedTensor {
    /// The base tensor of this name, as it is. An export that unties tied
    /// embeddings takes its `lm_head.weight` from the base's embedding.
    Base(String),
    /// The adapter's saved module (`modules_to_save`) of this name.
    Saved(String),
    /// The base tensor of this name, plus its LoRA product `s·B·A`.
    Lora(String),
}

/// An adapter's merge into its base, planned from names and shapes alone:
/// [`MergePlan::values`] computes each merged tensor when it is asked for, so
/// a checkpoint is merged and written one tensor at a time.
#[derive(Clone, Debug)]
pub struct MergePlan {
    /// The merged model's config: the base's, untied when a saved module
    /// came apart from its tied twin (see `saved_modules.rs`).
    pub config: LlamaConfig,
    /// Exactly the tensors `config` lists, in its parameter order, each with its source.
    pub tensors: Vec<(ParameterShape, MergedTensor)>,
}

/// Plans the merge of `adapter` into a base checkpoint of `config`, checking
/// every LoRA factor's presence and shape against the weight it adapts.
pub fn plan_merge(config: &LlamaConfig, adapter: &Adapter) -> Result<MergePlan, MergeError> {
    let shapes: BTreeMap<String, Vec<usize>> =
        config.parameter_shapes().into_iter().map(|p| (p.name, p.shape)).collect();
    let mut sources: BTreeMap<String, MergedTensor> =
        shapes.keys().map(|name| (name.clone(), MergedTensor::Base(name.clone()))).collect();
    let saved: BTreeMap<String, MergedTensor> =
        adapter.replacements.keys().map(|name| (name.clone(), MergedTensor::Saved(name.clone()))).collect();
    let merged_config = apply_saved_modules(config, &mut sources, &saved, adapter.ensure_weight_tying);
    for layer in 0..config.num_hidden_layers {
        for module in &adapter.lora.target_modules {
            let base = format!("model.layers.{layer}.self_attn.{module}");
            let name = format!("{base}.weight");
            let factor = |which: &str| {
                let factor_name = format!("{base}.{which}.weight");
                adapter.tensors.get(&factor_name).ok_or(MergeError::MissingFactor { name: factor_name })
            };
            let (a, b) = (factor("lora_A")?, factor("lora_B")?);
            let Some(weight) = shapes.get(&name) else {
                return Err(MergeError::MissingBase { name });
            };
            check_factors(&name, weight, &a.shape, &b.shape)?;
            // Saved modules are embeddings and norms, never a projection: its source is the base.
            sources.insert(name.clone(), MergedTensor::Lora(name));
        }
    }
    let mut tensors = Vec::new();
    for parameter in merged_config.parameter_shapes() {
        let Some(source) = sources.remove(&parameter.name) else {
            return Err(MergeError::MissingBase { name: parameter.name });
        };
        tensors.push((parameter, source));
    }
    Ok(MergePlan { config: merged_config, tensors })
}

impl MergePlan {
    /// The values of `self.tensors[index]`: a saved module borrowed from
    /// `adapter`, or a base tensor fetched with `base(name)`, merged with its
    /// LoRA factors when it is adapted.
    pub fn values<'a, E: From<MergeError>>(
        &self,
        index: usize,
        adapter: &'a Adapter,
        base: impl FnOnce(&str) -> Result<HostTensor, E>,
    ) -> Result<Cow<'a, [f32]>, E> {
        let (parameter, source) = &self.tensors[index];
        Ok(match source {
            MergedTensor::Saved(name) => match adapter.replacements.get(name) {
                Some(tensor) => Cow::Borrowed(&tensor.data[..]),
                None => return Err(MergeError::MissingSaved { name: name.clone() }.into()),
            },
            MergedTensor::Base(name) => Cow::Owned(base(name)?.data),
            MergedTensor::Lora(name) => {
                let module = name.strip_suffix(".weight").unwrap_or(name);
                let factor = |which: &str| {
                    let factor_name = format!("{module}.{which}.weight");
                    adapter.tensors.get(&factor_name).ok_or(MergeError::MissingFactor { name: factor_name })
                };
                let (a, b) = (factor("lora_A")?, factor("lora_B")?);
                let weight = base(name)?;
                if weight.shape != parameter.shape {
                    let (a, b) = (a.shape.clone(), b.shape.clone());
                    return Err(MergeError::Shape { name: name.clone(), weight: weight.shape, a, b }.into());
                }
                Cow::Owned(merge_lora(name, &weight, a, b, adapter.lora.scaling())?.data)
            }
        })
    }
}

/// Merges `adapter` into `weights` (a checkpoint of `config`, as
/// `load_checkpoint` returns it, all in memory), returning the merged model's
/// config and exactly the tensors that config lists. `weft export` streams
/// the same [`MergePlan`] instead.
pub fn merge_adapter(
    config: &LlamaConfig,
    weights: BTreeMap<String, HostTensor>,
    adapter: &Adapter,
) -> Result<(LlamaConfig, BTreeMap<String, HostTensor>), MergeError> {
    let plan = plan_merge(config, adapter)?;
    let mut merged = BTreeMap::new();
    for (index, (parameter, _)) in plan.tensors.iter().enumerate() {
        let data = plan.values(index, adapter, |name| {
            weights.get(name).cloned().ok_or_else(|| MergeError::MissingBase { name: name.into() })
        })?;
        let tensor = HostTensor { shape: parameter.shape.clone(), data: data.into_owned() };
        merged.insert(parameter.name.clone(), tensor);
    }
    Ok((plan.config, merged))
}

/// Checks that `B [out, r]` times `A [r, in]` has the shape of `weight [out, in]`.
fn check_factors(name: &str, weight: &[usize], a: &[usize], b: &[usize]) -> Result<(), MergeError> {
    let fits = matches!((weight, b, a), ([out, input], [b_out, rank], [a_rank, a_in])
        if (out, input, rank) == (b_out, a_in, a_rank));
    if fits {
        return Ok(());
    }
    Err(MergeError::Shape { name: name.into(), weight: weight.to_vec(), a: a.to_vec(), b: b.to_vec() })
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
