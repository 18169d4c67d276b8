//! The WGSL sources in `shaders/`, and the per-architecture part of the
//! block-evaluation shader: constants and an `mlp` function whose loop
//! bounds are the scale's layer widths, so the shader compiler sees
//! constant trip counts (and can unroll them) for whatever widths an archive
//! uses.

use std::fmt::Write;

pub const SINE: &str = include_str!("../../shaders/sine.wgsl");
pub const SINE_TEST: &str = include_str!("../../shaders/sine_test.wgsl");
pub const EVAL_BLOCKS: &str = include_str!("../../shaders/eval_blocks.wgsl");
pub const UPSAMPLE_ADD: &str = include_str!("../../shaders/upsample_add.wgsl");
pub const WRITE_TEXTURE: &str = include_str!("../../shaders/write_texture.wgsl");

/// The layer shapes of one scale's MLPs, which fix the generated shader.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MlpShape {
    pub latent: usize,
    /// (inputs, outputs) of every layer, first to output.
    pub layers: Vec<(usize, usize)>,
}

impl MlpShape {
    /// f32 parameters of one MLP: every layer's weights then biases.
    pub fn params(&self) -> usize {
        self.layers.iter().map(|(i, o)| i * o + o).sum()
    }

    /// Offset of layer `l`'s weights within one MLP's parameters; its biases
    /// follow them.
    pub fn offset(&self, l: usize) -> usize {
        self.layers[..l].iter().map(|(i, o)| i * o + o).sum()
    }

    /// Widest layer output: the length of the activation arrays.
    pub fn max_width(&self) -> usize {
        self.layers.iter().map(|&(_, o)| o).max().unwrap_or(1)
    }
}

/// The complete block-evaluation shader for `shape`; `staged` puts one MLP's
/// parameters in workgroup memory.
pub fn eval_blocks_source(shape: &MlpShape, staged: bool) -> String {
    let params = shape.params();
    let (in0, h0) = shape.layers[0];
    let mut s = String::new();
    let _ = writeln!(
        s,
        "// Generated for layers {:?}, latent {}.",
        shape.layers, shape.latent
    );
    let _ = writeln!(s, "const LATENT: u32 = {}u;", shape.latent);
    let _ = writeln!(s, "const IN0: u32 = {in0}u;");
    let _ = writeln!(s, "const H0: u32 = {h0}u;");
    let _ = writeln!(s, "const PARAMS: u32 = {params}u;");
    let _ = writeln!(
        s,
        "const WG_PARAMS: u32 = {}u;",
        if staged { params } else { 1 }
    );
    let _ = writeln!(s, "const STAGED: bool = {staged};");
    let width = shape.max_width();
    s.push_str("\nfn mlp(c: vec3<f32>) -> f32 {\n");
    let _ = writeln!(s, "    var a: array<f32, {width}>;");
    let _ = writeln!(s, "    var b: array<f32, {width}>;");
    // First layer: the latent part is in first_bias; add the three
    // coordinate terms in the CPU kernel's order (x, then y, then z).
    let _ = writeln!(s, "    for (var o = 0u; o < {h0}u; o++) {{");
    let _ = writeln!(s, "        let r = o * {in0}u;");
    s.push_str(
        "        a[o] = sin_approx(fma(P(r + 2u), c.z, fma(P(r + 1u), c.y, fma(P(r), c.x, first_bias[o]))));\n",
    );
    s.push_str("    }\n");
    let last = shape.layers.len() - 1;
    let (mut cur, mut next) = ("a", "b");
    for l in 1..last {
        let (i, o) = shape.layers[l];
        let w = shape.offset(l);
        let bias = w + i * o;
        let _ = writeln!(s, "    for (var o = 0u; o < {o}u; o++) {{");
        let _ = writeln!(s, "        var acc = P({bias}u + o);");
        let _ = writeln!(s, "        for (var i = 0u; i < {i}u; i++) {{");
        let _ = writeln!(
            s,
            "            acc = fma(P({w}u + o * {i}u + i), {cur}[i], acc);"
        );
        s.push_str("        }\n");
        let _ = writeln!(s, "        {next}[o] = sin_approx(acc);");
        s.push_str("    }\n");
        std::mem::swap(&mut cur, &mut next);
    }
    let (i, _) = shape.layers[last];
    let w = shape.offset(last);
    let _ = writeln!(s, "    var y = P({}u);", w + i);
    let _ = writeln!(s, "    for (var i = 0u; i < {i}u; i++) {{");
    let _ = writeln!(s, "        y = fma(P({w}u + i), {cur}[i], y);");
    s.push_str("    }\n    return y;\n}\n\n");
    s.push_str(SINE);
    s.push('\n');
    s.push_str(EVAL_BLOCKS);
    s
}

/// The sine test shader: sine.wgsl and its test entry point.
pub fn sine_test_source() -> String {
    format!("{SINE}\n{SINE_TEST}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_shape_counts_parameters() {
        let shape = MlpShape {
            latent: 8,
            layers: vec![(11, 24), (24, 24), (24, 24), (24, 24), (24, 1)],
        };
        assert_eq!(shape.params(), 11 * 24 + 24 + 3 * (24 * 24 + 24) + 25);
        assert_eq!(shape.offset(1), 11 * 24 + 24);
        let src = eval_blocks_source(&shape, true);
        assert!(src.contains("const PARAMS: u32 = 2113u;"), "{src}");
    }
}
