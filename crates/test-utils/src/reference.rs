//! Naive reference ops ("simple, slow, correct"): direct loops with f64 accumulation, no tiling, no GEMM.
//!
//! Conventions match `tensor-ops`: activations `[C, H, W]`, conv weights `[C_out, C_in, KH, KW]`,
//! padding `[top, bottom, left, right]`, output length `floor((n + pad_lo + pad_hi − k) / s) + 1`.

use ndarray::{Array2, Array3, ArrayView1, ArrayView2, ArrayView3, ArrayView4};

/// Output length of a sliding window, as in MatConvNet.
///
/// # Panics
/// When the padded input is shorter than the window.
pub fn out_len(n: usize, pad_lo: usize, pad_hi: usize, k: usize, s: usize) -> usize {
    assert!(
        n + pad_lo + pad_hi >= k,
        "window larger than the padded input"
    );
    (n + pad_lo + pad_hi - k) / s + 1
}

/// Direct seven-loop cross-correlation with zero padding:
/// `Y[o, y, x] = b[o] + Σ_{c, i, j} W[o, c, i, j] · X[c, y·sy − pt + i, x·sx − pl + j]`.
pub fn conv2d(
    input: ArrayView3<'_, f32>,
    weight: ArrayView4<'_, f32>,
    bias: ArrayView1<'_, f32>,
    stride: [usize; 2],
    pad: [usize; 4],
) -> Array3<f32> {
    let (c_in, h, w) = input.dim();
    let (c_out, c_in2, kh, kw) = weight.dim();
    assert_eq!(c_in, c_in2, "channel mismatch");
    let [pt, pb, pl, pr] = pad;
    let h_out = out_len(h, pt, pb, kh, stride[0]);
    let w_out = out_len(w, pl, pr, kw, stride[1]);
    let mut out = Array3::zeros((c_out, h_out, w_out));
    for o in 0..c_out {
        for y in 0..h_out {
            for x in 0..w_out {
                let mut acc = f64::from(bias[o]);
                for c in 0..c_in {
                    for i in 0..kh {
                        for j in 0..kw {
                            let iy = (y * stride[0] + i) as isize - pt as isize;
                            let ix = (x * stride[1] + j) as isize - pl as isize;
                            if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                                acc += f64::from(weight[[o, c, i, j]])
                                    * f64::from(input[[c, iy as usize, ix as usize]]);
                            }
                        }
                    }
                }
                out[[o, y, x]] = acc as f32;
            }
        }
    }
    out
}

/// The window of output `(y, x)` clipped to the input: rows `[r0, r1)`, columns `[c0, c1)`.
fn window(
    y: usize,
    x: usize,
    h: usize,
    w: usize,
    k: [usize; 2],
    s: [usize; 2],
    pad: [usize; 4],
) -> (usize, usize, usize, usize) {
    let y0 = (y * s[0]) as isize - pad[0] as isize;
    let x0 = (x * s[1]) as isize - pad[2] as isize;
    let r0 = y0.max(0) as usize;
    let c0 = x0.max(0) as usize;
    let r1 = ((y0 + k[0] as isize).max(0) as usize).min(h);
    let c1 = ((x0 + k[1] as isize).max(0) as usize).min(w);
    (r0, r1, c0, c1)
}

/// Naive max pooling over windows clipped to the input (padding never wins).
pub fn max_pool(
    input: ArrayView3<'_, f32>,
    k: [usize; 2],
    s: [usize; 2],
    pad: [usize; 4],
) -> Array3<f32> {
    let (c, h, w) = input.dim();
    let h_out = out_len(h, pad[0], pad[1], k[0], s[0]);
    let w_out = out_len(w, pad[2], pad[3], k[1], s[1]);
    Array3::from_shape_fn((c, h_out, w_out), |(ch, y, x)| {
        let (r0, r1, c0, c1) = window(y, x, h, w, k, s, pad);
        let mut m = f32::NEG_INFINITY;
        for r in r0..r1 {
            for col in c0..c1 {
                m = m.max(input[[ch, r, col]]);
            }
        }
        m
    })
}

/// Naive average pooling: the mean over the window clipped to the input (MatConvNet's denominator).
pub fn avg_pool(
    input: ArrayView3<'_, f32>,
    k: [usize; 2],
    s: [usize; 2],
    pad: [usize; 4],
) -> Array3<f32> {
    let (c, h, w) = input.dim();
    let h_out = out_len(h, pad[0], pad[1], k[0], s[0]);
    let w_out = out_len(w, pad[2], pad[3], k[1], s[1]);
    Array3::from_shape_fn((c, h_out, w_out), |(ch, y, x)| {
        let (r0, r1, c0, c1) = window(y, x, h, w, k, s, pad);
        let mut acc = 0.0_f64;
        for r in r0..r1 {
            for col in c0..c1 {
                acc += f64::from(input[[ch, r, col]]);
            }
        }
        (acc / ((r1 - r0) * (c1 - c0)) as f64) as f32
    })
}

/// Triple-loop `α·A·B + β·C` with f64 accumulation.
pub fn gemm(
    alpha: f32,
    a: ArrayView2<'_, f32>,
    b: ArrayView2<'_, f32>,
    beta: f32,
    c: ArrayView2<'_, f32>,
) -> Array2<f32> {
    let (m, k) = a.dim();
    let (k2, n) = b.dim();
    assert_eq!(k, k2, "inner dimensions differ");
    Array2::from_shape_fn((m, n), |(i, j)| {
        let mut acc = 0.0_f64;
        for l in 0..k {
            acc += f64::from(a[[i, l]]) * f64::from(b[[l, j]]);
        }
        let prior = if beta == 0.0 {
            0.0
        } else {
            f64::from(beta) * f64::from(c[[i, j]])
        };
        (f64::from(alpha) * acc + prior) as f32
    })
}
