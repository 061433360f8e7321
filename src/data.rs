//! Numeric data files: CSV tables with a header row, and NumPy `.npy` arrays.
//!
//! These are the files that a model's `data` statement reads. A CSV file binds columns by their
//! header names (`data x[M], y[M] = "points.csv"`), and a matrix by the columns `X[0]`, `X[1]`, …
//! (`data X[M, F] = "feat.csv"`). A `.npy` file holds one 1-D or 2-D array.

use std::path::{Path, PathBuf};

/// A table read whole: named columns of equal length, in file order.
#[derive(Clone, Debug)]
pub struct Table {
    /// The file the table was read from, named in errors about it.
    pub path: PathBuf,
    /// The number of data rows, the header not counted.
    pub rows: usize,
    /// The columns, in the order of the header.
    pub columns: Vec<Column>,
}

/// One named column of a [`Table`].
#[derive(Clone, Debug)]
pub struct Column {
    /// The header name, with surrounding whitespace removed.
    pub name: String,
    /// One value per data row, from top to bottom.
    pub values: Vec<f64>,
}

impl Table {
    /// The column with this header name, if there is one.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The columns `base[0]`, `base[1]`, … in index order, as a row-major matrix
    /// (rows × count), returned as `(count, values)`. None when there is no column
    /// `base[k]` at all; an error (DataError::Gap) when the indices are not contiguous
    /// from 0 (e.g. `X[0]`, `X[2]` without `X[1]`, or `X[1]` without `X[0]`).
    pub fn matrix(&self, base: &str) -> Result<Option<(usize, Vec<f64>)>, DataError> {
        let mut found: Vec<(usize, &Column)> = (self.columns.iter())
            .filter_map(|c| {
                let inner = c.name.strip_prefix(base)?.strip_prefix('[')?.strip_suffix(']')?;
                let k: usize = inner.parse().ok()?;
                (k.to_string() == inner).then_some((k, c))
            })
            .collect();
        found.sort_by_key(|&(k, _)| k);
        let Some(&(last, _)) = found.last() else { return Ok(None) };
        if let Some(missing) = (0..found.len()).find(|&i| found[i].0 != i) {
            return Err(DataError::Gap { path: self.path.clone(), base: base.into(), missing, last });
        }
        let values = (0..self.rows).flat_map(|r| found.iter().map(move |(_, c)| c.values[r])).collect();
        Ok(Some((found.len(), values)))
    }
}

/// An array read from a `.npy` file, values converted to f64, row-major (C order).
#[derive(Clone, Debug)]
pub struct Array {
    /// The length of each dimension: `[n]` for a vector, `[rows, columns]` for a matrix.
    pub shape: Vec<usize>,
    /// The elements, converted to f64, the last index varying fastest.
    pub values: Vec<f64>,
}

/// A data file read whole, either kind.
#[derive(Clone, Debug)]
pub enum DataFile {
    /// A CSV file.
    Table(Table),
    /// A NumPy `.npy` file.
    Array(Array),
}

/// Why a data file could not be read. Each error names the file, and the line where there is one.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be opened or read.
    #[error("{}: cannot read the file: {source}", .path.display())]
    Io { path: PathBuf, source: std::io::Error },
    /// The file name ends in neither `.csv` nor `.npy`.
    #[error("{}: unknown kind of data file; the name must end in .csv or .npy", .path.display())]
    Format { path: PathBuf },
    /// A CSV file with nothing in it, not even a header row.
    #[error("{}: the file is empty; a CSV data file starts with a header row naming its columns",
        .path.display())]
    NoHeader { path: PathBuf },
    /// A header cell with no name (cells count from 1).
    #[error("{}:{line}: header cell {cell} is empty; every column needs a name", .path.display())]
    EmptyName { path: PathBuf, line: u64, cell: usize },
    /// Two header cells with the same name (cells count from 1).
    #[error("{}:{line}: column name {name:?} appears twice in the header (cells {first} and {second})",
        .path.display())]
    DuplicateName { path: PathBuf, line: u64, name: String, first: usize, second: usize },
    /// A CSV file with a header row and nothing after it.
    #[error("{}: the file has a header but no data rows", .path.display())]
    NoRows { path: PathBuf },
    /// A row with more or fewer cells than the header.
    #[error("{}:{line}: this row has {cells} cell{}, the header has {header}", .path.display(),
        if *.cells == 1 { "" } else { "s" })]
    Ragged { path: PathBuf, line: u64, cells: usize, header: usize },
    /// A cell that is not a number.
    #[error("{}:{line}: column {column:?}: {text:?} is not a number", .path.display())]
    NotANumber { path: PathBuf, line: u64, column: String, text: String },
    /// A cell with nothing in it.
    #[error("{}:{line}: column {column:?}: the cell is empty", .path.display())]
    EmptyCell { path: PathBuf, line: u64, column: String },
    /// A CSV file that cannot be split into cells, such as one that is not UTF-8 text.
    #[error("{}:{line}: {message}", .path.display())]
    Csv { path: PathBuf, line: u64, message: String },
    /// A `.npy` file that does not start with the NumPy magic string.
    #[error("{}: not a NumPy .npy file (it does not start with \"\\x93NUMPY\")", .path.display())]
    NpyMagic { path: PathBuf },
    /// A `.npy` format version other than 1.0, 2.0 or 3.0.
    #[error("{}: .npy format version {major}.{minor} is not supported (1.0, 2.0 and 3.0 are)",
        .path.display())]
    NpyVersion { path: PathBuf, major: u8, minor: u8 },
    /// A `.npy` header that cannot be understood.
    #[error("{}: the .npy header cannot be read: {message}", .path.display())]
    NpyHeader { path: PathBuf, message: String },
    /// A 2-D `.npy` array stored in column-major (Fortran) order.
    #[error(
        "{}: the array is stored in Fortran (column-major) order; save it in C order, \
         e.g. np.save(file, np.ascontiguousarray(a))",
        .path.display()
    )]
    FortranOrder { path: PathBuf },
    /// A `.npy` element type that is not supported.
    #[error(
        "{}: element type {descr} is not supported; use little-endian floats (<f8, <f4), integers \
         (<i8, <i4, <i2, |i1, <u8, <u4, <u2, |u1) or booleans (|b1), e.g. np.save(file, a.astype('<f8'))",
        .path.display()
    )]
    Dtype { path: PathBuf, descr: String },
    /// A `.npy` array with no dimensions, or more than two.
    #[error("{}: the array has shape {}; data files hold 1-D or 2-D arrays only", .path.display(),
        tuple(.shape))]
    Rank { path: PathBuf, shape: Vec<usize> },
    /// A `.npy` file with fewer data bytes than its shape and element type need.
    #[error(
        "{}: the file is cut short: an array of shape {} needs {needed} bytes of data, the file has {found}",
        .path.display(), tuple(.shape)
    )]
    Truncated { path: PathBuf, shape: Vec<usize>, needed: usize, found: usize },
    /// Matrix columns `base[k]` whose indices do not run 0, 1, 2, … without a gap.
    #[error(
        "{}: the columns of {base:?} go up to {base}[{last}] but there is no {base}[{missing}]; \
         the indices must run 0, 1, 2, … without gaps",
        .path.display()
    )]
    Gap { path: PathBuf, base: String, missing: usize, last: usize },
}

/// Writes a shape the way Python does: `(3,)`, `(2, 3)`.
fn tuple(shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    format!("({}{})", dims.join(", "), if dims.len() == 1 { "," } else { "" })
}

fn read_bytes(path: &Path) -> Result<Vec<u8>, DataError> {
    std::fs::read(path).map_err(|source| DataError::Io { path: path.into(), source })
}

/// Reads a data file by its extension: `.csv` gives a table, `.npy` an array,
/// and anything else is a DataError::Format.
pub fn read(path: &Path) -> Result<DataFile, DataError> {
    match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("csv") => read_csv(path).map(DataFile::Table),
        Some("npy") => read_npy(path).map(DataFile::Array),
        _ => Err(DataError::Format { path: path.into() }),
    }
}

/// Reads a CSV file with a header row naming its columns, and every other cell a number
/// (`nan`, `inf` and `-inf` are accepted in any case). Cells and names are trimmed of
/// whitespace; a UTF-8 byte order mark and CRLF line endings are accepted.
pub fn read_csv(path: &Path) -> Result<Table, DataError> {
    let bytes = read_bytes(path)?;
    let text = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&bytes);
    let p = || path.to_path_buf();
    // The line where a record starts, counting from 1. The reader's own line count is taken
    // before the line ending and blank lines ahead of the record (off by one after CRLF).
    let line_of = |position: Option<&csv::Position>| {
        let byte = position.map_or(0, |p| p.byte() as usize).min(text.len());
        let skipped = text[byte..].iter().take_while(|&&b| b == b'\r' || b == b'\n').count();
        1 + text[..byte + skipped].iter().filter(|&&b| b == b'\n').count() as u64
    };
    let csv_error = |e: csv::Error| {
        let line = line_of(e.position());
        let message = match e.kind() {
            csv::ErrorKind::Utf8 { .. } => "the line is not valid UTF-8 text".to_string(),
            _ => e.to_string(),
        };
        DataError::Csv { path: p(), line, message }
    };
    let mut reader = csv::ReaderBuilder::new().has_headers(true).trim(csv::Trim::All).flexible(true).from_reader(text);
    let header = reader.headers().map_err(csv_error)?.clone();
    if header.is_empty() || header.len() == 1 && header[0].is_empty() {
        return Err(DataError::NoHeader { path: p() });
    }
    let line = line_of(header.position());
    let mut columns: Vec<Column> = Vec::with_capacity(header.len());
    for (i, name) in header.iter().enumerate() {
        if name.is_empty() {
            return Err(DataError::EmptyName { path: p(), line, cell: i + 1 });
        }
        if let Some(first) = columns.iter().position(|c| c.name == name) {
            let (first, second, name) = (first + 1, i + 1, name.into());
            return Err(DataError::DuplicateName { path: p(), line, name, first, second });
        }
        columns.push(Column { name: name.into(), values: Vec::new() });
    }
    let mut record = csv::StringRecord::new();
    let mut rows = 0;
    while reader.read_record(&mut record).map_err(csv_error)? {
        let line = || line_of(record.position());
        if record.len() != columns.len() {
            return Err(DataError::Ragged { path: p(), line: line(), cells: record.len(), header: columns.len() });
        }
        for (cell, column) in record.iter().zip(&mut columns) {
            if cell.is_empty() {
                return Err(DataError::EmptyCell { path: p(), line: line(), column: column.name.clone() });
            }
            let value = cell.parse::<f64>().map_err(|_| DataError::NotANumber {
                path: p(),
                line: line(),
                column: column.name.clone(),
                text: cell.into(),
            })?;
            column.values.push(value);
        }
        rows += 1;
    }
    if rows == 0 {
        return Err(DataError::NoRows { path: p() });
    }
    Ok(Table { path: p(), rows, columns })
}

/// A value in a `.npy` header: the few kinds of Python literal that NumPy writes there.
enum Value {
    Str(String),
    Bool(bool),
    Tuple(Vec<usize>),
    /// A list, as in the `descr` of a structured type: kept as text for the error message.
    Other(String),
}

fn skip_space(b: &[u8], i: &mut usize) {
    while b.get(*i).is_some_and(u8::is_ascii_whitespace) {
        *i += 1;
    }
}

fn expect(b: &[u8], i: &mut usize, what: u8) -> Result<(), String> {
    skip_space(b, i);
    if b.get(*i) != Some(&what) {
        return Err(format!("expected '{}' at byte {}", what as char, *i));
    }
    *i += 1;
    Ok(())
}

/// Parses the Python dict literal of a `.npy` header, e.g.
/// `{'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }`.
fn parse_dict(text: &str) -> Result<Vec<(String, Value)>, String> {
    let b = text.as_bytes();
    let mut i = 0;
    expect(b, &mut i, b'{')?;
    let mut entries = Vec::new();
    loop {
        skip_space(b, &mut i);
        if b.get(i) == Some(&b'}') {
            return Ok(entries);
        }
        let Value::Str(key) = parse_value(b, &mut i)? else { return Err("a key is not a string".into()) };
        expect(b, &mut i, b':')?;
        entries.push((key, parse_value(b, &mut i)?));
        skip_space(b, &mut i);
        match b.get(i) {
            Some(b',') => i += 1,
            Some(b'}') => {}
            _ => return Err(format!("expected ',' or '}}' at byte {i}")),
        }
    }
}

fn parse_value(b: &[u8], i: &mut usize) -> Result<Value, String> {
    skip_space(b, i);
    let start = *i;
    match b.get(start) {
        Some(&quote @ (b'\'' | b'"')) => {
            let len = b[start + 1..].iter().position(|&c| c == quote).ok_or("a string is not closed")?;
            *i = start + len + 2;
            Ok(Value::Str(String::from_utf8_lossy(&b[start + 1..start + 1 + len]).into()))
        }
        Some(b'(' | b'[') => {
            let mut depth = 0;
            let end = (start..b.len()).find(|&k| {
                depth += i32::from(matches!(b[k], b'(' | b'[')) - i32::from(matches!(b[k], b')' | b']'));
                depth == 0
            });
            *i = end.ok_or("a bracket is not closed")? + 1;
            let text = String::from_utf8_lossy(&b[start..*i]).into_owned();
            if b[start] == b'[' {
                return Ok(Value::Other(text));
            }
            let inner = text[1..text.len() - 1].trim();
            let inner = inner.strip_suffix(',').unwrap_or(inner);
            let dims = inner.split(',').filter(|_| !inner.is_empty());
            let dims = dims.map(|d| d.trim().trim_end_matches('L').parse().map_err(|_| format!("bad shape {text}")));
            Ok(Value::Tuple(dims.collect::<Result<_, _>>()?))
        }
        _ => {
            *i += b[start..].iter().take_while(|c| c.is_ascii_alphanumeric() || **c == b'_').count();
            match &b[start..*i] {
                b"True" => Ok(Value::Bool(true)),
                b"False" => Ok(Value::Bool(false)),
                _ => Err(format!("unexpected text at byte {start}")),
            }
        }
    }
}

/// Turns the little-endian bytes of one element into an f64.
type Convert = fn(&[u8]) -> f64;

/// The size in bytes of a supported element type, and how to convert one element.
fn element(descr: &str) -> Option<(usize, Convert)> {
    macro_rules! le {
        ($t:ty) => {
            (size_of::<$t>(), |c: &[u8]| <$t>::from_le_bytes(c.try_into().unwrap()) as f64)
        };
    }
    Some(match descr {
        "<f8" => (8, |c: &[u8]| f64::from_le_bytes(c.try_into().unwrap())),
        "<f4" => le!(f32),
        "<i8" => le!(i64),
        "<i4" => le!(i32),
        "<i2" => le!(i16),
        "|i1" | "<i1" => le!(i8),
        "<u8" => le!(u64),
        "<u4" => le!(u32),
        "<u2" => le!(u16),
        "|u1" | "<u1" => le!(u8),
        "|b1" => (1, |c: &[u8]| f64::from(c[0] != 0)),
        _ => return None,
    })
}

/// Reads a NumPy `.npy` file (format versions 1.0, 2.0 and 3.0) holding a 1-D or 2-D array
/// of little-endian numbers or booleans, stored in C order.
pub fn read_npy(path: &Path) -> Result<Array, DataError> {
    let bytes = read_bytes(path)?;
    let p = || path.to_path_buf();
    let bad = |message: &str| DataError::NpyHeader { path: p(), message: message.into() };
    if bytes.len() < 8 || &bytes[..6] != b"\x93NUMPY" {
        return Err(DataError::NpyMagic { path: p() });
    }
    let start = match (bytes[6], bytes[7]) {
        (1, 0) => 10,
        (2 | 3, 0) => 12,
        (major, minor) => return Err(DataError::NpyVersion { path: p(), major, minor }),
    };
    let Some(len_bytes) = bytes.get(8..start) else { return Err(bad("the file ends inside the header")) };
    let len = len_bytes.iter().rev().fold(0usize, |n, &b| n << 8 | usize::from(b));
    let Some(header) = bytes.get(start..start + len) else { return Err(bad("the file ends inside the header")) };
    let text = std::str::from_utf8(header).map_err(|_| bad("the header is not text"))?;
    let dict = parse_dict(text).map_err(|m| bad(&m))?;
    let get = |key: &str| {
        let entry = dict.iter().find(|(k, _)| k == key);
        entry.map(|(_, v)| v).ok_or_else(|| bad(&format!("it has no '{key}' entry")))
    };
    let descr = match get("descr")? {
        Value::Str(s) | Value::Other(s) => s.clone(),
        _ => return Err(bad("'descr' is not a type")),
    };
    let Value::Bool(fortran) = *get("fortran_order")? else { return Err(bad("'fortran_order' is not True or False")) };
    let Value::Tuple(shape) = get("shape")? else { return Err(bad("'shape' is not a tuple of integers")) };
    let shape = shape.clone();
    let Some((size, convert)) = element(&descr) else { return Err(DataError::Dtype { path: p(), descr }) };
    if shape.is_empty() || shape.len() > 2 {
        return Err(DataError::Rank { path: p(), shape });
    }
    if fortran && shape.len() == 2 {
        return Err(DataError::FortranOrder { path: p() });
    }
    let needed = shape.iter().try_fold(size, |n, &d| n.checked_mul(d)).ok_or_else(|| bad("the shape is too large"))?;
    let data = &bytes[start + len..];
    if data.len() < needed {
        return Err(DataError::Truncated { path: p(), shape, needed, found: data.len() });
    }
    Ok(Array { values: data[..needed].chunks_exact(size).map(convert).collect(), shape })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes a file into this test's own directory under the system temp dir.
    fn file(test: &str, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("lagc-data-{}-{test}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
        dir.join(name)
    }

    fn csv_error(name: &str, text: &str) -> String {
        read_csv(&file("csv_errors", name, text)).unwrap_err().to_string()
    }

    /// A `.npy` file as NumPy writes it; `descr` is put in the header as given (quotes included).
    fn npy(major: u8, descr: &str, fortran: bool, shape: &str, data: &[u8]) -> Vec<u8> {
        let fortran = if fortran { "True" } else { "False" };
        let mut header = format!("{{'descr': {descr}, 'fortran_order': {fortran}, 'shape': {shape}, }}");
        let prefix = if major == 1 { 10 } else { 12 };
        while (prefix + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut out = vec![0x93, b'N', b'U', b'M', b'P', b'Y', major, 0];
        let len = (header.len() as u32).to_le_bytes();
        out.extend(&len[..prefix - 8]);
        out.extend(header.as_bytes());
        assert_eq!(out.len() % 64, 0);
        out.extend(data);
        out
    }

    fn le<T: Copy, const N: usize>(values: &[T], bytes: fn(T) -> [u8; N]) -> Vec<u8> {
        values.iter().flat_map(|&v| bytes(v)).collect()
    }

    #[test]
    fn csv_columns_and_matrix() {
        let t = read_csv(&file("columns", "t.csv", "a,b,X[0],X[1]\n1,2,3,4\n5,6,7,8\n-1.5,1e3,0.25,-2\n")).unwrap();
        assert_eq!(t.rows, 3);
        let names: Vec<&str> = t.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "X[0]", "X[1]"]);
        assert_eq!(t.column("a").unwrap().values, [1.0, 5.0, -1.5]);
        assert_eq!(t.column("b").unwrap().values, [2.0, 6.0, 1000.0]);
        assert_eq!(t.column("X[1]").unwrap().values, [4.0, 8.0, -2.0]);
        assert!(t.column("c").is_none());
        assert_eq!(t.matrix("X").unwrap(), Some((2, vec![3.0, 4.0, 7.0, 8.0, 0.25, -2.0])));
        assert_eq!(t.matrix("Y").unwrap(), None);
        assert_eq!(t.matrix("a").unwrap(), None);
    }

    #[test]
    fn matrix_gaps() {
        let t = read_csv(&file("gaps", "g.csv", "X[0],X[2],Y[1],Y[2],Z[01],XX[0]\n1,2,3,4,5,6\n")).unwrap();
        let e = t.matrix("X").unwrap_err();
        assert!(matches!(e, DataError::Gap { missing: 1, last: 2, .. }));
        assert!(e.to_string().contains("g.csv: the columns of \"X\" go up to X[2] but there is no X[1]"), "{e}");
        assert!(t.matrix("Y").unwrap_err().to_string().contains("go up to Y[2] but there is no Y[0]"));
        assert_eq!(t.matrix("Z").unwrap(), None);
        assert_eq!(t.matrix("XX").unwrap(), Some((1, vec![6.0])));
    }

    #[test]
    fn csv_bom_crlf_quotes_and_special_numbers() {
        let text = "\u{feff} t ,\"y,1\" \r\n0,\"2.5\"\r\n1,NaN\r\n\r\n2,-INF\r\n 3 ,inf\r\n";
        let t = read_csv(&file("bom", "b.csv", text)).unwrap();
        assert_eq!((t.rows, t.columns[0].name.as_str(), t.columns[1].name.as_str()), (4, "t", "y,1"));
        assert_eq!(t.column("t").unwrap().values, [0.0, 1.0, 2.0, 3.0]);
        let y = &t.column("y,1").unwrap().values;
        assert_eq!((y[0], y[1].is_nan(), y[2], y[3]), (2.5, true, f64::NEG_INFINITY, f64::INFINITY));
        let e = csv_error("crlf.csv", "\u{feff}a,b\r\n1,2\r\n3,x\r\n");
        assert!(e.ends_with("crlf.csv:3: column \"b\": \"x\" is not a number"), "{e}");
    }

    #[test]
    fn csv_errors() {
        let cases = [
            ("empty.csv", "", "empty.csv: the file is empty"),
            ("blank.csv", "\n \n", "blank.csv: the file is empty"),
            ("dup.csv", "a,b,a\n1,2,3\n", "dup.csv:1: column name \"a\" appears twice in the header (cells 1 and 3)"),
            ("noname.csv", "a,,b\n1,2,3\n", "noname.csv:1: header cell 2 is empty"),
            ("ragged.csv", "a,b,c,d\n1,2,3,4\n1,2,3\n", "ragged.csv:3: this row has 3 cells, the header has 4"),
            ("long.csv", "a\n1\n2,3\n", "long.csv:3: this row has 2 cells, the header has 1"),
            ("blanks.csv", "\n\nx,y\n\n1,2\n\n3\n", "blanks.csv:7: this row has 1 cell, the header has 2"),
            ("crlf2.csv", "x,y\r\n\r\n1,2\r\n3\r\n", "crlf2.csv:4: this row has 1 cell, the header has 2"),
            ("lines.csv", "x,y\n1,\"2\n\"\n3,z\n", "lines.csv:4: column \"y\": \"z\" is not a number"),
            ("dup2.csv", "\n\na,a\n1,2\n", "dup2.csv:3: column name \"a\" appears twice"),
            ("abc.csv", "x,y\n1,2\n3,4\n5,6\n7,8\n9,10\n11,abc\n", "abc.csv:7: column \"y\": \"abc\" is not a number"),
            ("quoted.csv", "x,y\n1,\"1,5\"\n", "quoted.csv:2: column \"y\": \"1,5\" is not a number"),
            ("hex.csv", "x\n0x10\n", "hex.csv:2: column \"x\": \"0x10\" is not a number"),
            ("cell.csv", "x,y\n1,2\n ,3\n", "cell.csv:3: column \"x\": the cell is empty"),
            ("header.csv", "x,y\n", "header.csv: the file has a header but no data rows"),
        ];
        for (name, text, message) in cases {
            let e = csv_error(name, text);
            assert!(e.contains(message), "{e}");
        }
        let e = read_csv(&file("csv_errors", "utf8.csv", b"x\n1\n\xff\n")).unwrap_err();
        assert!(matches!(e, DataError::Csv { line: 3, .. }), "{e}");
        let e = read_csv(&file("csv_errors", "rows.csv", "x\n\n")).unwrap_err();
        assert!(matches!(e, DataError::NoRows { .. }), "{e}");
    }

    #[test]
    fn missing_file_and_extensions() {
        let e = read(&std::env::temp_dir().join("lagc-data-no-such-dir/nope.csv")).unwrap_err();
        assert!(matches!(e, DataError::Io { .. }));
        assert!(e.to_string().contains("nope.csv: cannot read the file: No such file or directory"), "{e}");
        let e = read(&file("ext", "d.txt", "a\n1\n")).unwrap_err();
        assert!(matches!(e, DataError::Format { .. }) && e.to_string().contains("d.txt: unknown kind"), "{e}");
        assert!(matches!(read(&file("ext", "d.CSV", "a\n1\n")), Ok(DataFile::Table(t)) if t.rows == 1));
        let u1 = npy(1, "'|u1'", false, "(2,)", &[7, 255]);
        assert!(matches!(read(&file("ext", "u.npy", u1)), Ok(DataFile::Array(a)) if a.values == [7.0, 255.0]));
    }

    #[test]
    fn npy_arrays() {
        let read = |name: &str, bytes: Vec<u8>| {
            let a = read_npy(&file("npy", name, bytes)).unwrap();
            (a.shape, a.values)
        };
        let f8 = npy(1, "'<f8'", false, "(3,)", &le(&[1.5, -2.0, 1e300], f64::to_le_bytes));
        assert_eq!(read("f8.npy", f8), (vec![3], vec![1.5, -2.0, 1e300]));
        let f4 = npy(1, "'<f4'", false, "(2, 3)", &le(&[1.0f32, 2.0, 3.0, 4.0, 5.0, 0.1], f32::to_le_bytes));
        assert_eq!(read("f4.npy", f4), (vec![2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, f64::from(0.1f32)]));
        let i8 = npy(1, "'<i8'", false, "(2, 2)", &le(&[-3i64, 0, 7, 1 << 40], i64::to_le_bytes));
        assert_eq!(read("i8.npy", i8), (vec![2, 2], vec![-3.0, 0.0, 7.0, 1099511627776.0]));
        let i2 = npy(2, "\"<i2\"", false, "(3L,)", &le(&[-1i16, 2, 300], i16::to_le_bytes));
        assert_eq!(read("v2.npy", i2), (vec![3], vec![-1.0, 2.0, 300.0]));
        let b1 = npy(3, "'|b1'", true, "(1, 3)", &[1, 0, 1]);
        assert!(read_npy(&file("npy", "b1.npy", b1)).is_err(), "a 2-D Fortran-order array is refused");
        let b1 = npy(3, "'|b1'", true, "(3,)", &[1, 0, 1]);
        assert_eq!(read("b1.npy", b1), (vec![3], vec![1.0, 0.0, 1.0]));
    }

    #[test]
    fn npy_errors() {
        let f8 = |fortran, shape: &str| npy(1, "'<f8'", fortran, shape, &le(&[0.0; 6], f64::to_le_bytes));
        let cases = [
            (
                "fortran.npy",
                f8(true, "(2, 3)"),
                "fortran.npy: the array is stored in Fortran (column-major) order; save",
            ),
            ("3d.npy", f8(false, "(1, 2, 3)"), "3d.npy: the array has shape (1, 2, 3); data files hold 1-D or 2-D"),
            ("0d.npy", f8(false, "()"), "0d.npy: the array has shape (); data files hold 1-D or 2-D arrays only"),
            ("short.npy", f8(false, "(7,)"), "short.npy: the file is cut short: an array of shape (7,) needs 56 bytes"),
            ("magic.npy", b"PK\x03\x04 not an npy file".to_vec(), "magic.npy: not a NumPy .npy file"),
            ("version.npy", b"\x93NUMPY\x04\x00\x00\x00".to_vec(), "version.npy: .npy format version 4.0 is not"),
            ("big.npy", npy(1, "'>f8'", false, "(6,)", &[0; 48]), "big.npy: element type >f8 is not supported"),
            ("struct.npy", npy(1, "[('a', '<f8')]", false, "(6,)", &[]), "element type [('a', '<f8')] is not"),
            ("syntax.npy", f8(false, "(3, x)"), "syntax.npy: the .npy header cannot be read: bad shape (3, x)"),
            ("cut.npy", f8(false, "(6,)")[..40].to_vec(), "cut.npy: the .npy header cannot be read: the file ends"),
        ];
        for (name, bytes, message) in cases {
            let e = read_npy(&file("npy_errors", name, bytes)).unwrap_err().to_string();
            assert!(e.contains(message), "{e}");
        }
        let e = read_npy(&file("npy_errors", "f.npy", f8(true, "(2, 3)"))).unwrap_err().to_string();
        assert!(e.ends_with("save it in C order, e.g. np.save(file, np.ascontiguousarray(a))"), "{e}");
        let e = read_npy(&file("npy_errors", "s.npy", f8(false, "(7,)"))).unwrap_err().to_string();
        assert!(e.ends_with("needs 56 bytes of data, the file has 48"), "{e}");
    }
}
