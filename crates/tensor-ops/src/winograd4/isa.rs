//! The instruction sets the F(4×4) transforms are compiled for, chosen at run time: the portable
//! code (any target), or AVX2 + FMA on x86-64 CPUs that have them.
//!
//! The transforms compute on eight tiles at a time ([`L8`], a tile per lane), but the input and the
//! output are rows of pixels: a row of eight 4×4 tiles is 32 contiguous values. Moving between the
//! two is a 4 × 8 transpose, and the portable code does it one float at a time (scalar loads and
//! inserts, which took most of the transforms' time). [`Avx2`] does it with in-register shuffles, and
//! its entry points (`*_avx2` in the parent module) compile the whole transform loop with AVX2, so
//! that eight lanes are one `ymm` register (`__m256`) instead of two `xmm` halves or the stack. Both compute every output with the
//! same additions and multiplications in the same order (Rust never fuses a multiply and an add on
//! its own), so they give the same bits: `isa_paths_give_the_same_bits` checks it.

use super::{L8, Lane};

/// The eight-lane arithmetic of the transforms and their data movements, one implementation per
/// instruction set. Implementations only move values and do the [`Lane`] operations on each lane,
/// never round differently.
pub(crate) trait Isa: Copy {
    /// Eight `f32` lanes.
    type V: Lane;
    /// The first eight values of `src`.
    fn load(self, src: &[f32]) -> Self::V;
    /// The first `min(8, src.len())` values of `src`, the rest 0.
    fn load_partial(self, src: &[f32]) -> Self::V;
    /// Eight lanes of `x`.
    fn splat(self, x: f32) -> Self::V;
    /// The lanes, in order.
    fn lanes(self, v: Self::V) -> [f32; 8];
    /// A hint that `x` will be read soon (into the L1 cache); nothing where there is no such
    /// instruction.
    fn prefetch(self, x: &f32) {
        let _ = x;
    }
    /// Stores the lanes into the first eight values of `dst`.
    fn store(self, v: Self::V, dst: &mut [f32]) {
        dst[..8].copy_from_slice(&self.lanes(v));
    }
    /// Stores lanes `lo..hi` of `v` into `dst[..hi − lo]`, leaving the rest of `dst` alone.
    ///
    /// # Panics
    /// If `lo > hi`, `hi > 8` or `dst` is shorter than `hi − lo`.
    fn store_lanes(self, v: Self::V, (lo, hi): (usize, usize), dst: &mut [f32]) {
        dst[..hi - lo].copy_from_slice(&self.lanes(v)[lo..hi]);
    }
    /// `v` with the lanes whose bit in `bits` is clear (bit `i` for lane `i`, bits past 7 ignored)
    /// set to `+0.0`: a bitwise AND with all ones or all zeros, as [`row_mask::mask_word`] does.
    ///
    /// [`row_mask::mask_word`]: crate::row_mask::mask_word
    fn keep(self, v: Self::V, bits: u32) -> Self::V;
    /// The first four values of `src`, each twice: `[s0, s0, s1, s1, s2, s2, s3, s3]` (the 2×2
    /// average pooling's input gradient along a row).
    ///
    /// # Panics
    /// If `src` has fewer than four values.
    fn pairs(self, src: &[f32]) -> Self::V;
    /// The six columns of eight 6-wide windows at stride 4 (F(4×4)'s input tiles along a row):
    /// `d[j][q] = s[4q + j]` for `j < 6`, `q < 8`.
    fn windows(self, s: &[f32; 34]) -> [Self::V; 6];
    /// Four rows of eight tiles' outputs side by side: `out[4q + j] = y[j][q]`.
    fn interleave(self, y: [Self::V; 4]) -> [f32; 32];
    /// The 3×3 kernels of eight rows, a tap per array: `g[tap][r] = w[r·stride + tap]` for
    /// `r < live`, 0 for `live ≤ r < 8`.
    ///
    /// # Panics
    /// If `live > 8` or `w` is shorter than `(live − 1)·stride + 9`.
    fn taps(self, w: &[f32], stride: usize, live: usize) -> [Self::V; 9];
}

/// The portable data movements, one float at a time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Portable;

impl Isa for Portable {
    type V = L8;

    #[inline(always)]
    fn load(self, src: &[f32]) -> L8 {
        L8::load(src)
    }

    #[inline(always)]
    fn load_partial(self, src: &[f32]) -> L8 {
        L8::load_partial(src)
    }

    #[inline(always)]
    fn splat(self, x: f32) -> L8 {
        L8([x; 8])
    }

    #[inline(always)]
    fn lanes(self, v: L8) -> [f32; 8] {
        v.0
    }

    #[inline(always)]
    fn keep(self, v: L8, bits: u32) -> L8 {
        L8(std::array::from_fn(|i| {
            let all = 0_u32.wrapping_sub((bits >> i) & 1);
            f32::from_bits(v.0[i].to_bits() & all)
        }))
    }

    #[inline(always)]
    fn pairs(self, src: &[f32]) -> L8 {
        let src = &src[..4];
        L8(std::array::from_fn(|i| src[i / 2]))
    }

    #[inline(always)]
    fn windows(self, s: &[f32; 34]) -> [L8; 6] {
        std::array::from_fn(|j| L8(std::array::from_fn(|q| s[4 * q + j])))
    }

    #[inline(always)]
    fn interleave(self, y: [L8; 4]) -> [f32; 32] {
        std::array::from_fn(|k| y[k % 4].0[k / 4])
    }

    #[inline(always)]
    fn taps(self, w: &[f32], stride: usize, live: usize) -> [L8; 9] {
        assert!(live <= 8, "at most eight rows");
        let mut g = [L8::default(); 9];
        for r in 0..live {
            let kernel = &w[r * stride..][..9];
            for (gt, &v) in g.iter_mut().zip(kernel) {
                gt.0[r] = v;
            }
        }
        g
    }
}

/// Which instruction set a convolution's transforms run with.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Simd {
    /// [`Portable`].
    Portable,
    /// [`Avx2`].
    #[cfg(target_arch = "x86_64")]
    Avx2(Avx2),
}

impl Simd {
    /// The fastest this CPU runs, detected once per process.
    pub(crate) fn best() -> Simd {
        static BEST: std::sync::OnceLock<Simd> = std::sync::OnceLock::new();
        *BEST.get_or_init(|| Simd::available()[0])
    }

    /// Every one this CPU runs, fastest first; [`Simd::Portable`] is always last.
    pub(crate) fn available() -> Vec<Simd> {
        #[cfg(target_arch = "x86_64")]
        let simd: Vec<Simd> = Avx2::detect().map(Simd::Avx2).into_iter().collect();
        #[cfg(not(target_arch = "x86_64"))]
        let simd: Vec<Simd> = Vec::new();
        simd.into_iter().chain([Simd::Portable]).collect()
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) use x86::Avx2;

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;
    use std::ops::{Add, Mul, Sub};

    use super::{Isa, Lane};

    /// Proof that the CPU has AVX2 and FMA: a value exists only where [`Avx2::detect`] found them,
    /// which is what makes its methods' intrinsics sound to call.
    #[derive(Debug, Clone, Copy)]
    pub(crate) struct Avx2(());

    impl Avx2 {
        /// `Some` where the CPU has AVX2 and FMA.
        pub(crate) fn detect() -> Option<Avx2> {
            (is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"))
                .then_some(Avx2(()))
        }
    }

    /// Eight lanes in a `ymm` register. Only [`Avx2`]'s methods make one from values; `Default`
    /// makes the zero without an instruction, and the transforms meet a `V8` only inside code
    /// handed an [`Avx2`], so its arithmetic runs only where the CPU has AVX.
    #[derive(Clone, Copy)]
    pub(crate) struct V8(__m256);

    impl Default for V8 {
        #[inline(always)]
        fn default() -> V8 {
            // SAFETY: all-zero bits are eight `0.0`s.
            V8(unsafe { std::mem::zeroed() })
        }
    }

    impl Lane for V8 {}

    impl Add for V8 {
        type Output = V8;
        #[inline(always)]
        fn add(self, o: V8) -> V8 {
            // SAFETY: a `V8` exists only where the CPU has AVX (see the type).
            V8(unsafe { _mm256_add_ps(self.0, o.0) })
        }
    }

    impl Sub for V8 {
        type Output = V8;
        #[inline(always)]
        fn sub(self, o: V8) -> V8 {
            // SAFETY: as for `add`.
            V8(unsafe { _mm256_sub_ps(self.0, o.0) })
        }
    }

    impl Mul<f32> for V8 {
        type Output = V8;
        #[inline(always)]
        fn mul(self, k: f32) -> V8 {
            // SAFETY: as for `add`.
            V8(unsafe { _mm256_mul_ps(self.0, _mm256_set1_ps(k)) })
        }
    }

    /// The 4 × 4 transposes of the two 128-bit halves of four vectors: half `h` of `out[j]` holds
    /// element `j` of half `h` of each input, in order (the core of both directions of the 4 × 8
    /// transpose, and of the 8 × 8 one).
    ///
    /// # Safety
    /// The CPU must have AVX.
    #[inline(always)]
    unsafe fn transpose4_halves(v: [__m256; 4]) -> [__m256; 4] {
        // SAFETY: the caller guarantees AVX; these intrinsics only move register contents.
        unsafe {
            let t0 = _mm256_unpacklo_ps(v[0], v[1]);
            let t1 = _mm256_unpackhi_ps(v[0], v[1]);
            let t2 = _mm256_unpacklo_ps(v[2], v[3]);
            let t3 = _mm256_unpackhi_ps(v[2], v[3]);
            [
                _mm256_shuffle_ps::<0x44>(t0, t2),
                _mm256_shuffle_ps::<0xEE>(t0, t2),
                _mm256_shuffle_ps::<0x44>(t1, t3),
                _mm256_shuffle_ps::<0xEE>(t1, t3),
            ]
        }
    }

    impl Isa for Avx2 {
        type V = V8;

        #[inline(always)]
        fn load(self, src: &[f32]) -> V8 {
            let src = &src[..8];
            // SAFETY: `self` proves AVX2 (`Avx2::detect`); the load reads the eight values of `src`.
            V8(unsafe { _mm256_loadu_ps(src.as_ptr()) })
        }

        #[inline(always)]
        fn load_partial(self, src: &[f32]) -> V8 {
            if src.len() >= 8 {
                return self.load(src);
            }
            let mut v = [0.0; 8];
            v[..src.len()].copy_from_slice(src);
            self.load(&v)
        }

        #[inline(always)]
        fn prefetch(self, x: &f32) {
            // SAFETY: `self` proves AVX2 (so SSE); a prefetch reads nothing and `x` is a reference.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(x).cast::<i8>()) }
        }

        #[inline(always)]
        fn splat(self, x: f32) -> V8 {
            // SAFETY: `self` proves AVX2.
            V8(unsafe { _mm256_set1_ps(x) })
        }

        #[inline(always)]
        fn lanes(self, v: V8) -> [f32; 8] {
            // SAFETY: both are 32 bytes of eight `f32`s, and every bit pattern is a valid `f32`.
            unsafe { std::mem::transmute::<__m256, [f32; 8]>(v.0) }
        }

        #[inline(always)]
        fn store(self, v: V8, dst: &mut [f32]) {
            let dst = &mut dst[..8];
            // SAFETY: `self` proves AVX2; the store writes the eight values of `dst`.
            unsafe { _mm256_storeu_ps(dst.as_mut_ptr(), v.0) }
        }

        #[inline(always)]
        fn store_lanes(self, v: V8, (lo, hi): (usize, usize), dst: &mut [f32]) {
            assert!(lo <= hi && hi <= 8, "lanes of eight");
            let dst = &mut dst[..hi - lo];
            // SAFETY: `self` proves AVX2; the masked store writes only lanes `i < hi − lo`, the
            // values of `dst`.
            unsafe {
                let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
                // Lanes lo.. moved down to 0.. (indices past 7 wrap; their lanes are not stored).
                let moved = _mm256_permutevar8x32_ps(
                    v.0,
                    _mm256_add_epi32(lane, _mm256_set1_epi32(lo as i32)),
                );
                let keep = _mm256_cmpgt_epi32(_mm256_set1_epi32(dst.len() as i32), lane);
                _mm256_maskstore_ps(dst.as_mut_ptr(), keep, moved);
            }
        }

        #[inline(always)]
        fn keep(self, v: V8, bits: u32) -> V8 {
            // SAFETY: `self` proves AVX2; these intrinsics only compute on registers.
            unsafe {
                let lane_bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
                let set = _mm256_and_si256(_mm256_set1_epi32(bits as i32), lane_bit);
                let all = _mm256_cmpeq_epi32(set, lane_bit);
                V8(_mm256_and_ps(v.0, _mm256_castsi256_ps(all)))
            }
        }

        #[inline(always)]
        fn pairs(self, src: &[f32]) -> V8 {
            let src = &src[..4];
            // SAFETY: `self` proves AVX2; the load reads the four values of `src`.
            unsafe {
                let four = _mm256_castps128_ps256(_mm_loadu_ps(src.as_ptr()));
                let twice = _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3);
                V8(_mm256_permutevar8x32_ps(four, twice))
            }
        }

        #[inline(always)]
        fn windows(self, s: &[f32; 34]) -> [V8; 6] {
            let p = s.as_ptr();
            // SAFETY: `self` proves AVX2; the loads read s[0..32) and s[32], s[33].
            unsafe {
                let x: [__m256; 4] = std::array::from_fn(|i| _mm256_loadu_ps(p.add(8 * i)));
                // Tiles q and q + 4 side by side (x[i] holds tiles 2i and 2i + 1), then each half's
                // 4 × 4 transpose gives d_j for tiles 0–3 and 4–7.
                let d = transpose4_halves([
                    _mm256_permute2f128_ps::<0x20>(x[0], x[2]),
                    _mm256_permute2f128_ps::<0x31>(x[0], x[2]),
                    _mm256_permute2f128_ps::<0x20>(x[1], x[3]),
                    _mm256_permute2f128_ps::<0x31>(x[1], x[3]),
                ]);
                // d_4[q] = s[4q + 4] = d_0[q + 1] (and s[32] for q = 7); d_5 likewise from d_1.
                let next = _mm256_setr_epi32(1, 2, 3, 4, 5, 6, 7, 7);
                let shifted = |v: __m256, last: &f32| {
                    _mm256_blend_ps::<0x80>(
                        _mm256_permutevar8x32_ps(v, next),
                        _mm256_broadcast_ss(last),
                    )
                };
                [
                    V8(d[0]),
                    V8(d[1]),
                    V8(d[2]),
                    V8(d[3]),
                    V8(shifted(d[0], &s[32])),
                    V8(shifted(d[1], &s[33])),
                ]
            }
        }

        #[inline(always)]
        fn interleave(self, y: [V8; 4]) -> [f32; 32] {
            let mut out = [0.0_f32; 32];
            let p = out.as_mut_ptr();
            // SAFETY: `self` proves AVX2; the stores write out[0..32).
            unsafe {
                // Each half's 4 × 4 transpose gives tiles q (low half) and q + 4 (high half).
                let u = transpose4_halves(y.map(|v| v.0));
                _mm256_storeu_ps(p, _mm256_permute2f128_ps::<0x20>(u[0], u[1]));
                _mm256_storeu_ps(p.add(8), _mm256_permute2f128_ps::<0x20>(u[2], u[3]));
                _mm256_storeu_ps(p.add(16), _mm256_permute2f128_ps::<0x31>(u[0], u[1]));
                _mm256_storeu_ps(p.add(24), _mm256_permute2f128_ps::<0x31>(u[2], u[3]));
            }
            out
        }

        #[inline(always)]
        fn taps(self, w: &[f32], stride: usize, live: usize) -> [V8; 9] {
            assert!(live <= 8, "at most eight rows");
            if live > 0 {
                assert!(w.len() >= (live - 1) * stride + 9, "the kernels inside `w`");
            }
            let p = w.as_ptr();
            // SAFETY: `self` proves AVX2; row r < live reads w[r·stride .. r·stride + 9), inside
            // `w` (checked above).
            unsafe {
                let rows: [__m256; 8] = std::array::from_fn(|r| {
                    if r < live {
                        _mm256_loadu_ps(p.add(r * stride))
                    } else {
                        _mm256_setzero_ps()
                    }
                });
                // Taps 0–7: an 8 × 8 transpose (rows 0–3 and 4–7 by halves, then the halves
                // regrouped); tap 8 one value per row.
                let lo = transpose4_halves([rows[0], rows[1], rows[2], rows[3]]);
                let hi = transpose4_halves([rows[4], rows[5], rows[6], rows[7]]);
                let mut last = [0.0_f32; 8];
                for (r, v) in last.iter_mut().enumerate().take(live) {
                    *v = *p.add(r * stride + 8);
                }
                let mut g = [V8::default(); 9];
                for j in 0..4 {
                    g[j] = V8(_mm256_permute2f128_ps::<0x20>(lo[j], hi[j]));
                    g[j + 4] = V8(_mm256_permute2f128_ps::<0x31>(lo[j], hi[j]));
                }
                g[8] = V8(_mm256_loadu_ps(last.as_ptr()));
                g
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Moves = ([[f32; 8]; 6], [f32; 32], [[f32; 8]; 9]);

    fn moves<I: Isa>(
        isa: I,
        s: &[f32; 34],
        y: [[f32; 8]; 4],
        w: &[f32],
        (stride, live): (usize, usize),
    ) -> Moves {
        (
            isa.windows(s).map(|v| isa.lanes(v)),
            isa.interleave(y.map(|v| isa.load(&v))),
            isa.taps(w, stride, live).map(|v| isa.lanes(v)),
        )
    }

    /// Every [`Isa`] of this CPU moves each value where the trait's docs say.
    #[test]
    fn every_isa_moves_the_values_as_documented() {
        let s: [f32; 34] = std::array::from_fn(|i| i as f32 * 0.5 - 7.0);
        let y: [[f32; 8]; 4] =
            std::array::from_fn(|j| std::array::from_fn(|q| (10 * j + q) as f32));
        let w: Vec<f32> = (0..8 * 13 + 9).map(|i| i as f32 + 0.25).collect();
        for simd in Simd::available() {
            for (stride, live) in [(13, 8), (9, 8), (13, 5), (9, 1), (13, 0)] {
                let w = &w[..if live == 0 {
                    0
                } else {
                    (live - 1) * stride + 9
                }];
                let (d, out, g) = match simd {
                    Simd::Portable => moves(Portable, &s, y, w, (stride, live)),
                    #[cfg(target_arch = "x86_64")]
                    Simd::Avx2(isa) => moves(isa, &s, y, w, (stride, live)),
                };
                let what = format!("{simd:?}, stride {stride}, {live} rows");
                for (j, dj) in d.iter().enumerate() {
                    for (q, &v) in dj.iter().enumerate() {
                        assert_eq!(v, s[4 * q + j], "{what}: windows d[{j}][{q}]");
                    }
                }
                for (k, &v) in out.iter().enumerate() {
                    assert_eq!(v, y[k % 4][k / 4], "{what}: interleave out[{k}]");
                }
                for (tap, gt) in g.iter().enumerate() {
                    for (r, &v) in gt.iter().enumerate() {
                        let want = if r < live { w[r * stride + tap] } else { 0.0 };
                        assert_eq!(v, want, "{what}: taps g[{tap}][{r}]");
                    }
                }
            }
        }
    }

    fn kept_and_paired<I: Isa>(isa: I, v: &[f32; 8], bits: u32) -> ([f32; 8], [f32; 8]) {
        (
            isa.lanes(isa.keep(isa.load(v), bits)),
            isa.lanes(isa.pairs(&v[2..6])),
        )
    }

    /// `keep` zeroes (to `+0.0`) exactly the lanes whose bit is clear and looks at bits 0–7 only;
    /// `pairs` doubles each of four values in order.
    #[test]
    fn keep_and_pairs_move_the_right_lanes() {
        let v = [
            1.5,
            -2.0,
            -0.0,
            f32::MIN_POSITIVE / 8.0,
            5.0,
            -6.25,
            7.0,
            f32::INFINITY,
        ];
        for simd in Simd::available() {
            for bits in (0..256).chain([0xFFFF_FF00, 0xA5A5_A5A5]) {
                let (kept, paired) = match simd {
                    Simd::Portable => kept_and_paired(Portable, &v, bits),
                    #[cfg(target_arch = "x86_64")]
                    Simd::Avx2(isa) => kept_and_paired(isa, &v, bits),
                };
                for (i, (&k, &x)) in kept.iter().zip(&v).enumerate() {
                    let want = if bits >> i & 1 == 1 { x } else { 0.0 };
                    assert_eq!(
                        k.to_bits(),
                        want.to_bits(),
                        "{simd:?}, bits {bits:#x}, lane {i}"
                    );
                }
                assert_eq!(
                    paired.map(f32::to_bits),
                    [2, 2, 3, 3, 4, 4, 5, 5].map(|i| v[i].to_bits())
                );
            }
        }
    }

    fn stored<I: Isa>(isa: I, (lo, hi): (usize, usize)) -> [f32; 10] {
        let mut dst = [-1.0; 10];
        let v = isa.load(&[10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0, 17.0]);
        isa.store_lanes(v, (lo, hi), &mut dst[1..1 + hi - lo]);
        dst
    }

    /// `store_lanes` writes exactly lanes `lo..hi`, in order, and nothing beside them.
    #[test]
    fn store_lanes_writes_only_its_lanes() {
        for simd in Simd::available() {
            for lo in 0..=8 {
                for hi in lo..=8 {
                    let dst = match simd {
                        Simd::Portable => stored(Portable, (lo, hi)),
                        #[cfg(target_arch = "x86_64")]
                        Simd::Avx2(isa) => stored(isa, (lo, hi)),
                    };
                    let want: Vec<f32> = (0..10)
                        .map(|i| {
                            if (1..=hi - lo).contains(&i) {
                                (10 + lo + i - 1) as f32
                            } else {
                                -1.0
                            }
                        })
                        .collect();
                    assert_eq!(dst.to_vec(), want, "{simd:?}, lanes {lo}..{hi}");
                }
            }
        }
    }
}
