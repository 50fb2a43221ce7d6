//! GEMM conformance: one test body, run for every compiled-in backend.

use ndarray::{Array2, s};
use tensor_ops::{CpuGemm, Gemm};

fn arr2(seed: u64, (m, n): (usize, usize)) -> Array2<f32> {
    Array2::from_shape_vec((m, n), test_utils::uniform_vec(seed, m * n, -1.0, 1.0)).unwrap()
}

/// Shapes `(m, k, n)` covering every path of `CpuGemm`: tiny, many output blocks, long-k split, odd sizes.
const SHAPES: [(usize, usize, usize); 7] = [
    (1, 1, 1),
    (3, 5, 7),
    (64, 64, 64),
    (300, 50, 600),
    (129, 37, 257),
    (8, 40_000, 8),
    (64, 20_000, 64),
];

/// The conformance body: `C ← α·A·B + β·C` against the triple loop, for plain, transposed and sliced
/// operands, `β = 0` with garbage in `C`, and `β ≠ 0`.
#[track_caller]
pub(crate) fn check_gemm(g: &dyn Gemm) {
    for (i, &(m, k, n)) in SHAPES.iter().enumerate() {
        let seed = 10 * i as u64;
        let a = arr2(seed, (m, k));
        let b = arr2(seed + 1, (k, n));
        let c0 = arr2(seed + 2, (m, n));
        let tol = 1e-5 * (k as f32).sqrt() * 4.0;
        let close = |got: &Array2<f32>, want: &Array2<f32>, what: &str| {
            for (x, y) in got.iter().zip(want) {
                assert!(
                    (x - y).abs() <= tol * (1.0 + y.abs()),
                    "{} {what} {m}×{k}×{n}: {x} vs {y}",
                    g.name()
                );
            }
        };

        let mut c = Array2::from_elem((m, n), f32::NAN);
        g.gemm(1.0, a.view(), b.view(), 0.0, c.view_mut());
        close(
            &c,
            &test_utils::reference::gemm(1.0, a.view(), b.view(), 0.0, c0.view()),
            "plain",
        );

        let mut c = c0.clone();
        g.gemm(-0.5, a.view(), b.view(), 2.0, c.view_mut());
        close(
            &c,
            &test_utils::reference::gemm(-0.5, a.view(), b.view(), 2.0, c0.view()),
            "alpha/beta",
        );

        // Transposed operands: (Bᵀ)ᵀ… compute Cᵀ = Bᵀ·Aᵀ into a transposed view of C.
        let mut ct = Array2::from_elem((m, n), f32::NAN);
        g.gemm(1.0, b.t(), a.t(), 0.0, ct.view_mut().reversed_axes());
        close(
            &ct,
            &test_utils::reference::gemm(1.0, a.view(), b.view(), 0.0, c0.view()),
            "transposed",
        );
    }
    // A strided sub-block of larger arrays, written without touching its surroundings.
    let a = arr2(90, (40, 30));
    let b = arr2(91, (30, 50));
    let mut c = Array2::<f32>::zeros((60, 70));
    g.gemm(
        1.0,
        a.slice(s![..;2, 1..21]),
        b.slice(s![5..25, ..;2]),
        0.0,
        c.slice_mut(s![10..30, 3..28]),
    );
    let want = test_utils::reference::gemm(
        1.0,
        a.slice(s![..;2, 1..21]),
        b.slice(s![5..25, ..;2]),
        0.0,
        Array2::zeros((20, 25)).view(),
    );
    for (x, y) in c.slice(s![10..30, 3..28]).iter().zip(&want) {
        assert!((x - y).abs() <= 1e-4, "{} strided: {x} vs {y}", g.name());
    }
    let mut outside = c.clone();
    outside.slice_mut(s![10..30, 3..28]).fill(0.0);
    assert!(
        outside.iter().all(|&v| v == 0.0),
        "{} wrote outside C",
        g.name()
    );
}

#[test]
fn gemm_cpu_conforms() {
    check_gemm(&CpuGemm);
}

#[test]
fn gemm_cpu_is_bit_identical_across_thread_counts() {
    for &(m, k, n) in &[(300, 50, 600), (64, 40_000, 64)] {
        let a = arr2(1, (m, k));
        let b = arr2(2, (k, n));
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let mut c = Array2::<f32>::zeros((m, n));
            pool.install(|| CpuGemm.gemm(1.0, a.view(), b.view(), 0.0, c.view_mut()));
            c.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        };
        let first = run(2);
        for threads in [2, 1, 3] {
            assert_eq!(first, run(threads), "{m}×{k}×{n} with {threads} threads");
        }
    }
}

/// cuBLAS conformance. Whether it runs is decided outside the test: `cargo xtask test` sets
/// `NST_TEST_GPU=1` when it detects a GPU, and then a missing device is a failure, not a skip.
#[cfg(feature = "cuda")]
#[test]
#[allow(
    clippy::print_stderr,
    reason = "the skip must be visible in the test output"
)]
fn gemm_cublas_conforms() {
    if std::env::var("NST_TEST_GPU").as_deref() != Ok("1") {
        eprintln!("SKIPPED gemm_cublas_conforms: NST_TEST_GPU is not 1");
        return;
    }
    let g = tensor_ops::CublasGemm::new()
        .unwrap_or_else(|e| panic!("NST_TEST_GPU=1 but cuBLAS is unusable: {e}"));
    check_gemm(&g);
    assert!(matches!(
        tensor_ops::Backend::cuda(),
        Ok(tensor_ops::Backend::Cuda(..))
    ));
}
