//! Writes a few small valid archives into `corpus/reader/` (relative to the
//! fuzz crate) as seeds for the `reader` fuzz target:
//! `cargo run --bin make_corpus` from `fuzz/`.

use std::path::PathBuf;

use strata_format::grid::entropy::Coder;
use strata_format::grid::GridArchitecture;
use strata_format::synth::{
    default_architecture, random_grid_scale, random_scales, with_random_lifting,
    with_random_loop_filter, SplitMix,
};
use strata_format::{Archive, ArchiveWriter, Codec, DataType, Limits, VolumeInfo};

fn main() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus/reader");
    std::fs::create_dir_all(&dir).expect("create corpus dir");
    // (dims, scales, block, dtype, hidden, codec, metadata)
    let cases: &[([u32; 4], u8, [u16; 3], DataType, &[u16], Codec, bool)] = &[
        (
            [12, 10, 8, 1],
            1,
            [4, 4, 4],
            DataType::U8,
            &[4, 4],
            Codec::Raw,
            false,
        ),
        (
            [12, 10, 8, 1],
            2,
            [6, 5, 4],
            DataType::U8,
            &[4, 4],
            Codec::Zstd(3),
            true,
        ),
        (
            [9, 7, 5, 2],
            3,
            [4, 4, 4],
            DataType::U16,
            &[4, 4],
            Codec::Zstd(1),
            true,
        ),
        (
            [9, 7, 5, 2],
            2,
            [3, 3, 3],
            DataType::F32,
            &[4],
            Codec::Raw,
            false,
        ),
        (
            [6, 6, 6, 1],
            1,
            [6, 6, 6],
            DataType::U8,
            &[2, 2],
            Codec::Best(3),
            true,
        ),
    ];
    for (i, &(dims, scales, block, dtype, hidden, codec, meta)) in cases.iter().enumerate() {
        let info = VolumeInfo {
            dims,
            scales,
            block,
            value_min: 0.0,
            value_max: 255.0,
            dtype,
            spacing: [1.0; 4],
        };
        let mut arch = default_architecture();
        arch.latent_dim = 4;
        arch.hidden = hidden.to_vec();
        let mut w = ArchiveWriter::new(info.clone(), codec);
        for s in random_scales(&info, &arch, 0.6, 11 + i as u64) {
            w.add_scale(&s).expect("add scale");
        }
        if meta {
            w.add_metadata(r#"{"name":"fuzz seed"}"#)
                .expect("add metadata");
        }
        let bytes = w.finish().expect("finish archive");
        let a = Archive::read(&bytes, &Limits::default()).expect("seed reads back");
        assert!(a.first_error().is_none(), "seed {i} has a bad section");
        // The target's first byte: bits 0..=5 pick the chunking (0 = one
        // feed), bit 7 reads the bytes as given instead of repairing checksums.
        for (j, control) in [0u8, 1, 7, 0x80, 0x83].into_iter().enumerate() {
            let mut seed = vec![control];
            seed.extend_from_slice(&bytes);
            let path = dir.join(format!("seed-{i}-{j}"));
            std::fs::write(&path, &seed).expect("write seed");
        }
        println!("seed {i}: {dims:?} x{scales} scales, {} bytes", bytes.len());
    }
    // Grid archives: odd dims, 4D, every synthesis depth, linear and hidden
    // context networks.
    let grid_cases: [([u32; 4], u8, u8, &[u16], u8); 3] = [
        ([9, 7, 5, 1], 2, 3, &[6], 2),
        ([5, 4, 3, 3], 1, 2, &[], 0),
        ([12, 10, 8, 1], 3, 4, &[4, 4], 5),
    ];
    for (i, &(dims, scales, levels, synthesis, context_hidden)) in grid_cases.iter().enumerate() {
        let info = VolumeInfo {
            dims,
            scales,
            block: [4, 4, 4],
            value_min: 0.0,
            value_max: 1.0,
            dtype: DataType::F32,
            spacing: [1.0; 4],
        };
        let arch = GridArchitecture {
            levels,
            synthesis: synthesis.to_vec(),
            context_hidden,
        };
        let mut rng = SplitMix(101 + i as u64);
        let mut w = ArchiveWriter::new(info.clone(), Codec::Best(3));
        for l in 0..scales {
            let mut section = random_grid_scale(&info, l, &arch, 1.5, &mut rng);
            // Both transforms: the odd cases' sections 5/3-lifted.
            if i % 2 == 1 {
                section = with_random_lifting(section, &mut rng);
            }
            // And loop filters on every other level, two on the first.
            if l % 2 == 0 {
                section = with_random_loop_filter(section, &mut rng);
            }
            if l == 0 {
                section = with_random_loop_filter(section, &mut rng);
            }
            // Every latent coder across the seeds and scales.
            section.coder =
                [Coder::Contextual, Coder::TwoRate, Coder::Adaptive][(i + l as usize) % 3];
            w.add_scale(&section).expect("add grid scale");
        }
        let bytes = w.finish().expect("finish archive");
        for (j, control) in [0u8, 3, 0x80].into_iter().enumerate() {
            let mut seed = vec![control];
            seed.extend_from_slice(&bytes);
            std::fs::write(dir.join(format!("grid-{i}-{j}")), &seed).expect("write seed");
        }
        println!(
            "grid seed {i}: {dims:?} x{scales} scales, {} bytes",
            bytes.len()
        );
    }
}
