// Kernels of the device-resident backend (`tensor_ops::device`).
//
// One source, two compilers: NVRTC compiles it for the GPU (`device::cuda`), and the test crate
// `device-emu` compiles it as C++ with `emu.h`, which runs every thread of a launch on the CPU, so the
// index arithmetic of each kernel is checked against the CPU layers on every machine.
//
// Rules that keep both true:
// - no headers: NVRTC has none by default; `emu.h` defines what the kernels use;
// - every kernel is a grid-stride loop over its work items, correct for any grid and block size, except
//   the reductions, which need `blockDim.x == NST_BLOCK` (the launcher guarantees it);
// - no two threads write the same element, and no atomics: a reduction writes one partial sum per block,
//   and `nst_finish_sum` adds them in a fixed order, so a cost is the same on every run;
// - sizes and indices in `long long`: a 1024×768 im2col matrix has more than 2^31 elements at larger sizes.

#define NST_BLOCK 256

// Geometry of a convolution or pooling window on a [C, H, W] input (mirrors `ConvDims` in device/mod.rs).
struct ConvDims {
    int c, h, w;     // input channels, height, width
    int kh, kw;      // window
    int sy, sx;      // stride
    int pt, pl;      // top and left padding (bottom/right padding only shows in oh/ow)
    int oh, ow;      // output height and width
};

// Channel, row and column of element e of a [C, h, w] tensor.
struct Chw {
    long long c;
    int y, x;
};
__device__ __forceinline__ Chw nst_chw(long long e, int h, int w) {
    Chw r;
    r.x = (int)(e % w);
    r.y = (int)((e / w) % h);
    r.c = e / ((long long)w * h);
    return r;
}

#define GRID_STRIDE(i, n) \
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < (n); \
         i += (long long)blockDim.x * gridDim.x)

// cols[(c·KH + i)·KW + j, y·OW + x] = X[c, y·sy − pt + i, x·sx − pl + j] (0 outside the input).
extern "C" __global__ void nst_im2col(const float* __restrict__ x, float* __restrict__ cols, ConvDims d) {
    const long long p = (long long)d.oh * d.ow;
    const long long n = (long long)d.c * d.kh * d.kw * p;
    GRID_STRIDE(e, n) {
        const long long row = e / p;
        const long long pos = e - row * p;
        const int j = (int)(row % d.kw);
        const int i = (int)((row / d.kw) % d.kh);
        const int c = (int)(row / ((long long)d.kw * d.kh));
        const int oy = (int)(pos / d.ow);
        const int ox = (int)(pos - (long long)oy * d.ow);
        const int iy = oy * d.sy - d.pt + i;
        const int ix = ox * d.sx - d.pl + j;
        float v = 0.0f;
        if (iy >= 0 && iy < d.h && ix >= 0 && ix < d.w) {
            v = x[((long long)c * d.h + iy) * d.w + ix];
        }
        cols[e] = v;
    }
}

// The adjoint of nst_im2col, gathered: each input element sums the column entries that read it.
extern "C" __global__ void nst_col2im(const float* __restrict__ cols, float* __restrict__ dx, ConvDims d) {
    const long long p = (long long)d.oh * d.ow;
    const long long n = (long long)d.c * d.h * d.w;
    GRID_STRIDE(e, n) {
        const Chw at = nst_chw(e, d.h, d.w);
        const long long c = at.c;
        const int iy = at.y, ix = at.x;
        float sum = 0.0f;
        for (int i = 0; i < d.kh; ++i) {
            const int ty = iy + d.pt - i;  // = oy·sy
            if (ty < 0 || ty % d.sy != 0) continue;
            const int oy = ty / d.sy;
            if (oy >= d.oh) continue;
            for (int j = 0; j < d.kw; ++j) {
                const int tx = ix + d.pl - j;
                if (tx < 0 || tx % d.sx != 0) continue;
                const int ox = tx / d.sx;
                if (ox >= d.ow) continue;
                const long long row = (c * d.kh + i) * d.kw + j;
                sum += cols[row * p + (long long)oy * d.ow + ox];
            }
        }
        dx[e] = sum;
    }
}

// y[c, ·] += bias[c] for a [C, plane] matrix of n = C·plane elements.
extern "C" __global__ void nst_bias_add(float* __restrict__ y, const float* __restrict__ bias, long long plane, long long n) {
    GRID_STRIDE(e, n) { y[e] += bias[e / plane]; }
}

extern "C" __global__ void nst_relu_fwd(const float* __restrict__ x, float* __restrict__ y, long long n) {
    GRID_STRIDE(e, n) { y[e] = x[e] > 0.0f ? x[e] : 0.0f; }
}

// dx = dy where the forward output y (= max(x, 0)) is positive, i.e. where x was positive.
extern "C" __global__ void nst_relu_bwd(const float* __restrict__ y, const float* __restrict__ dy, float* __restrict__ dx, long long n) {
    GRID_STRIDE(e, n) { dx[e] = y[e] > 0.0f ? dy[e] : 0.0f; }
}

// The window of output (oy, ox) clipped to the input: rows [*r0, *r1), columns [*c0, *c1).
__device__ __forceinline__ void nst_window(const ConvDims& d, int oy, int ox, int* r0, int* r1, int* c0, int* c1) {
    const int y0 = oy * d.sy - d.pt;
    const int x0 = ox * d.sx - d.pl;
    *r0 = y0 > 0 ? y0 : 0;
    *c0 = x0 > 0 ? x0 : 0;
    *r1 = y0 + d.kh < d.h ? y0 + d.kh : d.h;
    *c1 = x0 + d.kw < d.w ? x0 + d.kw : d.w;
}

// Flat index, inside the plane, of the first maximum of the clipped window (row-major scan, strict >),
// the CPU layer's rule.
__device__ __forceinline__ int nst_argmax(const float* plane, const ConvDims& d, int oy, int ox) {
    int r0, r1, c0, c1;
    nst_window(d, oy, ox, &r0, &r1, &c0, &c1);
    int best = r0 * d.w + c0;
    for (int r = r0; r < r1; ++r) {
        for (int c = c0; c < c1; ++c) {
            if (plane[r * d.w + c] > plane[best]) best = r * d.w + c;
        }
    }
    return best;
}

extern "C" __global__ void nst_max_pool_fwd(const float* __restrict__ x, float* __restrict__ y, ConvDims d) {
    const long long n = (long long)d.c * d.oh * d.ow;
    GRID_STRIDE(e, n) {
        const Chw o = nst_chw(e, d.oh, d.ow);
        const int oy = o.y, ox = o.x;
        const float* plane = x + o.c * d.h * d.w;
        y[e] = plane[nst_argmax(plane, d, oy, ox)];
    }
}

// First and last output rows (or columns) whose window covers input row iy: oy·s − p ≤ iy < oy·s − p + k.
__device__ __forceinline__ void nst_covering(int iy, int p, int k, int s, int out, int* lo, int* hi) {
    const int top = iy + p - k + 1;  // oy·s ≥ top
    *lo = top <= 0 ? 0 : (top + s - 1) / s;
    const int last = (iy + p) / s;   // oy·s ≤ iy + p
    *hi = last < out - 1 ? last : out - 1;
}

// Gathered: each input element takes the output gradients of the windows whose maximum it is.
extern "C" __global__ void nst_max_pool_bwd(const float* __restrict__ x, const float* __restrict__ dy, float* __restrict__ dx, ConvDims d) {
    const long long n = (long long)d.c * d.h * d.w;
    GRID_STRIDE(e, n) {
        const Chw p = nst_chw(e, d.h, d.w);
        const int iy = p.y, ix = p.x;
        const float* plane = x + p.c * d.h * d.w;
        const float* g = dy + p.c * d.oh * d.ow;
        int oy0, oy1, ox0, ox1;
        nst_covering(iy, d.pt, d.kh, d.sy, d.oh, &oy0, &oy1);
        nst_covering(ix, d.pl, d.kw, d.sx, d.ow, &ox0, &ox1);
        const int me = iy * d.w + ix;
        float sum = 0.0f;
        for (int oy = oy0; oy <= oy1; ++oy) {
            for (int ox = ox0; ox <= ox1; ++ox) {
                if (nst_argmax(plane, d, oy, ox) == me) sum += g[oy * d.ow + ox];
            }
        }
        dx[e] = sum;
    }
}

// Mean over the clipped window (padding is not counted), MatConvNet's rule.
extern "C" __global__ void nst_avg_pool_fwd(const float* __restrict__ x, float* __restrict__ y, ConvDims d) {
    const long long n = (long long)d.c * d.oh * d.ow;
    GRID_STRIDE(e, n) {
        const Chw o = nst_chw(e, d.oh, d.ow);
        const int oy = o.y, ox = o.x;
        const float* plane = x + o.c * d.h * d.w;
        int r0, r1, c0, c1;
        nst_window(d, oy, ox, &r0, &r1, &c0, &c1);
        float sum = 0.0f;
        for (int r = r0; r < r1; ++r) {
            for (int q = c0; q < c1; ++q) sum += plane[r * d.w + q];
        }
        y[e] = sum / (float)((r1 - r0) * (c1 - c0));
    }
}

extern "C" __global__ void nst_avg_pool_bwd(const float* __restrict__ dy, float* __restrict__ dx, ConvDims d) {
    const long long n = (long long)d.c * d.h * d.w;
    GRID_STRIDE(e, n) {
        const Chw p = nst_chw(e, d.h, d.w);
        const int iy = p.y, ix = p.x;
        const float* g = dy + p.c * d.oh * d.ow;
        int oy0, oy1, ox0, ox1;
        nst_covering(iy, d.pt, d.kh, d.sy, d.oh, &oy0, &oy1);
        nst_covering(ix, d.pl, d.kw, d.sx, d.ow, &ox0, &ox1);
        float sum = 0.0f;
        for (int oy = oy0; oy <= oy1; ++oy) {
            for (int ox = ox0; ox <= ox1; ++ox) {
                int r0, r1, c0, c1;
                nst_window(d, oy, ox, &r0, &r1, &c0, &c1);
                sum += g[oy * d.ow + ox] / (float)((r1 - r0) * (c1 - c0));
            }
        }
        dx[e] = sum;
    }
}

// y += a·x.
extern "C" __global__ void nst_axpy(float a, const float* __restrict__ x, float* __restrict__ y, long long n) {
    GRID_STRIDE(e, n) { y[e] += a * x[e]; }
}

// Sums s[0..NST_BLOCK) (one value per thread) into s[0] in a fixed tree order.
// Needs blockDim.x == NST_BLOCK; every thread of the block must call it.
__device__ __forceinline__ void nst_tree_sum(double* s) {
    for (int half = NST_BLOCK / 2; half > 0; half /= 2) {
        __syncthreads();
        if ((int)threadIdx.x < half) s[threadIdx.x] += s[threadIdx.x + half];
    }
    __syncthreads();
}

// This block's sum of s into partials[blockIdx.x].
__device__ __forceinline__ void nst_block_store(double* s, double* partials) {
    nst_tree_sum(s);
    if (threadIdx.x == 0) partials[blockIdx.x] = s[0];
}

// *acc += Σ partials[0..count), in a fixed order. Launched as one block of NST_BLOCK threads, after the
// reduction that wrote the partials (same stream).
extern "C" __global__ void nst_finish_sum(const double* __restrict__ partials, int count, double* acc) {
    __shared__ double s[NST_BLOCK];
    double sum = 0.0;
    for (int i = (int)threadIdx.x; i < count; i += NST_BLOCK) sum += partials[i];
    s[threadIdx.x] = sum;
    nst_tree_sum(s);
    if (threadIdx.x == 0) *acc += s[0];
}

// out = a − b, and the block's Σ (a − b)² (differences taken in f64) into partials[blockIdx.x].
extern "C" __global__ void nst_sub_sumsq(const float* __restrict__ a, const float* __restrict__ b, float* __restrict__ out, double* partials, long long n) {
    __shared__ double s[NST_BLOCK];
    double partial = 0.0;
    GRID_STRIDE(e, n) {
        const double diff = (double)a[e] - (double)b[e];
        partial += diff * diff;
        out[e] = a[e] - b[e];
    }
    s[threadIdx.x] = partial;
    nst_block_store(s, partials);
}

// The block's count of NaN and infinite values of x into partials[blockIdx.x].
extern "C" __global__ void nst_count_nonfinite(const float* __restrict__ x, double* partials, long long n) {
    __shared__ double s[NST_BLOCK];
    double count = 0.0;
    GRID_STRIDE(e, n) {
        if ((__float_as_uint(x[e]) & 0x7f800000u) == 0x7f800000u) count += 1.0;
    }
    s[threadIdx.x] = count;
    nst_block_store(s, partials);
}

// Squared total variation of a [C, H, W] image: the block's Σ (x[i+1,j] − x[i,j])² + (x[i,j+1] − x[i,j])²
// (differences in f64, as nst-costs) into partials[blockIdx.x], and grad += weight · ∂TV/∂x (gathered, one
// thread per pixel; each term 2d rounded to f32, as nst-costs).
extern "C" __global__ void nst_tv_squared(const float* __restrict__ x, float* __restrict__ grad, double* partials, float weight, int c, int h, int w) {
    __shared__ double s[NST_BLOCK];
    double partial = 0.0;
    const long long n = (long long)c * h * w;
    GRID_STRIDE(e, n) {
        const Chw p = nst_chw(e, h, w);
        const int i = p.y, j = p.x;
        const double v = (double)x[e];
        float g = 0.0f;
        if (i + 1 < h) {
            const double dn = (double)x[e + w] - v;
            partial += dn * dn;
            g -= (float)(2.0 * dn);
        }
        if (j + 1 < w) {
            const double dr = (double)x[e + 1] - v;
            partial += dr * dr;
            g -= (float)(2.0 * dr);
        }
        if (i > 0) g += (float)(2.0 * (v - (double)x[e - w]));
        if (j > 0) g += (float)(2.0 * (v - (double)x[e - 1]));
        grad[e] += weight * g;
    }
    s[threadIdx.x] = partial;
    nst_block_store(s, partials);
}

// The scalars of one Adam step (mirrors `AdamScalars` in device/mod.rs).
struct AdamScalars {
    float beta1, beta2, learning_rate, epsilon;
    float c1, c2;     // 1 − β1ᵗ, 1 − β2ᵗ
    float alpha_t;    // α·√(1 − β2ᵗ)/(1 − β1ᵗ)
    int form;         // 0: Algorithm 1; 1: the ε̂ form of TensorFlow 1's ApplyAdam
};

// One Adam step on n parameters, in the expression order of nst-optim's `Adam::step` for each form, so
// that the update rounds as on the CPU (NVRTC compiles without contraction into FMAs).
extern "C" __global__ void nst_adam(float* __restrict__ x, const float* __restrict__ g, float* __restrict__ m, float* __restrict__ v,
                                    AdamScalars s, long long n) {
    GRID_STRIDE(e, n) {
        const float ge = g[e];
        float me = m[e];
        float ve = v[e];
        if (s.form == 0) {
            me = s.beta1 * me + (1.0f - s.beta1) * ge;
            ve = s.beta2 * ve + (1.0f - s.beta2) * ge * ge;
            const float m_hat = me / s.c1;
            const float v_hat = ve / s.c2;
            x[e] -= s.learning_rate * m_hat / (sqrtf(v_hat) + s.epsilon);
        } else {
            me += (ge - me) * (1.0f - s.beta1);
            ve += (ge * ge - ve) * (1.0f - s.beta2);
            x[e] -= (me * s.alpha_t) / (sqrtf(ve) + s.epsilon);
        }
        m[e] = me;
        v[e] = ve;
    }
}
