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
