//! Reading a model file: the one place the library's pipeline meets the file
//! system.

use crate::{Compiled, DataFiles, Diagnostics, Method};
use std::path::{Path, PathBuf};

/// Errors of [`compile_file`]: the file could not be read, or the model has errors.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("{0}")]
    Model(#[from] Diagnostics),
    /// The model's errors come from the command line's values (`--set`,
    /// `--data`): without them it has none.
    #[error("{0}")]
    CommandLine(Diagnostics),
}

/// The largest model file read: a file beyond it (or a device such as
/// `/dev/urandom` that never ends) is refused after this many bytes.
pub const MAX_MODEL_BYTES: u64 = 64 << 20;

/// The bytes of `path`, at most [`MAX_MODEL_BYTES`] of them.
fn read_capped(path: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    file.take(MAX_MODEL_BYTES + 1).read_to_end(&mut bytes).map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_MODEL_BYTES {
        return Err(format!(
            "it is larger than {} MB, the largest model file lagc reads (or it never ends)",
            MAX_MODEL_BYTES >> 20
        ));
    }
    Ok(bytes)
}

/// Reads a `.lag` file: its text and its stem, the model's default name.
fn read(path: &Path) -> Result<(String, String), LoadError> {
    let shown = crate::diag::escape(&path.display().to_string());
    if path.is_dir() {
        return Err(LoadError::Read { path: shown, reason: "it is a directory".into() });
    }
    let bytes = read_capped(path).map_err(|reason| LoadError::Read { path: shown.clone(), reason })?;
    let source = String::from_utf8(bytes).map_err(|e| LoadError::Read {
        path: shown.clone(),
        reason: format!("it is not UTF-8 text (invalid byte at offset {})", e.utf8_error().valid_up_to()),
    })?;
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("model").to_string();
    Ok((source, stem))
}

/// Names diagnostics and the compiled model by the path as given; errors
/// that only the command line's values cause are [`LoadError::CommandLine`]:
/// the file as written, compiled the same way without the `--set` values and
/// `--data` files, has none. That takes a second compile, on the error path
/// only, and a whole one: a method the file states can be refused only after
/// derivation.
fn named(
    path: &Path,
    (source, stem): (String, String),
    overrides: &crate::Overrides,
    replace: &[(String, PathBuf)],
    compile: impl Fn(&str, &str, &crate::Overrides, &DataFiles) -> Result<Compiled, Diagnostics>,
) -> Result<Compiled, LoadError> {
    let shown = path.display().to_string();
    match compile(&source, &stem, overrides, &files_of(path, replace)) {
        Ok(mut c) => {
            c.file = shown;
            Ok(c)
        }
        Err(mut d) => {
            d.file = shown;
            let given = !overrides.is_empty() || !replace.is_empty();
            if given && compile(&source, &stem, &[], &files_of(path, &[])).is_ok() {
                Err(LoadError::CommandLine(d))
            } else {
                Err(LoadError::Model(d))
            }
        }
    }
}

/// Reads a `.lag` file and compiles it as [`crate::compile_source`] does.
pub fn compile_file(path: &Path, overrides: &crate::Overrides) -> Result<Compiled, LoadError> {
    named(path, read(path)?, overrides, &[], crate::compile_source_in)
}

/// As [`compile_file`], with `--data` replacements of data files.
pub fn compile_file_with_data(
    path: &Path,
    overrides: &crate::Overrides,
    replace: &[(String, PathBuf)],
) -> Result<Compiled, LoadError> {
    named(path, read(path)?, overrides, replace, crate::compile_source_in)
}

/// Data files relative to the model's directory, with `--data` replacements.
fn files_of(path: &Path, replace: &[(String, PathBuf)]) -> DataFiles {
    let dir = path.parent().map(|d| if d.as_os_str().is_empty() { Path::new(".") } else { d }).map(Path::to_path_buf);
    DataFiles { dir, replace: replace.to_vec() }
}

/// Reads a `.lag` file and compiles it as [`crate::compile_for`] does.
pub fn compile_file_for(
    path: &Path,
    overrides: &crate::Overrides,
    method: Option<Method>,
    replace: &[(String, PathBuf)],
) -> Result<Compiled, LoadError> {
    named(path, read(path)?, overrides, replace, |src, stem, overrides, files| {
        crate::compile_for_in(src, stem, overrides, method, files)
    })
}
