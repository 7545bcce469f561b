//! A plan as text: buffers, then kernels with their launch and bindings and
//! WGSL. Used for golden files and for reading what the compiler made.

use std::fmt::Write;

use crate::kernel::{Access, BufferRole, ElemType, KernelPlan};

pub fn render_plan(plan: &KernelPlan) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "plan: {} buffers, {} kernels, largest buffer {} bytes, {} bytes in all",
        plan.buffers.len(),
        plan.kernels.len(),
        plan.largest_buffer(),
        plan.total_bytes()
    );
    for b in plan.buffers.values() {
        let role = match &b.role {
            BufferRole::Input => "input".to_string(),
            BufferRole::Output => "output".to_string(),
            BufferRole::Scratch => "scratch".to_string(),
            BufferRole::State => "state".to_string(),
            BufferRole::Const(bytes) => format!("const ({} bytes of data)", bytes.len()),
        };
        // f32 goes without saying.
        let elem = if b.elem == ElemType::F32 { String::new() } else { format!(" {}", b.elem) };
        let _ = writeln!(out, "buffer {} {:?}{elem}: {} bytes, {role}", b.name, b.shape, b.bytes);
    }
    for k in &plan.kernels {
        let _ = writeln!(
            out,
            "\nkernel {}: entry {}, workgroup {:?}, grid {:?}",
            k.name, k.entry_point, k.workgroup_size, k.workgroups
        );
        for b in &k.bindings {
            let access = match b.access {
                Access::Read => "read",
                Access::ReadWrite => "read_write",
                Access::Uniform => "uniform",
            };
            let range = b.range.map_or(String::new(), |(offset, size)| format!(" bytes {offset}+{size}"));
            let _ = writeln!(out, "  @binding({}) {} {access}{range}", b.index, b.buffer);
        }
        out.push_str(&k.wgsl);
    }
    out
}
