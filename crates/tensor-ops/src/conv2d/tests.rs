//! Unit tests of the tiling plan and the index helpers of the convolution.

use super::*;

fn geometries() -> Vec<Conv2dGeometry> {
    let mut v = Vec::new();
    for (c, h, w) in [
        (3, 300, 400),
        (64, 150, 200),
        (256, 75, 100),
        (512, 37, 50),
        (512, 18, 25),
        (2, 7, 5),
        (1, 1, 1),
    ] {
        for (k, s, p) in [(3, 1, 1), (5, 2, 1), (1, 1, 0), (3, 2, 0)] {
            if let Ok(g) = Conv2dGeometry::new(
                Shape::new(c, h, w),
                [8, c, k, k],
                [s, s],
                Padding::uniform(p),
            ) {
                v.push(g);
            }
        }
    }
    v
}

#[test]
fn tiles_cover_the_output_rows_in_order() {
    for g in geometries() {
        let tiles = g.tiles();
        assert_eq!(tiles.first().map(|t| t.0), Some(0));
        assert_eq!(tiles.last().map(|t| t.1), Some(g.output.height));
        for pair in tiles.windows(2) {
            assert_eq!(pair[0].1, pair[1].0);
        }
        for &(r0, r1) in &tiles[..tiles.len() - 1] {
            assert!(
                r1 - r0 >= g.kernel[0],
                "{g:?}: a full tile has fewer rows than the kernel"
            );
        }
    }
}

#[test]
fn footprints_of_tiles_two_apart_are_disjoint() {
    for g in geometries() {
        let tiles = g.tiles();
        for i in 0..tiles.len().saturating_sub(2) {
            let a = g.footprint(tiles[i].0, tiles[i].1);
            let b = g.footprint(tiles[i + 2].0, tiles[i + 2].1);
            assert!(
                a.1 <= b.0,
                "{g:?}: tiles {i} and {} overlap: {a:?} {b:?}",
                i + 2
            );
        }
    }
}

#[test]
fn footprint_holds_every_row_a_tile_reads() {
    for g in geometries() {
        for (r0, r1) in g.tiles() {
            let (f0, f1) = g.footprint(r0, r1);
            for y in r0..r1 {
                for i in 0..g.kernel[0] {
                    let iy = (y * g.stride[0] + i) as isize - g.pad.top as isize;
                    if iy >= 0 && (iy as usize) < g.input.height {
                        assert!(
                            (f0..f1).contains(&(iy as usize)),
                            "{g:?}: row {iy} outside {f0}..{f1}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn valid_cols_are_exactly_the_in_range_columns() {
    for w in 1..8 {
        for s in 1..3 {
            for pl in 0_usize..3 {
                for kx in 0_usize..5 {
                    let w_out: usize = (w + 2 * pl).saturating_sub(kx) / s + 1;
                    let (lo, hi) = valid_cols(w, w_out, s, pl, kx);
                    for x in 0..w_out {
                        let ix = (x * s + kx) as isize - pl as isize;
                        let inside = ix >= 0 && (ix as usize) < w;
                        assert_eq!(
                            inside,
                            (lo..hi).contains(&x),
                            "w {w} s {s} pl {pl} kx {kx} x {x}"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn a_row_tile_is_a_strided_matrix() {
    let mut t =
        ndarray::Array3::<f32>::from_shape_fn((3, 4, 5), |(c, y, x)| (100 * c + 10 * y + x) as f32);
    let m = rows_as_matrix(t.slice(s![.., 1..3, ..]));
    assert_eq!(m.dim(), (3, 10));
    assert_eq!(m[[2, 7]], 200.0 + 20.0 + 2.0);
    let mut mm = rows_as_matrix_mut(t.slice_mut(s![.., 3..4, ..]));
    mm[[1, 4]] = -1.0;
    assert_eq!(t[[1, 3, 4]], -1.0);
}

/// `n` values drawn uniformly from `[-1, 1)` with a seeded RNG.
fn uniform(seed: u64, n: usize) -> Vec<f32> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(-1.0..1.0)).collect()
}

/// `⟨a, b⟩` accumulated in f64.
fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| f64::from(x) * f64::from(y))
        .sum()
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig {
        cases: 192,
        failure_persistence: None,
        ..proptest::prelude::ProptestConfig::default()
    })]

    /// col2im is the adjoint of im2col: `⟨im2col x, c⟩ = ⟨x, col2im c⟩` for every geometry.
    #[test]
    fn im2col_col2im_adjoint(
        (c_in, h, w) in (1..=4_usize, 1..=9_usize, 1..=9_usize),
        k in proptest::sample::select(vec![1_usize, 3, 5]),
        s in 1..=2_usize,
        p in [0..=1_usize, 0..=1, 0..=1, 0..=1],
        seed in 0..1000_u64,
    ) {
        let pad = Padding { top: p[0], bottom: p[1], left: p[2], right: p[3] };
        proptest::prop_assume!(h + p[0] + p[1] >= k && w + p[2] + p[3] >= k);
        let g = Conv2dGeometry::new(Shape::new(c_in, h, w), [2, c_in, k, k], [s, s], pad).unwrap();
        let out = g.output();
        let x = uniform(seed, c_in * h * w);
        let n = out.plane();
        let mut cols = vec![0.0; g.k() * n];
        im2col(&g, &x, 0, out.height, &mut cols);
        let c = uniform(seed + 1, g.k() * n);
        let mut back = ndarray::Array3::zeros((c_in, h, w));
        col2im(&g, &c, 0, out.height, 0, back.view_mut());
        let lhs = dot(&cols, &c);
        let rhs = dot(&x, back.as_slice().unwrap());
        proptest::prop_assert!(
            (lhs - rhs).abs() <= 1e-5 * (1.0 + lhs.abs()),
            "⟨im2col x, c⟩ = {lhs}, ⟨x, col2im c⟩ = {rhs}"
        );
    }
}
