//! Damaged archives: every truncation point and random bit flips give an
//! error or "need more", never a panic, and the sections before the damage
//! still decode.

use strata_format::synth::{default_architecture, random_scales, SplitMix};
use strata_format::{
    decode, Archive, ArchiveWriter, Codec, DataType, Event, FormatError, Header, Limits, Section,
    StreamReader, VolumeInfo, FIXED_HEADER_LEN,
};

fn sample() -> (Vec<u8>, Archive) {
    let info = VolumeInfo {
        dims: [20, 17, 12, 2],
        scales: 3,
        block: [6, 6, 6],
        value_min: 0.0,
        value_max: 255.0,
        dtype: DataType::U8,
        spacing: [1.0; 4],
    };
    let mut arch = default_architecture();
    arch.hidden = vec![8, 8];
    let mut w = ArchiveWriter::new(info.clone(), Codec::Zstd(3));
    for s in random_scales(&info, &arch, 0.6, 7) {
        w.add_scale(&s).unwrap();
    }
    w.add_metadata(r#"{"name":"sample"}"#).unwrap();
    let bytes = w.finish().unwrap();
    let archive = Archive::read(&bytes, &Limits::default()).unwrap();
    assert!(archive.first_error().is_none());
    (bytes, archive)
}

/// Streams `bytes` whole; returns the sections delivered and how it ended.
fn stream_all(bytes: &[u8]) -> (Vec<usize>, Result<(), FormatError>) {
    let mut reader = StreamReader::new(Limits::default());
    reader.feed(bytes);
    let mut delivered = Vec::new();
    loop {
        match reader.poll() {
            Ok(Event::NeedMore) | Ok(Event::End) => return (delivered, reader.finish()),
            Ok(Event::Section(s)) => delivered.push(s.index),
            Ok(Event::Header(_)) => {}
            Err(e) => return (delivered, Err(e)),
        }
    }
}

#[test]
fn every_truncation_point() {
    let (bytes, full) = sample();
    let header_len = full.header.encoded_len();
    for cut in 0..bytes.len() {
        let prefix = &bytes[..cut];
        // In-memory reader: the header is all-or-nothing, then per section.
        match Archive::read(prefix, &Limits::default()) {
            Err(FormatError::Truncated(_)) => assert!(cut < header_len),
            Err(e) => panic!("cut {cut}: unexpected {e}"),
            Ok(a) => {
                for (i, (s, e)) in a.sections.iter().zip(&full.header.sections).enumerate() {
                    let complete = e.offset + e.length <= cut as u64;
                    assert_eq!(s.is_ok(), complete, "cut {cut}, section {i}");
                    if complete {
                        assert_eq!(s.as_ref().unwrap(), full.sections[i].as_ref().unwrap());
                    }
                }
            }
        }
        // Streaming reader: delivers exactly the complete sections, then
        // reports truncation at finish().
        let (delivered, end) = stream_all(prefix);
        let complete = full
            .header
            .sections
            .iter()
            .filter(|e| e.offset + e.length <= cut as u64 && cut >= header_len)
            .count();
        assert_eq!(delivered, (0..complete).collect::<Vec<_>>(), "cut {cut}");
        assert!(
            matches!(end, Err(FormatError::Truncated(_))),
            "cut {cut}: {end:?}"
        );
    }
}

#[test]
fn random_bit_flips() {
    let (bytes, full) = sample();
    let mut rng = SplitMix(99);
    let scales_ok = |a: &Archive| a.usable_scales().len();
    let mut decoded_after_damage = 0;
    for trial in 0..3000 {
        let mut damaged = bytes.clone();
        let flips = 1 + (rng.next_u64() % 3) as usize;
        let mut first = usize::MAX;
        for _ in 0..flips {
            let pos = (rng.next_u64() % bytes.len() as u64) as usize;
            damaged[pos] ^= 1 << (rng.next_u64() % 8);
            first = first.min(pos);
        }
        if damaged == bytes {
            continue;
        }
        // The section holding the first damaged byte, if past the header.
        let hit = full
            .header
            .sections
            .iter()
            .position(|e| (first as u64) < e.offset + e.length && first as u64 >= e.offset);
        let (delivered, end) = stream_all(&damaged);
        assert!(
            end.is_err(),
            "trial {trial}: damage at {first} not detected"
        );
        match hit {
            None => assert!(delivered.is_empty(), "trial {trial}: header damage"),
            Some(h) => {
                // Everything before the damaged section arrives intact.
                assert_eq!(delivered, (0..h).collect::<Vec<_>>(), "trial {trial}");
                let a = Archive::read(&damaged, &Limits::default()).unwrap();
                assert!(a.sections[h].is_err());
                for i in 0..h {
                    assert_eq!(a.sections[i], full.sections[i]);
                }
                if h > 0 {
                    let vol =
                        decode(&a.header, &a.usable_scales(), Some(scales_ok(&a) as u8)).unwrap();
                    assert_eq!(vol.dims, [20, 17, 12, 2]);
                    decoded_after_damage += 1;
                }
                if let Err(e) = &a.sections[h] {
                    let msg = e.to_string();
                    assert!(msg.contains(&format!("section {h}")), "{msg}");
                    assert!(msg.contains("offset"), "{msg}");
                }
            }
        }
    }
    // The damage must have landed past the first section often enough.
    assert!(decoded_after_damage > 500, "{decoded_after_damage}");
}

/// Sections whose checksum is right but whose contents lie (as a buggy or
/// hostile writer could produce) fail cleanly too.
#[test]
fn lying_sections_with_valid_checksums() {
    let (bytes, full) = sample();
    let mut rng = SplitMix(5);
    let header_len = full.header.encoded_len();
    for _ in 0..3000 {
        let mut damaged = bytes.clone();
        let pos = header_len + (rng.next_u64() % (bytes.len() - header_len) as u64) as usize;
        damaged[pos] = rng.next_u64() as u8;
        // Re-sign every section so only the contents are wrong.
        let mut header = full.header.clone();
        for e in &mut header.sections {
            e.checksum =
                crc32fast::hash(&damaged[e.offset as usize..(e.offset + e.length) as usize]);
        }
        damaged[..header_len].copy_from_slice(&header.to_bytes());
        let a = Archive::read(&damaged, &Limits::default()).unwrap();
        let usable = a.usable_scales();
        // Whatever parses must also decode without panicking.
        if !usable.is_empty() {
            let _ = decode(&a.header, &usable, Some(usable.len() as u8));
        }
        for s in &a.sections {
            if let Ok(Section::Metadata(m)) = s {
                assert!(!m.is_empty());
            }
        }
    }
}

#[test]
fn huge_header_refused_without_allocating() {
    let (bytes, full) = sample();
    let mut header = full.header.clone();
    header.dims = [10_000, 10_000, 10_000, 1]; // 10^12 voxels
    let mut damaged = header.to_bytes();
    damaged.extend_from_slice(&bytes[full.header.encoded_len()..]);
    match Archive::read(&damaged, &Limits::default()) {
        Err(FormatError::TooLarge { what, count, .. }) => {
            assert_eq!(what, "volume voxel count");
            assert_eq!(count, 1_000_000_000_000);
        }
        other => panic!("{other:?}"),
    }
    let mut reader = StreamReader::new(Limits::default());
    reader.feed(&damaged);
    assert!(matches!(reader.poll(), Err(FormatError::TooLarge { .. })));
    // Dims whose product overflows 64 bits are refused too, not wrapped.
    header.dims = [65536; 4];
    let overflow = header.to_bytes();
    assert!(matches!(
        Header::parse(&overflow, &Limits::default()),
        Err(FormatError::TooLarge {
            count: u64::MAX,
            ..
        })
    ));
    // A section table claiming too many sections is refused from the fixed header alone.
    let mut fixed = bytes[..FIXED_HEADER_LEN].to_vec();
    fixed[72..76].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        Header::peek_section_count(&fixed),
        Err(FormatError::TooLarge { .. })
    ));
    // A configurable voxel limit.
    let small = Limits {
        max_voxels: 100,
        ..Limits::default()
    };
    assert!(matches!(
        Archive::read(&bytes, &small),
        Err(FormatError::TooLarge { .. })
    ));
}

#[test]
fn not_an_archive() {
    let mut reader = StreamReader::new(Limits::default());
    reader.feed(b"\x89PNG");
    assert_eq!(reader.poll(), Err(FormatError::BadMagic));
    assert_eq!(
        Archive::read(b"hello world", &Limits::default()).unwrap_err(),
        FormatError::BadMagic
    );
    assert!(matches!(
        Archive::read(b"", &Limits::default()),
        Err(FormatError::Truncated(_))
    ));
}
