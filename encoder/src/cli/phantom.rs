//! `strata phantom OUT`: the 3D Shepp–Logan head phantom (Kak & Slaney's
//! ellipsoids), so the main job runs on a fresh machine with no data.

use std::path::PathBuf;

use anyhow::Result;
use strata_format::{DataType, Volume};

#[derive(clap::Args)]
pub struct Args {
    /// Output volume (.nii, .nii.gz, .npy or .raw).
    output: PathBuf,
    /// Edge length in voxels.
    #[arg(long, default_value_t = 96)]
    size: usize,
    /// Toft's "modified Shepp–Logan" densities (1, −0.8, −0.2, −0.2, then
    /// 0.1): the inner ellipsoids stand 10–20% of the range off the brain
    /// instead of 0.5–1%, so they show in a rendering (the demo's volume).
    #[arg(long)]
    modified: bool,
}

/// The modified phantom's densities, ellipsoid by ellipsoid.
const MODIFIED: [f32; 10] = [1.0, -0.8, -0.2, -0.2, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1];

/// (centre x, y, z; semi-axes a, b, c; rotation about z in degrees; density).
const ELLIPSOIDS: [([f32; 3], [f32; 3], f32, f32); 10] = [
    ([0.0, 0.0, 0.0], [0.69, 0.92, 0.9], 0.0, 2.0),
    ([0.0, 0.0, 0.0], [0.6624, 0.874, 0.88], 0.0, -0.98),
    ([-0.22, 0.0, -0.25], [0.41, 0.16, 0.21], 108.0, -0.02),
    ([0.22, 0.0, -0.25], [0.31, 0.11, 0.22], 72.0, -0.02),
    ([0.0, 0.35, -0.25], [0.21, 0.25, 0.5], 0.0, 0.02),
    ([0.0, 0.1, -0.25], [0.046, 0.046, 0.046], 0.0, 0.02),
    ([-0.08, -0.65, -0.25], [0.046, 0.023, 0.02], 0.0, 0.01),
    ([0.06, -0.65, -0.25], [0.046, 0.023, 0.02], 90.0, 0.01),
    ([0.06, -0.105, 0.625], [0.056, 0.04, 0.1], 90.0, 0.02),
    ([0.0, 0.1, 0.625], [0.056, 0.056, 0.1], 0.0, -0.02),
];

/// The phantom with Kak & Slaney's densities (skull 2, brain 1.02, inner
/// ellipsoids 1–1.04).
pub fn phantom(n: usize) -> Volume {
    phantom_with(n, &ELLIPSOIDS.map(|e| e.3))
}

/// The phantom's ellipsoids with the given densities.
fn phantom_with(n: usize, density: &[f32; 10]) -> Volume {
    let mut data = Vec::with_capacity(n * n * n);
    let c = |i: usize| 2.0 * (i as f32 + 0.5) / n as f32 - 1.0;
    for z in 0..n {
        for y in 0..n {
            for x in 0..n {
                let p = [c(x), c(y), c(z)];
                let v: f32 = ELLIPSOIDS
                    .iter()
                    .zip(density)
                    .filter(|((centre, axes, angle, _), _)| {
                        let (s, co) = angle.to_radians().sin_cos();
                        let d = [p[0] - centre[0], p[1] - centre[1], p[2] - centre[2]];
                        let r = [co * d[0] + s * d[1], -s * d[0] + co * d[1], d[2]];
                        (0..3).map(|k| (r[k] / axes[k]).powi(2)).sum::<f32>() <= 1.0
                    })
                    .map(|(_, &d)| d)
                    .sum();
                data.push(v);
            }
        }
    }
    let mut vol = Volume::new([n, n, n, 1], data).expect("dims match");
    vol.dtype = DataType::F32;
    vol
}

pub fn run(args: Args) -> Result<()> {
    if !(4..=1024).contains(&args.size) {
        anyhow::bail!("--size must be between 4 and 1024");
    }
    let volume = if args.modified {
        phantom_with(args.size, &MODIFIED)
    } else {
        phantom(args.size)
    };
    strata_io::write_volume(&args.output, &volume)?;
    eprintln!(
        "wrote {} ({}³ {}Shepp–Logan phantom)",
        args.output.display(),
        args.size,
        if args.modified { "modified " } else { "" }
    );
    Ok(())
}
