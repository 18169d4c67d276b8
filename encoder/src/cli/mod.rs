//! Subcommands of `strata`.

mod bench_decode;
mod bench_grid;
mod bench_train;
mod decode;
mod encode;
mod eval;
mod example;
mod info;
mod phantom;
mod recode;
mod view;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use strata_format::{Archive, Limits};

#[derive(Parser)]
#[command(
    name = "strata",
    version,
    about = "Neural compression of 3D and 4D scalar volumes"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Encode a volume into a .strata archive.
    Encode(encode::Args),
    /// Compare an archive with its original: ratio, PSNR, max error, SSIM.
    Eval(eval::Args),
    /// Show an archive's header and sections, with checksum status.
    Info(info::Args),
    /// Decode an archive to .npy, .nii, .nii.gz or .raw (+ .json sidecar).
    Decode(decode::Args),
    /// Serve the web viewer and an archive on 127.0.0.1 and print the URL
    /// to open.
    View(view::Args),
    /// Rewrite an archive's streams with another entropy coder (same
    /// networks, same decoded volume): compares codings.
    Recode(recode::Args),
    /// Write the 3D Shepp–Logan phantom, a sample volume to try Strata on.
    Phantom(phantom::Args),
    /// Measure decode speed (CPU reference decoder; --gpu adds the GPU
    /// decoder) on a synthetic archive.
    BenchDecode(bench_decode::Args),
    /// Measure training throughput (forward + backward + update).
    BenchTrain(bench_train::Args),
    /// Time the grid model's training step: synthesis and rate halves.
    BenchGrid(bench_grid::Args),
    /// Write a small archive with randomly initialized networks (a sample
    /// to decode until the encoder lands).
    Example(example::Args),
}

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Encode(a) => encode::run(a),
        Command::Eval(a) => eval::run(a),
        Command::Info(a) => info::run(a),
        Command::Decode(a) => decode::run(a),
        Command::BenchDecode(a) => bench_decode::run(a),
        Command::BenchTrain(a) => bench_train::run(a),
        Command::BenchGrid(a) => bench_grid::run(a),
        Command::Example(a) => example::run(a),
        Command::Phantom(a) => phantom::run(a),
        Command::View(a) => view::run(a),
        Command::Recode(a) => recode::run(a),
    }
}

/// Reads a whole archive file. Fails only if the file or its header is
/// unusable; damaged sections are reported per section.
fn read_archive(path: &PathBuf) -> Result<(Archive, u64)> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let archive =
        Archive::read(&bytes, &Limits::default()).with_context(|| format!("{}", path.display()))?;
    Ok((archive, bytes.len() as u64))
}

/// Appends `row` to the CSV at `path`, writing `header` first if the file is
/// new. A file written before columns were added at the end gets the new
/// header, its older rows empty cells in the new columns.
fn append_csv(path: &std::path::Path, header: &str, row: &str) -> Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    if path.exists() {
        let text = std::fs::read_to_string(path)?;
        let old = text.lines().next().unwrap_or("");
        if old != header {
            if !header.starts_with(&format!("{old},")) {
                anyhow::bail!(
                    "{} has other columns ({old}); move it aside to start a new one",
                    path.display()
                );
            }
            let pad = ",".repeat(header.matches(',').count() - old.matches(',').count());
            let mut migrated = format!("{header}\n");
            for line in text.lines().skip(1) {
                migrated.push_str(&format!("{line}{pad}\n"));
            }
            std::fs::write(path, migrated)?;
        }
    }
    let new = !path.exists();
    let mut csv = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    if new {
        writeln!(csv, "{header}")?;
    }
    writeln!(csv, "{row}")?;
    Ok(())
}
