// The emulator's C++ half: the CUDA built-in variables, the barrier, and the kernels themselves.
#include "emu.h"

thread_local EmuDim3 blockIdx = {0, 0, 0};
thread_local EmuDim3 threadIdx = {0, 0, 0};
EmuDim3 blockDim = {1, 1, 1};
EmuDim3 gridDim = {1, 1, 1};
std::barrier<>* emu_block_barrier = nullptr;

extern "C" void emu_set_launch(unsigned grid, unsigned block) {
    gridDim = {grid, 1, 1};
    blockDim = {block, 1, 1};
}

extern "C" void emu_set_thread(unsigned block, unsigned thread) {
    blockIdx = {block, 0, 0};
    threadIdx = {thread, 0, 0};
}

extern "C" void emu_begin_block(unsigned threads) {
    emu_block_barrier = new std::barrier<>(threads);
}

extern "C" void emu_end_block() {
    delete emu_block_barrier;
    emu_block_barrier = nullptr;
}

#include "kernels.cu"
