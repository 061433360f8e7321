//! `--density PATH.npy`: the density of a `fokker-planck` run at every output
//! time as an array of times × cells (× cells), with its grid in `PATH.json`
//! beside it (`times`, and per axis its variable, `edges` and `centres`).
//! Both are written under temporary names and moved into place together.

use super::output::Temporary;
use crate::drive::Density;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The grid file beside a density file: the same name with `.json`.
pub(crate) fn grid_path(npy: &Path) -> PathBuf {
    npy.with_extension("json")
}

/// Checks that the density's path ends in `.npy`.
pub(crate) fn check_path(p: &Path) -> Result<(), String> {
    match p.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase()).as_deref() {
        Some("npy") => Ok(()),
        _ => Err(format!(
            "--density {}: the density is written as a NumPy array; give a path ending in .npy",
            p.display()
        )),
    }
}

/// The bytes of an NPY file of `values` with `shape`.
fn npy(shape: &[usize], values: &[f64]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape = if dims.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
    let mut h = format!("{{'descr': '<f8', 'fortran_order': False, 'shape': {shape}, }}").into_bytes();
    let pad = (64 - (10 + h.len() + 1) % 64) % 64;
    h.extend(std::iter::repeat_n(b' ', pad));
    h.push(b'\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((h.len() as u16).to_le_bytes());
    bytes.extend(h);
    bytes.reserve(8 * values.len());
    for x in values {
        bytes.extend(x.to_le_bytes());
    }
    bytes
}

/// The grid as JSON.
fn grid_json(d: &Density) -> serde_json::Value {
    let num = |x: &f64| serde_json::Number::from_f64(*x).map_or(serde_json::Value::Null, serde_json::Value::Number);
    let axes: Vec<serde_json::Value> = d
        .axes
        .iter()
        .map(|a| {
            serde_json::json!({
                "name": a.name,
                "edges": a.edges.iter().map(num).collect::<Vec<_>>(),
                "centres": a.centres.iter().map(num).collect::<Vec<_>>(),
            })
        })
        .collect();
    let mut shape = vec![d.times.len()];
    shape.extend(d.axes.iter().map(|a| a.centres.len()));
    serde_json::json!({
        "shape": shape,
        "times": d.times.iter().map(num).collect::<Vec<_>>(),
        "axes": axes,
        "density": "probability per unit length (area in 2-D) of each cell; rows are times",
    })
}

/// Writes the density and its grid; each file replaces its destination only
/// when both were written.
pub(crate) fn write(path: &Path, d: &Density) -> Result<(), String> {
    let mut shape = vec![d.times.len()];
    shape.extend(d.axes.iter().map(|a| a.centres.len()));
    let json_path = grid_path(path);
    let fail = |p: &Path, e: std::io::Error| format!("--density {}: {e}", p.display());
    let (npy_tmp, mut npy_file) = Temporary::create(path).map_err(|e| fail(path, e))?;
    let (json_tmp, mut json_file) = Temporary::create(&json_path).map_err(|e| fail(&json_path, e))?;
    npy_file.write_all(&npy(&shape, &d.values)).and_then(|_| npy_file.flush()).map_err(|e| fail(path, e))?;
    let text = serde_json::to_string(&grid_json(d)).map_err(|e| format!("--density: {e}"))?;
    json_file.write_all(text.as_bytes()).and_then(|_| json_file.flush()).map_err(|e| fail(&json_path, e))?;
    npy_tmp.commit().map_err(|e| fail(path, e))?;
    json_tmp.commit().map_err(|e| fail(&json_path, e))
}

#[cfg(test)]
mod tests {
    #[test]
    fn npy_headers_are_aligned_and_name_the_shape() {
        let b = super::npy(&[2, 3], &[0.0; 6]);
        let len = u16::from_le_bytes([b[8], b[9]]) as usize;
        assert_eq!((10 + len) % 64, 0);
        let header = std::str::from_utf8(&b[10..10 + len]).unwrap();
        assert!(header.contains("'shape': (2, 3)"), "{header}");
        assert_eq!(b.len(), 10 + len + 48);
    }
}
