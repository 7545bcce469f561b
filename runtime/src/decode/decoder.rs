//! Decoding on the device: a prefill plan over the prompts fills each layer's
//! cache, then a step plan runs one token per row against the caches.
//!
//! The caches live in the step plan's inputs `cache.{i}.key`, `.value` and
//! `.slots`. A new key and value (the step's `present.{i}.*` outputs) are
//! copied into their slot on the device; only the slot's position is written
//! from the host. A slot evicted by reach keeps its stale position on the
//! device until it is reused: eviction means no query from then on may see
//! it, so the kernel's mask skips it anyway.

use std::collections::HashMap;

use weft_compiler::KernelPlan;
use weft_ir::graph::RopeParams;
use weft_ir::mask::Reach;

use super::slots::{SlotError, SlotTable};
use crate::RuntimeError;
use crate::executor::{ElementCopy, Executor, Prepared};
use crate::host::{HostSlice, HostValues};

/// Why decoding failed.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("{0}")]
    Runtime(#[from] RuntimeError),
    #[error("KV cache: {0}")]
    Slot(#[from] SlotError),
    #[error("{rows} prompts for a batch of {batch}")]
    Batch { rows: usize, batch: usize },
    #[error("prompt {row} is empty")]
    EmptyPrompt { row: usize },
    #[error("prompt {row} has {len} tokens; the prefill plan takes at most {max}")]
    LongPrompt { row: usize, len: usize, max: usize },
    #[error("a step needs one entry per row ({rows}), found {found}")]
    StepRows { rows: usize, found: usize },
    #[error("row {row} continues after it finished")]
    Finished { row: usize },
}

/// What the decoder needs to know of the model and its pattern.
#[derive(Clone, Debug)]
pub struct DecodeSpec {
    pub batch: usize,
    /// Prefill length: the longest prompt, which the prefill plan is built for.
    pub prompt_len: usize,
    /// The most positions a row may reach (prompt and new tokens).
    pub max_len: u64,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    pub vocab: usize,
    pub rope: RopeParams,
    /// Per layer, per KV head: what its cache keeps ([`Pattern::kv_reach`](weft_ir::Pattern::kv_reach)).
    pub reach: Vec<Vec<Reach>>,
}

impl DecodeSpec {
    /// Slots per layer, as `build_llama_decode_graph` sizes the step's caches.
    pub fn cache_slots(&self) -> Vec<usize> {
        self.reach.iter().map(|r| SlotTable::new(r.clone(), 1, self.max_len).capacity()).collect()
    }
}

/// A batch being decoded.
pub struct Decoder<'e> {
    executor: &'e Executor,
    step: Prepared,
    spec: DecodeSpec,
    tables: Vec<SlotTable>,
    /// Per row, the position its next token takes; `None` once finished.
    next: Vec<Option<i64>>,
    /// The prefill's kernels alone (no upload, readback or pipeline creation).
    prefill_time: std::time::Duration,
}

impl<'e> Decoder<'e> {
    /// Runs `prefill` (a model graph with `kv_outputs` and `last_logits` at
    /// batch × `spec.prompt_len`) over `prompts`, right-padded, fills the
    /// caches of `step` (the decode graph with `spec.cache_slots()`), and
    /// returns the decoder with each row's logits after its last prompt token.
    /// `weights` feed both plans by name.
    pub fn start(
        executor: &'e mut Executor,
        spec: DecodeSpec,
        prefill: &KernelPlan,
        step: &KernelPlan,
        weights: &HashMap<String, HostValues>,
        prompts: &[Vec<i64>],
    ) -> Result<(Self, Vec<Vec<f32>>), DecodeError> {
        let (batch, t) = (spec.batch, spec.prompt_len);
        if prompts.len() != batch {
            return Err(DecodeError::Batch { rows: prompts.len(), batch });
        }
        for (row, prompt) in prompts.iter().enumerate() {
            if prompt.is_empty() {
                return Err(DecodeError::EmptyPrompt { row });
            }
            if prompt.len() > t {
                return Err(DecodeError::LongPrompt { row, len: prompt.len(), max: t });
            }
        }
        let (g, d) = (spec.n_kv_heads, spec.head_dim);
        let mut tables: Vec<SlotTable> =
            spec.reach.iter().map(|r| SlotTable::new(r.clone(), batch, spec.max_len)).collect();

        // The prefill: one pass over every prompt; its keys and values come back to the host.
        let mut cache_keys = Vec::with_capacity(tables.len());
        let mut cache_values = Vec::with_capacity(tables.len());
        let last_logits;
        let prefill_time;
        {
            let pre = executor.prepare(prefill)?;
            executor.upload_some(&pre, weights)?;
            let mut ids = vec![0i64; batch * t];
            let mut last_rows = Vec::with_capacity(batch);
            for (row, prompt) in prompts.iter().enumerate() {
                ids[row * t..row * t + prompt.len()].copy_from_slice(prompt);
                last_rows.push((row * t + prompt.len() - 1) as i64);
            }
            let inputs = HashMap::from([
                ("input_ids".to_string(), HostValues::I64(ids)),
                ("last_rows".to_string(), HostValues::I64(last_rows)),
            ]);
            executor.upload_some(&pre, &inputs)?;
            prefill_time = executor.execute(&pre)?;
            let logits = executor.read_f32(&pre, "logits")?;
            last_logits = logits.chunks(spec.vocab).map(<[f32]>::to_vec).collect::<Vec<_>>();
            for (layer, table) in tables.iter_mut().enumerate() {
                let k = executor.read_f32(&pre, &format!("present.{layer}.key"))?;
                let v = executor.read_f32(&pre, &format!("present.{layer}.value"))?;
                let c = table.capacity();
                let (mut keys, mut values) =
                    (vec![0.0f32; batch * g * c * d], vec![0.0f32; batch * g * c * d]);
                for (row, prompt) in prompts.iter().enumerate() {
                    for p in 0..prompt.len() {
                        for (kv, slot) in table.admit(row, p as i64)?.into_iter().enumerate() {
                            let Some(slot) = slot else { continue };
                            let from = ((row * g + kv) * t + p) * d;
                            let to = ((row * g + kv) * c + slot) * d;
                            keys[to..to + d].copy_from_slice(&k[from..from + d]);
                            values[to..to + d].copy_from_slice(&v[from..from + d]);
                        }
                    }
                }
                cache_keys.push(keys);
                cache_values.push(values);
            }
        }

        let step = executor.prepare(step)?;
        executor.upload_some(&step, weights)?;
        let mut caches = HashMap::new();
        for (layer, table) in tables.iter().enumerate() {
            caches.insert(
                format!("cache.{layer}.key"),
                HostValues::F32(std::mem::take(&mut cache_keys[layer])),
            );
            caches.insert(
                format!("cache.{layer}.value"),
                HostValues::F32(std::mem::take(&mut cache_values[layer])),
            );
            caches.insert(format!("cache.{layer}.slots"), HostValues::I32(table.positions().to_vec()));
        }
        executor.upload_some(&step, &caches)?;
        let next = prompts.iter().map(|p| Some(p.len() as i64)).collect();
        Ok((Decoder { executor, step, spec, tables, next, prefill_time }, last_logits))
    }

    /// One step: `tokens[row]` is the row's next token, or `None` for a row
    /// that has finished (it stays finished). Returns each running row's
    /// logits for the token after it.
    pub fn step(&mut self, tokens: &[Option<i64>]) -> Result<Vec<Option<Vec<f32>>>, DecodeError> {
        let (batch, g, d) = (self.spec.batch, self.spec.n_kv_heads, self.spec.head_dim);
        if tokens.len() != batch {
            return Err(DecodeError::StepRows { rows: batch, found: tokens.len() });
        }
        for (row, token) in tokens.iter().enumerate() {
            match (token, self.next[row]) {
                (Some(_), None) => return Err(DecodeError::Finished { row }),
                (None, Some(_)) => self.next[row] = None,
                _ => {}
            }
        }
        // A finished row reruns position 0 with token 0: harmless (its new
        // key is not stored, and its output is not read).
        let positions: Vec<i64> = self.next.iter().map(|p| p.unwrap_or(0)).collect();
        let ids: Vec<i64> = tokens.iter().map(|t| t.unwrap_or(0)).collect();
        let table: Vec<f32> = positions
            .iter()
            .flat_map(|&p| self.spec.rope.rotation(p as usize, d))
            .map(|v| v as f32)
            .collect();
        let inputs = HashMap::from([
            ("input_ids".to_string(), HostValues::I64(ids)),
            ("positions".to_string(), HostValues::I64(positions.clone())),
            ("rope_table".to_string(), HostValues::F32(table)),
        ]);
        self.executor.upload_some(&self.step, &inputs)?;
        // Admit each running row's position; its slot's position is written now
        // (the kernel skips a slot at the query's own position) and its key
        // and value after the step.
        let mut copies = Vec::new();
        for (layer, table) in self.tables.iter_mut().enumerate() {
            let c = table.capacity() as u64;
            for (row, position) in self.next.iter().enumerate() {
                let Some(position) = *position else { continue };
                for (kv, slot) in table.admit(row, position)?.into_iter().enumerate() {
                    let Some(slot) = slot else { continue };
                    let at = (row * g + kv) as u64 * c + slot as u64;
                    let value = [position as i32];
                    self.executor.write_at(
                        &self.step,
                        &format!("cache.{layer}.slots"),
                        at,
                        HostSlice::I32(&value),
                    )?;
                    for what in ["key", "value"] {
                        copies.push(ElementCopy {
                            from: format!("present.{layer}.{what}"),
                            from_start: ((row * g + kv) * d) as u64,
                            to: format!("cache.{layer}.{what}"),
                            to_start: at * d as u64,
                            len: d as u64,
                        });
                    }
                }
            }
        }
        self.executor.execute(&self.step)?;
        self.executor.copy_elements(&self.step, &copies)?;
        let logits = self.executor.read_f32(&self.step, "logits")?;
        let vocab = self.spec.vocab;
        let out = self
            .next
            .iter()
            .enumerate()
            .map(|(row, p)| p.map(|_| logits[row * vocab..(row + 1) * vocab].to_vec()))
            .collect();
        for p in self.next.iter_mut().flatten() {
            *p += 1;
        }
        Ok(out)
    }

    /// How long the prefill's kernels ran.
    pub fn prefill_time(&self) -> std::time::Duration {
        self.prefill_time
    }

    /// Per layer, the most keys any (row, KV head) of its cache holds now.
    pub fn held_keys(&self) -> Vec<usize> {
        self.tables
            .iter()
            .map(|t| {
                (0..self.spec.batch)
                    .flat_map(|row| (0..t.n_kv_heads()).map(move |kv| (row, kv)))
                    .map(|(row, kv)| t.held(row, kv).len())
                    .max()
                    .unwrap_or(0)
            })
            .collect()
    }

    /// Bytes of the device caches (keys and values; f32).
    pub fn cache_bytes(&self) -> u64 {
        let per_slot = (2 * self.spec.n_kv_heads * self.spec.head_dim * 4 * self.spec.batch) as u64;
        self.tables.iter().map(|t| t.capacity() as u64 * per_slot).sum()
    }
}
