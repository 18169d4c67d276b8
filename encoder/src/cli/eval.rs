//! `strata eval ORIGINAL ARCHIVE [--json]`: how good and how small.

use std::path::PathBuf;

use anyhow::{Context, Result};
use serde_json::json;
use strata::metrics;

#[derive(clap::Args)]
pub struct Args {
    /// The original volume.
    original: PathBuf,
    /// Its archive.
    archive: PathBuf,
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<()> {
    let original = strata_io::read_volume(&args.original)?;
    let (archive, bytes) = super::read_archive(&args.archive)?;
    let metrics::Evaluation {
        decoded,
        quality: q,
        decode_seconds: decode_s,
    } = metrics::evaluate(&original, &archive)
        .with_context(|| args.archive.display().to_string())?;
    let ssim = metrics::ssim(&original.data, &decoded.data, original.dims, q.range);
    let voxels = original.data.len() as f64;
    let ratio = voxels * 4.0 / bytes as f64;
    let ratio_dtype = voxels * original.dtype.size() as f64 / bytes as f64;
    if args.json {
        let doc = json!({
            "ratio": ratio,
            "ratio_original_dtype": ratio_dtype,
            "dtype": original.dtype.name(),
            "bytes": bytes,
            "psnr": q.psnr,
            "rmse": q.rmse,
            "max_abs_error": q.max_abs_error,
            "ssim": ssim,
            "range": q.range,
            "decode_seconds": decode_s,
            "dims": original.dims,
            "components": super::info::component_json(&archive),
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        println!(
            "ratio        {ratio:.1} vs float32, {ratio_dtype:.1} vs {} ({bytes} bytes)",
            original.dtype.name()
        );
        println!("PSNR         {:.2} dB (range {})", q.psnr, q.range);
        println!("max error    {}", q.max_abs_error);
        println!("SSIM         {ssim:.4}");
        println!("decode       {decode_s:.3} s");
        super::info::print_components(&archive);
    }
    Ok(())
}
