//! Colour matching for colour preservation (Gatys et al. 2016, "Preserving Color in Neural Artistic
//! Style Transfer", §2.1): the affine map that gives one image's pixels another's mean and covariance.
//!
//! Pure 3×3 numerics in f64 on RGB pixels (any range: 0–255, 0–1, mean-subtracted), with no image
//! I/O. Typical use, before style transfer: recolour the style image so that its colour statistics
//! are the content image's, then transfer the recoloured style.
//!
//! ```
//! use approx::assert_relative_eq;
//! use nst_costs::color::{ColorMap, ColorMatch, ColorStats};
//!
//! let content = [[200.0_f32, 10.0, 10.0], [100.0, 90.0, 20.0], [10.0, 20.0, 200.0], [50.0, 50.0, 50.0]];
//! let mut style = [[10.0_f32, 80.0, 30.0], [20.0, 100.0, 60.0], [40.0, 60.0, 10.0], [30.0, 90.0, 90.0]];
//! let to = ColorStats::from_pixels(&content)?;
//! let map = ColorMap::new(&ColorStats::from_pixels(&style)?, &to, ColorMatch::Pca)?;
//! map.apply_pixels(&mut style);
//! let after = ColorStats::from_pixels(&style)?;
//! for c in 0..3 {
//!     assert_relative_eq!(after.mean[c], to.mean[c], max_relative = 1e-5);
//! }
//! # Ok::<(), nst_costs::Error>(())
//! ```

#[cfg(test)]
mod tests;

use ndarray::{Array2, ArrayView3, ArrayViewMut3};

use crate::linalg::{SymEigen, cholesky, lower_triangular_inverse, spectral, sym_eigen};
use crate::{Error, Result, check_same_shape};

/// Mean and covariance of a set of RGB pixels, in f64:
/// `μ = Σ x_i / n`, `Σ = Σ (x_i − μ)·(x_i − μ)ᵀ / n` (population covariance, as in Gatys's code).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ColorStats {
    /// `μ`: mean R, G, B.
    pub mean: [f64; 3],
    /// `Σ`: the 3×3 covariance, row-major.
    pub cov: [[f64; 3]; 3],
}

/// How [`ColorMap::new`] picks `A` among the matrices with `A·Σ_from·Aᵀ = Σ_to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ColorMatch {
    /// `A = L_to·L_from⁻¹` with the Cholesky factors `Σ = L·Lᵀ`: Gatys et al. 2016, §2.1, `A_chol`
    /// (`mode='chol'` in their code).
    Cholesky,
    /// `A = Σ_to^{1/2}·Σ_from^{-1/2}` with symmetric square roots from the eigen decompositions
    /// `Σ = U·Λ·Uᵀ`, `Σ^{1/2} = U·Λ^{1/2}·Uᵀ`: Gatys et al. 2016, §2.1, `A_IA` (the 3-D colour
    /// matching of Image Analogies, Hertzmann et al. 2001; `mode='pca'` in their code). The paper
    /// found it to give better results than `A_chol`. The default.
    #[default]
    Pca,
    /// `A = Σ_from^{-1/2}·(Σ_from^{1/2}·Σ_to·Σ_from^{1/2})^{1/2}·Σ_from^{-1/2}`, the only symmetric
    /// positive definite solution: the optimal-transport (Monge) map between the two Gaussian fits,
    /// which moves colours the least in mean squared distance (`mode='sym'` in Gatys's code; not in
    /// the 2016 note).
    Symmetric,
}

/// An affine colour map `x' = A·x + b` with `b = μ_to − A·μ_from`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ColorMap {
    matrix: [[f64; 3]; 3],
    from_mean: [f64; 3],
    to_mean: [f64; 3],
}

impl ColorStats {
    /// The statistics of `pixels` (RGB triples).
    ///
    /// # Errors
    /// [`Error::EmptyInput`] for no pixels; [`Error::NonFinite`] for a NaN or infinite value.
    pub fn from_pixels(pixels: &[[f32; 3]]) -> Result<Self> {
        Self::from_iter("ColorStats::from_pixels", pixels.len(), || {
            pixels.iter().copied()
        })
    }

    /// The statistics of an image `[3, H, W]` (channels R, G, B).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when there are not 3 channels; otherwise as [`Self::from_pixels`].
    ///
    /// # Examples
    /// ```
    /// use approx::assert_abs_diff_eq;
    /// use ndarray::array;
    /// use nst_costs::color::ColorStats;
    /// // Two pixels: (0, 0, 1) and (2, 0, 3).
    /// let image = array![[[0.0_f32, 2.0]], [[0.0, 0.0]], [[1.0, 3.0]]];
    /// let s = ColorStats::from_chw(image.view())?;
    /// assert_eq!(s.mean, [1.0, 0.0, 2.0]);
    /// assert_eq!(s.cov, [[1.0, 0.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 1.0]]);
    /// # Ok::<(), nst_costs::Error>(())
    /// ```
    pub fn from_chw(image: ArrayView3<'_, f32>) -> Result<Self> {
        const OP: &str = "ColorStats::from_chw";
        let (_, h, w) = image.dim();
        check_same_shape(OP, "image", image.shape(), "an RGB image", &[3, h, w])?;
        let pixels = || {
            (0..h * w).map(move |p| {
                let (i, j) = (p / w, p % w);
                [image[[0, i, j]], image[[1, i, j]], image[[2, i, j]]]
            })
        };
        Self::from_iter(OP, h * w, pixels)
    }

    /// Two passes over the pixels: the mean, then the covariance of the centered pixels.
    fn from_iter<I: Iterator<Item = [f32; 3]>>(
        op: &'static str,
        n: usize,
        pixels: impl Fn() -> I,
    ) -> Result<Self> {
        if n == 0 {
            return Err(Error::EmptyInput {
                op,
                what: "the pixels",
            });
        }
        let mut mean = [0.0_f64; 3];
        for px in pixels() {
            if px.iter().any(|v| !v.is_finite()) {
                return Err(Error::NonFinite {
                    op,
                    what: "the pixels",
                });
            }
            for c in 0..3 {
                mean[c] += f64::from(px[c]);
            }
        }
        mean = mean.map(|s| s / n as f64);
        let mut cov = [[0.0_f64; 3]; 3];
        for px in pixels() {
            let d = [0, 1, 2].map(|c| f64::from(px[c]) - mean[c]);
            for (row, &di) in cov.iter_mut().zip(&d) {
                for (x, &dj) in row.iter_mut().zip(&d) {
                    *x += di * dj;
                }
            }
        }
        let cov = cov.map(|row| row.map(|s| s / n as f64));
        Ok(ColorStats { mean, cov })
    }
}

impl ColorMap {
    /// Eigenvalue floor, relative to the largest eigenvalue of each covariance (see [`Self::new`]).
    pub const FLOOR_RELATIVE: f64 = 1e-5;

    /// The map that gives pixels with statistics `from` the mean and covariance of `to`:
    ///
    /// ```text
    /// x' = A·x + b,   A·Σ_from·Aᵀ = Σ_to,   b = μ_to − A·μ_from
    /// ```
    ///
    /// with `A` chosen by `method` ([`ColorMatch`]). Both covariances are first regularized by
    /// flooring their eigenvalues at `FLOOR_RELATIVE = 1e-5` times their largest one (an exactly
    /// zero covariance, a flat image, becomes `I`), so that a flat or grey image does not make
    /// `Σ_from^{-1/2}` infinite; a well-conditioned covariance is unchanged (to rounding). Gatys's
    /// code adds `10⁻⁵·I` for pixels in `[0, 1]` instead; a relative floor works at any pixel scale.
    /// For colour preservation, `from` is the style image and `to` the content image.
    ///
    /// # Errors
    /// [`Error::NonFinite`] when a statistic is NaN or infinite.
    pub fn new(from: &ColorStats, to: &ColorStats, method: ColorMatch) -> Result<Self> {
        const OP: &str = "ColorMap::new";
        for s in [from, to] {
            if s.mean
                .iter()
                .chain(s.cov.iter().flatten())
                .any(|x| !x.is_finite())
            {
                return Err(Error::NonFinite {
                    op: OP,
                    what: "the colour statistics",
                });
            }
        }
        let eig_from = floored_eigen(OP, &from.cov)?;
        let eig_to = floored_eigen(OP, &to.cov)?;
        let a = match method {
            ColorMatch::Cholesky => {
                let l_to = regularized_cholesky(&eig_to);
                let l_from = regularized_cholesky(&eig_from);
                l_to.dot(&lower_triangular_inverse(&l_from))
            }
            ColorMatch::Pca => {
                spectral(&eig_to, f64::sqrt).dot(&spectral(&eig_from, |l| 1.0 / l.sqrt()))
            }
            ColorMatch::Symmetric => {
                let root_from = spectral(&eig_from, f64::sqrt);
                let inv_root_from = spectral(&eig_from, |l| 1.0 / l.sqrt());
                let to_reg = spectral(&eig_to, |l| l);
                let middle = root_from.dot(&to_reg).dot(&root_from);
                let root_middle = spectral(&sym_eigen(OP, middle.view())?, |l| l.max(0.0).sqrt());
                inv_root_from.dot(&root_middle).dot(&inv_root_from)
            }
        };
        Ok(ColorMap {
            matrix: std::array::from_fn(|i| std::array::from_fn(|j| a[[i, j]])),
            from_mean: from.mean,
            to_mean: to.mean,
        })
    }

    /// `A`, row-major.
    pub fn matrix(&self) -> [[f64; 3]; 3] {
        self.matrix
    }

    /// `b = μ_to − A·μ_from`.
    pub fn offset(&self) -> [f64; 3] {
        let a_mu = self.matrix.map(|row| dot3(&row, &self.from_mean));
        std::array::from_fn(|c| self.to_mean[c] - a_mu[c])
    }

    /// `A·x + b` for one pixel, evaluated as `A·(x − μ_from) + μ_to` (the same map, without the
    /// cancellation of a large `A·μ_from`), rounded to f32.
    pub fn apply(&self, pixel: [f32; 3]) -> [f32; 3] {
        let d: [f64; 3] = std::array::from_fn(|c| f64::from(pixel[c]) - self.from_mean[c]);
        std::array::from_fn(|c| (dot3(&self.matrix[c], &d) + self.to_mean[c]) as f32)
    }

    /// [`Self::apply`] to every pixel, in place.
    pub fn apply_pixels(&self, pixels: &mut [[f32; 3]]) {
        for px in pixels {
            *px = self.apply(*px);
        }
    }

    /// [`Self::apply`] to every pixel of an image `[3, H, W]`, in place.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when there are not 3 channels.
    pub fn apply_chw(&self, mut image: ArrayViewMut3<'_, f32>) -> Result<()> {
        let (_, h, w) = image.dim();
        check_same_shape(
            "ColorMap::apply_chw",
            "image",
            image.shape(),
            "an RGB image",
            &[3, h, w],
        )?;
        for i in 0..h {
            for j in 0..w {
                let px = self.apply([image[[0, i, j]], image[[1, i, j]], image[[2, i, j]]]);
                for (c, v) in px.into_iter().enumerate() {
                    image[[c, i, j]] = v;
                }
            }
        }
        Ok(())
    }
}

/// The eigen decomposition of a covariance with its eigenvalues floored at
/// `FLOOR_RELATIVE·λ_max` (or replaced by 1 when `λ_max ≤ 0`).
fn floored_eigen(op: &'static str, cov: &[[f64; 3]; 3]) -> Result<SymEigen> {
    let m = Array2::from_shape_fn((3, 3), |(i, j)| cov[i][j]);
    let mut eig = sym_eigen(op, m.view())?;
    let max = eig.values.fold(f64::NEG_INFINITY, |a, &b| a.max(b));
    let floor = if max > 0.0 {
        ColorMap::FLOOR_RELATIVE * max
    } else {
        1.0
    };
    eig.values.mapv_inplace(|l| l.max(floor));
    Ok(eig)
}

/// The Cholesky factor of `U·Λ·Uᵀ` for a decomposition with floored (positive) eigenvalues.
fn regularized_cholesky(eig: &SymEigen) -> Array2<f64> {
    let s = spectral(eig, |l| l);
    cholesky(s.view()).expect("eigenvalues floored at 1e-5·λ_max give a positive definite matrix")
}

fn dot3(a: &[f64; 3], b: &[f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}
