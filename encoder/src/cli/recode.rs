//! `strata recode`: rewrites an archive's streams with another entropy
//! coder — the same networks, so the same decoded volume — to compare
//! codings (`--codec zstd` is the baseline, `best` adds the range coder).

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{Parser, ValueEnum};
use strata_format::{ArchiveWriter, Codec, Section, VolumeInfo};

#[derive(Parser)]
pub struct Args {
    /// The archive to rewrite.
    input: PathBuf,
    /// Where to write the rewritten archive.
    #[arg(short, long)]
    output: PathBuf,
    /// zstd: every stream zstd (or raw when smaller); best: per stream the
    /// smallest of raw, zstd and the adaptive range coder; raw: uncoded.
    #[arg(long, value_enum, default_value = "best")]
    codec: CodecArg,
}

#[derive(Clone, Copy, ValueEnum)]
enum CodecArg {
    Raw,
    Zstd,
    Best,
}

pub fn run(args: Args) -> Result<()> {
    let (archive, before) = super::read_archive(&args.input)?;
    if let Some(e) = archive.first_error() {
        bail!("{}: {e}", args.input.display());
    }
    let h = &archive.header;
    let info = VolumeInfo {
        dims: h.dims,
        scales: h.scales,
        block: h.block,
        value_min: h.value_min,
        value_max: h.value_max,
        dtype: h.dtype,
        spacing: h.spacing,
    };
    let codec = match args.codec {
        CodecArg::Raw => Codec::Raw,
        CodecArg::Zstd => Codec::Zstd(strata::ZSTD_LEVEL),
        CodecArg::Best => Codec::Best(strata::ZSTD_LEVEL),
    };
    let mut writer = ArchiveWriter::new(info, codec);
    for section in archive.sections.iter().flatten() {
        match section {
            Section::Scale(s, _) => writer.add_scale(&**s)?,
            Section::Grid(g, _) => writer.add_scale(&**g)?,
            Section::Metadata(json) => writer.add_metadata(json)?,
            Section::Opaque(raw) => writer.add_optional(raw.entry.kind, raw.bytes.clone())?,
        }
    }
    let bytes = writer.finish()?;
    strata_io::write_file_atomically(&args.output, &bytes)?;
    println!(
        "{} → {}: {before} → {} bytes ({:+.1}%)",
        args.input.display(),
        args.output.display(),
        bytes.len(),
        100.0 * (bytes.len() as f64 / before as f64 - 1.0)
    );
    Ok(())
}
