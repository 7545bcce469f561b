//! What the compiler knows of a device: the limits every plan is made within.
//!
//! This is the one description of a device's limits in weft. The runtime
//! fills it from the adapter (`weft_runtime::Gpu::limits`); the planners of
//! [`crate::plan`] and [`crate::attention`] read it; nothing here touches a
//! device, so a plan made for these limits runs on any adapter that has them.

/// A device's limits, as the planners use them. `Default` is WebGPU's
/// guaranteed minimum, which every adapter meets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DeviceLimits {
    /// The largest byte range one storage binding may cover; bigger buffers are
    /// bound as several consecutive ranges, or worked through in chunks.
    pub max_storage_binding: u64,
    /// The largest buffer the device can allocate, in bytes.
    pub max_buffer_size: u64,
    /// Storage bindings one kernel may use.
    pub max_storage_buffers_per_stage: u32,
    /// Workgroups per grid dimension; larger grids are folded into 2-D.
    pub max_workgroups_per_dimension: u32,
    /// Invocations one workgroup may have.
    pub max_invocations_per_workgroup: u32,
    /// The largest workgroup size along x (the kernels' only dimension).
    pub max_workgroup_size_x: u32,
    /// Workgroup memory one workgroup may use, in bytes.
    pub max_workgroup_storage: u32,
    /// The alignment of a storage binding's offset, in bytes.
    pub storage_offset_alignment: u32,
    /// The device's smallest subgroup, when it has subgroup operations.
    pub subgroup_min_size: Option<u32>,
    /// The device is a CPU (lavapipe, SwiftShader, WARP): kernel shapes that
    /// suit SIMD lanes, not workgroup memory, are the defaults.
    pub cpu: bool,
}

/// Lanes the subgroup kernels (matmul and attention) share loads between:
/// the first 8 lanes of a subgroup load a row together and broadcast it, so
/// those kernels need subgroups of at least this many lanes.
pub const SUBGROUP_SHARERS: usize = 8;

impl DeviceLimits {
    /// Whether the device's subgroups are wide enough for the subgroup
    /// kernels ([`SUBGROUP_SHARERS`] lanes or more).
    pub fn shares_subgroups(&self) -> bool {
        self.subgroup_min_size.is_some_and(|size| size as usize >= SUBGROUP_SHARERS)
    }
}

impl Default for DeviceLimits {
    /// WebGPU's default limits, without subgroups.
    fn default() -> Self {
        DeviceLimits {
            max_storage_binding: 128 << 20,
            max_buffer_size: 256 << 20,
            max_storage_buffers_per_stage: 8,
            max_workgroups_per_dimension: 65_535,
            max_invocations_per_workgroup: 256,
            max_workgroup_size_x: 256,
            max_workgroup_storage: 16 << 10,
            storage_offset_alignment: 256,
            subgroup_min_size: None,
            cpu: false,
        }
    }
}
