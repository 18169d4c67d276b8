//! End to end as a viewer would do it: bytes arrive in chunks, each scale is
//! decoded as soon as its section is in, the picture sharpens, and the final
//! volume survives a trip through every output file format.

use strata_format::synth::{default_architecture, random_scales};
use strata_format::{
    decode, Archive, ArchiveWriter, Codec, DataType, Event, Limits, Reconstruction, Section,
    StreamReader, VolumeInfo,
};

#[test]
fn progressive_decode_from_a_stream_then_files() {
    let info = VolumeInfo {
        dims: [37, 29, 17, 2],
        scales: 3,
        block: [8, 8, 8],
        value_min: -1000.0,
        value_max: 3000.0,
        dtype: DataType::I16,
        spacing: [0.8, 0.8, 1.5, 2.0],
    };
    let mut w = ArchiveWriter::new(info.clone(), Codec::Zstd(3));
    for s in random_scales(&info, &default_architecture(), 0.5, 3) {
        w.add_scale(&s).unwrap();
    }
    w.add_metadata(r#"{"name": "phantom", "units": "HU"}"#)
        .unwrap();
    let bytes = w.finish().unwrap();

    let limits = Limits::default();
    let mut reader = StreamReader::new(limits.clone());
    let mut rec = None;
    let mut previews = Vec::new();
    let mut metadata = None;
    for chunk in bytes.chunks(997) {
        reader.feed(chunk);
        loop {
            match reader.poll().unwrap() {
                Event::NeedMore | Event::End => break,
                Event::Header(h) => rec = Some(Reconstruction::new(&h)),
                Event::Section(raw) => {
                    let header = reader.header().unwrap().clone();
                    match raw.decode(&header, &limits).unwrap() {
                        Section::Scale(s, _) => {
                            let rec = rec.as_mut().unwrap();
                            rec.add_scale(&s).unwrap();
                            // A full-size preview after every scale.
                            previews.push(rec.to_volume().unwrap());
                        }
                        Section::Grid(g, _) => {
                            let rec = rec.as_mut().unwrap();
                            rec.add_scale(&g).unwrap();
                            previews.push(rec.to_volume().unwrap());
                        }
                        Section::Metadata(m) => metadata = Some(m),
                        Section::Opaque(_) => {}
                    }
                }
            }
        }
    }
    reader.finish().unwrap();
    assert_eq!(previews.len(), 3);
    assert_eq!(
        metadata.as_deref(),
        Some(r#"{"name": "phantom", "units": "HU"}"#)
    );

    // The last preview is the full decode; each earlier one is the decode
    // of that many coarsest scales.
    let a = Archive::read(&bytes, &limits).unwrap();
    for (n, preview) in previews.iter().enumerate() {
        let expect = decode(&a.header, &a.usable_scales(), Some(n as u8 + 1)).unwrap();
        assert_eq!(preview, &expect);
        assert_eq!(preview.dims, [37, 29, 17, 2]);
    }
    // Each finer scale changes the picture.
    assert_ne!(previews[0].data, previews[1].data);
    assert_ne!(previews[1].data, previews[2].data);

    let full = previews.pop().unwrap();
    let dir = tempfile::tempdir().unwrap();
    for name in ["v.nii", "v.nii.gz", "v.npy", "v.raw"] {
        let path = dir.path().join(name);
        strata_io::write_volume(&path, &full).unwrap();
        let back = strata_io::read_volume(&path).unwrap();
        assert_eq!(back.dims, full.dims, "{name}");
        assert_eq!(back.data, full.data, "{name}");
    }
}
