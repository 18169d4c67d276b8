//! `strata decode FILE -o OUT [--scales N] [--gpu]`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use strata_format::Reconstruction;

#[derive(clap::Args)]
pub struct Args {
    /// The .strata archive.
    file: PathBuf,
    /// Output volume: .npy, .nii, .nii.gz or .raw (with a .json sidecar).
    #[arg(short, long)]
    output: PathBuf,
    /// Decode only the N coarsest scales, upsampled to full size.
    #[arg(long, value_name = "N")]
    scales: Option<u8>,
    /// Decode on the GPU (wgpu: Vulkan, Metal or DX12) instead of the CPU.
    #[arg(long)]
    gpu: bool,
}

pub fn run(args: Args) -> Result<()> {
    let (archive, _) = super::read_archive(&args.file)?;
    let header = &archive.header;
    let wanted = args.scales.unwrap_or(header.scales);
    if wanted == 0 || wanted > header.scales {
        bail!(
            "--scales must be between 1 and {} for this archive",
            header.scales
        );
    }
    let usable = archive.usable_scales();
    if usable.len() < wanted as usize {
        let err = archive
            .first_error()
            .map(|e| e.to_string())
            .unwrap_or_else(|| "missing".into());
        bail!(
            "{}: only {} of {} scales are intact ({err}); decode them with --scales {}",
            args.file.display(),
            usable.len(),
            header.scales,
            usable.len().max(1)
        );
    }
    let bar = ProgressBar::new(wanted as u64).with_style(
        ProgressStyle::with_template("{msg:>10} [{bar:30}] scale {pos}/{len} {elapsed}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message("decoding");
    let volume = if args.gpu {
        gpu_decode(&args.file, wanted, &bar)?
    } else {
        let mut rec = Reconstruction::new(header);
        for s in &usable[..wanted as usize] {
            rec.add_scale(s)
                .with_context(|| format!("scale {}", s.level()))?;
            bar.inc(1);
        }
        rec.to_volume()?
    };
    bar.finish_and_clear();
    strata_io::write_volume(&args.output, &volume)
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    Ok(())
}

/// Streams the file through the GPU decoder as a viewer would, in chunks,
/// decoding the `wanted` coarsest scales; the caller has checked that they
/// are intact, so an error after them (a damaged finer scale) is ignored.
fn gpu_decode(path: &PathBuf, wanted: u8, bar: &ProgressBar) -> Result<strata_format::Volume> {
    use std::io::Read;
    let gpu = strata_decoder::Gpu::new_blocking()?;
    let mut dec = strata_decoder::Decoder::new(gpu)?.with_max_scales(wanted);
    let mut file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut chunk = vec![0u8; 1 << 20];
    while dec.levels() < wanted {
        let n = file
            .read(&mut chunk)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            dec.finish()?;
            break;
        }
        match dec.push(&chunk[..n]) {
            Ok(done) => bar.inc(done.len() as u64),
            Err(_) if dec.levels() >= wanted => break,
            Err(e) => return Err(e).context(format!("{}", path.display())),
        }
    }
    Ok(dec.read_volume()?)
}
