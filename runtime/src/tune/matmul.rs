//! Measuring the matmul kernel shapes ([`MatmulConfig`]) on the current
//! adapter: each candidate is first checked against an f64 CPU matmul, then
//! timed; the fastest by the geometric mean over the problem sizes wins.
//! `weft tune` runs it once per shape class, on the class's representative
//! problem ([`MatmulShape::representative`]), and caches each winner; `weft
//! bench matmul` prints the table.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use weft_compiler::{GraphPlanOptions, KernelPlan, MatmulClass, MatmulConfig, MatmulTable, plan_graph};
use weft_ir::graph::{Graph, Op, TensorType, ValidGraph};

use crate::executor::Executor;
use weft_compiler::DeviceLimits;

use super::error::{MatmulError, ShapeParseError, TuneError};
use super::problem::rel_error;

/// `[M, K] × [K, N]`, written `MxKxN`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatmulShape {
    pub m: usize,
    pub k: usize,
    pub n: usize,
}

impl MatmulShape {
    pub const fn new(m: usize, k: usize, n: usize) -> Self {
        MatmulShape { m, k, n }
    }

    /// The problem `weft tune` times for `class`.
    pub fn representative(class: MatmulClass) -> Self {
        let (m, k, n) = class.representative();
        MatmulShape { m, k, n }
    }

    pub fn flops(&self) -> f64 {
        2.0 * self.m as f64 * self.n as f64 * self.k as f64
    }
}

impl FromStr for MatmulShape {
    type Err = ShapeParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<usize> = s
            .split('x')
            .map(|p| p.trim().parse::<usize>())
            .collect::<Result<_, _>>()
            .map_err(|source| ShapeParseError::Number { text: s.to_string(), source })?;
        match parts[..] {
            [m, k, n] if m > 0 && k > 0 && n > 0 => Ok(MatmulShape { m, k, n }),
            _ => Err(ShapeParseError::NotThree(s.to_string())),
        }
    }
}

impl std::fmt::Display for MatmulShape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}x{}]x[{}x{}]", self.m, self.k, self.k, self.n)
    }
}

/// Each candidate is checked on this size first: edge tiles for every
/// candidate, and `vec4` loads.
pub const MATMUL_CHECK: MatmulShape = MatmulShape::new(132, 68, 100);
/// `max |gpu - cpu| / max |cpu|` a candidate must stay within at [`MATMUL_CHECK`].
pub const MATMUL_TOLERANCE: f64 = 1e-4;
/// Problems above this many FLOPs skip the warm-up run: pipelines are
/// compiled when the plan is prepared, and one run of them takes seconds.
const NO_WARM_UP: f64 = 1e10;

/// The configurations worth timing on a device with `limits`: every
/// candidate, or (`quick`) the 64-thread register ones and the device's
/// defaults of every shape class.
pub fn matmul_candidates(limits: &DeviceLimits, quick: bool) -> Vec<MatmulConfig> {
    let subgroups = limits.shares_subgroups();
    let defaults = MatmulTable::default_for(limits);
    let is_default = |c: &MatmulConfig| MatmulClass::ALL.iter().any(|&class| defaults.get(class) == *c);
    MatmulConfig::candidates(subgroups)
        .into_iter()
        .filter(|c| !quick || c.workgroup == 64 || is_default(c))
        .collect()
}

/// One candidate's result.
#[derive(Debug)]
pub enum MatmulOutcome {
    /// GFLOP/s at each problem size, in order.
    Timed(Vec<f64>),
    /// It did not plan, run or pass its check: why.
    Failed(MatmulError),
}

#[derive(Debug)]
pub struct MatmulResult {
    pub config: MatmulConfig,
    pub outcome: MatmulOutcome,
}

/// Every candidate's result, and the fastest.
#[derive(Debug)]
pub struct MatmulReport {
    pub shapes: Vec<MatmulShape>,
    pub results: Vec<MatmulResult>,
    /// The fastest by the geometric mean of GFLOP/s over the shapes, and those rates.
    pub best: MatmulConfig,
    pub best_rates: Vec<f64>,
}

/// Checks, then times, every candidate on every shape (median of `repeats`
/// runs after a warm-up); `progress` sees each result as it comes.
pub fn tune_matmul(
    executor: &mut Executor,
    base: &GraphPlanOptions,
    candidates: &[MatmulConfig],
    shapes: &[MatmulShape],
    repeats: usize,
    progress: &mut dyn FnMut(&MatmulResult),
) -> Result<MatmulReport, TuneError> {
    let mut results = Vec::new();
    for &config in candidates {
        // Every class the candidate: the problems timed may be of any class.
        let opts = GraphPlanOptions { matmul: MatmulTable::uniform(config), ..base.clone() };
        let outcome = match measure(executor, &opts, shapes, repeats.max(1)) {
            Ok(rates) => MatmulOutcome::Timed(rates),
            Err(why) => MatmulOutcome::Failed(why),
        };
        let result = MatmulResult { config, outcome };
        progress(&result);
        results.push(result);
    }
    let score = |rates: &[f64]| rates.iter().map(|r| r.ln()).sum::<f64>() / rates.len().max(1) as f64;
    let (best, best_rates) = results
        .iter()
        .filter_map(|r| match &r.outcome {
            MatmulOutcome::Timed(rates) => Some((r.config, rates.clone())),
            MatmulOutcome::Failed(_) => None,
        })
        .max_by(|a, b| score(&a.1).total_cmp(&score(&b.1)))
        .ok_or_else(|| TuneError::NoCandidates { problem: describe(shapes) })?;
    Ok(MatmulReport { shapes: shapes.to_vec(), results, best, best_rates })
}

fn describe(shapes: &[MatmulShape]) -> String {
    let names: Vec<String> = shapes.iter().map(|s| format!("matmul {s}")).collect();
    names.join(", ")
}

/// The configuration `opts` runs a `shape` matmul with (its shape class's,
/// tuned or default) and its GFLOP/s there: checked first against an f64 CPU
/// matmul, then the median of `repeats` runs. What `weft bench attn` holds the
/// attention kernels against.
pub fn matmul_rate(
    executor: &mut Executor,
    opts: &GraphPlanOptions,
    shape: MatmulShape,
    repeats: usize,
) -> Result<(MatmulConfig, f64), MatmulError> {
    let (m, k, n) = (shape.m as u64, shape.k as u64, shape.n as u64);
    let (_, config) = opts.matmul.lookup(1, m, n, k);
    // The check runs at its own small size: with this configuration for every class.
    let opts = GraphPlanOptions { matmul: MatmulTable::uniform(config), ..opts.clone() };
    let rates = measure(executor, &opts, &[shape], repeats.max(1))?;
    Ok((config, rates[0]))
}

/// GFLOP/s at each shape, after the check; a failure says why.
fn measure(
    executor: &mut Executor,
    opts: &GraphPlanOptions,
    shapes: &[MatmulShape],
    repeats: usize,
) -> Result<Vec<f64>, MatmulError> {
    let error = check(executor, opts)?;
    if error > MATMUL_TOLERANCE {
        return Err(MatmulError::Inaccurate { shape: MATMUL_CHECK, error, tolerance: MATMUL_TOLERANCE });
    }
    shapes
        .iter()
        .map(|&shape| {
            let median = time(executor, opts, shape, repeats)?;
            Ok(shape.flops() / median.as_secs_f64().max(1e-9) / 1e9)
        })
        .collect()
}

fn matmul_graph(shape: MatmulShape) -> Result<ValidGraph, MatmulError> {
    let failed = |message: String| MatmulError::Graph { shape, message };
    let mut g = Graph::new("matmul");
    let a = g.input("a", TensorType::f32(vec![shape.m, shape.k]));
    let b = g.input("b", TensorType::f32(vec![shape.k, shape.n]));
    let y = g
        .add(Op::MatMul { transpose_a: false, transpose_b: false }, &[a, b])
        .map_err(|e| failed(e.to_string()))?;
    g.set_output("y", y);
    g.validate().map_err(|e| failed(e.to_string()))
}

fn plan(opts: &GraphPlanOptions, shape: MatmulShape) -> Result<KernelPlan, MatmulError> {
    plan_graph(&matmul_graph(shape)?, opts).map_err(|source| MatmulError::Plan { shape, source })
}

/// `a` and `b` of `shape`: fixed pseudo-random values in [-1, 1).
fn inputs(shape: MatmulShape) -> HashMap<String, Vec<f32>> {
    let mut state = 0x5EED_1234_ABCD_9876u64;
    let mut next = move || {
        // xorshift64*, as the attention problem's inputs.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let bits = state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40;
        (bits as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    };
    let a = (0..shape.m * shape.k).map(|_| next()).collect();
    let b = (0..shape.k * shape.n).map(|_| next()).collect();
    HashMap::from([("a".to_string(), a), ("b".to_string(), b)])
}

/// The relative error of the candidate at [`MATMUL_CHECK`] against an f64 CPU matmul.
fn check(executor: &mut Executor, opts: &GraphPlanOptions) -> Result<f64, MatmulError> {
    let shape = MATMUL_CHECK;
    let MatmulShape { m, k, n } = shape;
    let inputs = inputs(shape);
    let got =
        executor.run(&plan(opts, shape)?, &inputs).map_err(|source| MatmulError::Run { shape, source })?;
    let y = got.get("y").ok_or(MatmulError::NoOutput { shape })?;
    let (a, b) = (&inputs["a"], &inputs["b"]);
    let want = (0..m * n).map(|ij| {
        let (i, j) = (ij / n, ij % n);
        (0..k).map(|p| f64::from(a[i * k + p]) * f64::from(b[p * n + j])).sum::<f64>()
    });
    Ok(rel_error(y, want))
}

/// The median wall time of `repeats` runs after one warm-up run (none for big problems).
fn time(
    executor: &mut Executor,
    opts: &GraphPlanOptions,
    shape: MatmulShape,
    repeats: usize,
) -> Result<Duration, MatmulError> {
    let run = |source| MatmulError::Run { shape, source };
    let prepared = executor.prepare(&plan(opts, shape)?).map_err(run)?;
    executor.upload(&prepared, &inputs(shape)).map_err(run)?;
    if shape.flops() < NO_WARM_UP {
        executor.execute(&prepared).map_err(run)?;
    }
    let mut times: Vec<Duration> =
        (0..repeats).map(|_| executor.execute(&prepared)).collect::<Result<_, _>>().map_err(run)?;
    times.sort();
    Ok(times[times.len() / 2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_parse_or_say_why_not() {
        assert_eq!("8x2048x1024".parse::<MatmulShape>(), Ok(MatmulShape::new(8, 2048, 1024)));
        assert_eq!("8x0x4".parse::<MatmulShape>(), Err(ShapeParseError::NotThree("8x0x4".into())));
        let err = "8xtwox4".parse::<MatmulShape>().unwrap_err();
        assert!(matches!(&err, ShapeParseError::Number { text, .. } if text == "8xtwox4"), "{err:?}");
        assert!(err.to_string().starts_with("`8xtwox4`: invalid digit"), "{err}");
        for class in MatmulClass::ALL {
            let s = MatmulShape::representative(class);
            assert_eq!(MatmulClass::of(1, s.m as u64, s.n as u64, s.k as u64), class);
        }
    }
}
