//! Side-by-side rate–distortion benchmark: Strata against SZ3, ZFP, SPERR
//! and TTHRESH on the same volume, at matched compression ratios. One module
//! per idea: the four codecs driven by one bound (`sz3`, `zfp`, `sperr`,
//! `tthresh`, behind `codec::ErrorBounded`), `matching` (bisection of an error
//! bound onto a target ratio), `strata` (encode with the library, decode with
//! the reference decoder), `csv` and `plot` (the outputs), and `rd`, which
//! drives them.
//!
//! Every figure uses the same definitions as `strata eval`
//! ([`strata::metrics::quality`]): PSNR = 20·log10(range / RMSE) over the
//! original values, ratio = float32 bytes / compressed bytes.

pub mod codec;
pub mod csv;
pub mod matching;
pub mod plot;
pub mod rd;
pub mod sperr;
pub mod strata;
pub mod sz3;
pub mod tthresh;
pub mod zfp;

/// One measured run of one codec at one setting: a row of the CSV.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// "strata", "sz3", "zfp", "sperr" or "tthresh".
    pub codec: String,
    /// How it was run: Strata's encode arguments, or the error bound.
    pub config: String,
    /// float32 bytes / compressed bytes.
    pub ratio: f64,
    pub psnr: f64,
    pub max_abs_error: f64,
    pub encode_seconds: f64,
    pub decode_seconds: f64,
}
