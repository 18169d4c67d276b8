//! SZ3 (3.3.2, through the `sz3` crate) with an absolute error bound and its
//! default predictor (interpolation + Lorenzo), single-threaded.

use anyhow::{bail, Context, Result};
use sz3::{DimensionedData, ErrorBound};

use crate::codec::{significant_dims, ErrorBounded};

pub struct Sz3;

impl ErrorBounded for Sz3 {
    fn name(&self) -> &'static str {
        "sz3"
    }

    fn bound_label(&self) -> &'static str {
        "abs"
    }

    fn compress(&self, data: &[f32], dims: [usize; 4], bound: f64) -> Result<Vec<u8>> {
        if !(bound.is_finite() && bound > 0.0) {
            bail!("SZ3 needs a positive error bound, got {bound}");
        }
        let mut builder = DimensionedData::build(&data);
        for d in significant_dims(dims) {
            builder = builder.dim(d).context("SZ3 dimensions")?;
        }
        let shaped = builder.finish().context("SZ3 dimensions")?;
        sz3::compress(&shaped, ErrorBound::Absolute(bound)).context("SZ3 compression")
    }

    fn decompress(&self, bytes: &[u8], dims: [usize; 4]) -> Result<Vec<f32>> {
        let (_, shaped) = sz3::decompress::<f32, _>(bytes).context("SZ3 decompression")?;
        if shaped.dims() != significant_dims(dims).as_slice() {
            bail!(
                "SZ3 stream holds dims {:?}, expected {:?}",
                shaped.dims(),
                significant_dims(dims)
            );
        }
        Ok(shaped.into_data())
    }
}
