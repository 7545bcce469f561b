//! What every simple kernel shares: storage bindings behind `ld_*`/`st_*`
//! accessors, one thread per work item on a folded 1-D grid, and validation.
//!
//! A buffer larger than one storage binding is bound as consecutive ranges of
//! `seg` elements (`x_0`, `x_1`, ...) and its accessors pick the range, so the
//! op bodies never know whether a tensor was split.

use std::fmt::Write;

use super::{CodegenError, Site};
use crate::device::DeviceLimits;
use crate::kernel::{Access, Binding, ElemType, Kernel};
use crate::shader::validate_wgsl;

/// Threads per workgroup unless a kernel asks otherwise: eight of lavapipe's
/// 8-wide SIMD lanes, and a multiple of every real GPU's wave size that matters.
pub(crate) const WORKGROUP: u32 = 64;

/// Work items beyond this would overflow the u32 thread index.
const MAX_THREADS: u64 = 1 << 31;

/// `v` as a WGSL f32 literal; `v` must be finite.
pub(crate) fn f32_literal(v: f32) -> String {
    // Debug prints the shortest decimal that reads back as the same f32.
    let text = format!("{v:?}f");
    if v.is_sign_negative() { format!("({text})") } else { text }
}

/// A run of `elems` values of type `elem` starting at element `base` of a
/// plan buffer that holds `total` elements.
#[derive(Clone, Debug)]
pub(crate) struct Region {
    pub buffer: String,
    pub base: u64,
    pub elems: u64,
    pub total: u64,
    pub elem: ElemType,
}

impl Region {
    /// A whole f32 buffer.
    pub(crate) fn whole(buffer: &str, elems: u64) -> Self {
        Region { buffer: buffer.to_string(), base: 0, elems, total: elems, elem: ElemType::F32 }
    }

    /// The same region holding `elem` values.
    pub(crate) fn with_elem(self, elem: ElemType) -> Self {
        Region { elem, ..self }
    }
}

/// Which accessors a binding gets.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Use {
    Read,
    Write,
    ReadWrite,
}

pub(crate) struct KernelBuilder<'a> {
    site: Site,
    limits: &'a DeviceLimits,
    name: String,
    title: String,
    bindings: Vec<Binding>,
    decls: String,
    helpers: String,
    workgroup: u32,
    /// The entry point takes `sg_lane`, the invocation's index in its subgroup.
    subgroup_lane: bool,
    /// Whole workgroups only, and no early return (see [`Self::without_early_return`]).
    no_return: bool,
}

impl<'a> KernelBuilder<'a> {
    /// A kernel called `name`; `title` is its first comment line.
    pub(crate) fn new(site: Site, limits: &'a DeviceLimits, name: &str, title: &str) -> Self {
        KernelBuilder {
            site,
            limits,
            name: name.to_string(),
            title: title.to_string(),
            bindings: Vec::new(),
            decls: String::new(),
            helpers: String::new(),
            workgroup: WORKGROUP,
            subgroup_lane: false,
            no_return: false,
        }
    }

    pub(crate) fn read(&mut self, var: &str, region: &Region) -> Result<(), CodegenError> {
        self.bind(var, region, Use::Read, 1)
    }

    /// Like [`Self::read`] for a float region read four elements at a time:
    /// `ld_var(i)` returns elements `4i..4i+4` as a `vec4<f32>`. The region
    /// must start at a multiple of 4 elements and hold a multiple of 4.
    pub(crate) fn read_vec4(&mut self, var: &str, region: &Region) -> Result<(), CodegenError> {
        if region.elem == ElemType::I32 || !region.elems.is_multiple_of(4) || !region.base.is_multiple_of(4) {
            return Err(self.site.too_large(format!(
                "`{}` cannot be read as vec4 ({} elements at {})",
                region.buffer, region.elems, region.base
            )));
        }
        self.bind(var, region, Use::Read, 4)
    }

    pub(crate) fn write(&mut self, var: &str, region: &Region) -> Result<(), CodegenError> {
        self.bind(var, region, Use::Write, 1)
    }

    pub(crate) fn read_write(&mut self, var: &str, region: &Region) -> Result<(), CodegenError> {
        self.bind(var, region, Use::ReadWrite, 1)
    }

    /// Threads per workgroup for this kernel (default [`WORKGROUP`]).
    pub(crate) fn workgroup_size(&mut self, threads: u32) {
        self.workgroup = threads;
    }

    /// Gives the body `sg_lane: u32`, the invocation's index in its subgroup.
    /// Only for plans whose options say the device has subgroup operations.
    pub(crate) fn use_subgroup_lane(&mut self) {
        self.subgroup_lane = true;
    }

    /// For kernels whose work is whole workgroups: surplus workgroups of a
    /// folded grid redo the last one (writing the same values) instead of
    /// returning early. A branch at the top puts the whole kernel under an
    /// execution mask on SIMD adapters (every register write a blend), and
    /// subgroup operations want every lane live.
    pub(crate) fn without_early_return(&mut self) {
        self.no_return = true;
    }

    /// WGSL placed between the bindings and the entry point.
    pub(crate) fn helper(&mut self, text: &str) {
        self.helpers.push_str(text);
        if !text.ends_with('\n') {
            self.helpers.push('\n');
        }
    }

    /// Declares `var` over `region` with accessors `ld_var(i)` / `st_var(i, v)`,
    /// `i` counted from the region's start, typed by the region's element type
    /// (`lanes` = 4: vectors of four, `i` counted in vectors). A packed region
    /// (bf16, f16) is read only, and its `ld_var` widens to f32.
    fn bind(&mut self, var: &str, region: &Region, how: Use, lanes: u64) -> Result<(), CodegenError> {
        let packed = region.elem.is_packed();
        if packed && how != Use::Read {
            return Err(self.site.too_large(format!(
                "`{}` holds {} values, which kernels only read",
                region.buffer, region.elem
            )));
        }
        // The declared array's element: packed regions are words (lanes 1) or pairs of words (lanes 4).
        let word = match (packed, lanes) {
            (true, 4) => "vec2<u32>".to_string(),
            (true, _) => "u32".to_string(),
            (false, 4) => format!("vec4<{}>", region.elem.wgsl()),
            (false, _) => region.elem.wgsl().to_string(),
        };
        let ty =
            if lanes == 4 { format!("vec4<{}>", region.elem.wgsl()) } else { region.elem.wgsl().to_string() };
        let access = if how == Use::Read { Access::Read } else { Access::ReadWrite };
        let space = if how == Use::Read { "read" } else { "read_write" };
        let elem_bytes = |elems: u64| region.elem.buffer_bytes(elems);
        let bytes = elem_bytes(region.elems);
        // Offsets must be multiples of 256 bytes: 64 elements of 4 bytes, 128 of 2.
        let align = if packed { 128 } else { 64 };
        let per_byte = if packed { 2 } else { 1 };
        let seg_elems = self.limits.max_storage_binding * per_byte / 4 / align * align;
        // A segment in the accessor's index unit (elements or vectors of four).
        let seg = seg_elems / lanes;
        let whole = region.base == 0 && region.elems == region.total;
        // The statements that return element (or vector) `j` of `array`, one per line at `indent`.
        let read = |array: &str, j: &str, indent: &str| -> String {
            let lines = match (region.elem, lanes) {
                (ElemType::Bf16, 4) => vec![
                    format!("let w = {array}[{j}];"),
                    "return bitcast<vec4<f32>>(vec4<u32>(w.x << 16u, w.x & 0xffff0000u, w.y << 16u, w.y & 0xffff0000u));".to_string(),
                ],
                (ElemType::Bf16, _) => vec![
                    format!("let w = {array}[{j} >> 1u];"),
                    format!("return bitcast<f32>(select(w << 16u, w & 0xffff0000u, ({j} & 1u) == 1u));"),
                ],
                (ElemType::F16, 4) => vec![
                    format!("let w = {array}[{j}];"),
                    "return vec4<f32>(unpack2x16float(w.x), unpack2x16float(w.y));".to_string(),
                ],
                (ElemType::F16, _) => vec![format!("return unpack2x16float({array}[{j} >> 1u])[{j} & 1u];")],
                _ => vec![format!("return {array}[{j}];")],
            };
            lines.iter().map(|l| format!("{indent}{l}")).collect::<Vec<_>>().join("\n")
        };
        let d = &mut self.decls;
        if bytes <= self.limits.max_storage_binding {
            let range = (!whole).then_some((elem_bytes(region.base), bytes));
            if !region.base.is_multiple_of(align) {
                return Err(self.site.too_large(format!(
                    "binding of `{}` at element {} is not 256-byte aligned",
                    region.buffer, region.base
                )));
            }
            let index = self.bindings.len() as u32;
            let _ = writeln!(d, "@group(0) @binding({index}) var<storage, {space}> {var}: array<{word}>;");
            self.bindings.push(Binding { index, buffer: region.buffer.clone(), access, range });
            if how != Use::Write {
                if packed {
                    let _ = writeln!(d, "fn ld_{var}(i: u32) -> {ty} {{\n{}\n}}", read(var, "i", "    "));
                } else {
                    let _ = writeln!(d, "fn ld_{var}(i: u32) -> {ty} {{ return {var}[i]; }}");
                }
            }
            if how != Use::Read {
                let _ = writeln!(d, "fn st_{var}(i: u32, value: {ty}) {{ {var}[i] = value; }}");
            }
            return Ok(());
        }
        if region.base != 0 {
            return Err(self.site.too_large(format!(
                "a range of `{}` at element {} exceeds one storage binding",
                region.buffer, region.base
            )));
        }
        let parts = region.elems.div_ceil(seg_elems);
        for p in 0..parts {
            let index = self.bindings.len() as u32;
            let len = seg_elems.min(region.elems - p * seg_elems);
            let _ =
                writeln!(d, "@group(0) @binding({index}) var<storage, {space}> {var}_{p}: array<{word}>;");
            self.bindings.push(Binding {
                index,
                buffer: region.buffer.clone(),
                access,
                range: Some((elem_bytes(p * seg_elems), elem_bytes(len))),
            });
        }
        let unit = if lanes == 4 { "vec4s" } else { "elements" };
        let _ = writeln!(d, "// `{var}` spans {parts} bindings of {seg} {unit}.");
        let split = format!("    let part = i / {seg}u;\n    let j = i - part * {seg}u;");
        if how != Use::Write {
            let _ = writeln!(d, "fn ld_{var}(i: u32) -> {ty} {{\n{split}");
            for p in 0..parts - 1 {
                if packed {
                    let body = read(&format!("{var}_{p}"), "j", "        ");
                    let _ = writeln!(d, "    if (part == {p}u) {{\n{body}\n    }}");
                } else {
                    let _ = writeln!(d, "    if (part == {p}u) {{ return {var}_{p}[j]; }}");
                }
            }
            let _ = writeln!(d, "{}\n}}", read(&format!("{var}_{}", parts - 1), "j", "    "));
        }
        if how != Use::Read {
            let _ = writeln!(d, "fn st_{var}(i: u32, value: {ty}) {{\n{split}");
            for p in 0..parts - 1 {
                let _ = writeln!(d, "    if (part == {p}u) {{ {var}_{p}[j] = value; return; }}");
            }
            let _ = writeln!(d, "    {var}_{}[j] = value;\n}}", parts - 1);
        }
        Ok(())
    }

    /// Finishes the module: `body` runs once per work item `i` in `[0, threads)`.
    pub(crate) fn finish(self, threads: u64, body: &str) -> Result<Kernel, CodegenError> {
        if threads == 0 || threads > MAX_THREADS {
            return Err(self.site.too_large(format!("kernel `{}` has {threads} work items", self.name)));
        }
        let limit = self.limits.max_storage_buffers_per_stage;
        if self.bindings.len() > limit as usize {
            return Err(CodegenError::TooManyBindings {
                op: self.site.op,
                node: self.site.node,
                kernel: self.name,
                needed: self.bindings.len(),
                limit,
            });
        }
        let workgroup = self.workgroup;
        let groups = threads.div_ceil(u64::from(workgroup));
        let max = u64::from(self.limits.max_workgroups_per_dimension);
        // Fold long grids into 2-D; the kernel linearizes (y, x) again.
        let (wx, wy) = if groups <= max { (groups, 1) } else { (max, groups.div_ceil(max)) };
        if wy > max {
            return Err(self.site.too_large(format!("kernel `{}` needs {groups} workgroups", self.name)));
        }
        let mut wgsl = String::new();
        let _ = writeln!(wgsl, "// {}: {}", self.name, self.title);
        wgsl.push_str(&self.decls);
        wgsl.push_str(&self.helpers);
        let lane = if self.subgroup_lane { ", @builtin(subgroup_invocation_id) sg_lane: u32" } else { "" };
        let _ = write!(
            wgsl,
            "@compute @workgroup_size({workgroup})\n\
             fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32{lane}) {{\n"
        );
        if self.no_return {
            if !threads.is_multiple_of(u64::from(workgroup)) {
                return Err(self.site.too_large(format!(
                    "kernel `{}`: {threads} work items are not whole workgroups of {workgroup}",
                    self.name
                )));
            }
            let _ = writeln!(
                wgsl,
                "    let i = min(wid.y * {wx}u + wid.x, {}u) * {workgroup}u + lid;",
                groups - 1
            );
        } else {
            let _ = write!(
                wgsl,
                "    let i = (wid.y * {wx}u + wid.x) * {workgroup}u + lid;\n\
                 \x20   if (i >= {threads}u) {{\n\
                 \x20       return;\n\
                 \x20   }}\n"
            );
        }
        for line in body.lines() {
            if line.is_empty() {
                wgsl.push('\n');
            } else {
                let _ = writeln!(wgsl, "    {line}");
            }
        }
        wgsl.push_str("}\n");
        validate_wgsl(&self.name, &wgsl).map_err(|source| CodegenError::Shader {
            op: self.site.op,
            node: self.site.node,
            source,
        })?;
        Ok(Kernel {
            name: self.name,
            wgsl,
            entry_point: "main".into(),
            workgroup_size: [workgroup, 1, 1],
            workgroups: [wx as u32, wy as u32, 1],
            bindings: self.bindings,
            // The planner, which knows the node's whole cost, fills these in.
            flops: 0,
            bytes: 0,
        })
    }
}

/// WGSL statements that split `index` into the coordinates of `shape`, as
/// `let {prefix}{axis}: u32`; axes of size 1 are 0.
pub(crate) fn unravel(index: &str, shape: &[usize], prefix: &str) -> String {
    let mut out = String::new();
    let mut stride: u64 = 1;
    for (axis, &dim) in shape.iter().enumerate().rev() {
        let dim = dim as u64;
        if dim == 1 {
            let _ = writeln!(out, "let {prefix}{axis} = 0u;");
        } else if axis == 0 {
            let _ = writeln!(out, "let {prefix}{axis} = {index} / {stride}u;");
        } else if stride == 1 {
            let _ = writeln!(out, "let {prefix}{axis} = {index} % {dim}u;");
        } else {
            let _ = writeln!(out, "let {prefix}{axis} = ({index} / {stride}u) % {dim}u;");
        }
        stride *= dim;
    }
    out
}

/// Row-major strides of `shape`.
pub(crate) fn strides(shape: &[usize]) -> Vec<u64> {
    let mut out = vec![1u64; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        out[i] = out[i + 1] * shape[i + 1] as u64;
    }
    out
}

/// `(outer, n, inner)`: the element counts before, at and after `axis`.
pub(crate) fn split_at_axis(shape: &[usize], axis: usize) -> (u64, u64, u64) {
    let outer = shape[..axis].iter().map(|&d| d as u64).product();
    let inner = shape[axis + 1..].iter().map(|&d| d as u64).product();
    (outer, shape[axis] as u64, inner)
}

/// The number of elements of `shape`.
pub(crate) fn elements(shape: &[usize]) -> u64 {
    shape.iter().map(|&d| d as u64).product()
}

impl Site {
    /// `value` as a WGSL f32 literal, if it is one.
    pub(crate) fn f32_lit(self, what: &'static str, value: f64) -> Result<String, CodegenError> {
        let v = value as f32;
        if v.is_finite() {
            Ok(f32_literal(v))
        } else {
            Err(CodegenError::Constant { op: self.op, node: self.node, what, value })
        }
    }
}
