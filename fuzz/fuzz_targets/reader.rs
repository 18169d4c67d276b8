//! Fuzzes the archive readers: the streaming reader fed in fuzzed chunk
//! sizes, section decoding, the in-memory reader and (for small volumes) the
//! CPU decoder. Any input must give a value or an error, never a panic.
//!
//! Input: one control byte, then the archive bytes. Control bit 7 clear: the
//! target first repairs the section table (contiguous offsets) and every
//! CRC-32, so mutations reach the section parsers and the decoder instead of
//! dying at a checksum; set: the bytes are read exactly as given. Bits 0..=5
//! pick the chunk sizes fed to the streaming reader (0: everything at once).
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_format::{decode, Archive, Event, Limits, Section, StreamReader};
use strata_format::{FIXED_HEADER_LEN, MAX_SECTIONS};

/// Small bounds so the fuzzer does not spend its time on huge allocations.
fn limits() -> Limits {
    Limits {
        max_voxels: 1 << 20,
        max_section_bytes: 1 << 20,
        max_decoded_section_bytes: 1 << 22,
    }
}

/// Largest volume the CPU decoder is run on, to keep execs fast.
const MAX_DECODE_VOXELS: u64 = 1 << 16;
/// Layout constants from docs/FORMAT.md ("Header", "Section table").
const COUNT_AT: usize = 72;
const ENTRY_LEN: usize = 24;

fuzz_target!(|data: &[u8]| {
    let Some((&control, archive)) = data.split_first() else {
        return;
    };
    let chunking = control & 0x3f;
    if control & 0x80 == 0 {
        let mut fixed = archive.to_vec();
        repair(&mut fixed);
        check(&fixed, chunking);
    } else {
        check(archive, chunking);
    }
});

/// Rewrites table offsets to follow one another and recomputes the section
/// and header checksums, where the bytes for them are present.
fn repair(bytes: &mut [u8]) {
    if bytes.len() < FIXED_HEADER_LEN {
        return;
    }
    let count = u32::from_le_bytes(bytes[COUNT_AT..COUNT_AT + 4].try_into().unwrap());
    if count > MAX_SECTIONS {
        return;
    }
    let total = FIXED_HEADER_LEN + ENTRY_LEN * count as usize + 4;
    if bytes.len() < total {
        return;
    }
    let mut offset = total as u64;
    for i in 0..count as usize {
        let e = FIXED_HEADER_LEN + ENTRY_LEN * i;
        bytes[e + 8..e + 16].copy_from_slice(&offset.to_le_bytes());
        let length = u64::from_le_bytes(bytes[e + 16..e + 24].try_into().unwrap());
        let Some(end) = offset.checked_add(length) else {
            break;
        };
        if end <= bytes.len() as u64 {
            let crc = crc32fast::hash(&bytes[offset as usize..end as usize]);
            bytes[e + 4..e + 8].copy_from_slice(&crc.to_le_bytes());
        }
        offset = end;
    }
    let crc = crc32fast::hash(&bytes[..total - 4]);
    bytes[total - 4..total].copy_from_slice(&crc.to_le_bytes());
}

/// Voxels the CPU decoder evaluates if every block is occupied.
fn check(archive: &[u8], chunking: u8) {
    let limits = limits();

    // Streaming: chunk sizes follow a small generator seeded by `chunking`.
    let mut reader = StreamReader::new(limits.clone());
    let mut header = None;
    let mut state = chunking as u32;
    let mut rest = archive;
    let mut ended = false;
    let mut failed = false;
    loop {
        // Drain everything the bytes fed so far allow.
        loop {
            match reader.poll() {
                Ok(Event::NeedMore) => break,
                Ok(Event::End) => {
                    ended = true;
                    break;
                }
                Ok(Event::Header(h)) => {
                    assert!(header.is_none(), "header delivered twice");
                    header = Some(h);
                }
                Ok(Event::Section(raw)) => {
                    let h = header.as_ref().expect("section before header");
                    match raw.decode(h, &limits) {
                        Ok(Section::Scale(s, _)) => assert_eq!(s.level, raw.entry.level),
                        Ok(Section::Grid(g, b)) => {
                            assert_eq!(g.level, raw.entry.level);
                            // The browser's path (latents decoded in a worker)
                            // gives the same section; damaged latents are refused
                            // or taken, never a panic.
                            let mut flat = g.flat_latents();
                            let again = raw.decode_grid_with_latents(h, &limits, &flat);
                            assert_eq!(again, Ok(Section::Grid(g, b)));
                            if let Some(v) = flat.get_mut(chunking as usize) {
                                *v = v.wrapping_add(1);
                                let _ = raw.decode_grid_with_latents(h, &limits, &flat);
                            }
                            flat.pop();
                            assert!(raw.decode_grid_with_latents(h, &limits, &flat).is_err());
                        }
                        _ => {}
                    }
                }
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        if ended || failed || rest.is_empty() {
            break;
        }
        let n = if chunking == 0 {
            rest.len()
        } else {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            1 + (state >> 16) as usize % (4 * chunking as usize)
        }
        .min(rest.len());
        reader.feed(&rest[..n]);
        rest = &rest[n..];
    }
    let finished = reader.finish();
    assert_eq!(
        finished.is_ok(),
        ended,
        "finish() disagrees with End: {finished:?}"
    );

    // In memory: every section on its own, then the CPU decoder on what is usable.
    if let Ok(a) = Archive::read(archive, &limits) {
        assert_eq!(a.sections.len(), a.header.sections.len());
        let _ = a.metadata();
        let _ = a.first_error();
        let scales = a.usable_scales();
        let voxels = a
            .header
            .dims
            .iter()
            .fold(1u64, |n, &d| n.saturating_mul(d as u64));
        if !scales.is_empty() && voxels <= MAX_DECODE_VOXELS {
            let n = scales.len().min(u8::MAX as usize) as u8;
            let _ = decode(&a.header, &scales, Some(n));
            let _ = decode(&a.header, &scales, None);
        }
    }
}
