//! Unit tests of the CPU GEMM's edge cases.

use ndarray::{Array2, array};

use super::*;

#[test]
fn beta_zero_overwrites_garbage_and_k_zero_scales() {
    let a = Array2::<f32>::zeros((2, 0));
    let b = Array2::<f32>::zeros((0, 3));
    let mut c = Array2::from_elem((2, 3), f32::NAN);
    CpuGemm.gemm(1.0, a.view(), b.view(), 0.0, c.view_mut());
    assert_eq!(c, Array2::zeros((2, 3)));
    let mut c = Array2::from_elem((2, 3), 2.0_f32);
    CpuGemm.gemm(1.0, a.view(), b.view(), 0.5, c.view_mut());
    assert_eq!(c, Array2::from_elem((2, 3), 1.0));
}

#[test]
fn split_k_path_applies_alpha_and_beta() {
    // 4 × 20000 × 4 takes the k-split path (few output blocks, long k).
    let k = 20_000;
    let a = Array2::from_elem((4, k), 0.5_f32);
    let b = Array2::from_elem((k, 4), 0.25_f32);
    let mut c = Array2::from_elem((4, 4), 1.0_f32);
    CpuGemm.gemm(2.0, a.view(), b.view(), 3.0, c.view_mut());
    assert_eq!(c, Array2::from_elem((4, 4), 2.0 * 0.125 * k as f32 + 3.0));
}

#[test]
fn small_product() {
    let a = array![[1.0_f32, 2.0, 3.0]];
    let b = array![[1.0_f32], [1.0], [1.0]];
    let mut c = Array2::zeros((1, 1));
    CpuGemm.gemm(1.0, a.view(), b.view(), 0.0, c.view_mut());
    assert_eq!(c, array![[6.0]]);
}

#[test]
fn few_blocks_are_split_for_two_threads() {
    for (m, n) in [(128, 128), (128, 256), (256, 128), (64, 64), (100, 200)] {
        let (bm, bn) = output_blocks(m, n);
        let blocks = m.div_ceil(bm) * n.div_ceil(bn);
        assert!(
            blocks >= MIN_BLOCKS,
            "{m}×{n}: {blocks} blocks of {bm}×{bn}"
        );
        assert!(bm >= MIN_BLOCK && bn >= MIN_BLOCK);
    }
    // Large products keep the default blocks.
    assert_eq!(output_blocks(512, 1024), (BLOCK_M, BLOCK_N));
    // A product smaller than four minimal blocks stops at the minimal size.
    assert_eq!(output_blocks(32, 40), (MIN_BLOCK, MIN_BLOCK));
}

#[test]
fn split_output_blocks_give_the_bits_of_one_call() {
    for (m, k, n) in [(128, 3000, 128), (100, 2000, 200), (256, 1850, 128)] {
        let a = Array2::from_shape_fn((m, k), |(i, j)| ((i * 7 + j * 13) % 23) as f32 / 11.0 - 1.0);
        let b = Array2::from_shape_fn((k, n), |(i, j)| ((i * 5 + j * 3) % 19) as f32 / 9.0 - 1.0);
        let mut whole = Array2::from_elem((m, n), 0.5_f32);
        let mut blocked = whole.clone();
        sgemm(0.75, a.view(), b.view(), 0.25, whole.view_mut());
        CpuGemm.gemm(0.75, a.view(), b.view(), 0.25, blocked.view_mut());
        assert!(
            whole
                .iter()
                .zip(&blocked)
                .all(|(x, y)| x.to_bits() == y.to_bits()),
            "{m}×{k}×{n}"
        );
    }
}
