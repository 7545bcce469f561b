//! Every malformed spec under `tests/bad_specs/` gives the error recorded in
//! `tests/bad_specs/errors.expected`. Bless with `UPDATE_EXPECT=1 cargo test`.

use std::path::Path;

use expect_test::expect_file;
use weft_ir::{Overrides, Spec, SpecError};

fn load(path: &Path) -> Result<weft_ir::Schedule, SpecError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| SpecError::Io { file: path.display().to_string(), source })?;
    let name = format!("bad_specs/{}", path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default());
    Spec::parse(weft_ir::SourceFile::new(name, text))?.resolve(&Overrides::default())
}

#[test]
fn every_bad_spec_gives_its_recorded_error() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/bad_specs");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/bad_specs exists")
        .map(|e| e.expect("readable dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    paths.sort();
    assert!(paths.len() >= 12, "expected at least 12 malformed specs, found {}", paths.len());
    let mut report = String::new();
    for path in &paths {
        match load(path) {
            Ok(_) => panic!("{} was accepted", path.display()),
            Err(e) => {
                assert!(
                    matches!(e, SpecError::At { .. }),
                    "{}: error without a position: {e}",
                    path.display()
                );
                report.push_str(&e.render());
                report.push_str("\n\n");
            }
        }
    }
    expect_file!["../../tests/bad_specs/errors.expected"].assert_eq(&report);
}
