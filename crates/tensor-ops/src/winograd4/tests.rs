//! The F(4×4) convolution with every GEMM microkernel of this CPU (panel sizes differ between them, so
//! the packed layouts of `U` and `V`, groups of eight tiles split across panels and the zero padding
//! are checked for each) against im2col, forward, backward and added.

use super::{F4, conv3x3_tiles};
use crate::winograd::tests::{COMMON_CASES, Case, check_every_kernel};

/// Besides the common cases (odd sizes, channel counts that are no multiple of a panel's rows, tile
/// counts that are no multiple of a panel's columns or of 8, padding 0–2): one block (phased),
/// several phased blocks (4 → 5 channels, 500 × 21: three blocks of 43 tile rows of 6 tiles) and
/// several blocks run whole (5 → 7 channels, 1400 × 9: five blocks of 86 tile rows of 3 tiles).
const CASES: [Case; 3] = [
    (130, 6, 30, 37, [0, 1, 1, 2]),
    (4, 5, 500, 21, [1, 1, 1, 1]),
    (5, 7, 1400, 9, [1, 1, 1, 1]),
];

#[test]
fn every_kernel_matches_the_direct_convolution_both_ways() {
    // F(4×4) rounds several times worse than F(2×2) (transform entries up to 8, weights scaled by 1/24).
    check_every_kernel(
        conv3x3_tiles::<F4>,
        &[&COMMON_CASES[..], &CASES].concat(),
        4e-5,
    );
}

/// The transforms of every instruction set give the same bits as the portable ones: forward plain,
/// forward with the fused ReLU (and its mask) and pooling, backward through a mask and an unpooling;
/// and so does each with the weights transformed a tile row at a time (`Weights::ByRow`: every size
/// here is one phased block) or whole.
/// Widths: odd (a column no pooling window reaches), a multiple of 32 (rows end on a mask word and
/// on a vector), and one a few columns past a multiple of 8 (a short last vector).
#[test]
fn isa_paths_give_the_same_bits() {
    for (h, w) in [(38, 45), (20, 64), (17, 36)] {
        isa_paths_give_the_same_bits_at(h, w);
    }
}

fn isa_paths_give_the_same_bits_at(h: usize, w: usize) {
    use ndarray::{Array1, Array2, Array3};

    use super::isa::Simd;
    use super::{ConvArgs, Fusion, conv3x3_tiles_fused};
    use crate::packed_gemm::Kernel;
    use crate::row_mask::{RowBits, mask_len};
    use crate::winograd::Direction;
    use crate::{Padding, Shape};

    let (c_in, c_out) = (13, 20);
    let values = |n: usize, seed: u32| -> Vec<f32> {
        (0..n)
            .map(|i| {
                ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) % 2001) as f32 / 1000.0
                    - 1.0
            })
            .collect()
    };
    let x = Array3::from_shape_vec((c_in, h, w), values(c_in * h * w, 1)).unwrap();
    let weight = Array2::from_shape_vec((c_out, c_in * 9), values(c_out * c_in * 9, 2)).unwrap();
    let bias = Array1::from(values(c_out, 3));
    let pad = Padding {
        top: 1,
        bottom: 1,
        left: 1,
        right: 1,
    };
    let dy_pooled =
        Array3::from_shape_vec((c_out, h / 2, w / 2), values(c_out * (h / 2) * (w / 2), 4))
            .unwrap();
    let kernel = Kernel::best();
    // (forward plain, forward ReLU + pool, its mask, backward masked + unpooled) for one Simd.
    let run = |simd: Simd, by_row_min: usize| {
        let how = (kernel, simd, by_row_min);
        let forward = |out| -> ConvArgs<'_> {
            (
                Direction::Forward,
                weight.view(),
                bias.view(),
                x.view(),
                pad,
                out,
            )
        };
        let mut plain = Array3::<f32>::zeros((c_out, h, w));
        let args = forward(plain.view_mut());
        conv3x3_tiles_fused::<super::F4>(how, args, false, Fusion::None);
        let mut pooled = Array3::<f32>::zeros((c_out, h / 2, w / 2));
        let mut mask = vec![0_u32; mask_len(Shape::new(c_out, h, w))];
        let bits = Some(RowBits::new(&mut mask, h, w));
        let args = forward(pooled.view_mut());
        conv3x3_tiles_fused::<super::F4>(how, args, false, Fusion::Relu { bits, pool: true });
        let mut dx = Array3::<f32>::zeros((c_in, h, w));
        let empty = Array1::<f32>::zeros(0);
        let args: ConvArgs<'_> = (
            Direction::Backward,
            weight.view(),
            empty.view(),
            dy_pooled.view(),
            pad,
            dx.view_mut(),
        );
        let fusion = Fusion::MaskedInput {
            mask: &mask,
            unpool: Some((h, w)),
        };
        conv3x3_tiles_fused::<super::F4>(how, args, false, fusion);
        (plain, pooled, mask.clone(), dx)
    };
    let want = run(Simd::Portable, usize::MAX);
    assert!(
        want.1.iter().any(|&v| v > 0.0) && want.3.iter().any(|&v| v != 0.0),
        "a live test"
    );
    // By rows (every `U` here has at least a few thousand floats) and whole, except the portable
    // transforms' whole way, which is `want`.
    let ways = Simd::available()
        .into_iter()
        .flat_map(|simd| [(simd, 0), (simd, usize::MAX)])
        .filter(|&(simd, min)| !(matches!(simd, Simd::Portable) && min == usize::MAX));
    for (simd, by_row_min) in ways {
        let got = run(simd, by_row_min);
        let way = if by_row_min == 0 { "by rows" } else { "whole" };
        let what = format!("{simd:?} {h}x{w}, U {way}");
        let bits = |a: &Array3<f32>| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&got.0), bits(&want.0), "{what}: forward");
        assert_eq!(
            bits(&got.1),
            bits(&want.1),
            "{what}: forward, ReLU and pooling"
        );
        assert_eq!(got.2, want.2, "{what}: the ReLU's mask");
        assert_eq!(
            bits(&got.3),
            bits(&want.3),
            "{what}: backward, masked and unpooled"
        );
    }
}

/// The way of transforming the weights is chosen as documented (`Plan::by_row`): by tile rows for
/// VGG's 512-channel 3×3 layers at 400×300 on two threads (one phased block, `U` 37.7 MB), not at
/// 1024×768 (blocks run whole), not on more threads than a tile row has GEMMs, not for conv3's
/// 256 channels at 400×300 (blocks run whole there too).
#[test]
fn the_weights_go_by_rows_where_documented() {
    use super::{BY_ROW_MIN_FLOATS, Geometry, Plan};
    use crate::Padding;
    use crate::packed_gemm::Kernel;

    let pad = Padding {
        top: 1,
        bottom: 1,
        left: 1,
        right: 1,
    };
    let by_row = |c: usize, (h, w): (usize, usize), threads: usize| {
        let how = (Kernel::best(), super::isa::Simd::Portable);
        let g = Geometry::new::<F4>(how, (c, c), (c, h, w), pad, (c, h, w));
        Plan::new::<F4>(&g).by_row::<F4>(&g, BY_ROW_MIN_FLOATS, threads)
    };
    assert!(by_row(512, (37, 50), 2), "conv4_2 at 400x300, 2 threads");
    assert!(by_row(512, (37, 50), 6), "conv4_2 at 400x300, 6 threads");
    assert!(!by_row(512, (37, 50), 16), "conv4_2 at 400x300, 16 threads");
    assert!(!by_row(512, (96, 128), 2), "conv4_2 at 1024x768");
    assert!(!by_row(256, (75, 100), 2), "conv3_2 at 400x300");
    assert!(!by_row(64, (9, 9), 2), "a small U");
}
