//! `x · wᵀ`, the product of a linear layer: candle's matmul, or inside a
//! [`MatmulPrecision::Bf16`](crate::MatmulPrecision::Bf16) scope on a CPU with AMX bf16
//! operands with f32 accumulation (forward and both gradients).

use candle_core::{CpuStorage, CustomOp2, DType, Layout, Result, Shape, Tensor};

use crate::amx::{self, up32, PackedA};
use crate::storage::contiguous_slice;

/// `x [m, k] · wᵀ` for `w [n, k]` (a linear layer's product; `x` of any rank with candle's
/// matmul broadcasting): in bf16 on AMX inside a [`with_matmul_precision`](crate::with_matmul_precision)
/// `Bf16` scope for rank-2 f32 CPU tensors, candle's `x.matmul(wᵀ)` otherwise.
///
/// ```
/// use candle_core::{Device, Tensor};
/// let x = Tensor::new(&[[1f32, 2.0]], &Device::Cpu)?;
/// let w = Tensor::new(&[[1f32, 0.0], [0.0, 3.0], [1.0, 1.0]], &Device::Cpu)?;
/// let y = arfpn_kernels::matmul_transposed(&x, &w)?;
/// assert_eq!(y.to_vec2::<f32>()?, [[1.0, 6.0, 3.0]]);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn matmul_transposed(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let bf16 = crate::precision::use_bf16()
        && x.device().is_cpu()
        && x.rank() == 2
        && x.dtype() == DType::F32
        && w.dtype() == DType::F32;
    if bf16 {
        x.contiguous()?.apply_op2(&w.contiguous()?, MatmulBf16)
    } else {
        x.matmul(&w.t()?)
    }
}

/// `x [m, k] · wᵀ (w [n, k])` with bf16 operands and f32 accumulation on AMX (the
/// [`MatmulPrecision::Bf16`](crate::MatmulPrecision::Bf16) path).
struct MatmulBf16;

impl CustomOp2 for MatmulBf16 {
    fn name(&self) -> &'static str {
        "arfpn-linear-bf16"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (m, k) = l1.shape().dims2()?;
        let (n, k2) = l2.shape().dims2()?;
        if k != k2 {
            return Err(crate::error::shape_err(
                "linear",
                "x",
                &[m, k],
                format!("[N, {k2}] (the weight's in_features)"),
            ));
        }
        let x = contiguous_slice::<f32>(s1, l1, "linear", "x")?;
        let w = contiguous_slice::<f32>(s2, l2, "linear", "weight")?;
        let a = PackedA::new(x, m, k, (k, 1));
        let mut b = vec![0u32; up32(k) / 2 * up32(n)];
        amx::pack_b_transposed(w, n, k, k, &mut b);
        Ok((CpuStorage::F32(product(&a, &b, n)), Shape::from((m, n))))
    }
    /// bf16 products again when the backward runs inside the bf16 scope, f32 otherwise.
    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let bf16 = crate::precision::use_bf16();
        let grad = grad.contiguous()?;
        let dx = match (x.track_op(), bf16) {
            (false, _) => None,
            (true, true) => Some(grad.apply_op2_no_bwd(w, &GradProduct { weight: false })?),
            (true, false) => Some(grad.matmul(w)?),
        };
        let dw = match (w.track_op(), bf16) {
            (false, _) => None,
            (true, true) => Some(grad.apply_op2_no_bwd(x, &GradProduct { weight: true })?),
            (true, false) => Some(grad.t()?.matmul(x)?),
        };
        Ok((dx, dw))
    }
}

/// `C [a.m, n]` = `A · B` (packed), the padding cut off.
fn product(a: &PackedA, b: &[u32], n: usize) -> Vec<f32> {
    let np = up32(n);
    let mut c = vec![0f32; up32(a.m) * np];
    amx::matmul_parallel(a, b, n, &mut c);
    let mut y = Vec::with_capacity(a.m * n);
    for row in c.chunks_exact(np).take(a.m) {
        y.extend_from_slice(&row[..n]);
    }
    y
}

/// A backward product of [`MatmulBf16`] in bf16: `grad [m, n]` times a second operand
/// `r [rows, k]` (rows = n or m): the input gradient `dx = grad · w` (`weight: false`, `r` is
/// `w [n, k]`) or the weight gradient `dw = gradᵀ · x` (`weight: true`, `r` is `x [m, k]`).
struct GradProduct {
    weight: bool,
}

impl CustomOp2 for GradProduct {
    fn name(&self) -> &'static str {
        match self.weight {
            false => "arfpn-linear-bf16-bwd-input",
            true => "arfpn-linear-bf16-bwd-weight",
        }
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let g = contiguous_slice::<f32>(s1, l1, "linear", "grad")?;
        let r = contiguous_slice::<f32>(s2, l2, "linear", "operand")?;
        let (m, n) = l1.shape().dims2()?;
        let (rows, k) = l2.shape().dims2()?;
        // The left operand: grad, or gradᵀ (column stride n) for the weight gradient.
        let a = match self.weight {
            false => PackedA::new(g, m, n, (n, 1)),
            true => PackedA::new(g, n, m, (1, n)),
        };
        debug_assert_eq!(a.k, rows);
        let mut b = vec![0u32; up32(rows) / 2 * up32(k)];
        amx::pack_b_rows_parallel(r, rows, k, k, &mut b);
        let out = a.m;
        Ok((CpuStorage::F32(product(&a, &b, k)), Shape::from((out, k))))
    }
}
