//! `strata example OUT.strata`: a small archive of randomly initialized
//! SIRENs, so decode and viewing can be tried before encoding anything.

use std::path::PathBuf;

use anyhow::Result;
use strata_format::synth::{default_architecture, random_scales};
use strata_format::{ArchiveWriter, Codec, DataType, VolumeInfo};

#[derive(clap::Args)]
pub struct Args {
    /// Where to write the archive.
    output: PathBuf,
    /// Dimensions x y z t.
    #[arg(long, num_args = 4, default_values_t = [64u32, 64, 48, 1])]
    dims: Vec<u32>,
    /// Scales in the pyramid.
    #[arg(long, default_value_t = 3)]
    scales: u8,
    /// Block edge.
    #[arg(long, default_value_t = 16)]
    block: u16,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

pub fn run(args: Args) -> Result<()> {
    let bytes = build(
        [args.dims[0], args.dims[1], args.dims[2], args.dims[3]],
        args.scales,
        args.block,
        1.0,
        args.seed,
    )?;
    strata_io::write_file_atomically(&args.output, &bytes)?;
    eprintln!("wrote {} ({} bytes)", args.output.display(), bytes.len());
    Ok(())
}

/// A random-weight archive of the default architecture; `occupancy` is the
/// fraction of finer-scale blocks that are occupied.
pub fn build(dims: [u32; 4], scales: u8, block: u16, occupancy: f32, seed: u64) -> Result<Vec<u8>> {
    let info = VolumeInfo {
        dims,
        scales,
        block: [block; 3],
        value_min: 0.0,
        value_max: 255.0,
        dtype: DataType::U8,
        spacing: [1.0; 4],
    };
    let mut w = ArchiveWriter::new(info.clone(), Codec::Zstd(3));
    for s in random_scales(&info, &default_architecture(), occupancy, seed) {
        w.add_scale(&s)?;
    }
    w.add_metadata(r#"{"name": "random SIRENs", "description": "synthetic example archive"}"#)?;
    Ok(w.finish()?)
}
