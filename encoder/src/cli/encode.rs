//! `strata encode IN -o OUT.strata`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use strata::args::EncodeArgs;
use strata::Progress;

#[derive(clap::Args)]
pub struct Args {
    /// Input volume: .nii, .nii.gz, .npy, or raw with a .json sidecar.
    input: PathBuf,
    /// The archive to write.
    #[arg(short, long)]
    output: PathBuf,
    #[command(flatten)]
    options: EncodeArgs,
    /// No progress bars.
    #[arg(long)]
    quiet: bool,
}

/// Progress bars per scale: loss, PSNR so far, ETA.
struct Bars {
    quiet: bool,
    model: strata::ModelKind,
    started: Instant,
    bar: Option<ProgressBar>,
    psnr: Vec<String>,
}

impl Progress for Bars {
    fn scale_started(&mut self, level: u8, scales: u8, steps: usize, mlps: usize, blocks: usize) {
        if self.quiet {
            return;
        }
        let bar = ProgressBar::new(steps as u64).with_style(
            ProgressStyle::with_template(
                "scale {prefix} [{bar:30}] {pos}/{len} steps {msg} ETA {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(format!(
            "{}/{scales} ({})",
            level + 1,
            self.model.scale_parts(mlps, blocks)
        ));
        self.bar = Some(bar);
        self.started = Instant::now();
    }

    fn step(&mut self, step: usize, loss: f32) {
        if let Some(bar) = &self.bar {
            bar.set_position(step as u64);
            // Loss is in block-normalized units ([-1, 1] per block).
            bar.set_message(format!("loss {loss:.2e}{}", self.so_far()));
        }
    }

    fn scale_finished(&mut self, level: u8, psnr: f64) {
        self.psnr.push(format!("{psnr:.2}"));
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        if !self.quiet {
            eprintln!(
                "scale {}: PSNR at this level {psnr:.2} dB ({:.1} s)",
                level + 1,
                self.started.elapsed().as_secs_f64()
            );
        }
    }
}

impl Bars {
    fn so_far(&self) -> String {
        if self.psnr.is_empty() {
            String::new()
        } else {
            format!(", PSNR so far {} dB", self.psnr.join(" → "))
        }
    }
}

pub fn run(args: Args) -> Result<()> {
    let volume = strata_io::read_volume(&args.input)?;
    let opts = args.options.options()?;
    let name = args
        .input
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let start = Instant::now();
    let mut bars = Bars {
        quiet: args.quiet,
        model: opts.model,
        started: Instant::now(),
        bar: None,
        psnr: Vec::new(),
    };
    let (bytes, report) = strata::encode(&volume, &name, &opts, &mut bars)?;
    strata_io::write_file_atomically(&args.output, &bytes)
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    if !args.quiet {
        let f32_bytes = volume.data.len() as f64 * 4.0;
        // Blocks, widths and codebook bits describe SIREN scales only.
        let model = match opts.model {
            strata::ModelKind::Grid => format!(
                "latent grids, λ per scale {}",
                report
                    .lambdas
                    .iter()
                    .map(|l| format!("{l:.2e}"))
                    .collect::<Vec<_>>()
                    .join("/")
            ),
            _ => format!(
                "block {:?}, widths {:?}, bits per scale {}",
                report.block,
                report.widths,
                report
                    .bits
                    .iter()
                    .map(|b| b.as_ref().map_or("f32".to_string(), |b| b.to_string()))
                    .collect::<Vec<_>>()
                    .join("/")
            ),
        };
        eprintln!(
            "wrote {} ({} bytes, ratio {:.1} vs float32) in {:.1} s; {model}",
            args.output.display(),
            bytes.len(),
            f32_bytes / bytes.len() as f64,
            start.elapsed().as_secs_f64(),
        );
    }
    // --psnr is decided on the normalized reconstruction; this is the
    // volume as decoders give it (original units and type), the one that counts.
    if let (Some(goal), Some(decoded)) = (opts.target_psnr, &report.reconstruction) {
        let achieved = strata::metrics::quality(&volume.data, &decoded.data).psnr;
        if achieved < goal {
            eprintln!(
                "strata: warning: PSNR {achieved:.2} dB is short of --psnr {goal} even with the widest codebooks and networks tried; try a larger --width or more --epochs"
            );
        } else if !args.quiet {
            eprintln!("PSNR {achieved:.2} dB (--psnr {goal})");
        }
    }
    Ok(())
}
