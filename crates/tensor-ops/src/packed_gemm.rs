//! A GEMM on operands that the caller writes directly in panel layout, so that nothing is packed per call.
//!
//! `C = A · B` with `A: [m, k]` stored as panels of `MR` rows (`a[p][kk][r] = A[p·MR + r, kk]`, rows
//! past `m` zero), `B: [k, n]` stored as panels of `NR` columns (`b[q][kk][j] = B[kk, q·NR + j]`), and `C`
//! row-major with its rows and columns rounded up to whole panels. One microkernel call computes an
//! `MR × NR` block of `C` from one panel of each operand, accumulating over `k` in order from zero with
//! one fused multiply-add per step, so every element of `C` is `fma(a_{k−1}, b_{k−1}, … fma(a_0, b_0, 0))`
//! whatever the blocking, the thread count or (between the AVX-512 and AVX2 kernels) the instruction set.
//! The Winograd transforms (`winograd`) write `U` and `V` in these layouts.

use std::sync::OnceLock;

/// A microkernel: `c[r·ldc + j] = Σ_kk a[kk·MR + r] · b[kk·NR + j]` for `r < MR`, `j < NR`.
///
/// # Safety
/// `a` must be valid for reads of `k·MR` floats, `b` for `k·NR` floats, `c` for writes at
/// `r·ldc + j` for every `r < MR`, `j < NR`, and `c` must not overlap `a` or `b`. The caller must
/// also have checked that the CPU has the instruction set the kernel was compiled for.
type KernelFn = unsafe fn(k: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize);

/// A microkernel and the panel sizes its operands are laid out in.
#[derive(Clone, Copy)]
pub(crate) struct Kernel {
    /// Rows of `A` (and of `C`) per panel.
    pub(crate) mr: usize,
    /// Columns of `B` (and of `C`) per panel.
    pub(crate) nr: usize,
    /// For reports and test messages.
    pub(crate) name: &'static str,
    run: KernelFn,
    /// Narrower kernels for a last panel of few columns, narrowest first: `(width, kernel)` computes
    /// only the first `width` columns of a block of `C` (its panels of `B` still `NR` floats a step),
    /// with the same operations as `run` for those columns.
    tails: &'static [(usize, KernelFn)],
}

impl std::fmt::Debug for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}×{})", self.name, self.mr, self.nr)
    }
}

/// Panel offsets and counts of one product `C = A · B` (see the module docs for the layouts).
#[derive(Debug, Clone, Copy)]
pub(crate) struct PanelGemm {
    /// Number of panels of `A` (`⌈m / MR⌉`).
    pub(crate) m_panels: usize,
    /// Number of panels of `B` (`⌈n / NR⌉`).
    pub(crate) n_panels: usize,
    /// The shared dimension.
    pub(crate) k: usize,
    /// Floats from the start of one panel of `A` to the next (at least `k·MR`).
    pub(crate) a_stride: usize,
    /// Floats from the start of one panel of `B` to the next (at least `k·NR`).
    pub(crate) b_stride: usize,
    /// Row stride of `C` (at least `n_panels·NR`).
    pub(crate) ldc: usize,
    /// The columns of `C` wanted (`(n_panels − 1)·NR < n ≤ n_panels·NR`): those of the last panel past
    /// `n` may be left unwritten, when a narrower kernel covers the rest.
    pub(crate) n: usize,
}

impl Kernel {
    /// The fastest kernel this CPU runs, detected once per process.
    pub(crate) fn best() -> Kernel {
        static BEST: OnceLock<Kernel> = OnceLock::new();
        *BEST.get_or_init(|| {
            *Kernel::available()
                .first()
                .expect("the portable kernel is always available")
        })
    }

    /// Every kernel this CPU runs, fastest first; the portable one is always last.
    pub(crate) fn available() -> Vec<Kernel> {
        #[cfg(target_arch = "x86_64")]
        let simd = x86::available();
        #[cfg(not(target_arch = "x86_64"))]
        let simd = Vec::new();
        simd.into_iter().chain([PORTABLE]).collect()
    }

    /// `C = A · B` over all panel pairs, for operands laid out as in the module docs.
    ///
    /// The loop keeps one panel of `A` (`k·MR` floats, 16 KiB at `k = 512` for AVX-512) in L1 while
    /// the panels of `B` stream past it from L2.
    ///
    /// # Panics
    /// If a slice is too short for the panel counts and strides of `g`, or `ldc` is narrower than
    /// the panels of `B`.
    #[track_caller]
    pub(crate) fn gemm(&self, g: &PanelGemm, a: &[f32], b: &[f32], c: &mut [f32]) {
        let (mr, nr) = (self.mr, self.nr);
        if g.m_panels == 0 || g.n_panels == 0 {
            return;
        }
        assert!(g.a_stride >= g.k * mr && g.b_stride >= g.k * nr && g.ldc >= g.n_panels * nr);
        assert!(
            g.n > (g.n_panels - 1) * nr && g.n <= g.n_panels * nr,
            "n inside the last panel"
        );
        // The last panel's kernel: the narrowest tail that covers its wanted columns.
        let last_width = g.n - (g.n_panels - 1) * nr;
        let last = self
            .tails
            .iter()
            .find(|&&(width, _)| width >= last_width)
            .map_or(self.run, |&(_, run)| run);
        assert!(
            a.len() >= (g.m_panels - 1) * g.a_stride + g.k * mr,
            "A too short"
        );
        assert!(
            b.len() >= (g.n_panels - 1) * g.b_stride + g.k * nr,
            "B too short"
        );
        assert!(
            c.len() >= (g.m_panels * mr - 1) * g.ldc + g.n_panels * nr,
            "C too short"
        );
        for p in 0..g.m_panels {
            let ap = &a[p * g.a_stride..][..g.k * mr];
            for q in 0..g.n_panels {
                let bq = &b[q * g.b_stride..][..g.k * nr];
                let cpq = &mut c[p * mr * g.ldc + q * nr..][..(mr - 1) * g.ldc + nr];
                let run = if q + 1 == g.n_panels { last } else { self.run };
                // SAFETY: `ap` holds k·MR floats and `bq` k·NR floats (sliced above), and `cpq`
                // reaches offset (MR − 1)·ldc + NR − 1, the last element a kernel writes (a tail
                // writes fewer columns); `c` is a `&mut` and cannot overlap `a` or `b`. `available`
                // only lists kernels whose instruction sets (tails included) the CPU reports.
                unsafe { run(g.k, ap.as_ptr(), bq.as_ptr(), cpq.as_mut_ptr(), g.ldc) };
            }
        }
    }
}

/// The plain-Rust kernel, for any target: `MR × NR` accumulators that the compiler keeps in
/// registers and vectorizes as it can. It rounds like the SIMD kernels where the target has a fused
/// multiply-add (aarch64, or x86-64 built with `fma`); elsewhere it multiplies and adds separately,
/// because a software `fmaf` would be far slower.
const PORTABLE: Kernel = Kernel {
    mr: 4,
    nr: 16,
    name: "portable",
    run: portable_kernel,
    tails: &[],
};

/// See [`KernelFn`] for the contract.
unsafe fn portable_kernel(k: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize) {
    const MR: usize = PORTABLE.mr;
    const NR: usize = PORTABLE.nr;
    // SAFETY: the caller guarantees k·MR readable floats at `a` and k·NR at `b` (KernelFn).
    let (a, b) = unsafe {
        (
            std::slice::from_raw_parts(a, k * MR),
            std::slice::from_raw_parts(b, k * NR),
        )
    };
    let mut acc = [[0.0_f32; NR]; MR];
    for (ak, bk) in a.chunks_exact(MR).zip(b.chunks_exact(NR)) {
        for (row, &ar) in acc.iter_mut().zip(ak) {
            for (cj, &bj) in row.iter_mut().zip(bk) {
                *cj = fused(ar, bj, *cj);
            }
        }
    }
    for (r, row) in acc.iter().enumerate() {
        // SAFETY: the caller guarantees that c[r·ldc .. r·ldc + NR] is writable for r < MR.
        let out = unsafe { std::slice::from_raw_parts_mut(c.add(r * ldc), NR) };
        out.copy_from_slice(row);
    }
}

/// `a·b + c`, fused where the target has the instruction.
#[inline(always)]
fn fused(a: f32, b: f32, c: f32) -> f32 {
    if cfg!(any(target_arch = "aarch64", target_feature = "fma")) {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! The AVX-512F and AVX2+FMA kernels: `MR` broadcasts of `A` times two vectors of `B` per step.

    use std::arch::x86_64::*;

    use super::Kernel;

    /// The kernels of this module that the CPU runs, fastest first.
    pub(super) fn available() -> Vec<Kernel> {
        let mut kernels = Vec::new();
        let avx2 = std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma");
        // The AVX-512 kernel's 8-column tail is an AVX2 + FMA kernel (every AVX-512 CPU has both).
        if std::arch::is_x86_feature_detected!("avx512f") && avx2 {
            kernels.push(AVX512);
        }
        if avx2 {
            kernels.push(AVX2);
        }
        kernels
    }

    /// 8 × 32: 16 accumulators, 2 vectors of `B` and a broadcast in the 32 `zmm` registers. A 12 × 32
    /// kernel (24 accumulators) was as fast on the Zen 4 this was measured on; 8 rows divide every
    /// VGG channel count, so no panel is padded.
    pub(super) const AVX512: Kernel = Kernel {
        mr: 8,
        nr: 32,
        name: "avx512",
        run: avx512_kernel,
        // VGG's conv4 at 400×300 has 130 tiles: 4 panels and 2 columns, which the 8-column tail
        // computes instead of 32.
        tails: &[(8, fma8_kernel::<8, 32>), (16, avx512_16_kernel)],
    };

    /// 6 × 16: 12 accumulators, 2 vectors of `B` and a broadcast in the 16 `ymm` registers.
    pub(super) const AVX2: Kernel = Kernel {
        mr: 6,
        nr: 16,
        name: "avx2",
        run: avx2_kernel,
        tails: &[(8, fma8_kernel::<6, 16>)],
    };

    /// How far ahead (in floats) the kernels ask for their panel of `B`: eight AVX-512 steps,
    /// sixteen AVX2 ones. The panel streams from L2 (a block's `V_e` does not fit L1) and runs
    /// on into the next panel, which the next call reads.
    const B_AHEAD: usize = 256;
    /// How far ahead (in floats) the kernels ask for their panel of `A`: its first pass (the first
    /// panel of `B`) reads it from L2 or memory; later passes find it in L1.
    const A_AHEAD: usize = 128;

    /// Asks for the `rows` rows of `NR` floats of a block of `C` (`ldc` apart) before the `k` steps,
    /// so that the stores at the end do not wait for the lines (`M` is too large for any cache).
    /// A prefetch is only a hint: it neither faults nor changes a result, whatever the address.
    #[inline(always)]
    fn prefetch_c<const NR: usize>(c: *const f32, rows: usize, ldc: usize) {
        for r in 0..rows {
            for j in (0..NR).step_by(16) {
                prefetch(c, r * ldc + j);
            }
        }
    }

    /// Asks for the floats `at` (`wrapping`: an address past the operand is harmless, see
    /// [`prefetch_c`]).
    #[inline(always)]
    fn prefetch(p: *const f32, at: usize) {
        // SAFETY: SSE, the instruction's only requirement, is part of every x86-64 CPU; a prefetch
        // reads nothing the program sees and cannot fault.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(at).cast()) };
    }

    /// See `KernelFn` for the contract; the CPU must have AVX-512F.
    #[target_feature(enable = "avx512f")]
    unsafe fn avx512_kernel(k: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize) {
        const MR: usize = AVX512.mr;
        let mut acc = [[_mm512_setzero_ps(); 2]; MR];
        prefetch_c::<32>(c.cast_const(), MR, ldc);
        for kk in 0..k {
            prefetch(b, kk * 32 + B_AHEAD);
            prefetch(b, kk * 32 + B_AHEAD + 16);
            prefetch(a, kk * MR + A_AHEAD);
            // SAFETY: kk < k, so the 32 floats of `b` and the 8 of `a` read here lie inside the
            // k·NR and k·MR floats the caller guarantees.
            unsafe {
                let b0 = _mm512_loadu_ps(b.add(kk * 32));
                let b1 = _mm512_loadu_ps(b.add(kk * 32 + 16));
                let ak = a.add(kk * MR);
                for (r, acc_r) in acc.iter_mut().enumerate() {
                    let ar = _mm512_set1_ps(*ak.add(r));
                    acc_r[0] = _mm512_fmadd_ps(ar, b0, acc_r[0]);
                    acc_r[1] = _mm512_fmadd_ps(ar, b1, acc_r[1]);
                }
            }
        }
        for (r, acc_r) in acc.iter().enumerate() {
            // SAFETY: the caller guarantees that c[r·ldc .. r·ldc + 32] is writable for r < MR.
            unsafe {
                _mm512_storeu_ps(c.add(r * ldc), acc_r[0]);
                _mm512_storeu_ps(c.add(r * ldc + 16), acc_r[1]);
            }
        }
    }

    /// The first 16 columns of [`avx512_kernel`]'s block (a tail); see `KernelFn` for the contract
    /// (with 16 columns of `C` written); the CPU must have AVX-512F.
    #[target_feature(enable = "avx512f")]
    unsafe fn avx512_16_kernel(k: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize) {
        const MR: usize = AVX512.mr;
        let mut acc = [_mm512_setzero_ps(); MR];
        for kk in 0..k {
            // SAFETY: kk < k, so the 16 floats of `b` (of the 32 of step kk) and the 8 of `a` read
            // here lie inside the k·NR and k·MR floats the caller guarantees.
            unsafe {
                let b0 = _mm512_loadu_ps(b.add(kk * 32));
                let ak = a.add(kk * MR);
                for (r, acc_r) in acc.iter_mut().enumerate() {
                    *acc_r = _mm512_fmadd_ps(_mm512_set1_ps(*ak.add(r)), b0, *acc_r);
                }
            }
        }
        for (r, acc_r) in acc.iter().enumerate() {
            // SAFETY: the caller guarantees that c[r·ldc .. r·ldc + 32] is writable for r < MR.
            unsafe { _mm512_storeu_ps(c.add(r * ldc), *acc_r) };
        }
    }

    /// The first 8 columns of an `MR × NR` block (a tail of the AVX-512 and AVX2 kernels, whose
    /// panels of `B` are `NR` floats a step); see `KernelFn` for the contract (with 8 columns of `C`
    /// written); the CPU must have AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn fma8_kernel<const MR: usize, const NR: usize>(
        k: usize,
        a: *const f32,
        b: *const f32,
        c: *mut f32,
        ldc: usize,
    ) {
        let mut acc = [_mm256_setzero_ps(); MR];
        for kk in 0..k {
            // SAFETY: kk < k, so the 8 floats of `b` (of the NR of step kk) and the MR of `a` read
            // here lie inside the k·NR and k·MR floats the caller guarantees.
            unsafe {
                let b0 = _mm256_loadu_ps(b.add(kk * NR));
                let ak = a.add(kk * MR);
                for (r, acc_r) in acc.iter_mut().enumerate() {
                    *acc_r = _mm256_fmadd_ps(_mm256_set1_ps(*ak.add(r)), b0, *acc_r);
                }
            }
        }
        for (r, acc_r) in acc.iter().enumerate() {
            // SAFETY: the caller guarantees that c[r·ldc .. r·ldc + NR] is writable for r < MR.
            unsafe { _mm256_storeu_ps(c.add(r * ldc), *acc_r) };
        }
    }

    /// See `KernelFn` for the contract; the CPU must have AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn avx2_kernel(k: usize, a: *const f32, b: *const f32, c: *mut f32, ldc: usize) {
        const MR: usize = AVX2.mr;
        let mut acc = [[_mm256_setzero_ps(); 2]; MR];
        prefetch_c::<16>(c.cast_const(), MR, ldc);
        for kk in 0..k {
            prefetch(b, kk * 16 + B_AHEAD);
            prefetch(a, kk * MR + A_AHEAD);
            // SAFETY: kk < k, so the 16 floats of `b` and the 6 of `a` read here lie inside the
            // k·NR and k·MR floats the caller guarantees.
            unsafe {
                let b0 = _mm256_loadu_ps(b.add(kk * 16));
                let b1 = _mm256_loadu_ps(b.add(kk * 16 + 8));
                let ak = a.add(kk * MR);
                for (r, acc_r) in acc.iter_mut().enumerate() {
                    let ar = _mm256_set1_ps(*ak.add(r));
                    acc_r[0] = _mm256_fmadd_ps(ar, b0, acc_r[0]);
                    acc_r[1] = _mm256_fmadd_ps(ar, b1, acc_r[1]);
                }
            }
        }
        for (r, acc_r) in acc.iter().enumerate() {
            // SAFETY: the caller guarantees that c[r·ldc .. r·ldc + 16] is writable for r < MR.
            unsafe {
                _mm256_storeu_ps(c.add(r * ldc), acc_r[0]);
                _mm256_storeu_ps(c.add(r * ldc + 8), acc_r[1]);
            }
        }
    }
}

#[cfg(test)]
mod tests;
