//! What the model GPU tests share: random inputs for every leaf of a model
//! graph, and the comparison against the interpreter.

use std::collections::HashMap;

use rand::Rng;
use rand::rngs::StdRng;
use weft_ir::graph::ValidGraph;
use weft_ir::interp::Tensor;
use weft_ir::model::LlamaConfig;
use weft_runtime::HostValues;

/// `max |gpu - ref| / max |ref|` allowed per output.
pub const TOLERANCE: f64 = 1e-4;

/// A random value in ±[0.05, 0.5): never zero.
pub fn weight(rng: &mut StdRng) -> f32 {
    let sign = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
    rng.random_range(0.05f32..0.5) * sign
}

/// The same random values for every leaf, typed for the GPU and as f64
/// tensors: float leaves from `float(name, rng)`, ids below the vocabulary
/// (the last target of each row of `t` ignored).
pub fn inputs(
    graph: &ValidGraph,
    config: &LlamaConfig,
    t: usize,
    rng: &mut StdRng,
    float: impl Fn(&str, &mut StdRng) -> f32,
) -> (HashMap<String, HostValues>, HashMap<String, Tensor>) {
    let (mut gpu, mut reference) = (HashMap::new(), HashMap::new());
    for (id, name) in graph.leaves() {
        let ty = &graph.node(id).ty;
        let count: usize = ty.shape.iter().product();
        let (host, values) = if ty.dtype.is_float() {
            let values: Vec<f32> = (0..count).map(|_| float(name, rng)).collect();
            let exact = values.iter().map(|&v| f64::from(v)).collect();
            (HostValues::F32(values), exact)
        } else {
            let ids: Vec<i64> = (0..count)
                .map(|i| match name {
                    "targets" if i % t == t - 1 => -100,
                    _ => rng.random_range(0..config.vocab_size as i64),
                })
                .collect();
            let exact = ids.iter().map(|&v| v as f64).collect();
            (HostValues::I64(ids), exact)
        };
        gpu.insert(name.to_string(), host);
        reference.insert(name.to_string(), Tensor::new(ty.shape.clone(), values).unwrap());
    }
    (gpu, reference)
}

/// Every output of `got` against `want`, printed; fails on any above [`TOLERANCE`].
pub fn assert_close(got: &HashMap<String, Vec<f32>>, want: &HashMap<String, Tensor>) {
    let mut failures = Vec::new();
    for (name, expected) in want {
        let values = got[name].iter().map(|&v| f64::from(v)).collect();
        let err = Tensor::new(expected.shape().to_vec(), values).unwrap().max_rel_error(expected);
        eprintln!("{name}: {err:.2e}");
        if err.is_nan() || err > TOLERANCE {
            failures.push(format!("{name}: {err:.3e}"));
        }
    }
    assert!(failures.is_empty(), "relative error above {TOLERANCE:e}:\n{}", failures.join("\n"));
}
