//! The rate–distortion plot: PSNR against compression ratio (log x), one line
//! per error-bounded codec (SZ3, ZFP, SPERR, TTHRESH), Strata's
//! configurations as labelled points, and published reference points for
//! the volumes that have them.
//!
//! Text goes through plotters' pure-Rust `ab_glyph` backend with a TrueType
//! font read at run time (DejaVu Sans from `fonts-dejavu-core`, or the file
//! named by `BENCH_FONT`), so no fontconfig is needed.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{anyhow, bail, Context, Result};
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

use crate::Row;

/// Reference points drawn as hollow markers: (label, [(ratio, PSNR)]).
pub type Reference = (&'static str, &'static [(f64, f64)]);

/// Reference points for a volume, by its name: ECNR's code as run on this machine for
/// MNI152 and engine, and for MNI152 the measurements in
/// `shared/data/README.md` (SZ3 3.3 via pysz, ZFP accuracy mode, TTHRESH).
pub fn references(volume: &str) -> Vec<Reference> {
    let v = volume.to_ascii_lowercase();
    if v.contains("mni152") {
        vec![
            ("ECNR (its code, run here)", &[(65.5, 36.76), (94.3, 34.63)]),
            (
                "SZ3 (pysz, reference)",
                &[(100.0, 42.3), (200.0, 35.5), (500.0, 26.0)],
            ),
            (
                "ZFP (reference)",
                &[(100.0, 37.7), (200.0, 33.5), (500.0, 19.5)],
            ),
            (
                "TTHRESH (reference)",
                &[(100.0, 39.6), (200.0, 36.3), (500.0, 33.3)],
            ),
        ]
    } else if v.contains("engine") {
        vec![(
            "ECNR (its code, run here)",
            &[(50.9, 40.97), (136.9, 36.05)],
        )]
    } else {
        Vec::new()
    }
}

const FONT_PATHS: [&str; 3] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

/// Registers the plot's font once per process.
fn font() -> Result<()> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        let candidates: Vec<PathBuf> = std::env::var_os("BENCH_FONT")
            .map(PathBuf::from)
            .into_iter()
            .chain(FONT_PATHS.iter().map(PathBuf::from))
            .collect();
        let path = candidates.iter().find(|p| p.is_file()).ok_or_else(|| {
            "no font for the plot: install fonts-dejavu-core or set BENCH_FONT to a .ttf file"
                .to_string()
        })?;
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        // The font lives as long as the process; it is registered once.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        register_font("sans-serif", FontStyle::Normal, bytes)
            .map_err(|_| format!("{}: not a usable TrueType font", path.display()))
    })
    .clone()
    .map_err(|e| anyhow!(e))
}

/// The codecs drawn as lines, in legend order; the legend names them in
/// capitals.
pub const CODECS: [&str; 4] = ["sz3", "zfp", "sperr", "tthresh"];

fn color(codec: &str) -> RGBColor {
    match codec {
        "strata" => RGBColor(0, 150, 60),
        "sz3" => RGBColor(30, 90, 200),
        "zfp" => RGBColor(210, 50, 40),
        "sperr" => RGBColor(230, 140, 0),
        "tthresh" => RGBColor(140, 60, 170),
        _ => RGBColor(90, 90, 90),
    }
}

fn reference_color(label: &str) -> RGBColor {
    if label.starts_with("SZ3") {
        color("sz3")
    } else if label.starts_with("ZFP") {
        color("zfp")
    } else if label.starts_with("TTHRESH") {
        color("tthresh")
    } else {
        BLACK
    }
}

/// Draws `rows` (and `references`) as a PNG at `path`.
pub fn draw(path: &Path, title: &str, rows: &[Row], references: &[Reference]) -> Result<()> {
    font()?;
    let points: Vec<(f64, f64)> = rows
        .iter()
        .map(|r| (r.ratio, r.psnr))
        .chain(references.iter().flat_map(|(_, p)| p.iter().copied()))
        .filter(|(x, y)| x.is_finite() && *x > 0.0 && y.is_finite())
        .collect();
    if points.is_empty() {
        bail!("nothing to plot: no run with a finite ratio and PSNR");
    }
    let (xlo, xhi) = points
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.0), b.max(p.0)));
    let (ylo, yhi) = points
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(p.1), b.max(p.1)));
    // Room on the right for the labels of the highest-ratio points.
    let (x0, x1) = (xlo / 1.3, xhi * 2.2);
    // Ticks at 1, 2, 5 × powers of ten inside the axis.
    let ticks: Vec<f64> = (-3..=6)
        .flat_map(|e| [1.0, 2.0, 5.0].map(|m| m * 10f64.powi(e)))
        .filter(|t| (x0..=x1).contains(t))
        .collect();
    let draw = || -> std::result::Result<(), Box<dyn std::error::Error>> {
        let root = BitMapBackend::new(path, (1200, 800)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 26))
            .margin(20)
            .x_label_area_size(50)
            .y_label_area_size(60)
            .build_cartesian_2d(
                (x0..x1).log_scale().with_key_points(ticks.clone()),
                (ylo - 2.0).floor()..(yhi + 2.0).ceil(),
            )?;
        chart
            .configure_mesh()
            .x_desc("compression ratio (float32 bytes / compressed bytes), log scale")
            .y_desc("PSNR (dB) over the original value range")
            .x_label_formatter(&|x| format!("{x}"))
            .y_label_formatter(&|y| format!("{y:.0}"))
            .label_style(("sans-serif", 16))
            .axis_desc_style(("sans-serif", 18))
            .draw()?;
        for codec in CODECS {
            let mut line: Vec<(f64, f64)> = rows
                .iter()
                .filter(|r| r.codec == codec && r.psnr.is_finite())
                .map(|r| (r.ratio, r.psnr))
                .collect();
            if line.is_empty() {
                continue;
            }
            line.sort_by(|a, b| a.0.total_cmp(&b.0));
            let c = color(codec);
            chart
                .draw_series(LineSeries::new(line.clone(), c.stroke_width(2)))?
                .label(codec.to_uppercase())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 24, y)], c.stroke_width(2))
                });
            chart.draw_series(line.iter().map(|&p| Circle::new(p, 4, c.filled())))?;
        }
        let strata: Vec<&Row> = rows
            .iter()
            .filter(|r| r.codec == "strata" && r.psnr.is_finite())
            .collect();
        if !strata.is_empty() {
            let c = color("strata");
            chart
                .draw_series(strata.iter().map(|r| {
                    EmptyElement::at((r.ratio, r.psnr))
                        + Circle::new((0, 0), 7, c.filled())
                        + Text::new(r.config.clone(), (10, -20), ("sans-serif", 15).into_font())
                }))?
                .label("Strata")
                .legend(move |(x, y)| Circle::new((x + 12, y), 6, c.filled()));
        }
        for &(label, pts) in references {
            let c = reference_color(label);
            chart
                .draw_series(
                    pts.iter()
                        .map(|&p| TriangleMarker::new(p, 8, c.stroke_width(2))),
                )?
                .label(label)
                .legend(move |(x, y)| TriangleMarker::new((x + 12, y), 7, c.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 16))
            .draw()?;
        root.present()?;
        Ok(())
    };
    draw()
        .map_err(|e| anyhow!("{e}"))
        .with_context(|| format!("cannot draw {}", path.display()))
}
