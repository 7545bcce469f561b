//! Helpers shared by the runtime's GPU tests.

pub mod model;
