//! Every WGSL module the compiler emits passes naga's validator here before it
//! leaves the crate; SPIR-V is produced from the same validated module.

use naga::valid::{Capabilities, ValidationFlags, Validator};

#[derive(Debug, thiserror::Error)]
pub enum ShaderError {
    #[error("kernel `{kernel}`: WGSL does not parse: {message}")]
    Parse { kernel: String, message: String },
    #[error("kernel `{kernel}`: WGSL does not validate: {message}")]
    Validate { kernel: String, message: String },
    #[error("kernel `{kernel}`: SPIR-V output failed: {message}")]
    Spirv { kernel: String, message: String },
}

fn module(kernel: &str, wgsl: &str) -> Result<(naga::Module, naga::valid::ModuleInfo), ShaderError> {
    let module = naga::front::wgsl::parse_str(wgsl)
        .map_err(|e| ShaderError::Parse { kernel: kernel.into(), message: e.emit_to_string(wgsl) })?;
    let info = Validator::new(ValidationFlags::all(), Capabilities::all())
        .validate(&module)
        .map_err(|e| ShaderError::Validate { kernel: kernel.into(), message: e.emit_to_string(wgsl) })?;
    Ok((module, info))
}

/// Parses and validates a WGSL module.
pub fn validate_wgsl(kernel: &str, wgsl: &str) -> Result<(), ShaderError> {
    module(kernel, wgsl).map(|_| ())
}

/// Translates a WGSL module to SPIR-V 1.3 words through naga.
pub fn to_spirv(kernel: &str, wgsl: &str) -> Result<Vec<u32>, ShaderError> {
    let (module, info) = module(kernel, wgsl)?;
    // SPIR-V 1.3 (Vulkan 1.1): the first with the subgroup (GroupNonUniform) capabilities.
    let options = naga::back::spv::Options { lang_version: (1, 3), ..Default::default() };
    naga::back::spv::write_vec(&module, &info, &options, None)
        .map_err(|e| ShaderError::Spirv { kernel: kernel.into(), message: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "@group(0) @binding(0) var<storage, read_write> x: array<f32>;\n\
        @compute @workgroup_size(64) fn main(@builtin(global_invocation_id) id: vec3<u32>) { x[id.x] = 2.0 * x[id.x]; }\n";

    #[test]
    fn good_wgsl_validates_and_becomes_spirv() {
        validate_wgsl("double", GOOD).unwrap();
        let words = to_spirv("double", GOOD).unwrap();
        assert_eq!(words[0], 0x0723_0203, "SPIR-V magic number");
    }

    #[test]
    fn bad_wgsl_is_rejected_with_the_kernel_name() {
        let err = validate_wgsl("broken", "fn main( {").unwrap_err();
        assert!(matches!(err, ShaderError::Parse { .. }));
        assert!(err.to_string().starts_with("kernel `broken`: WGSL does not parse"), "{err}");
        let err = validate_wgsl("typed", "fn f() -> f32 { return 1u; }").unwrap_err();
        assert!(matches!(err, ShaderError::Validate { .. }), "{err}");
    }
}
