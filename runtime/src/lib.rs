//! The wgpu runtime arrives with issue 3.
