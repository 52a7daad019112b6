# Source me (bash): sets up a CUDA 13.0 toolchain from PyPI for `--features cuda` builds on a
# machine with or without a GPU, and exports CUDA_HOME, PATH, CUDA_COMPUTE_CAP, LD_LIBRARY_PATH.
#
#   . scripts/cuda-env.sh        # idempotent: the second run only exports the variables
#
# Layout (both gitignored, at the repository root, override with ARFPN_CUDA_DIR):
#   cuda13-venv/  pip venv with nvidia-cuda-nvcc 13.0 etc. (~1.2 GB; 13.0 because a driver-580
#                 GPU accepts 13.0 PTX and not newer; the 12.x nvcc wheels contain no nvcc)
#   cuda13-home/  CUDA_HOME for the linker: bin/include/nvvm links, unversioned .so links and a
#                 stub libcuda.so (every cu* entry point returns CUDA_ERROR_NO_DEVICE) so that a
#                 cuda build links and its test binaries run without a driver (GPU tests skip).
# See /work/shared/docs/candle-0.11-notes.md section 3. Never ship the stub to a GPU machine:
# there, put the real driver's libcuda.so.1 first on LD_LIBRARY_PATH (or leave cuda13-home/lib64/stubs off it).

_arfpn_cuda_setup() {
  local root dir venv home py nv src
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  dir="${ARFPN_CUDA_DIR:-$root}"
  venv="$dir/cuda13-venv"
  home="$dir/cuda13-home"
  py="${PYTHON:-python3}"
  if [ ! -x "$venv/bin/nvcc-installed" ]; then
    "$py" -m venv "$venv" || return 1
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
      "nvidia-cuda-nvcc==13.0.88" "nvidia-cuda-crt==13.0.88" "nvidia-nvvm==13.0.88" \
      "nvidia-cuda-runtime==13.0.96" "nvidia-cuda-nvrtc==13.0.88" "nvidia-cuda-cccl==13.0.85" \
      "nvidia-cublas==13.0.*" "nvidia-curand==10.4.0.35" || return 1
    printf '#!/bin/sh\n' > "$venv/bin/nvcc-installed" && chmod +x "$venv/bin/nvcc-installed"
  fi
  nv="$(ls -d "$venv"/lib/python3*/site-packages/nvidia/cu13 | head -1)"
  [ -x "$nv/bin/nvcc" ] || { echo "cuda-env.sh: no nvcc under $nv" >&2; return 1; }
  if [ ! -e "$home/lib64/stubs/libcuda.so" ]; then
    mkdir -p "$home/lib64/stubs"
    local d f l
    for d in bin include nvvm; do ln -sfn "$nv/$d" "$home/$d"; done
    for f in "$nv"/lib/*.so.*; do ln -sf "$f" "$home/lib64/"; done
    for l in cudart cublas cublasLt curand nvrtc; do
      f="$(cd "$home/lib64" && ls lib$l.so.* | head -1)"
      ln -sf "$f" "$home/lib64/lib$l.so"
    done
    # The stub needs the list of driver functions cudarc declares: fetch cudarc if needed.
    # (`|| true`: on a fresh machine the glob matches nothing yet, and a failing `ls` must
    # not end a caller running under `set -euo pipefail`.)
    src="$(ls "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-0.19.10/src/driver/sys/mod.rs 2>/dev/null | head -1 || true)"
    if [ -z "$src" ]; then
      (cd "$root" && cargo fetch --quiet) || return 1
      src="$(ls "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-0.19.10/src/driver/sys/mod.rs 2>/dev/null | head -1 || true)"
      if [ -z "$src" ]; then
        echo "cuda-env.sh: cudarc 0.19.10's sources are not in the cargo registry after cargo fetch" >&2
        return 1
      fi
    fi
    grep -oP '^pub unsafe fn \Kcu\w+(?=\()' "$src" | sort -u \
      | sed 's/.*/int &(void){return 100;}/' > "$home/lib64/stubs/stub.c"
    gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$home/lib64/stubs/libcuda.so" "$home/lib64/stubs/stub.c" || return 1
    ln -sf libcuda.so "$home/lib64/stubs/libcuda.so.1"
  fi
  export CUDA_HOME="$home" CUDA_PATH="$home" NVCC="$home/bin/nvcc"
  export PATH="$home/bin:$PATH"
  export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}" CUDAFORGE_THREADS="${CUDAFORGE_THREADS:-2}"
  # Run time: the CUDA 13 libraries, then (only where no driver is installed) the stub libcuda.
  export LD_LIBRARY_PATH="$home/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  if ! ldconfig -p 2>/dev/null | grep -q 'libcuda\.so\.1 '; then
    export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$home/lib64/stubs"
  fi
  export LIBRARY_PATH="$home/lib64:$home/lib64/stubs${LIBRARY_PATH:+:$LIBRARY_PATH}"
}
_arfpn_cuda_setup
