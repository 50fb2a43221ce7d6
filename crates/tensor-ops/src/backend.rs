//! Compute-backend selection: the CPU by default, cuBLAS behind the `cuda` feature.

#[cfg(not(feature = "cuda"))]
use crate::Error;
use crate::{CpuGemm, Gemm, Result};

/// A compute backend, chosen once at run time by the binary.
///
/// Asking for a backend that was not compiled in is [`Error::NotCompiled`](crate::Error::NotCompiled);
/// a compiled-in backend without a usable device is [`Error::DeviceUnavailable`](crate::Error::DeviceUnavailable).
/// Falling back to the CPU is the caller's decision.
///
/// # Examples
/// ```
/// use tensor_ops::Backend;
/// let cpu = Backend::Cpu;
/// assert_eq!(cpu.gemm().name(), "cpu");
/// #[cfg(not(feature = "cuda"))]
/// assert_eq!(Backend::cuda().unwrap_err(), tensor_ops::Error::NotCompiled { feature: "cuda" });
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Backend {
    /// `matrixmultiply` on the CPU, parallel over fixed blocks with rayon.
    Cpu,
    /// cuBLAS on device 0.
    #[cfg(feature = "cuda")]
    Cuda(crate::CublasGemm),
}

impl Backend {
    /// The cuBLAS backend on device 0.
    ///
    /// # Errors
    /// [`Error::NotCompiled`](crate::Error::NotCompiled) without the `cuda` feature;
    /// [`Error::DeviceUnavailable`](crate::Error::DeviceUnavailable) naming what is missing (driver, cuBLAS, device).
    pub fn cuda() -> Result<Self> {
        #[cfg(feature = "cuda")]
        {
            Ok(Backend::Cuda(crate::CublasGemm::new()?))
        }
        #[cfg(not(feature = "cuda"))]
        {
            Err(Error::NotCompiled { feature: "cuda" })
        }
    }

    /// This backend's GEMM.
    pub fn gemm(&self) -> &dyn Gemm {
        match self {
            Backend::Cpu => &CpuGemm,
            #[cfg(feature = "cuda")]
            Backend::Cuda(g) => g,
        }
    }

    /// `"cpu"` or `"cuda"`.
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Cpu => "cpu",
            #[cfg(feature = "cuda")]
            Backend::Cuda(_) => "cuda",
        }
    }
}
