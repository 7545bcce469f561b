//! Whether the buffers a command is about to allocate fit in this machine's memory.
//!
//! Checked before anything is allocated, so that a size weft accepts one by
//! one but not in product fails in a moment with a message, instead of after
//! minutes of swapping or with an allocator abort. Device buffers count too:
//! on lavapipe (and other integrated adapters) they are host memory.

use anyhow::bail;
use weft_ir::limits;

/// Bytes the kernel says are available (`MemAvailable` in `/proc/meminfo`);
/// `None` where that cannot be read, and then nothing is refused.
pub fn available_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

/// Refuses `bytes` of `what` if they exceed the memory available.
pub fn check_fits(bytes: u64, what: &str) -> anyhow::Result<()> {
    if let Some(available) = available_bytes()
        && bytes > available
    {
        bail!(
            "{what} needs {} ({bytes} bytes), more than the {} of memory available; use smaller sizes",
            gib(bytes),
            gib(available)
        );
    }
    Ok(())
}

/// Elements of `count` f32 attention tensors of shape [B, H, N, D], checked
/// against the activation limit and the memory available.
pub fn attention_tensors(shape: [usize; 4], count: u64, what: &str) -> anyhow::Result<usize> {
    let [b, h, n, d] = shape.map(|s| s as u64);
    let elements = limits::check_product(
        &[b, h, n, d],
        "one attention tensor (B × H × N × D)",
        &limits::ACTIVATION_ELEMENTS,
    )?;
    let bytes = elements
        .checked_mul(4 * count)
        .ok_or_else(|| anyhow::anyhow!("{what}: {elements} elements × {count} tensors overflow 64 bits"))?;
    check_fits(bytes, what)?;
    Ok(elements as usize)
}

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}
