//! The emitter context: what every kernel generator of this folder is given
//! (its node, the device limits, its operands).

use std::collections::HashSet;

use super::builder::Region;
use super::matmul::MatmulTable;
use super::{CodegenError, Site};
use crate::device::DeviceLimits;
use crate::kernel::{BufferDecl, BufferRole, ElemType};

/// Every element index must fit the kernels' u32 (and i32 mask) arithmetic.
pub(crate) const MAX_ELEMENTS: u64 = 1 << 31;

/// A tensor a kernel reads or writes: where it lives and its logical shape.
#[derive(Clone, Debug)]
pub(crate) struct Operand<'g> {
    pub region: Region,
    pub shape: &'g [usize],
}

/// What a generator may use besides its operands.
pub(crate) struct Ctx<'a> {
    pub site: Site,
    pub limits: &'a DeviceLimits,
    /// The matmul kernel's shape per problem class.
    pub matmul: MatmulTable,
    /// `n5`: the prefix of this node's kernel names.
    pub prefix: String,
    pub names: &'a mut Names,
    /// Buffers the generator adds (score scratch, tables).
    pub extra: Vec<BufferDecl>,
}

impl Ctx<'_> {
    /// `n5_roll` or `n5_roll_{suffix}`.
    pub(crate) fn kernel_name(&self, suffix: &str) -> String {
        let op = self.site.op.replace('-', "_");
        if suffix.is_empty() {
            format!("{}_{op}", self.prefix)
        } else {
            format!("{}_{op}_{suffix}", self.prefix)
        }
    }

    pub(crate) fn unsupported(&self) -> CodegenError {
        CodegenError::Unsupported { op: self.site.op, node: self.site.node }
    }

    /// Adds an f32 buffer named after the node (`n9_scores`) and returns its name.
    pub(crate) fn add_buffer(
        &mut self,
        suffix: &str,
        bytes: u64,
        role: BufferRole,
        shape: Vec<usize>,
    ) -> String {
        let name = self.names.fresh(&format!("{}_{suffix}", self.prefix));
        self.extra.push(BufferDecl { name: name.clone(), bytes, role, shape, elem: ElemType::F32 });
        name
    }
}

/// Buffer names in use; plan buffers, inputs and outputs share one namespace.
#[derive(Default)]
pub(crate) struct Names(pub(crate) HashSet<String>);

impl Names {
    /// `base`, or `base_1`, `base_2`, ... if it is taken.
    pub(crate) fn fresh(&mut self, base: &str) -> String {
        let mut name = base.to_string();
        let mut i = 1;
        while self.0.contains(&name) {
            name = format!("{base}_{i}");
            i += 1;
        }
        self.0.insert(name.clone());
        name
    }
}
