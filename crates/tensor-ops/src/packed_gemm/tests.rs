//! Every available microkernel against a naive triple loop, on shapes that leave partial panels.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::{Kernel, PORTABLE, PanelGemm};

fn uniform(seed: u64, n: usize) -> Vec<f32> {
    let mut rng = SmallRng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(-1.0..1.0)).collect()
}

/// `C = A·B` for row-major `A: [m, k]`, `B: [k, n]` through `kernel`, with extra floats between
/// panels (so the strides are exercised), NaN in the padding of `C` and in unused panel lanes.
fn packed_product(
    kernel: &Kernel,
    a: &[f32],
    b: &[f32],
    (m, k, n): (usize, usize, usize),
) -> Vec<f32> {
    let (mr, nr) = (kernel.mr, kernel.nr);
    let g = PanelGemm {
        m_panels: m.div_ceil(mr),
        n_panels: n.div_ceil(nr),
        k,
        a_stride: k * mr + 3,
        b_stride: k * nr + 5,
        ldc: n.div_ceil(nr) * nr + 1,
        n,
    };
    let mut ap = vec![f32::NAN; g.m_panels * g.a_stride];
    for p in 0..g.m_panels {
        for kk in 0..k {
            for r in 0..mr {
                let i = p * mr + r;
                ap[p * g.a_stride + kk * mr + r] = if i < m { a[i * k + kk] } else { 0.0 };
            }
        }
    }
    let mut bp = vec![f32::NAN; g.n_panels * g.b_stride];
    for q in 0..g.n_panels {
        for kk in 0..k {
            for j in 0..nr {
                let col = q * nr + j;
                bp[q * g.b_stride + kk * nr + j] = if col < n { b[kk * n + col] } else { 0.0 };
            }
        }
    }
    let mut c = vec![f32::NAN; g.m_panels * mr * g.ldc];
    kernel.gemm(&g, &ap, &bp, &mut c);
    let mut out = vec![0.0; m * n];
    for i in 0..m {
        out[i * n..(i + 1) * n].copy_from_slice(&c[i * g.ldc..i * g.ldc + n]);
    }
    out
}

#[track_caller]
fn check(kernel: &Kernel, (m, k, n): (usize, usize, usize)) -> Vec<f32> {
    let a = uniform(1 + m as u64, m * k);
    let b = uniform(2 + n as u64, k * n);
    let c = packed_product(kernel, &a, &b, (m, k, n));
    for i in 0..m {
        for j in 0..n {
            let mut exact = 0.0_f64;
            let mut scale = 0.0_f64;
            for kk in 0..k {
                let p = f64::from(a[i * k + kk]) * f64::from(b[kk * n + j]);
                exact += p;
                scale += p.abs();
            }
            let got = f64::from(c[i * n + j]);
            assert!(
                (got - exact).abs() <= 1e-6 * (scale + 1.0),
                "{kernel:?} {m}×{k}×{n}: C[{i}, {j}] = {got}, expected {exact}"
            );
        }
    }
    c
}

const SHAPES: [(usize, usize, usize); 10] = [
    (1, 1, 1),
    (3, 0, 5),
    (1, 7, 1),
    (5, 1, 3),
    (13, 9, 33),
    (12, 17, 32),
    (25, 3, 47),
    (6, 64, 16),
    (37, 129, 50),
    (512, 512, 150),
];

#[test]
fn every_kernel_matches_the_triple_loop_on_odd_shapes() {
    let kernels = Kernel::available();
    // The portable kernel is always in the list, so it is checked on every machine.
    assert_eq!(kernels.last().map(|k| k.name), Some(PORTABLE.name));
    assert_eq!(Kernel::best().name, kernels[0].name);
    for kernel in &kernels {
        for shape in SHAPES {
            check(kernel, shape);
        }
    }
}

/// The SIMD kernels accumulate with one fused multiply-add per `k`, in order, so they agree to the bit.
#[test]
fn simd_kernels_are_bit_identical() {
    let simd: Vec<Kernel> = Kernel::available()
        .into_iter()
        .filter(|k| k.name != PORTABLE.name)
        .collect();
    for shape in SHAPES {
        let results: Vec<Vec<f32>> = simd.iter().map(|k| check(k, shape)).collect();
        for (kernel, r) in simd.iter().zip(&results).skip(1) {
            assert!(
                r.iter()
                    .zip(&results[0])
                    .all(|(x, y)| x.to_bits() == y.to_bits()),
                "{kernel:?} differs from {:?} on {shape:?}",
                simd[0]
            );
        }
    }
}

#[test]
fn empty_products_write_nothing() {
    let kernel = Kernel::best();
    let g = PanelGemm {
        m_panels: 0,
        n_panels: 3,
        k: 4,
        a_stride: 4 * kernel.mr,
        b_stride: 4 * kernel.nr,
        ldc: 3 * kernel.nr,
        n: 3 * kernel.nr,
    };
    let mut c = vec![7.0_f32; 4];
    kernel.gemm(&g, &[], &[], &mut c);
    assert!(c.iter().all(|&v| v == 7.0));
}

/// A last panel that a tail kernel covers gets exactly the tail's columns written, with the values
/// the full kernel gives them (the other columns of the block keep what `C` held).
#[test]
fn tail_kernels_write_their_columns_and_agree_with_the_full_kernel() {
    for kernel in Kernel::available() {
        let (mr, nr) = (kernel.mr, kernel.nr);
        for &(width, _) in kernel.tails {
            let (m, k, n) = (2 * mr, 37, nr + width);
            let a = uniform(11, m * k);
            let b = uniform(12, k * n);
            // The full kernel alone: a panel list with no tails.
            let full = Kernel {
                tails: &[],
                ..kernel
            };
            let expected = packed_product(&full, &a, &b, (m, k, n));
            assert_eq!(
                packed_product(&kernel, &a, &b, (m, k, n))
                    .iter()
                    .map(|v| v.to_bits())
                    .collect::<Vec<_>>(),
                expected.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                "{kernel:?}, tail of {width} columns"
            );
            // The columns past `n` in the last panel stay as they were (NaN).
            let g = PanelGemm {
                m_panels: 2,
                n_panels: 2,
                k,
                a_stride: k * mr,
                b_stride: k * nr,
                ldc: 2 * nr,
                n,
            };
            let mut c = vec![f32::NAN; 2 * mr * g.ldc];
            kernel.gemm(&g, &vec![1.0; 2 * k * mr], &vec![1.0; 2 * k * nr], &mut c);
            for (i, row) in c.chunks(g.ldc).enumerate() {
                assert!(
                    row[..n].iter().all(|&v| v == k as f32),
                    "{kernel:?}: row {i}"
                );
                assert!(
                    row[n..].iter().all(|v| v.is_nan()),
                    "{kernel:?}: row {i} past n"
                );
            }
        }
    }
}
