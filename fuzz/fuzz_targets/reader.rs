//! Fuzzes the archive readers: the streaming reader fed in fuzzed chunk
//! sizes, section decoding, the in-memory reader and (for small volumes) the
//! CPU decoder. Any input must give a value or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_format::{decode, Archive, Event, Limits, Section, StreamReader};

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

fuzz_target!(|data: &[u8]| {
    let limits = limits();
    let Some((&control, archive)) = data.split_first() else {
        return;
    };

    // Streaming: chunk sizes follow a small generator seeded by the first byte
    // (0 means: everything in one feed).
    let mut reader = StreamReader::new(limits.clone());
    let mut header = None;
    let mut state = control as u32;
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
                    if let Ok(Section::Scale(s, _)) = raw.decode(h, &limits) {
                        assert_eq!(s.level, raw.entry.level);
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
        let n = if control == 0 {
            rest.len()
        } else {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            1 + (state >> 16) as usize % (4 * control as usize)
        }
        .min(rest.len());
        reader.feed(&rest[..n]);
        rest = &rest[n..];
    }
    let finished = reader.finish();
    assert_eq!(finished.is_ok(), ended, "finish() disagrees with End: {finished:?}");

    // In memory: every section on its own, then the CPU decoder on what is usable.
    if let Ok(a) = Archive::read(archive, &limits) {
        assert_eq!(a.sections.len(), a.header.sections.len());
        let _ = a.metadata();
        let _ = a.first_error();
        let scales = a.usable_scales();
        let voxels = a.header.dims.iter().fold(1u64, |n, &d| n.saturating_mul(d as u64));
        if !scales.is_empty() && voxels <= MAX_DECODE_VOXELS {
            let n = scales.len().min(u8::MAX as usize) as u8;
            let _ = decode(&a.header, &scales, Some(n));
            let _ = decode(&a.header, &scales, None);
        }
    }
});
