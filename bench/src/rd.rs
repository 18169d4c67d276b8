//! `bench rd`: Strata's configurations first, then SZ3, ZFP, SPERR and
//! TTHRESH matched to each Strata ratio and to the extra target ratios; a
//! CSV and a plot.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use strata_format::Volume;

use crate::codec::{self, ErrorBounded};
use crate::matching::match_ratio;
use crate::sperr::Sperr;
use crate::strata::{self as strata_run, Config};
use crate::sz3::Sz3;
use crate::tthresh::Tthresh;
use crate::zfp::Zfp;
use crate::{csv, plot, Row};

/// What to run: the arguments of `bench rd`.
#[derive(Clone, Debug, clap::Args)]
pub struct Options {
    /// The volume: .nii, .nii.gz, .npy, or raw with a .json sidecar.
    pub volume: PathBuf,
    /// A Strata configuration as `strata encode` options, e.g.
    /// "--ratio 100" or "--model siren --bits 9"; repeat for several.
    /// Default: the grid model at --ratio 50, 100, 200 and 500, and the
    /// SIREN model with --bits 9.
    #[arg(long, value_name = "ARGS", allow_hyphen_values = true)]
    pub strata: Vec<String>,
    /// Skip Strata: SZ3, ZFP, SPERR and TTHRESH at --ratios only.
    #[arg(long, conflicts_with = "strata")]
    pub no_strata: bool,
    /// Ratios to match SZ3, ZFP, SPERR and TTHRESH to, besides each Strata
    /// ratio.
    #[arg(long, num_args = 1.., value_name = "R", default_values_t = [25.0, 50.0, 100.0, 200.0, 500.0])]
    pub ratios: Vec<f64>,
    /// Relative tolerance of the ratio matching.
    #[arg(long, default_value_t = 0.02)]
    pub tolerance: f64,
    /// Output folder.
    #[arg(long, default_value = "bench-out")]
    pub out: PathBuf,
}

/// The outputs of a run.
pub struct Outputs {
    pub rows: Vec<Row>,
    pub csv: PathBuf,
    pub png: PathBuf,
}

/// The volume's name without directory and extensions ("mni152_t1").
pub fn volume_name(path: &Path) -> String {
    let file = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_else(|| "volume".into());
    let lower = file.to_ascii_lowercase();
    for ext in [".nii.gz", ".nii", ".npy", ".raw", ".f32"] {
        if lower.ends_with(ext) && file.len() > ext.len() {
            return file[..file.len() - ext.len()].to_string();
        }
    }
    file
}

/// Target ratios, ascending, dropping ones within 0.1% of another.
fn targets(strata: &[Row], extra: &[f64]) -> Vec<f64> {
    let mut t: Vec<f64> = strata
        .iter()
        .map(|r| r.ratio)
        .chain(extra.iter().copied())
        .filter(|r| r.is_finite() && *r > 0.0)
        .collect();
    t.sort_by(f64::total_cmp);
    t.dedup_by(|a, b| (*a / *b - 1.0).abs() < 1e-3);
    t
}

/// Runs `codec` at a bound matched to each target ratio.
pub fn run_matched(
    codec: &dyn ErrorBounded,
    volume: &Volume,
    targets: &[f64],
    tolerance: f64,
) -> Result<Vec<Row>> {
    let (lo, hi) = volume.finite_range().unwrap_or((0.0, 0.0));
    // Bounds relative to the value range (or to the magnitude, if constant).
    let scale = match (hi - lo) as f64 {
        s if s > 0.0 => s,
        _ => (lo.abs() as f64).max(1.0),
    };
    let mut rows = Vec::new();
    for &target in targets {
        let t = Instant::now();
        let (min, max) = codec.bound_range(scale);
        let m = match_ratio(target, min, max, tolerance, |bound| {
            let bytes = codec.compress(&volume.data, volume.dims, bound)?;
            Ok(codec::ratio(volume.data.len(), bytes.len()))
        })
        .with_context(|| format!("{} at ratio {target}", codec.name()))?;
        let mut row = codec::measure(codec, volume, m.bound)?;
        row.config = format!("{} (target {target:.1})", row.config);
        eprintln!(
            "  {} target {target:.1}: ratio {:.1}{} PSNR {:.2} dB, max error {:.3e} ({} tries, {:.1} s)",
            codec.name(),
            row.ratio,
            if m.hit { "," } else { " (closest reachable)," },
            row.psnr,
            row.max_abs_error,
            m.evaluations,
            t.elapsed().as_secs_f64()
        );
        rows.push(row);
    }
    Ok(rows)
}

pub fn run(opts: &Options) -> Result<Outputs> {
    let configs: Vec<Config> = if opts.no_strata {
        Vec::new()
    } else if opts.strata.is_empty() {
        strata_run::DEFAULT_CONFIGS
            .iter()
            .map(|a| Config::parse(a))
            .collect::<Result<_>>()?
    } else {
        opts.strata
            .iter()
            .map(|a| Config::parse(a))
            .collect::<Result<_>>()?
    };
    let volume = strata_io::read_volume(&opts.volume)
        .with_context(|| format!("cannot read {}", opts.volume.display()))?;
    let name = volume_name(&opts.volume);
    eprintln!(
        "bench rd {name}: dims {:?}, {} voxels",
        volume.dims,
        volume.data.len()
    );
    let mut rows = Vec::new();
    std::fs::create_dir_all(&opts.out)
        .with_context(|| format!("cannot create {}", opts.out.display()))?;
    for (k, config) in configs.iter().enumerate() {
        eprintln!("strata [{}]", config.label);
        // Kept for `strata info` (byte breakdown) and `strata view`.
        let keep = opts.out.join(format!("rd-{name}-strata{}.strata", k + 1));
        let row = strata_run::run(&volume, &name, config, &keep)?;
        eprintln!(
            "  strata [{}]: ratio {:.1}, PSNR {:.2} dB, encode {:.1} s; wrote {}",
            config.label,
            row.ratio,
            row.psnr,
            row.encode_seconds,
            keep.display()
        );
        rows.push(row);
    }
    let targets = targets(&rows, &opts.ratios);
    let codecs: [&dyn ErrorBounded; 4] = [&Sz3, &Zfp, &Sperr, &Tthresh];
    for codec in codecs {
        eprintln!("{} at ratios {targets:.1?}", codec.name());
        rows.extend(run_matched(codec, &volume, &targets, opts.tolerance)?);
    }
    let csv_path = opts.out.join(format!("rd-{name}.csv"));
    let png_path = opts.out.join(format!("rd-{name}.png"));
    csv::write(&csv_path, &rows)?;
    let [x, y, z, t] = volume.dims;
    let dims = if t > 1 {
        format!("{x}×{y}×{z}×{t}")
    } else {
        format!("{x}×{y}×{z}")
    };
    plot::draw(
        &png_path,
        &format!("Rate–distortion: {name} ({dims})"),
        &rows,
        &plot::references(&name),
    )?;
    Ok(Outputs {
        rows,
        csv: csv_path,
        png: png_path,
    })
}
