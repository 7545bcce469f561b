//! Opening the adapter, for every command that runs kernels.

use weft_runtime::Gpu;

/// The user's adapter, with a warning on stderr when it is one weft runs
/// badly on (see [`Gpu::advice`]).
pub fn open() -> Result<Gpu, weft_runtime::RuntimeError> {
    let gpu = Gpu::new()?;
    if let Some(advice) = gpu.advice() {
        errln!("warning: {advice}");
    }
    Ok(gpu)
}
