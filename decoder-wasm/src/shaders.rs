//! The WGSL sources in `shaders/`, and the per-architecture parts of the
//! block-evaluation and grid-synthesis shaders: constants and an MLP
//! function whose loop bounds are the scale's layer widths, so the shader
//! compiler sees constant trip counts (and can unroll them) for whatever
//! widths an archive uses.

use std::fmt::Write;

pub const SINE: &str = include_str!("../../shaders/sine.wgsl");
pub const SINE_TEST: &str = include_str!("../../shaders/sine_test.wgsl");
pub const EVAL_BLOCKS: &str = include_str!("../../shaders/eval_blocks.wgsl");
pub const UPSAMPLE_ADD: &str = include_str!("../../shaders/upsample_add.wgsl");
pub const WRITE_TEXTURE: &str = include_str!("../../shaders/write_texture.wgsl");
pub const GRID_SYNTHESIS: &str = include_str!("../../shaders/grid_synthesis.wgsl");
pub const LOOP_FILTER: &str = include_str!("../../shaders/loop_filter.wgsl");

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

/// Multiply-adds past which the synthesis MLP is generated as loops rather
/// than straight-line code (keeps the wide networks' shaders small).
const STRAIGHT_LINE_MACS: usize = 1024;

/// Whether a synthesis of layers `shapes` is generated as straight-line
/// code, which can take its parameters as literals.
pub fn synthesis_can_bake(shapes: &[(usize, usize)]) -> bool {
    shapes.iter().map(|(i, o)| i * o).sum::<usize>() <= STRAIGHT_LINE_MACS
}

/// The complete grid-synthesis shader for a synthesis MLP of layers
/// `shapes` ((inputs, outputs), the first's inputs being the latent levels,
/// the last's outputs 1): `fn synthesize(i, v)`, one channel per level then
/// the twin of `strata_format::grid::synthesize_voxel` — per output the
/// bias, then `+ input · weight` over the inputs in order, ReLU but after
/// the last layer. `baked`: the parameters, written into the code as
/// literals (straight-line code only, see `synthesis_can_bake`) instead of
/// read from the uniform buffer.
pub fn grid_synthesis_source(shapes: &[(usize, usize)], baked: Option<&[f32]>) -> String {
    let levels = shapes[0].0;
    let params: usize = shapes.iter().map(|(i, o)| i * o + o).sum();
    let macs: usize = shapes.iter().map(|(i, o)| i * o).sum();
    let mut s = String::new();
    let _ = writeln!(s, "// Generated for synthesis layers {shapes:?}.");
    let _ = writeln!(s, "const LEVELS: u32 = {levels}u;");
    let _ = writeln!(s, "const SYNTHESIS_VEC4S: u32 = {}u;", params.div_ceil(4));
    s.push_str("\nfn synthesize(i: u32, v: vec4<u32>) -> f32 {\n");
    // A loop over the levels: unrolled, lavapipe ran 1.7× slower.
    let _ = writeln!(s, "    var x: array<f32, {levels}>;");
    s.push_str("    x[0] = channels0[i];\n");
    s.push_str("    for (var l = 1u; l < LEVELS; l++) {\n        x[l] = channel(l, v);\n    }\n");
    if macs <= STRAIGHT_LINE_MACS {
        straight_line_mlp(&mut s, shapes, baked);
    } else {
        loop_mlp(&mut s, shapes);
    }
    s.push_str("}\n\n");
    s.push_str(GRID_SYNTHESIS);
    s
}

/// Synthesis parameter k: a literal (exact: Rust's shortest round-trip
/// decimal; lavapipe runs the MLP ~4× faster than from the uniform
/// buffer), or its place in the uniform buffer.
fn param(k: usize, baked: Option<&[f32]>) -> String {
    match baked {
        Some(p) => format!("{:?}f", p[k]),
        None => format!("synthesis[{}].{}", k / 4, ["x", "y", "z", "w"][k % 4]),
    }
}

/// Layer k's inputs are `x[0], x[1], …` (k = 0) or `h{k-1}_0, …`.
fn straight_line_mlp(s: &mut String, shapes: &[(usize, usize)], baked: Option<&[f32]>) {
    let last = shapes.len() - 1;
    let mut w = 0;
    for (k, &(i, o)) in shapes.iter().enumerate() {
        let bias = w + i * o;
        let input = |r: usize| {
            if k == 0 {
                format!("x[{r}]")
            } else {
                format!("h{}_{r}", k - 1)
            }
        };
        for j in 0..o {
            let mut sum = param(bias + j, baked);
            for r in 0..i {
                let _ = write!(sum, " + {} * {}", input(r), param(w + r * o + j, baked));
            }
            if k == last {
                let _ = writeln!(s, "    return {sum};");
            } else {
                let _ = writeln!(s, "    let h{k}_{j} = max({sum}, 0.0);");
            }
        }
        w = bias + o;
    }
}

/// Each layer a loop with constant bounds.
fn loop_mlp(s: &mut String, shapes: &[(usize, usize)]) {
    let width = shapes.iter().map(|&(_, o)| o).max().unwrap_or(1);
    let _ = writeln!(s, "    var a: array<f32, {width}>;");
    let _ = writeln!(s, "    var b: array<f32, {width}>;");
    let last = shapes.len() - 1;
    let (mut input, mut next) = ("x", "a");
    let mut w = 0;
    for (k, &(i, o)) in shapes.iter().enumerate() {
        let bias = w + i * o;
        if k == last {
            let _ = writeln!(s, "    var y = P({bias}u);");
            let _ = writeln!(s, "    for (var r = 0u; r < {i}u; r++) {{");
            let _ = writeln!(s, "        y += {input}[r] * P({w}u + r);");
            s.push_str("    }\n    return y;\n");
            break;
        }
        let _ = writeln!(s, "    for (var j = 0u; j < {o}u; j++) {{");
        let _ = writeln!(s, "        var acc = P({bias}u + j);");
        let _ = writeln!(s, "        for (var r = 0u; r < {i}u; r++) {{");
        let _ = writeln!(s, "            acc += {input}[r] * P({w}u + r * {o}u + j);");
        s.push_str("        }\n");
        let _ = writeln!(s, "        {next}[j] = max(acc, 0.0);");
        s.push_str("    }\n");
        w = bias + o;
        input = next;
        next = if next == "a" { "b" } else { "a" };
    }
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

    #[test]
    fn grid_synthesis_offsets_follow_the_layers() {
        // 3 levels, hidden 4, one output: W0 at 0, b0 at 12, W1 at 16, b1 at 20.
        let src = grid_synthesis_source(&[(3, 4), (4, 1)], None);
        let has = |s: &str, want: &str| assert!(s.contains(want), "{want} not in\n{s}");
        has(&src, "const SYNTHESIS_VEC4S: u32 = 6u;");
        has(
            &src,
            "let h0_1 = max(synthesis[3].y + x[0] * synthesis[0].y + x[1] * synthesis[1].y + x[2] * synthesis[2].y, 0.0);",
        );
        has(
            &src,
            "return synthesis[5].x + h0_0 * synthesis[4].x + h0_1 * synthesis[4].y",
        );
        // Linear synthesis, its parameters baked in.
        let src = grid_synthesis_source(&[(2, 1)], Some(&[0.5, -1.0, 6e-8]));
        has(&src, "return 6e-8f + x[0] * 0.5f + x[1] * -1.0f;");
        // A wide network: loops, the same offsets.
        let shapes = [(3, 64), (64, 64), (64, 1)];
        assert!(!synthesis_can_bake(&shapes));
        let src = grid_synthesis_source(&shapes, None);
        has(&src, "var acc = P(192u + j);");
        has(&src, "acc += x[r] * P(0u + r * 64u + j);");
        has(&src, "acc += a[r] * P(256u + r * 64u + j);");
        has(&src, "var y = P(4480u);");
        has(&src, "y += b[r] * P(4416u + r);");
    }
}
