//! Property tests: writer → reader round-trips over random headers and
//! sections; streaming in random chunk sizes (down to one byte) yields
//! exactly what reading the whole archive does.

use proptest::prelude::*;
use strata_format::synth::SplitMix;
use strata_format::{
    block_count, Architecture, Archive, ArchiveWriter, Codec, DataType, Event, LayerParams, Limits,
    RawSection, ScaleRef, ScaleSection, StreamReader, Tensor, TensorValues, VolumeInfo,
};

/// A random tensor of `len` positions in any of the stored encodings.
fn random_tensor(len: usize, rng: &mut SplitMix) -> Tensor {
    let mask = if rng.unit() < 0.3 {
        Some((0..len).map(|_| rng.unit() < 0.6).collect::<Vec<bool>>())
    } else {
        None
    };
    let kept = mask
        .as_ref()
        .map_or(len, |m| m.iter().filter(|&&b| b).count());
    let values = match rng.next_u64() % 3 {
        0 => TensorValues::F32((0..kept).map(|_| rng.symmetric(2.0)).collect()),
        1 => TensorValues::F16(
            (0..kept)
                .map(|_| half::f16::from_f32(rng.symmetric(2.0)).to_bits())
                .collect(),
        ),
        _ => {
            let bits = 1 + (rng.next_u64() % 9) as u8;
            let size = 1 + (rng.next_u64() % (1u64 << bits)) as usize;
            TensorValues::Codebook {
                bits,
                codebook: (0..size).map(|_| rng.symmetric(1.0)).collect(),
                indices: (0..kept)
                    .map(|_| (rng.next_u64() % size as u64) as u32)
                    .collect(),
            }
        }
    };
    Tensor { mask, values }
}

fn random_section(info: &VolumeInfo, level: u8, rng: &mut SplitMix) -> ScaleSection {
    let header = info.header();
    let arch = Architecture {
        latent_dim: (rng.next_u64() % 5) as u16,
        hidden: (0..1 + rng.next_u64() % 3)
            .map(|_| 1 + (rng.next_u64() % 6) as u16)
            .collect(),
        omega0: 1.0 + rng.unit() * 40.0,
    };
    let n = block_count(&header, level);
    let p = rng.unit();
    let occupancy: Vec<bool> = (0..n).map(|_| rng.unit() < p).collect();
    let occupied = occupancy.iter().filter(|&&b| b).count();
    let n_mlps = 1 + (rng.next_u64() as usize % occupied.max(1));
    let assignment = (0..occupied)
        .map(|_| (rng.next_u64() % n_mlps as u64) as u32)
        .collect();
    let layers = arch
        .layer_shapes()
        .iter()
        .map(|&(i, o)| LayerParams {
            weights: random_tensor(n_mlps * i * o, rng),
            biases: random_tensor(n_mlps * o, rng),
        })
        .collect();
    ScaleSection {
        level,
        n_mlps: n_mlps as u32,
        occupancy,
        assignment,
        ranges: random_tensor(occupied * 2, rng),
        latents: random_tensor(occupied * arch.latent_dim as usize, rng),
        layers,
        arch,
    }
}

fn random_archive(seed: u64) -> (VolumeInfo, Vec<ScaleSection>, Option<String>, Vec<u8>) {
    let mut rng = SplitMix(seed);
    let dim = |rng: &mut SplitMix, max: u64| 1 + (rng.next_u64() % max) as u32;
    let info = VolumeInfo {
        dims: [
            dim(&mut rng, 40),
            dim(&mut rng, 40),
            dim(&mut rng, 40),
            dim(&mut rng, 4),
        ],
        scales: dim(&mut rng, 3) as u8,
        block: [0; 3].map(|_| dim(&mut rng, 12) as u16),
        value_min: rng.symmetric(100.0) as f64,
        value_max: 200.0 + rng.unit() as f64,
        dtype: DataType::from_code(1 + (rng.next_u64() % 8) as u8).unwrap(),
        spacing: [0; 4].map(|_| rng.unit() * 3.0),
    };
    let codec = match rng.next_u64() % 3 {
        0 => Codec::Raw,
        1 => Codec::Zstd(1),
        _ => Codec::Best(1),
    };
    let sections: Vec<_> = (0..info.scales)
        .map(|l| random_section(&info, l, &mut rng))
        .collect();
    let metadata =
        (rng.unit() < 0.5).then(|| format!("{{\"name\": \"vol{seed}\", \"units\": \"HU\"}}"));
    let mut w = ArchiveWriter::new(info.clone(), codec);
    for s in &sections {
        w.add_scale(s).unwrap();
    }
    if let Some(m) = &metadata {
        w.add_metadata(m).unwrap();
    }
    let bytes = w.finish().unwrap();
    (info, sections, metadata, bytes)
}

/// Feeds `bytes` in chunks of the given sizes (cycled) and collects events.
fn stream(
    bytes: &[u8],
    chunk_sizes: &[usize],
) -> (Vec<Event>, Result<(), strata_format::FormatError>) {
    let mut reader = StreamReader::new(Limits::default());
    let mut events = Vec::new();
    let mut pos = 0;
    let mut k = 0;
    while pos < bytes.len() {
        let n = chunk_sizes[k % chunk_sizes.len()]
            .max(1)
            .min(bytes.len() - pos);
        k += 1;
        reader.feed(&bytes[pos..pos + n]);
        pos += n;
        loop {
            match reader.poll() {
                Ok(Event::NeedMore) => break,
                Ok(Event::End) => break,
                Ok(e) => events.push(e),
                Err(e) => return (events, Err(e)),
            }
        }
    }
    let end = reader.finish();
    (events, end)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn writer_reader_roundtrip(seed in any::<u64>()) {
        let (info, sections, metadata, bytes) = random_archive(seed);
        let archive = Archive::read(&bytes, &Limits::default()).unwrap();
        prop_assert_eq!(archive.header.dims, info.dims);
        prop_assert_eq!(archive.header.scales, info.scales);
        prop_assert_eq!(archive.header.block, info.block);
        prop_assert_eq!(archive.header.value_min, info.value_min);
        prop_assert_eq!(archive.header.value_max, info.value_max);
        prop_assert_eq!(archive.header.dtype, info.dtype);
        prop_assert_eq!(archive.header.spacing, info.spacing);
        prop_assert!(archive.first_error().is_none());
        let read = archive.usable_scales();
        prop_assert_eq!(read.len(), sections.len());
        for (a, b) in read.iter().zip(&sections) {
            prop_assert_eq!(*a, ScaleRef::Siren(b));
        }
        prop_assert_eq!(archive.metadata(), metadata.as_deref());
    }

    #[test]
    fn streaming_matches_whole(seed in any::<u64>(), chunks in prop::collection::vec(1usize..300, 1..8)) {
        let (_, _, _, bytes) = random_archive(seed);
        let (whole, end_whole) = stream(&bytes, &[bytes.len()]);
        let (chunked, end_chunked) = stream(&bytes, &chunks);
        prop_assert!(end_whole.is_ok());
        prop_assert!(end_chunked.is_ok());
        prop_assert_eq!(&whole, &chunked);
        // And the streamed sections decode to what the in-memory reader gives.
        let archive = Archive::read(&bytes, &Limits::default()).unwrap();
        let header = match &whole[0] { Event::Header(h) => h.clone(), e => panic!("{e:?}") };
        prop_assert_eq!(&header, &archive.header);
        for (event, expected) in whole[1..].iter().zip(&archive.sections) {
            let Event::Section(raw) = event else { panic!("{event:?}") };
            prop_assert_eq!(&raw.decode(&header, &Limits::default()).unwrap(), expected.as_ref().unwrap());
        }
    }
}

#[test]
fn one_byte_at_a_time() {
    for seed in 0..8 {
        let (_, sections, _, bytes) = random_archive(seed);
        let (whole, _) = stream(&bytes, &[bytes.len()]);
        let (bytewise, end) = stream(&bytes, &[1]);
        end.unwrap();
        assert_eq!(whole, bytewise);
        let n_scales = bytewise.iter().filter(|e| matches!(e, Event::Section(RawSection { entry, .. }) if entry.kind == strata_format::SectionKind::Scale)).count();
        assert_eq!(n_scales, sections.len());
    }
}

#[test]
fn sections_arrive_as_soon_as_complete() {
    let (_, _, _, bytes) = random_archive(42);
    let archive = Archive::read(&bytes, &Limits::default()).unwrap();
    let mut reader = StreamReader::new(Limits::default());
    let first = &archive.header.sections[0];
    let end = (first.offset + first.length) as usize;
    reader.feed(&bytes[..end - 1]);
    assert!(matches!(reader.poll().unwrap(), Event::Header(_)));
    assert_eq!(reader.poll().unwrap(), Event::NeedMore);
    reader.feed(&bytes[end - 1..end]);
    assert!(matches!(
        reader.poll().unwrap(),
        Event::Section(RawSection { index: 0, .. })
    ));
}
