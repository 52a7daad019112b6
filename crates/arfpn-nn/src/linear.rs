//! A fully connected layer with torchvision's parameter names (`weight` `[out, in]`, `bias`).

use candle_core::{Module, Result, Tensor};
use candle_nn::{Init, VarBuilder};

use crate::error::config_err;

/// `y = x Wᵀ + b` on `[N, in]` inputs.
#[derive(Clone, Debug)]
pub struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    /// A layer around existing tensors (`weight` `[out, in]`, `bias` `[out]`).
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Self {
        Self { weight, bias }
    }

    /// `[out, in]`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// `[out]`.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = arfpn_kernels::matmul_transposed(x, &self.weight)?;
        match &self.bias {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }
}

/// A linear layer `in_features → out_features` with weights drawn as `init` and a zero bias,
/// named `weight`/`bias` under `vb`.
///
/// ```
/// use arfpn_nn::{inits, linear};
/// use candle_core::{DType, Device, Module, Tensor};
/// let vm = candle_nn::VarMap::new();
/// let vb = candle_nn::VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
/// let fc = linear(3, 2, true, inits::TORCH_DEFAULT, vb.pp("fc")).unwrap();
/// let y = fc.forward(&Tensor::zeros((5, 3), DType::F32, &Device::Cpu).unwrap()).unwrap();
/// assert_eq!(y.dims(), [5, 2]);
/// ```
pub fn linear(
    in_features: usize,
    out_features: usize,
    bias: bool,
    init: Init,
    vb: VarBuilder,
) -> Result<Linear> {
    if in_features == 0 || out_features == 0 {
        return Err(config_err(
            "linear",
            "features",
            format!("in ({in_features}) and out ({out_features}) must be >= 1"),
        ));
    }
    let weight = vb.get_with_hints((out_features, in_features), "weight", init)?;
    let bias = if bias {
        Some(vb.get_with_hints(out_features, "bias", Init::Const(0.0))?)
    } else {
        None
    };
    Ok(Linear::new(weight, bias))
}
