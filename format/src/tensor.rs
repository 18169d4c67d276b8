//! How one array of numbers (a layer's weights, the latent codes, ...) is
//! stored in a scale section: an optional pruning mask, then the kept values
//! as f32, f16, or indices into a codebook.

use crate::bytes::{pack_bits, pack_bools, unpack_bits, unpack_bools, ByteReader, PutLe};
use crate::error::FormatError;
use crate::stream::{read_stream, write_stream, Codec, Component, StreamSizes};

/// The kept values of a tensor.
#[derive(Clone, Debug, PartialEq)]
pub enum TensorValues {
    F32(Vec<f32>),
    /// IEEE half floats, stored as their bit patterns.
    F16(Vec<u16>),
    /// `indices[i]` selects `codebook[indices[i]]`; each index is `bits` wide.
    Codebook {
        bits: u8,
        codebook: Vec<f32>,
        indices: Vec<u32>,
    },
}

impl TensorValues {
    pub fn len(&self) -> usize {
        match self {
            TensorValues::F32(v) => v.len(),
            TensorValues::F16(v) => v.len(),
            TensorValues::Codebook { indices, .. } => indices.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn kind_code(&self) -> u8 {
        match self {
            TensorValues::F32(_) => 0,
            TensorValues::F16(_) => 1,
            TensorValues::Codebook { .. } => 2,
        }
    }
}

/// A stored array of `len` numbers. Where `mask` is present, positions whose
/// bit is clear are zero (pruned) and `values` holds only the kept ones.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub mask: Option<Vec<bool>>,
    pub values: TensorValues,
}

impl Tensor {
    /// An unmasked f32 tensor.
    pub fn f32(values: Vec<f32>) -> Tensor {
        Tensor {
            mask: None,
            values: TensorValues::F32(values),
        }
    }

    /// Number of stored positions (masked ones included).
    pub fn len(&self) -> usize {
        match &self.mask {
            Some(m) => m.len(),
            None => self.values.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// All `len()` values as f32, zeros where pruned.
    pub fn dense(&self) -> Vec<f32> {
        let kept: Vec<f32> = match &self.values {
            TensorValues::F32(v) => v.clone(),
            TensorValues::F16(v) => v
                .iter()
                .map(|&h| half::f16::from_bits(h).to_f32())
                .collect(),
            TensorValues::Codebook {
                codebook, indices, ..
            } => indices.iter().map(|&i| codebook[i as usize]).collect(),
        };
        match &self.mask {
            None => kept,
            Some(mask) => {
                let mut it = kept.into_iter();
                mask.iter()
                    .map(|&keep| if keep { it.next().unwrap_or(0.0) } else { 0.0 })
                    .collect()
            }
        }
    }

    /// Checks internal consistency (mask popcount, codebook indices).
    pub fn validate(&self, what: &str) -> Result<(), FormatError> {
        let kept = match &self.mask {
            Some(m) => m.iter().filter(|&&b| b).count(),
            None => self.values.len(),
        };
        if kept != self.values.len() {
            return Err(FormatError::Invalid(format!(
                "{what}: mask keeps {kept} values but {} are stored",
                self.values.len()
            )));
        }
        if let TensorValues::Codebook {
            bits,
            codebook,
            indices,
        } = &self.values
        {
            if !(1..=16).contains(bits) || codebook.is_empty() || codebook.len() > 1 << bits {
                return Err(FormatError::Invalid(format!(
                    "{what}: codebook of {} entries with {bits}-bit indices",
                    codebook.len()
                )));
            }
            if let Some(&i) = indices.iter().find(|&&i| i as usize >= codebook.len()) {
                return Err(FormatError::Invalid(format!(
                    "{what}: index {i} outside a codebook of {}",
                    codebook.len()
                )));
            }
        }
        Ok(())
    }

    /// Appends descriptor and streams; the caller has validated the tensor.
    pub(crate) fn write(&self, out: &mut Vec<u8>, codec: Codec) {
        out.put_u8(self.values.kind_code());
        out.put_u8(self.mask.is_some() as u8);
        let (bits, cb_len) = match &self.values {
            TensorValues::Codebook { bits, codebook, .. } => (*bits, codebook.len() as u32),
            _ => (0, 0),
        };
        let half_codebook = match &self.values {
            TensorValues::Codebook { codebook, .. } => codebook.iter().all(|&c| is_half(c)),
            _ => false,
        };
        out.put_u8(bits);
        out.put_u8(half_codebook as u8);
        out.put_u32(cb_len);
        if let Some(mask) = &self.mask {
            write_stream(out, Component::Mask, codec, &pack_bools(mask), Some(1));
        }
        match &self.values {
            TensorValues::F32(v) => {
                let raw: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                write_stream(out, Component::Values, codec, &raw, None);
            }
            TensorValues::F16(v) => {
                let raw: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                write_stream(out, Component::Values, codec, &raw, None);
            }
            TensorValues::Codebook {
                bits,
                codebook,
                indices,
            } => {
                // Entries that are exactly binary16 values are stored as such.
                let raw: Vec<u8> = if half_codebook {
                    codebook
                        .iter()
                        .flat_map(|&x| half::f16::from_f32(x).to_bits().to_le_bytes())
                        .collect()
                } else {
                    codebook.iter().flat_map(|x| x.to_le_bytes()).collect()
                };
                write_stream(out, Component::Codebook, codec, &raw, None);
                let packed = pack_bits(indices, *bits);
                write_stream(out, Component::Values, codec, &packed, Some(*bits));
            }
        }
    }

    /// Reads a tensor of `len` positions; `budget` bounds the decoded bytes.
    pub(crate) fn read(
        r: &mut ByteReader,
        len: usize,
        budget: &mut u64,
        sizes: &mut StreamSizes,
    ) -> Result<Tensor, FormatError> {
        let kind = r.u8("tensor value kind")?;
        let masked = r.u8("tensor mask flag")?;
        let bits = r.u8("tensor index width")?;
        let half_codebook = match r.u8("codebook entry format")? {
            0 => false,
            1 => true,
            f => {
                return Err(FormatError::Invalid(format!(
                    "codebook entry format {f} is not 0 (f32) or 1 (f16)"
                )))
            }
        };
        let cb_len = r.u32("codebook length")? as usize;
        if masked > 1 {
            return Err(FormatError::Invalid(format!(
                "mask flag {masked} is not 0 or 1"
            )));
        }
        let mask = if masked == 1 {
            let raw = read_stream(r, Component::Mask, len.div_ceil(8), budget, sizes)?;
            Some(unpack_bools(&raw, len))
        } else {
            None
        };
        let kept = match &mask {
            Some(m) => m.iter().filter(|&&b| b).count(),
            None => len,
        };
        let values = match kind {
            0 => {
                let raw = read_stream(r, Component::Values, kept * 4, budget, sizes)?;
                TensorValues::F32(
                    raw.chunks_exact(4)
                        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                        .collect(),
                )
            }
            1 => {
                let raw = read_stream(r, Component::Values, kept * 2, budget, sizes)?;
                TensorValues::F16(
                    raw.chunks_exact(2)
                        .map(|c| u16::from_le_bytes(c.try_into().unwrap()))
                        .collect(),
                )
            }
            2 => {
                if !(1..=16).contains(&bits) || cb_len == 0 || cb_len > 1 << bits {
                    return Err(FormatError::Invalid(format!(
                        "codebook of {cb_len} entries with {bits}-bit indices"
                    )));
                }
                let entry = if half_codebook { 2 } else { 4 };
                let raw = read_stream(r, Component::Codebook, cb_len * entry, budget, sizes)?;
                let codebook: Vec<f32> = if half_codebook {
                    raw.chunks_exact(2)
                        .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                        .collect()
                } else {
                    raw.chunks_exact(4)
                        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                        .collect()
                };
                let packed = read_stream(
                    r,
                    Component::Values,
                    (kept * bits as usize).div_ceil(8),
                    budget,
                    sizes,
                )?;
                let indices = unpack_bits(&packed, bits, kept);
                if let Some(&i) = indices.iter().find(|&&i| i as usize >= cb_len) {
                    return Err(FormatError::Invalid(format!(
                        "codebook index {i} outside a codebook of {cb_len}"
                    )));
                }
                TensorValues::Codebook {
                    bits,
                    codebook,
                    indices,
                }
            }
            k => {
                return Err(FormatError::Invalid(format!(
                    "unknown tensor value kind {k}"
                )))
            }
        };
        Ok(Tensor { mask, values })
    }
}

/// Whether `x` survives a round trip through binary16 bit for bit.
pub fn is_half(x: f32) -> bool {
    half::f16::from_f32(x).to_f32().to_bits() == x.to_bits()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(t: &Tensor) -> (Tensor, usize) {
        let mut out = Vec::new();
        t.write(&mut out, Codec::Raw);
        let mut budget = u64::MAX;
        let back = Tensor::read(
            &mut ByteReader::new(&out),
            t.len(),
            &mut budget,
            &mut Default::default(),
        )
        .unwrap();
        (back, out.len())
    }

    #[test]
    fn half_exact_codebooks_are_stored_as_f16_others_as_f32() {
        let codebook = |c: Vec<f32>| Tensor {
            mask: None,
            values: TensorValues::Codebook {
                bits: 2,
                codebook: c,
                indices: vec![0, 1, 2, 3, 1],
            },
        };
        let exact = codebook(vec![-1.5, 0.0, 0.25, 3.0]);
        let inexact = codebook(vec![-1.5, 0.1, 0.25, 3.0]);
        let (back, n_exact) = round_trip(&exact);
        assert_eq!(back, exact);
        let (back, n_inexact) = round_trip(&inexact);
        assert_eq!(back, inexact);
        assert_eq!(n_inexact - n_exact, 4 * 2, "two bytes saved per entry");
        // Only 0 and 1 are entry formats.
        let mut out = Vec::new();
        exact.write(&mut out, Codec::Raw);
        out[3] = 2;
        let e = Tensor::read(
            &mut ByteReader::new(&out),
            5,
            &mut u64::MAX.clone(),
            &mut Default::default(),
        );
        assert!(e.unwrap_err().to_string().contains("entry format 2"));
    }
}
