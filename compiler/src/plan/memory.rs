//! Memory planning: scratch buffers whose lifetimes do not overlap share
//! device memory.
//!
//! A plan with one buffer per node holds every intermediate of a training
//! step at once; most are dead long before the step ends. Kernels run in plan
//! order, so a scratch buffer is live from the first kernel that binds it to
//! the last, and two buffers whose spans are disjoint can be one allocation.
//! Every kernel writes a scratch region before reading it (none relies on
//! zeroed memory), so the later tenant never sees the earlier one's values.

use std::collections::{BTreeMap, HashMap};

use crate::kernel::{BufferRole, KernelPlan};

/// One allocation and the kernel after which it is free again.
struct Slot {
    name: String,
    bytes: u64,
    free_after: usize,
}

/// Maps the plan's scratch buffers onto as few allocations as a greedy
/// first-use order gives, renaming bindings; inputs, outputs and constants
/// keep their own buffers. A slot keeps the name of its first tenant.
pub(crate) fn share_scratch(plan: &mut KernelPlan) {
    let mut span: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (i, kernel) in plan.kernels.iter().enumerate() {
        for binding in &kernel.bindings {
            let scratch = plan.buffers.get(&binding.buffer).is_some_and(|b| b.role == BufferRole::Scratch);
            if scratch {
                let entry = span.entry(binding.buffer.clone()).or_insert((i, i));
                entry.1 = i;
            }
        }
    }
    let mut order: Vec<(String, usize, usize)> = span.into_iter().map(|(n, (a, b))| (n, a, b)).collect();
    order.sort_by_key(|(name, first, _)| (*first, name.clone()));

    let mut slots: Vec<Slot> = Vec::new();
    let mut tenant_of: HashMap<String, usize> = HashMap::new();
    for (name, first, last) in order {
        let bytes = plan.buffers.get(&name).map_or(0, |b| b.bytes);
        let free: Vec<usize> = (0..slots.len()).filter(|&i| slots[i].free_after < first).collect();
        // The smallest free slot that is big enough, else the largest free one (grown).
        let fitting =
            free.iter().copied().filter(|&i| slots[i].bytes >= bytes).min_by_key(|&i| slots[i].bytes);
        let chosen = fitting.or_else(|| free.iter().copied().max_by_key(|&i| slots[i].bytes));
        let index = match chosen {
            Some(i) => {
                slots[i].bytes = slots[i].bytes.max(bytes);
                slots[i].free_after = last;
                i
            }
            None => {
                slots.push(Slot { name: name.clone(), bytes, free_after: last });
                slots.len() - 1
            }
        };
        tenant_of.insert(name, index);
    }

    let tenant_bytes: HashMap<String, u64> =
        tenant_of.keys().map(|name| (name.clone(), plan.buffers.get(name).map_or(0, |b| b.bytes))).collect();
    for kernel in &mut plan.kernels {
        for binding in &mut kernel.bindings {
            if let Some(&slot) = tenant_of.get(&binding.buffer) {
                // A whole-buffer binding of a smaller tenant stays its own
                // size: the slot may be larger than one storage binding may be.
                let bytes = tenant_bytes[&binding.buffer];
                if binding.range.is_none() && bytes < slots[slot].bytes {
                    binding.range = Some((0, bytes));
                }
                binding.buffer = slots[slot].name.clone();
            }
        }
    }
    for (name, &slot) in &tenant_of {
        if *name != slots[slot].name {
            plan.buffers.remove(name);
        }
    }
    for slot in &slots {
        if let Some(decl) = plan.buffers.get_mut(&slot.name) {
            if decl.bytes != slot.bytes {
                decl.shape = vec![(slot.bytes / 4) as usize];
            }
            decl.bytes = slot.bytes;
        }
    }
}
