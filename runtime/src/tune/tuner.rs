//! Timing the candidates and picking the fastest.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use weft_compiler::{AttentionPlanOptions, FusedAttentionDesc};

use crate::error::RuntimeError;
use crate::executor::{Executor, Prepared};
use crate::fused::FusedPlan;

use super::candidates::CandidateSpace;
use super::config::KernelConfig;
use super::error::{CandidateError, TuneError};
use super::problem::{Expected, TuneProblem};

/// How many of the fastest candidates, by each measure, are timed again at the end.
pub const FINALISTS: usize = 3;

/// What to tune on and how long to spend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TuneOptions {
    pub problem: TuneProblem,
    pub space: CandidateSpace,
    /// Untimed runs before timing (the first also compiles and is checked).
    pub warmups: usize,
    /// Timed runs; the median counts.
    pub repeats: usize,
    /// Candidates not started within this time are skipped (the default
    /// configuration, the reference, always runs).
    pub budget: Duration,
}

impl TuneOptions {
    /// Causal B=1 H=4 N=512 D=64; 3 tile sizes x 3 rows x checks on/off; 3
    /// timed runs; no candidate starts after 150 s.
    pub fn full() -> Self {
        TuneOptions {
            problem: TuneProblem { batch: 1, heads: 4, seq_len: 512, head_dim: 64 },
            space: CandidateSpace::full(),
            warmups: 1,
            repeats: 3,
            budget: Duration::from_secs(150),
        }
    }

    /// The same problem as [`TuneOptions::full`] (smaller ones give other
    /// winners: too few workgroups to fill a device), fewer candidates: 2 tile
    /// sizes x 2 rows x checks on/off; 2 timed runs; no candidate starts after 60 s.
    pub fn quick() -> Self {
        TuneOptions {
            problem: TuneProblem { batch: 1, heads: 4, seq_len: 512, head_dim: 64 },
            space: CandidateSpace::quick(),
            warmups: 1,
            repeats: 2,
            budget: Duration::from_secs(60),
        }
    }
}

/// Medians of one candidate's timed runs.
#[derive(Clone, Debug, PartialEq)]
pub struct Timing {
    /// Preparing the plan and its first run, which includes compiling the
    /// pipelines (some drivers, lavapipe among them, compile at first dispatch).
    pub first_run: Duration,
    /// The forward kernel.
    pub forward: Duration,
    /// The backward kernels (delta, dK/dV, dQ).
    pub backward: Duration,
    /// Forward and backward, median of the per-run sums.
    pub total: Duration,
    /// The worst relative error of its outputs against the references.
    pub error: f64,
    /// Every timed run: (forward, forward + backward).
    pub samples: Vec<(Duration, Duration)>,
}

impl Timing {
    fn from_samples(first_run: Duration, error: f64, samples: Vec<(Duration, Duration)>) -> Timing {
        let forward = median(samples.iter().map(|s| s.0).collect());
        let total = median(samples.iter().map(|s| s.1).collect());
        let backward = median(samples.iter().map(|s| s.1.saturating_sub(s.0)).collect());
        Timing { first_run, forward, backward, total, error, samples }
    }
}

/// What happened to a candidate.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Timed(Timing),
    /// Planning, compiling, running or the correctness check failed.
    Failed(CandidateError),
    /// Not run: the time budget was spent ([`CandidateError::OverBudget`]).
    Skipped(CandidateError),
}

#[derive(Clone, Debug, PartialEq)]
pub struct CandidateResult {
    pub config: KernelConfig,
    pub outcome: Outcome,
}

impl CandidateResult {
    pub fn timing(&self) -> Option<&Timing> {
        match &self.outcome {
            Outcome::Timed(t) => Some(t),
            _ => None,
        }
    }
}

/// Progress reports, for the caller to show.
#[derive(Debug)]
pub enum TuneEvent<'a> {
    /// The f64 reference output is being computed.
    Reference,
    /// Candidate `index` (from 0) of `total` starts.
    Start {
        index: usize,
        total: usize,
        config: &'a KernelConfig,
    },
    Done {
        index: usize,
        total: usize,
        result: &'a CandidateResult,
    },
    /// The fastest candidates are being timed again.
    FinalRound,
}

/// Every candidate's result and the choices.
#[derive(Clone, Debug, PartialEq)]
pub struct TuneReport {
    pub problem: TuneProblem,
    /// In the order run; the first is the default configuration.
    pub results: Vec<CandidateResult>,
    /// The fastest forward kernel.
    pub forward: KernelConfig,
    /// The fastest forward + backward (one plan shares one configuration).
    pub backward: KernelConfig,
    pub elapsed: Duration,
}

impl TuneReport {
    /// The default configuration's timing (the first result).
    pub fn baseline(&self) -> Option<&Timing> {
        self.results.first().and_then(CandidateResult::timing)
    }

    pub fn timing_of(&self, config: &KernelConfig) -> Option<&Timing> {
        self.results.iter().find(|r| &r.config == config).and_then(CandidateResult::timing)
    }
}

/// Times every candidate of `options.space` on the executor's device,
/// forward and backward, and picks the fastest of each.
///
/// Each candidate is planned with the backward kernels, compiled, run once and
/// checked (its `o` against the f64 interpreter, its gradients against the
/// default configuration's, which runs first), then timed kernel by kernel.
/// A candidate that fails is recorded with the reason and skipped. At the end
/// the [`FINALISTS`] fastest by each measure are timed again, taking turns,
/// and the medians over all their runs decide.
pub fn tune(
    executor: &mut Executor,
    options: &TuneOptions,
    progress: &mut dyn FnMut(TuneEvent<'_>),
) -> Result<TuneReport, TuneError> {
    let started = Instant::now();
    let problem = options.problem;
    let desc = problem.desc()?;
    let limits = executor.gpu().limits();
    let candidates = options.space.candidates(problem.head_dim, &limits);
    let Some(&default) = candidates.first() else {
        return Err(TuneError::NoCandidates { problem: problem.to_string() });
    };
    let base = AttentionPlanOptions { backward: true, limits, ..AttentionPlanOptions::default() };
    let inputs = problem.inputs();
    progress(TuneEvent::Reference);
    let mut expected = Expected { o: problem.reference_output(&inputs)?, gradients: None };

    let total = candidates.len();
    let mut results = Vec::with_capacity(total);
    for (index, config) in candidates.iter().enumerate() {
        progress(TuneEvent::Start { index, total, config });
        let outcome = if index > 0 && started.elapsed() > options.budget {
            Outcome::Skipped(CandidateError::OverBudget { seconds: options.budget.as_secs() })
        } else {
            let measured =
                measure(executor, &desc, &config.plan_options(&base), config, &inputs, &expected, options);
            match measured {
                Ok((timing, outputs)) => {
                    if index == 0 {
                        expected.gradients = Some(outputs);
                    }
                    Outcome::Timed(timing)
                }
                Err(reason) if index == 0 => {
                    return Err(TuneError::Reference {
                        config: config.to_string(),
                        problem: problem.to_string(),
                        reason,
                    });
                }
                Err(reason) => Outcome::Failed(reason),
            }
        };
        results.push(CandidateResult { config: *config, outcome });
        if let Some(result) = results.last() {
            progress(TuneEvent::Done { index, total, result });
        }
    }

    progress(TuneEvent::FinalRound);
    final_round(executor, &desc, &base, &inputs, &mut results, options.repeats.max(1));

    let fastest = |key: fn(&Timing) -> Duration| {
        results
            .iter()
            .filter_map(|r| r.timing().map(|t| (key(t), r.config)))
            .min_by_key(|(time, _)| *time)
            .map_or(default, |(_, config)| config)
    };
    let forward = fastest(|t| t.forward);
    let backward = fastest(|t| t.total);
    Ok(TuneReport { problem, results, forward, backward, elapsed: started.elapsed() })
}

/// Plans, compiles, checks and times one candidate; the outputs of its check
/// run come back for use as the reference.
fn measure(
    executor: &mut Executor,
    desc: &FusedAttentionDesc,
    plan_options: &AttentionPlanOptions,
    config: &KernelConfig,
    inputs: &HashMap<String, Vec<f32>>,
    expected: &Expected,
    options: &TuneOptions,
) -> Result<(Timing, HashMap<String, Vec<f32>>), CandidateError> {
    let run = |e: RuntimeError| CandidateError::Run(e.to_string());
    let fused =
        FusedPlan::new(desc, plan_options, config.checks).map_err(|e| CandidateError::Plan(e.to_string()))?;
    let first_start = Instant::now();
    let prepared = executor.prepare(&fused).map_err(|e| CandidateError::Compile(e.to_string()))?;
    executor.upload(&prepared, inputs).map_err(run)?;
    executor.execute(&prepared).map_err(run)?;
    let first_run = first_start.elapsed();
    let outputs = executor.download(&prepared).map_err(run)?;
    let error = expected.check(&outputs)?;
    for _ in 1..options.warmups {
        executor.execute(&prepared).map_err(run)?;
    }
    let samples = time_runs(executor, &prepared, options.repeats.max(1))?;
    Ok((Timing::from_samples(first_run, error, samples), outputs))
}

/// `runs` timed runs, kernel by kernel: (forward kernel, all kernels) each.
fn time_runs(
    executor: &Executor,
    prepared: &Prepared,
    runs: usize,
) -> Result<Vec<(Duration, Duration)>, CandidateError> {
    let is_forward: Vec<bool> = prepared.kernel_names().iter().map(|n| n.starts_with("attn_fwd")).collect();
    (0..runs)
        .map(|_| {
            let times = executor.execute_each(prepared).map_err(|e| CandidateError::Run(e.to_string()))?;
            let forward = times.iter().zip(&is_forward).filter(|(_, f)| **f).map(|(t, _)| *t).sum();
            Ok((forward, times.iter().sum()))
        })
        .collect()
}

/// Times the best `FINALISTS` by each measure again, `runs` rounds taking
/// turns, and adds the samples to theirs: the sweep ran each candidate at a
/// different moment, and a machine's load drifts. The pipelines are cached,
/// so this costs runs only.
fn final_round(
    executor: &mut Executor,
    desc: &FusedAttentionDesc,
    base: &AttentionPlanOptions,
    inputs: &HashMap<String, Vec<f32>>,
    results: &mut [CandidateResult],
    runs: usize,
) {
    let mut finalists: Vec<usize> = Vec::new();
    let measures: [fn(&Timing) -> Duration; 2] = [|t| t.forward, |t| t.total];
    for key in measures {
        let mut ranked: Vec<(Duration, usize)> =
            results.iter().enumerate().filter_map(|(i, r)| r.timing().map(|t| (key(t), i))).collect();
        ranked.sort();
        for (_, i) in ranked.into_iter().take(FINALISTS) {
            if !finalists.contains(&i) {
                finalists.push(i);
            }
        }
    }
    if finalists.len() < 2 {
        return;
    }
    let mut prepared = Vec::new();
    for &i in &finalists {
        let config = results[i].config;
        // A finalist that cannot be prepared again keeps its sweep samples: the error is dropped.
        let ready = FusedPlan::new(desc, &config.plan_options(base), config.checks)
            .ok()
            .and_then(|f| executor.prepare(&f).ok())
            .and_then(|p| executor.upload(&p, inputs).ok().map(|()| p));
        if let Some(p) = ready {
            prepared.push((i, p));
        }
    }
    for _ in 0..runs {
        for (i, p) in &prepared {
            if let (Ok(mut more), Outcome::Timed(t)) = (time_runs(executor, p, 1), &mut results[*i].outcome) {
                let mut samples = std::mem::take(&mut t.samples);
                samples.append(&mut more);
                *t = Timing::from_samples(t.first_run, t.error, samples);
            }
        }
    }
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times.get(times.len() / 2).copied().unwrap_or_default()
}
