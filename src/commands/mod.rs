//! One file per `weft` subcommand.

pub mod adapter;
pub mod attn;
pub mod bench;
pub mod bench_generate;
pub mod bench_matmul;
pub mod bench_step;
pub mod check;
pub mod compare;
pub mod compile;
pub mod corpus;
pub mod demo;
pub mod eval;
pub mod export;
pub mod forward;
pub mod generate;
pub mod graph;
pub mod inspect;
pub mod kernels;
pub mod kv_cache;
pub mod mask;
pub mod source;
pub mod text_tokenizer;
pub mod tokenizer;
pub mod train;
pub mod tune;
pub mod weight_dtype;
