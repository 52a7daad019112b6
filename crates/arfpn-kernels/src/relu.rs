//! ReLU and the residual unit's `relu(a + b)` as CPU custom ops: one parallel pass forward
//! and one parallel pass backward.
//!
//! candle's own `relu` runs single-threaded, and its backward is five full-size passes
//! (`zeros_like`, `ge`, `to_dtype`, `mul`, then the accumulation), also single-threaded: in
//! a ResNet training step, where every convolution is followed by a ReLU, that serial work
//! is what kept two threads from being faster than one. Here the backward is
//! `dx = dy · [y > 0]` from the output `y` alone — PyTorch's rule (gradient 0 at 0; candle's
//! is 1 there). On other devices and dtypes both functions fall back to candle's ops.

use crate::dispatch_float;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};

use crate::element::Element;
use crate::error::shape_err;
use crate::storage::{contiguous_slice, fused_cpu, par_build};

/// Elements per parallel task: large enough to amortise the task, small enough to split a
/// feature map among threads.
const CHUNK: usize = 1 << 15;

/// `max(x, 0)` with a parallel CPU forward and backward (see the module docs).
///
/// ```
/// use candle_core::{Device, Tensor};
/// let x = Tensor::new(&[-1f32, 0.0, 2.0], &Device::Cpu)?;
/// assert_eq!(arfpn_kernels::relu(&x)?.to_vec1::<f32>()?, [0.0, 0.0, 2.0]);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn relu(x: &Tensor) -> Result<Tensor> {
    if !fused_cpu(x, &[]) {
        return x.relu();
    }
    x.contiguous()?.apply_op1(Relu)
}

/// `max(a + b, 0)` for two tensors of one shape (the end of a residual unit), in one pass;
/// each input's gradient is `dy · [y > 0]`.
///
/// ```
/// use candle_core::{Device, Tensor};
/// let a = Tensor::new(&[-1f32, 1.0, 2.0], &Device::Cpu)?;
/// let b = Tensor::new(&[0.5f32, -3.0, 1.0], &Device::Cpu)?;
/// assert_eq!(arfpn_kernels::add_relu(&a, &b)?.to_vec1::<f32>()?, [0.0, 0.0, 3.0]);
/// # Ok::<(), candle_core::Error>(())
/// ```
pub fn add_relu(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    if a.dims() != b.dims() {
        return Err(shape_err(
            "add_relu",
            "b",
            b.dims(),
            format!("{:?} (the shape of a)", a.dims()),
        ));
    }
    if !fused_cpu(a, &[b]) {
        return (a + b)?.relu();
    }
    a.contiguous()?.apply_op2(&b.contiguous()?, AddRelu)
}

fn map1<T: Element>(x: &[T], f: impl Fn(T) -> T + Sync + Send) -> Vec<T> {
    // SAFETY: chunk i of the output is written whole from chunk i of `x` (same length).
    unsafe {
        par_build(x.len(), CHUNK, |i, yc| {
            for (o, &v) in yc.iter_mut().zip(&x[i * CHUNK..]) {
                o.write(f(v));
            }
        })
    }
}

fn map2<T: Element>(a: &[T], b: &[T], f: impl Fn(T, T) -> T + Sync + Send) -> Vec<T> {
    assert_eq!(a.len(), b.len());
    // SAFETY: chunk i of the output is written whole from chunks i of `a` and `b` (same
    // lengths, asserted).
    unsafe {
        par_build(a.len(), CHUNK, |i, yc| {
            let (ac, bc) = (&a[i * CHUNK..], &b[i * CHUNK..]);
            for ((o, &u), &v) in yc.iter_mut().zip(ac).zip(bc) {
                o.write(f(u, v));
            }
        })
    }
}

pub(crate) fn relu_of<T: Element>(v: T) -> T {
    // NaN stays NaN, as in candle and PyTorch.
    if v > T::ZERO || v.is_nan() {
        v
    } else {
        T::ZERO
    }
}

/// The forward of [`relu`].
#[derive(Clone, Copy, Debug)]
struct Relu;

impl CustomOp1 for Relu {
    fn name(&self) -> &'static str {
        "relu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let out = dispatch_float!("relu", s, |T| {
            map1(contiguous_slice::<T>(s, l, "relu", "x")?, relu_of)
        });
        Ok((out, l.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(relu_grad(dy, y)?))
    }
}

/// The forward of [`add_relu`].
#[derive(Clone, Copy, Debug)]
struct AddRelu;

impl CustomOp2 for AddRelu {
    fn name(&self) -> &'static str {
        "add_relu"
    }

    fn cpu_fwd(
        &self,
        sa: &CpuStorage,
        la: &Layout,
        sb: &CpuStorage,
        lb: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let out = dispatch_float!("add_relu", sa, |T| map2(
            contiguous_slice::<T>(sa, la, "add_relu", "a")?,
            contiguous_slice::<T>(sb, lb, "add_relu", "b")?,
            |u, v| relu_of(u + v),
        ));
        Ok((out, la.shape().clone()))
    }

    fn bwd(
        &self,
        _a: &Tensor,
        _b: &Tensor,
        y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let g = relu_grad(dy, y)?;
        Ok((Some(g.clone()), Some(g)))
    }
}

/// `dy · [y > 0]` (no gradient of its own: second derivatives of ReLU are zero almost
/// everywhere, and nothing here differentiates twice).
pub(crate) fn relu_grad(dy: &Tensor, y: &Tensor) -> Result<Tensor> {
    dy.contiguous()?
        .apply_op2_no_bwd(&y.contiguous()?, &ReluGrad)
}

#[derive(Clone, Copy, Debug)]
struct ReluGrad;

fn mask<T: Element>(d: T, y: T) -> T {
    if y > T::ZERO {
        d
    } else {
        T::ZERO
    }
}

impl CustomOp2 for ReluGrad {
    fn name(&self) -> &'static str {
        "relu_grad"
    }

    fn cpu_fwd(
        &self,
        sd: &CpuStorage,
        ld: &Layout,
        sy: &CpuStorage,
        ly: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let out = dispatch_float!("relu_grad", sd, |T| map2(
            contiguous_slice::<T>(sd, ld, "relu_grad", "dy")?,
            contiguous_slice::<T>(sy, ly, "relu_grad", "y")?,
            mask,
        ));
        Ok((out, ld.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var};

    fn values(n: usize) -> Vec<f64> {
        // Away from 0, where ReLU is not differentiable.
        (0..n)
            .map(|i| {
                let v = ((i * 37 + 11) % 101) as f64 / 50.0 - 1.0;
                if v.abs() < 0.05 {
                    0.3
                } else {
                    v
                }
            })
            .collect()
    }

    #[test]
    fn matches_candle_forward_and_backward_across_chunks() -> Result<()> {
        let dev = Device::Cpu;
        // More elements than one parallel chunk, so the split is exercised.
        let n = 3 * CHUNK + 7;
        let x = Var::from_vec(values(n), n, &dev)?;
        let w = Tensor::new(values(n + 3)[3..].to_vec(), &dev)?;
        let ours = (relu(x.as_tensor())? * &w)?.sum_all()?;
        let theirs = (x.as_tensor().relu()? * &w)?.sum_all()?;
        assert!((ours.to_scalar::<f64>()? - theirs.to_scalar::<f64>()?).abs() < 1e-9);
        let g1 = ours.backward()?.get(x.as_tensor()).cloned().expect("grad");
        let g2 = theirs
            .backward()?
            .get(x.as_tensor())
            .cloned()
            .expect("grad");
        assert_eq!(g1.to_vec1::<f64>()?, g2.to_vec1::<f64>()?);
        Ok(())
    }

    #[test]
    fn add_relu_gradients_reach_both_inputs() -> Result<()> {
        let dev = Device::Cpu;
        let n = CHUNK + 5;
        let a = Var::from_vec(values(n), n, &dev)?;
        let b = Var::from_vec(values(n + 9)[9..].to_vec(), n, &dev)?;
        let w = Tensor::new(values(n + 4)[4..].to_vec(), &dev)?;
        let ours = (add_relu(a.as_tensor(), b.as_tensor())? * &w)?.sum_all()?;
        let theirs = ((a.as_tensor() + b.as_tensor())?.relu()? * &w)?.sum_all()?;
        assert!((ours.to_scalar::<f64>()? - theirs.to_scalar::<f64>()?).abs() < 1e-9);
        let (go, gt) = (ours.backward()?, theirs.backward()?);
        for v in [&a, &b] {
            let g1 = go.get(v.as_tensor()).expect("grad").to_vec1::<f64>()?;
            let g2 = gt.get(v.as_tensor()).expect("grad").to_vec1::<f64>()?;
            // Equal except where a + b == 0 exactly (candle's gradient is 1 there, ours 0).
            let sum: Vec<f64> = (a.as_tensor() + b.as_tensor())?.to_vec1()?;
            for i in 0..n {
                if sum[i] != 0.0 {
                    assert_eq!(g1[i], g2[i], "element {i}");
                }
            }
        }
        Ok(())
    }

    #[test]
    fn zero_gets_zero_gradient_nan_propagates_and_shapes_are_checked() -> Result<()> {
        let dev = Device::Cpu;
        let x = Var::new(&[0f32, -2.0, 3.0], &dev)?;
        let g = relu(x.as_tensor())?.sum_all()?.backward()?;
        assert_eq!(
            g.get(x.as_tensor()).expect("grad").to_vec1::<f32>()?,
            [0.0, 0.0, 1.0]
        );
        let nan = Tensor::new(&[f32::NAN, 1.0], &dev)?;
        assert!(relu(&nan)?.to_vec1::<f32>()?[0].is_nan());
        let a = Tensor::zeros((2, 3), DType::F32, &dev)?;
        let b = Tensor::zeros((3, 2), DType::F32, &dev)?;
        assert!(add_relu(&a, &b).is_err());
        // Other dtypes take candle's path.
        let h = Tensor::new(&[-1f32, 2.0], &dev)?.to_dtype(DType::BF16)?;
        assert_eq!(
            relu(&h)?.to_dtype(DType::F32)?.to_vec1::<f32>()?,
            [0.0, 2.0]
        );
        Ok(())
    }
}
