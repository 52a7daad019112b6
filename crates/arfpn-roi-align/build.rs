//! Compiles `kernels/*.cu` to PTX with nvcc, only when the `cuda` feature is on.
//!
//! Environment: `NVCC` (default `nvcc` on `PATH`), `CUDA_COMPUTE_CAP` (default 90, i.e.
//! `compute_90` PTX, which the driver JIT-compiles for H100/H200 and newer cards).
use std::env;
use std::path::PathBuf;
use std::process::Command;

const KERNELS: &[&str] = &["roi_align", "roi_pool"];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=CUDA_COMPUTE_CAP");
    println!("cargo:rerun-if-env-changed=NVCC");
    for k in KERNELS {
        println!("cargo:rerun-if-changed=kernels/{k}.cu");
    }
    if env::var_os("CARGO_FEATURE_CUDA").is_none() {
        return;
    }
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let nvcc = env::var("NVCC").unwrap_or_else(|_| "nvcc".to_string());
    let cap = env::var("CUDA_COMPUTE_CAP").unwrap_or_else(|_| "90".to_string());
    let cap: String = cap.chars().filter(|c| c.is_ascii_digit()).collect();
    for k in KERNELS {
        let ptx = out.join(format!("{k}.ptx"));
        let status = Command::new(&nvcc)
            .args(["--ptx", "-O3", "-std=c++17"])
            .arg(format!("-arch=compute_{cap}"))
            .arg("-o")
            .arg(&ptx)
            .arg(format!("kernels/{k}.cu"))
            .status()
            .unwrap_or_else(|e| {
                panic!("feature `cuda`: cannot run `{nvcc}` ({e}); source scripts/cuda-env.sh or set NVCC")
            });
        assert!(status.success(), "nvcc failed on kernels/{k}.cu");
    }
}
