// What the kernels of kernels.cu use from CUDA, for running them on the CPU.
//
// A launch runs its blocks one after another. Within a block, kernels that never call __syncthreads run
// their threads one after another on the calling thread; kernels that do run each thread of the block on
// its own OS thread, meeting at a std::barrier, so a block-level reduction runs as written.
// `__shared__` becomes `static`: one block at a time shares it, as on the GPU.
#pragma once
#include <barrier>
#include <math.h>

struct EmuDim3 {
    unsigned x, y, z;
};

extern thread_local EmuDim3 blockIdx;
extern thread_local EmuDim3 threadIdx;
extern EmuDim3 blockDim;
extern EmuDim3 gridDim;
extern std::barrier<>* emu_block_barrier;

#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static

inline void __syncthreads() { emu_block_barrier->arrive_and_wait(); }

inline unsigned __float_as_uint(float f) {
    unsigned u;
    __builtin_memcpy(&u, &f, sizeof u);
    return u;
}


