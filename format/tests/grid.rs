//! Grid scale sections: write → read round trips over random architectures
//! and awkward dims (odd, 4D, one-voxel axes); the archive decodes to what
//! the section's own synthesis gives; damaged grid sections fail with the
//! section named while earlier sections still decode; and a known answer
//! that pins the fixed-point entropy model's output bit for bit.

use strata_format::grid::entropy::Coder;
use strata_format::grid::{add_synthesis, latent_dims, GridArchitecture, GridSection};
use strata_format::synth::{
    random_grid_scale, with_random_lifting, with_random_loop_filter, SplitMix,
};
use strata_format::{
    decode, Archive, ArchiveWriter, Codec, DataType, Limits, ScaleRef, VolumeInfo,
};

fn info(dims: [u32; 4], scales: u8) -> VolumeInfo {
    VolumeInfo {
        dims,
        scales,
        block: [4, 4, 4],
        value_min: -1.0,
        value_max: 3.0,
        dtype: DataType::F32,
        spacing: [1.0; 4],
    }
}

fn archive(info: &VolumeInfo, sections: &[GridSection]) -> Vec<u8> {
    let mut w = ArchiveWriter::new(info.clone(), Codec::Best(3));
    for s in sections {
        w.add_scale(s).unwrap();
    }
    w.add_metadata("{\"name\":\"grid\"}").unwrap();
    w.finish().unwrap()
}

/// Random sections, the odd levels' 5/3-lifted (both transforms in one
/// archive), all but every third with a loop filter, every third from the
/// first with two.
fn sections(info: &VolumeInfo, arch: &GridArchitecture, rng: &mut SplitMix) -> Vec<GridSection> {
    (0..info.scales)
        .map(|l| {
            let mut s = random_grid_scale(info, l, arch, 1.5, rng);
            if l % 2 == 1 {
                s = with_random_lifting(s, rng);
            }
            if l % 3 != 1 {
                s = with_random_loop_filter(s, rng);
            }
            if l % 3 == 0 {
                s = with_random_loop_filter(s, rng);
            }
            s
        })
        .collect()
}

fn grid_sections(a: &Archive) -> Vec<&GridSection> {
    a.usable_scales()
        .into_iter()
        .map(|s| match s {
            ScaleRef::Grid(g) => g,
            ScaleRef::Siren(_) => panic!("a SIREN scale in a grid archive"),
        })
        .collect()
}

/// The parse error of the first section of archive `a` (bytes `good`) with
/// `bytes` written at offset `at` of its payload (checksum bypassed: the
/// parser itself must catch the damage); empty if it parses.
fn parse_damaged(a: &Archive, good: &[u8], at: usize, bytes: &[u8]) -> String {
    let entry = a.header.sections[0].clone();
    let start = entry.offset as usize;
    let mut b = good[start..start + entry.length as usize].to_vec();
    b[at..at + bytes.len()].copy_from_slice(bytes);
    let raw = strata_format::RawSection {
        index: 0,
        entry,
        bytes: b,
    };
    raw.decode(&a.header, &Limits::default())
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default()
}

#[test]
fn round_trips_every_shape() {
    let mut rng = SplitMix(11);
    let shapes: [([u32; 4], u8); 6] = [
        ([9, 7, 5, 1], 2),
        ([1, 1, 1, 1], 1),
        ([17, 1, 3, 1], 2),
        ([6, 5, 4, 3], 2),
        ([33, 20, 18, 1], 3),
        ([2, 40, 1, 2], 1),
    ];
    for (k, &(dims, scales)) in shapes.iter().enumerate() {
        let info = info(dims, scales);
        let arch = GridArchitecture {
            levels: 1 + (k % 5) as u8,
            synthesis: vec![8; k % 3],
            context_hidden: [0, 3, 8][k % 3],
        };
        let written = sections(&info, &arch, &mut rng);
        let bytes = archive(&info, &written);
        let a = Archive::read(&bytes, &Limits::default()).unwrap();
        assert!(a.first_error().is_none(), "{dims:?}: {:?}", a.first_error());
        let read = grid_sections(&a);
        assert_eq!(read.len(), scales as usize);
        for (r, w) in read.iter().zip(&written) {
            assert_eq!(*r, w, "{dims:?}");
        }
        // The archive decodes to the sections' synthesis, level by level.
        let v = decode(&a.header, &a.usable_scales(), None).unwrap();
        let mut rec = strata_format::Reconstruction::new(&a.header);
        for s in &written {
            rec.add_scale(s).unwrap();
        }
        assert_eq!(v.data, rec.to_volume().unwrap().data);
    }
}

#[test]
fn synthesis_of_constant_latents_is_constant() {
    // Interpolating constant latents gives that constant everywhere, so
    // the synthesis output is the same at every voxel.
    let dims = [7usize, 5, 3, 2];
    let arch = GridArchitecture {
        levels: 3,
        synthesis: vec![4],
        context_hidden: 0,
    };
    let mut rng = SplitMix(3);
    let info = info(dims.map(|d| d as u32), 1);
    let mut s = random_grid_scale(&info, 0, &arch, 1.0, &mut rng);
    for (l, v) in s.latents.iter_mut().enumerate() {
        v.iter_mut().for_each(|x| *x = l as i32 - 1);
    }
    let mut grid = vec![0f32; dims.iter().product()];
    add_synthesis(&s, dims, &mut grid);
    assert!(grid.iter().all(|&g| (g - grid[0]).abs() < 1e-6), "{grid:?}");
}

#[test]
fn no_latent_is_stored_where_the_coarser_level_has_its_sample() {
    // The pyramid is critically sampled: a finer level's latent at an
    // all-even position is 0 by definition, and a section holding another
    // value there is refused before anything is written.
    let info = info([9, 8, 6, 1], 1);
    let arch = GridArchitecture {
        levels: 3,
        synthesis: vec![4],
        context_hidden: 4,
    };
    let mut s = random_grid_scale(&info, 0, &arch, 2.0, &mut SplitMix(8));
    assert!(s.latents[0].iter().any(|&v| v != 0));
    // (2, 0, 0) of level 0 sits on (1, 0, 0) of level 1; the coarsest level codes all.
    assert_eq!(s.latents[0][2], 0);
    assert!(s.latents[2].iter().any(|&v| v != 0));
    s.latents[0][2] = 3;
    let mut w = ArchiveWriter::new(info.clone(), Codec::Best(3));
    let e = w.add_scale(&s).unwrap_err().to_string();
    assert!(e.contains("latent level 0 holds 3 at index 2"), "{e}");
}

/// A lifted section's transform byte and band gains are checked: an unknown
/// transform, a gain that is not finite or the wrong number of gains is a
/// clear error, not a panic.
#[test]
fn lifted_sections_check_their_transform_and_gains() {
    let info = info([12, 10, 9, 1], 1);
    let arch = GridArchitecture {
        levels: 3,
        synthesis: vec![4],
        context_hidden: 2,
    };
    let mut rng = SplitMix(12);
    let s = with_random_lifting(random_grid_scale(&info, 0, &arch, 2.0, &mut rng), &mut rng);
    let good = archive(&info, std::slice::from_ref(&s));
    let a = Archive::read(&good, &Limits::default()).unwrap();
    assert_eq!(grid_sections(&a)[0], &s);
    // The transform byte is the section's 24th; the first gain follows the
    // context parameters. The parser itself must catch the damage.
    let damaged = |at: usize, bytes: &[u8]| parse_damaged(&a, &good, at, bytes);
    let e = damaged(23, &[2]);
    assert!(e.contains("latent transform 2"), "{e}");
    let gains_at = 24 + 2 + 2 * arch.synthesis_params() + 2 * arch.context_params();
    let e = damaged(gains_at, &half::f16::NAN.to_bits().to_le_bytes());
    assert!(e.contains("band gain NaN is not finite"), "{e}");
    let mut wrong = s.clone();
    wrong.lifting.as_mut().unwrap().gains.pop();
    let mut w = ArchiveWriter::new(info.clone(), Codec::Best(3));
    let e = w.add_scale(&wrong).unwrap_err().to_string();
    assert!(
        e.contains("1 levels of band gains, the lifting needs 2"),
        "{e}"
    );
}

/// A loop filter's flag, class count and thresholds are checked by the
/// parser: clear errors, not panics; and its filter is applied on decode.
#[test]
fn loop_filters_are_checked_and_applied() {
    let info = info([12, 10, 9, 1], 1);
    let arch = GridArchitecture {
        levels: 2,
        synthesis: vec![],
        context_hidden: 2,
    };
    let mut rng = SplitMix(21);
    let plain = random_grid_scale(&info, 0, &arch, 2.0, &mut rng);
    let mut s = with_random_loop_filter(plain.clone(), &mut rng);
    s.loop_filters[0].clamp = true;
    let good = archive(&info, std::slice::from_ref(&s));
    let a = Archive::read(&good, &Limits::default()).unwrap();
    assert_eq!(grid_sections(&a)[0], &s);
    // Decoded, the filtered level is the filter of the unfiltered one,
    // clamped to the value range.
    let unfiltered = decode(&a.header, &[ScaleRef::Grid(&plain)], None).unwrap();
    let filtered = decode(&a.header, &a.usable_scales(), None).unwrap();
    assert_ne!(unfiltered.data, filtered.data);
    assert!(filtered.data.iter().all(|&v| (-1.0..=3.0).contains(&v)));
    let damaged = |at: usize, bytes: &[u8]| parse_damaged(&a, &good, at, bytes);
    // The flag is the section's 4th byte; the filter follows the context
    // parameters (no band gains: transform 0).
    let e = damaged(3, &[4]);
    assert!(e.contains("loop filter flag 4"), "{e}");
    let filter_at = 24 + 2 * arch.synthesis_params() + 2 * arch.context_params();
    let e = damaged(filter_at, &[0]);
    assert!(e.contains("0 loop filter classes"), "{e}");
    let e = damaged(filter_at, &[33]);
    assert!(e.contains("33 loop filter classes"), "{e}");
    let e = damaged(filter_at + 1, &[4]);
    assert!(e.contains("loop filter radius 4"), "{e}");
    let e = damaged(filter_at + 2, &[9]);
    assert!(e.contains("loop filter clamp 9"), "{e}");
    let filter = &s.loop_filters[0];
    assert!(filter.classes() > 1);
    // In the banded layout the value bands' count comes before the
    // thresholds.
    let banded = good[a.header.sections[0].offset as usize + 3] > 1;
    assert_eq!(banded, filter.banded());
    let thresholds_at = filter_at + 3 + banded as usize;
    let e = damaged(thresholds_at, &f32::NAN.to_bits().to_le_bytes());
    assert!(e.contains("not finite and ascending"), "{e}");
    if banded {
        let e = damaged(filter_at + 3, &[0]);
        assert!(e.contains("0 loop filter value bands"), "{e}");
    }
    // Dropping the flag leaves the filter's bytes where latents are due.
    let e = damaged(3, &[0]);
    assert!(!e.is_empty());
}

#[test]
fn damaged_grid_sections_fail_clearly_and_spare_earlier_ones() {
    let info = info([20, 18, 16, 1], 3);
    let arch = GridArchitecture {
        levels: 4,
        synthesis: vec![8, 8],
        context_hidden: 4,
    };
    let mut rng = SplitMix(5);
    let bytes = archive(&info, &sections(&info, &arch, &mut rng));
    let a = Archive::read(&bytes, &Limits::default()).unwrap();
    let last = &a.header.sections[2];
    // Truncated inside the finest scale: two scales decode, the error names section 2.
    let cut = (last.offset + last.length / 2) as usize;
    let t = Archive::read(&bytes[..cut], &Limits::default()).unwrap();
    assert_eq!(t.usable_scales().len(), 2);
    let e = t.first_error().unwrap().to_string();
    assert!(
        e.contains("section 2 (scale)") && e.contains("truncated"),
        "{e}"
    );
    decode(&t.header, &t.usable_scales(), Some(2)).unwrap();
    // Every byte of the finest section flipped in turn (checksum fixed up so
    // the parser itself sees the damage): an error or a valid section, never
    // a panic; earlier scales always decode.
    let start = last.offset as usize;
    for i in (0..last.length as usize).step_by(53) {
        let mut bad = bytes.clone();
        bad[start + i] ^= 0x5A;
        let raw = strata_format::RawSection {
            index: 2,
            entry: last.clone(),
            bytes: bad[start..start + last.length as usize].to_vec(),
        };
        if let Err(e) = raw.decode(&a.header, &Limits::default()) {
            assert!(e.to_string().contains("section 2 (scale)"), "{e}");
        }
        let damaged = Archive::read(&bad, &Limits::default()).unwrap();
        assert_eq!(damaged.usable_scales().len(), 2);
        let e = damaged.first_error().unwrap().to_string();
        assert!(e.contains("checksum mismatch"), "{e}");
    }
}

#[test]
fn limits_are_checked_before_latents_are_allocated() {
    let info = info([64, 64, 64, 1], 1);
    let arch = GridArchitecture {
        levels: 2,
        synthesis: vec![4],
        context_hidden: 0,
    };
    let mut rng = SplitMix(9);
    let bytes = archive(&info, &sections(&info, &arch, &mut rng));
    let small = Limits {
        max_decoded_section_bytes: 100_000,
        ..Limits::default()
    };
    let a = Archive::read(&bytes, &small).unwrap();
    let e = a.first_error().unwrap().to_string();
    assert!(e.contains("too large"), "{e}");
}

/// FNV-1a, to pin bytes without storing them.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The coded bytes of a fixed section: any change to the context network's
/// arithmetic, the Laplace table or the coder shows here (and the wasm
/// build, which runs this same code, is held to the same bytes by the
/// viewer's test).
#[test]
fn entropy_coding_known_answer() {
    let info = info([24, 20, 18, 1], 1);
    let arch = GridArchitecture {
        levels: 3,
        synthesis: vec![8],
        context_hidden: 6,
    };
    let mut rng = SplitMix(2026);
    let mut s = random_grid_scale(&info, 0, &arch, 2.0, &mut rng);
    let n: usize = (0..3)
        .map(|l| latent_dims([24, 20, 18, 1], l).iter().product::<usize>())
        .sum();
    assert_eq!(n, 24 * 20 * 18 + 12 * 10 * 9 + 6 * 5 * 5);
    // The random context network predicts badly; adapted probabilities
    // learn the latents' spread all the same.
    for (coder, want) in [
        (Coder::Fixed, (114284, 761974623122778164)),
        (Coder::Adaptive, (5819, 10130517315726724004)),
        (Coder::Contextual, (6709, 17199628573010528062)),
        (Coder::TwoRate, (7979, 3277551168587272794)),
    ] {
        s.coder = coder;
        let bytes = s.to_bytes(&info.header());
        assert_eq!(
            (bytes.len(), fnv(&bytes)),
            want,
            "{coder:?}: update only after checking the change is intended"
        );
        let back = GridSection::parse(&bytes, &info.header(), 0, &Limits::default())
            .unwrap()
            .0;
        assert_eq!(back, s, "{coder:?}");
    }
}

#[test]
fn latents_decoded_elsewhere_give_the_same_section() {
    // The browser decodes latents in a worker and hands them back flat:
    // parsing with them is the full parse, and wrong ones are refused.
    let info = info([19, 12, 9, 2], 2);
    let arch = GridArchitecture {
        levels: 3,
        synthesis: vec![6],
        context_hidden: 4,
    };
    let mut rng = SplitMix(21);
    let mut written = sections(&info, &arch, &mut rng);
    written[1].latents[2].iter_mut().for_each(|v| *v = 0); // a level stored as all zero
    let bytes = archive(&info, &written);
    let a = Archive::read(&bytes, &Limits::default()).unwrap();
    for (index, entry) in a.header.sections.iter().enumerate().take(2) {
        let raw = strata_format::RawSection {
            index,
            entry: entry.clone(),
            bytes: bytes[entry.offset as usize..(entry.offset + entry.length) as usize].to_vec(),
        };
        assert!(raw.is_grid());
        let full = raw.decode(&a.header, &Limits::default()).unwrap();
        let strata_format::Section::Grid(g, _) = &full else {
            panic!("not a grid section")
        };
        let flat = g.flat_latents();
        let given = raw
            .decode_grid_with_latents(&a.header, &Limits::default(), &flat)
            .unwrap();
        assert_eq!(given, full);

        let short = raw.decode_grid_with_latents(&a.header, &Limits::default(), &flat[1..]);
        let e = short.unwrap_err().to_string();
        assert!(
            e.contains(&format!("section {index} (scale)")) && e.contains("supplied"),
            "{e}"
        );
    }
    // A nonzero latent where the level is stored as all zero.
    let entry = &a.header.sections[1];
    let raw = strata_format::RawSection {
        index: 1,
        entry: entry.clone(),
        bytes: bytes[entry.offset as usize..(entry.offset + entry.length) as usize].to_vec(),
    };
    let mut flat = written[1].flat_latents();
    *flat.last_mut().unwrap() = 1;
    let e = raw
        .decode_grid_with_latents(&a.header, &Limits::default(), &flat)
        .unwrap_err()
        .to_string();
    assert!(e.contains("all zero"), "{e}");
}
