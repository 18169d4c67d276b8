//! `strata info FILE [--json]`.

use std::path::PathBuf;

use anyhow::{bail, Result};
use serde_json::json;
use strata_format::{Archive, Section, SectionBreakdown, StreamSizes};

#[derive(clap::Args)]
pub struct Args {
    /// The .strata archive.
    file: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

fn sizes_json(s: &StreamSizes) -> serde_json::Value {
    json!({"masks": s.masks, "codebooks": s.codebooks, "values": s.values, "framing": s.framing})
}

fn breakdown_json(b: &SectionBreakdown) -> serde_json::Value {
    json!({
        "framing": b.framing,
        "occupancy": b.occupancy,
        "assignment": b.assignment,
        "ranges": sizes_json(&b.ranges),
        "latents": sizes_json(&b.latents),
        "weights": sizes_json(&b.weights),
    })
}

/// An archive's bytes by component, one row per scale: what each part of
/// the method costs. Columns sum to the section lengths; "weights" are the
/// layers' stored values (codebook indices when quantized).
pub(super) fn component_table(archive: &Archive) -> (Vec<&'static str>, Vec<(String, Vec<u64>)>) {
    let names = vec![
        "occupancy",
        "assignment",
        "latents",
        "ranges",
        "masks",
        "codebooks",
        "weights",
        "framing",
        "total",
    ];
    let mut rows = vec![("header".to_string(), {
        let mut v = vec![0; names.len()];
        v[names.len() - 1] = archive.header.encoded_len() as u64;
        v
    })];
    for s in archive.sections.iter().flatten() {
        if let Section::Scale(scale, b) = s {
            let all = |t: &StreamSizes| t.masks + t.codebooks + t.values + t.framing;
            let mut v = vec![
                b.occupancy,
                b.assignment,
                all(&b.latents),
                all(&b.ranges),
                b.weights.masks,
                b.weights.codebooks,
                b.weights.values,
                b.framing + b.weights.framing,
            ];
            v.push(v.iter().sum());
            rows.push((format!("scale {}", scale.level), v));
        }
        // Grid scales: latents, the two networks' parameters as weights.
        if let Section::Grid(grid, b) = s {
            let latents: u64 = b.latents.iter().sum();
            let mut v = vec![0, 0, latents, 0, 0, 0, b.synthesis + b.context, b.framing];
            v.push(v.iter().sum());
            rows.push((format!("scale {}", grid.level), v));
        }
    }
    (names, rows)
}

pub(super) fn component_json(archive: &Archive) -> serde_json::Value {
    let (names, rows) = component_table(archive);
    rows.iter()
        .map(|(row, v)| {
            let cells: serde_json::Map<_, _> = names
                .iter()
                .zip(v)
                .map(|(n, b)| (n.to_string(), json!(b)))
                .collect();
            json!({"part": row, "bytes": cells})
        })
        .collect()
}

pub(super) fn print_components(archive: &Archive) {
    let (names, rows) = component_table(archive);
    print!("  {:<9}", "bytes");
    for n in &names {
        print!(" {n:>10}");
    }
    println!();
    for (row, v) in rows {
        print!("  {row:<9}");
        for b in v {
            print!(" {b:>10}");
        }
        println!();
    }
}

pub fn run(args: Args) -> Result<()> {
    let (archive, bytes) = super::read_archive(&args.file)?;
    let h = &archive.header;
    let sections: Vec<_> = h
        .sections
        .iter()
        .zip(&archive.sections)
        .map(|(e, s)| {
            let mut v = json!({
                "kind": e.kind.name(),
                "scale": e.level,
                "offset": e.offset,
                "length": e.length,
                "checksum": format!("{:08x}", e.checksum),
                "ok": s.is_ok(),
            });
            match s {
                Ok(Section::Scale(scale, breakdown)) => {
                    v["grid"] = json!(h.level_dims(scale.level));
                    v["blocks"] = json!(scale.occupancy.len());
                    v["occupied"] = json!(scale.occupied_count());
                    v["mlps"] = json!(scale.n_mlps);
                    v["latent_dim"] = json!(scale.arch.latent_dim);
                    v["hidden"] = json!(scale.arch.hidden);
                    v["omega0"] = json!(scale.arch.omega0);
                    v["breakdown"] = breakdown_json(breakdown);
                }
                Ok(Section::Grid(grid, b)) => {
                    v["model"] = json!("grid");
                    v["grid"] = json!(h.level_dims(grid.level));
                    v["latent_levels"] = json!(grid.arch.levels);
                    v["synthesis"] = json!(grid.arch.synthesis);
                    v["context_hidden"] = json!(grid.arch.context_hidden);
                    v["latent_count"] = json!(grid.latents.iter().map(Vec::len).sum::<usize>());
                    v["latents_crc32"] = json!(grid.latents_crc32());
                    v["breakdown"] = json!({
                        "latents_per_level": b.latents,
                        "synthesis": b.synthesis,
                        "context": b.context,
                        "framing": b.framing,
                    });
                }
                Ok(Section::Metadata(m)) => {
                    v["metadata"] = serde_json::from_str(m).unwrap_or(json!(m));
                }
                Ok(Section::Opaque(_)) => {}
                Err(err) => v["error"] = json!(err.to_string()),
            }
            v
        })
        .collect();
    let voxels = h.voxel_count();
    if args.json {
        let doc = json!({
            "dims": h.dims,
            "scales": h.scales,
            "block": h.block,
            "value_range": [h.value_min, h.value_max],
            "dtype": h.dtype.name(),
            "spacing": h.spacing,
            "bytes": bytes,
            "header_bytes": h.encoded_len(),
            "ratio_f32": voxels as f64 * 4.0 / bytes as f64,
            "sections": sections,
            "components": component_json(&archive),
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        let [x, y, z, t] = h.dims;
        println!("{}", args.file.display());
        println!(
            "  dims        {x} × {y} × {z} × {t} ({voxels} voxels, {})",
            h.dtype.name()
        );
        println!("  spacing     {:?}", h.spacing);
        println!("  values      [{}, {}]", h.value_min, h.value_max);
        println!("  scales      {}, blocks {:?}", h.scales, h.block);
        println!(
            "  size        {bytes} bytes (header {}), ratio {:.1} vs float32",
            h.encoded_len(),
            voxels as f64 * 4.0 / bytes as f64
        );
        println!("  #  kind         scale      offset      length  checksum  detail");
        for (i, s) in sections.iter().enumerate() {
            let detail = if let Some(err) = s.get("error") {
                format!("DAMAGED: {}", err.as_str().unwrap_or(""))
            } else if let Some(o) = s.get("occupied") {
                format!(
                    "grid {}, {o}/{} blocks, {} MLPs",
                    s["grid"], s["blocks"], s["mlps"]
                )
            } else {
                "ok".into()
            };
            println!(
                "  {i:<2} {:<12} {:>5} {:>11} {:>11}  {}  {detail}",
                s["kind"].as_str().unwrap_or(""),
                s["scale"].as_u64().unwrap_or(0),
                s["offset"].as_u64().unwrap_or(0),
                s["length"].as_u64().unwrap_or(0),
                s["checksum"].as_str().unwrap_or(""),
            );
        }
        print_components(&archive);
    }
    if let Some(e) = archive.first_error() {
        bail!("{}: {e}", args.file.display());
    }
    Ok(())
}
