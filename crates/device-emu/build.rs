//! Compiles the device backend's kernels (`tensor-ops/src/device/kernels.cu`) as C++ with `emu.h`.

fn main() {
    let kernels = "../tensor-ops/src/device/kernels.cu";
    println!("cargo::rerun-if-changed={kernels}");
    println!("cargo::rerun-if-changed=src/emu.h");
    println!("cargo::rerun-if-changed=src/emu.cpp");
    cc::Build::new()
        .cpp(true)
        .std("c++20")
        .file("src/emu.cpp")
        .include("../tensor-ops/src/device")
        .warnings(true)
        .extra_warnings(true)
        .flag_if_supported("-Wno-unused-parameter")
        // As NVRTC's --fmad=false: no contraction into fused multiply-adds (GCC's C++ default is `fast`).
        .flag_if_supported("-ffp-contract=off")
        .opt_level(2)
        .compile("nst_kernels_emu");
}
