//! The benchmark's CSV: a header, then one row per run.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};

use crate::Row;

pub const HEADER: &str = "codec,config,ratio,psnr,max_abs_error,encode_seconds,decode_seconds";

/// A field quoted when it holds a comma, a quote or a line break.
fn field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The whole CSV text for `rows`.
pub fn to_string(rows: &[Row]) -> String {
    let mut out = format!("{HEADER}\n");
    for r in rows {
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "{},{},{:.3},{:.3},{:.6e},{:.3},{:.3}",
            field(&r.codec),
            field(&r.config),
            r.ratio,
            r.psnr,
            r.max_abs_error,
            r.encode_seconds,
            r.decode_seconds
        );
    }
    out
}

/// Writes `rows` to `path` (replacing it) through a temporary file.
pub fn write(path: &Path, rows: &[Row]) -> Result<()> {
    strata_io::write_file_atomically(path, to_string(rows).as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}
