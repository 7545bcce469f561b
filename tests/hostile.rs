//! Hostile input: every command refuses bad input cleanly (see `common/hostile.rs`).
//! Cases are grouped by kind; each group is one table.

mod common;

use common::hostile::{case, check_all};

/// The harness itself: a good refusal passes, and the checks it makes can fail.
#[test]
fn the_harness_catches_what_it_should() {
    check_all(&[case("missing spec", &["check", "{dir}/nope.toml"]).expect("nope.toml")]);
    let out = common::hostile::run(&case("success is not a refusal", &["--version"]));
    let p = common::hostile::problems(&case("success is not a refusal", &["--version"]), &out);
    assert!(p.iter().any(|m| m.starts_with("exit code Some(0)")), "{p:?}");
}
