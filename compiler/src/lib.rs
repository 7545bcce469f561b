//! The optimizer and code generator arrive with issue 3.
