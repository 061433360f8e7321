//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};

/// Every `examples/*.lag`, sorted; there are at least the 15 the project ships.
pub fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("examples/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "lag"))
        .collect();
    v.sort();
    assert!(v.len() >= 15, "expected the 15 examples, found {}", v.len());
    v
}
