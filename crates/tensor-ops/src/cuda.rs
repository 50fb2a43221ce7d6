//! cuBLAS GEMM through `cudarc` (dynamic loading: builds without a CUDA toolkit, probes for the libraries at run time).

use std::sync::Arc;

use cudarc::cublas::{CudaBlas, Gemm as _, GemmConfig, sys::cublasOperation_t};
use cudarc::driver::{CudaContext, CudaStream};
use ndarray::{ArrayView2, ArrayViewMut2};

use crate::{Error, Gemm, Result};

/// Checks that the driver library, cuBLAS and (with `nvrtc`) NVRTC load and that a device exists, then
/// opens device 0's primary context.
///
/// The probe comes first because `cudarc`, with dynamic loading, panics instead of returning an error
/// when a library is missing.
///
/// # Errors
/// [`Error::DeviceUnavailable`] naming the missing library or the failing driver call.
pub(crate) fn open_context(nvrtc: bool) -> Result<Arc<CudaContext>> {
    let missing = |what: &str| Error::DeviceUnavailable {
        reason: format!("{what} not found"),
    };
    // SAFETY: `is_culib_present` only tries to dlopen the library by its known names; it is `unsafe`
    // because loading a shared library runs its initializers, which is what using CUDA means anyway.
    if !unsafe { cudarc::driver::sys::is_culib_present() } {
        return Err(missing("libcuda (the NVIDIA driver library)"));
    }
    // SAFETY: as above, for libcublas.
    if !unsafe { cudarc::cublas::sys::is_culib_present() } {
        return Err(missing("libcublas (CUDA 13)"));
    }
    // SAFETY: as above, for libnvrtc.
    if nvrtc && !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        return Err(missing("libnvrtc (CUDA 13)"));
    }
    let unavailable = |what: &str, e: &dyn std::fmt::Debug| Error::DeviceUnavailable {
        reason: format!("{what}: {e:?}"),
    };
    let n = CudaContext::device_count().map_err(|e| unavailable("cuDeviceGetCount failed", &e))?;
    if n < 1 {
        return Err(Error::DeviceUnavailable {
            reason: "no CUDA device".to_owned(),
        });
    }
    CudaContext::new(0).map_err(|e| unavailable("creating a context on device 0 failed", &e))
}

/// Row-major GEMM on an NVIDIA GPU through cuBLAS's column-major `sgemm`.
///
/// A row-major `C = A·B` is the column-major `Cᵀ = Bᵀ·Aᵀ`, and a row-major matrix read as column-major
/// is its transpose, so the call passes `B` as cuBLAS's first operand and `A` as its second, with no
/// transposition flags. Operands are copied to the device per call: this is the GEMM seam, not the
/// resident-activation GPU backend (issue 6).
#[derive(Clone)]
pub struct CublasGemm {
    stream: Arc<CudaStream>,
    blas: Arc<CudaBlas>,
}

impl std::fmt::Debug for CublasGemm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CublasGemm").finish_non_exhaustive()
    }
}

impl CublasGemm {
    /// A cuBLAS handle on device 0, after checking that the driver and cuBLAS libraries load.
    ///
    /// # Errors
    /// [`Error::DeviceUnavailable`] naming the missing library or the failing driver call.
    pub fn new() -> Result<Self> {
        let ctx = open_context(false)?;
        let stream = ctx.default_stream();
        let blas = CudaBlas::new(stream.clone()).map_err(|e| Error::DeviceUnavailable {
            reason: format!("creating a cuBLAS handle failed: {e:?}"),
        })?;
        Ok(CublasGemm {
            stream,
            blas: Arc::new(blas),
        })
    }

    /// `C ← α·A·B + β·C` on the device, copying the operands over and `C` back.
    ///
    /// # Errors
    /// [`Error::Device`] when a copy or the cuBLAS call fails, or a dimension exceeds `i32`.
    ///
    /// # Panics
    /// When the shapes do not agree.
    #[track_caller]
    pub fn try_gemm(
        &self,
        alpha: f32,
        a: ArrayView2<'_, f32>,
        b: ArrayView2<'_, f32>,
        beta: f32,
        mut c: ArrayViewMut2<'_, f32>,
    ) -> Result<()> {
        let (m, k, n) = crate::gemm::gemm_dims(&a, &b, &c);
        if m == 0 || n == 0 {
            return Ok(());
        }
        if k == 0 {
            if beta == 0.0 {
                c.fill(0.0);
            } else {
                c.mapv_inplace(|v| v * beta);
            }
            return Ok(());
        }
        let dim = |v: usize| {
            i32::try_from(v.max(1)).map_err(|_| Error::Device {
                op: "sgemm",
                message: format!("dimension {v} exceeds i32"),
            })
        };
        let (mi, ni, ki) = (dim(m)?, dim(n)?, dim(k)?);
        let dev = |op: &'static str| {
            move |e: cudarc::driver::DriverError| Error::Device {
                op,
                message: format!("{e:?}"),
            }
        };
        let a_host = a.as_standard_layout();
        let b_host = b.as_standard_layout();
        let c_host = c.as_standard_layout().into_owned();
        let a_dev = self
            .stream
            .clone_htod(a_host.as_slice().expect("standard layout"))
            .map_err(dev("copy A to device"))?;
        let b_dev = self
            .stream
            .clone_htod(b_host.as_slice().expect("standard layout"))
            .map_err(dev("copy B to device"))?;
        let mut c_dev = self
            .stream
            .clone_htod(c_host.as_slice().expect("standard layout"))
            .map_err(dev("copy C to device"))?;
        let cfg = GemmConfig {
            transa: cublasOperation_t::CUBLAS_OP_N,
            transb: cublasOperation_t::CUBLAS_OP_N,
            m: ni,
            n: mi,
            k: ki,
            alpha,
            lda: ni,
            ldb: ki,
            beta,
            ldc: ni,
        };
        // SAFETY: the device buffers hold exactly k·n (B), m·k (A) and m·n (C) floats in row-major order,
        // which column-major reads as Bᵀ [n×k, ld n], Aᵀ [k×m, ld k] and Cᵀ [n×m, ld n]: every access of
        // this sgemm lies inside them.
        unsafe { self.blas.gemm(cfg, &b_dev, &a_dev, &mut c_dev) }.map_err(|e| Error::Device {
            op: "cublasSgemm",
            message: format!("{e:?}"),
        })?;
        let out = self
            .stream
            .clone_dtoh(&c_dev)
            .map_err(dev("copy C to host"))?;
        let out = ArrayView2::from_shape((m, n), &out).expect("m·n floats came back");
        c.assign(&out);
        Ok(())
    }
}

impl Gemm for CublasGemm {
    /// # Panics
    /// When the shapes do not agree, or the device fails (the trait is infallible; use
    /// [`CublasGemm::try_gemm`] to handle device errors).
    #[track_caller]
    fn gemm(
        &self,
        alpha: f32,
        a: ArrayView2<'_, f32>,
        b: ArrayView2<'_, f32>,
        beta: f32,
        c: ArrayViewMut2<'_, f32>,
    ) {
        self.try_gemm(alpha, a, b, beta, c)
            .expect("cuBLAS gemm failed on a device that initialized");
    }

    fn name(&self) -> &'static str {
        "cublas"
    }
}
