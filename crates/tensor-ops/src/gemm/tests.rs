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
