//! Strata's side: a configuration is a set of `strata encode` options given
//! as one string (`--strata "--width 16 --block 8"`); it is encoded with the
//! `strata` library, the archive decoded with the reference decoder, and the
//! result measured like `strata eval` does.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Parser;
use strata::args::EncodeArgs;
use strata::{EncodeOptions, Progress};
use strata_format::{Archive, Limits, Volume};

use crate::codec::ratio;
use crate::Row;

/// A configuration's arguments: exactly `strata encode`'s options.
#[derive(Parser, Debug, Clone)]
#[command(name = "--strata", no_binary_name = true)]
struct StrataConfig {
    #[command(flatten)]
    options: EncodeArgs,
}

/// One Strata configuration: its label (the arguments as given) and the
/// options it stands for.
#[derive(Clone, Debug)]
pub struct Config {
    pub label: String,
    pub options: EncodeOptions,
}

/// The configurations run when none is given: the default (grid) model at
/// the ratios issue 12's table asks for, and the SIREN model's default
/// architecture quantized to 9 bits like ECNR.
pub const DEFAULT_CONFIGS: [&str; 5] = [
    "--ratio 50",
    "--ratio 100",
    "--ratio 200",
    "--ratio 500",
    "--model siren --bits 9",
];

impl Config {
    /// Parses `strata encode`-style arguments, e.g. "--width 16 --block 8".
    pub fn parse(args: &str) -> Result<Config> {
        let c = StrataConfig::try_parse_from(args.split_whitespace())
            .with_context(|| format!("--strata \"{args}\""))?;
        let label = args.split_whitespace().collect::<Vec<_>>().join(" ");
        Ok(Config {
            label: if label.is_empty() {
                "defaults".into()
            } else {
                label
            },
            options: c
                .options
                .options()
                .with_context(|| format!("--strata \"{args}\""))?,
        })
    }
}

/// Progress on stderr: one line per scale, and one per tenth of its steps.
struct Lines {
    label: String,
    model: strata::ModelKind,
    steps: usize,
    started: Instant,
}

impl Progress for Lines {
    fn scale_started(&mut self, level: u8, scales: u8, steps: usize, mlps: usize, blocks: usize) {
        self.steps = steps;
        self.started = Instant::now();
        eprintln!(
            "  strata [{}] scale {}/{scales}: {}, {steps} steps",
            self.label,
            level + 1,
            self.model.scale_parts(mlps, blocks)
        );
    }

    fn step(&mut self, step: usize, loss: f32) {
        let tenth = (self.steps / 10).max(1);
        if step > 0 && step.is_multiple_of(tenth) {
            eprintln!(
                "    step {step}/{} loss {loss:.2e} ({:.0} s)",
                self.steps,
                self.started.elapsed().as_secs_f64()
            );
        }
    }

    fn scale_finished(&mut self, level: u8, psnr: f64) {
        eprintln!(
            "  strata [{}] scale {}: {psnr:.2} dB at this level ({:.1} s)",
            self.label,
            level + 1,
            self.started.elapsed().as_secs_f64()
        );
    }
}

/// Encodes `volume` with `config` into the archive `keep`, decodes it with
/// the reference decoder and measures it.
pub fn run(volume: &Volume, name: &str, config: &Config, keep: &Path) -> Result<Row> {
    let mut progress = Lines {
        label: config.label.clone(),
        model: config.options.model,
        steps: 0,
        started: Instant::now(),
    };
    let t = Instant::now();
    let (bytes, _) = strata::encode(volume, name, &config.options, &mut progress)
        .with_context(|| format!("strata [{}]", config.label))?;
    let encode_seconds = t.elapsed().as_secs_f64();
    strata_io::write_file_atomically(keep, &bytes)
        .with_context(|| format!("cannot write {}", keep.display()))?;
    let archive = Archive::read(&bytes, &Limits::default())?;
    let e = strata::metrics::evaluate(volume, &archive)
        .with_context(|| format!("strata [{}] wrote an unusable archive", config.label))?;
    let (q, decode_seconds) = (e.quality, e.decode_seconds);
    Ok(Row {
        codec: "strata".into(),
        config: config.label.clone(),
        ratio: ratio(volume.data.len(), bytes.len()),
        psnr: q.psnr,
        max_abs_error: q.max_abs_error,
        encode_seconds,
        decode_seconds,
    })
}
