use weft_compiler::ElemType;

/// Everything that can go wrong on the device side.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(
        "no GPU adapter found{detail}. weft runs on any Vulkan, Metal or DX12 device; on a machine without \
         a GPU, install Mesa's software driver (Debian/Ubuntu: apt-get install mesa-vulkan-drivers libvulkan1)"
    )]
    NoAdapter { detail: String },
    #[error("WGPU_ADAPTER_NAME={wanted} matches no adapter; available: {available}")]
    AdapterNotFound { wanted: String, available: String },
    #[error("cannot open a device on {adapter}: {message}")]
    RequestDevice { adapter: String, message: String },
    #[error("plan input `{name}` was not given; the plan expects: {expected}")]
    MissingInput { name: String, expected: String },
    #[error("`{name}` is not an input of the plan; the plan expects: {expected}")]
    UnexpectedInput { name: String, expected: String },
    #[error("plan input `{name}` has {found} values, expected {expected} (shape {shape:?})")]
    InputSize { name: String, expected: usize, found: usize, shape: Vec<usize> },
    #[error("plan input `{name}` holds {expected} values, but {found} values were given")]
    InputType { name: String, expected: ElemType, found: &'static str },
    #[error("plan input `{name}`: value {value} at position {position} does not fit the i32 buffer")]
    InputOutOfRange { name: String, position: usize, value: i64 },
    #[error(
        "plan input `{name}` is stored as {elem}, but its value {value} at position {position} is not exactly \
         a {elem}; store it as f32"
    )]
    InputNotExact { name: String, position: usize, value: f32, elem: ElemType },
    #[error("plan output `{name}` holds {found} values; download it as `HostValues`")]
    OutputType { name: String, found: ElemType },
    #[error("buffer `{name}` needs {bytes} bytes, more than the device allows for one buffer ({limit})")]
    BufferTooLarge { name: String, bytes: u64, limit: u64 },
    #[error("kernel `{kernel}` binds `{buffer}`, which the plan does not declare")]
    UnknownBuffer { kernel: String, buffer: String },
    #[error(
        "kernel `{kernel}` binds {bytes} bytes of `{buffer}`, more than one storage binding allows ({limit})"
    )]
    BindingTooLarge { kernel: String, buffer: String, bytes: u64, limit: u64 },
    #[error(
        "kernel `{kernel}` binds `{buffer}` at offset {offset}, not a multiple of the device's alignment {alignment}"
    )]
    BindingMisaligned { kernel: String, buffer: String, offset: u64, alignment: u32 },
    #[error(
        "kernel `{kernel}` dispatches {workgroups:?} workgroups; the device allows {limit} per dimension"
    )]
    DispatchTooLarge { kernel: String, workgroups: [u32; 3], limit: u32 },
    #[error("kernel `{kernel}` was rejected by the device: {message}")]
    Pipeline { kernel: String, message: String },
    #[error("elements {start}..{end} are outside `{name}`, which holds {len}")]
    OutOfBuffer { name: String, start: u64, end: u64, len: u64 },
    #[error("`{name}` is not an f32 input, output or state buffer of the plan")]
    UnknownHostBuffer { name: String },
    #[error("kernels {range:?} are not a part of the plan, which has {kernels} kernels")]
    NoSuchKernels { range: std::ops::Range<usize>, kernels: usize },
    #[error("the device failed while running the plan: {message}")]
    Device { message: String },
    #[error("reading `{buffer}` back from the device failed: {message}")]
    Readback { buffer: String, message: String },
}
