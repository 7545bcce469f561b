//! One file per `weft` subcommand.

pub mod check;
pub mod graph;
pub mod inspect;
pub mod mask;
