//! Seeded weight initialisation: [`SeededVarMap`].
//!
//! candle's `Init::var` draws from the device's unseeded generator, so two builds of one
//! model differ. [`SeededVarMap`] is a `VarBuilder` backend that draws every new variable
//! from [`SplitMix64`], seeded by the model seed **and the variable's full name**: the
//! weights depend only on `(seed, name, shape, init)`, not on construction order, thread or
//! platform. Values are drawn in f64 on the CPU and then cast and moved to the device.
//!
//! ```
//! use arfpn_nn::SeededVarMap;
//! use candle_core::{DType, Device};
//! use candle_nn::Init;
//! let a = SeededVarMap::new(7);
//! let b = SeededVarMap::new(7);
//! let wa = a.var_builder(DType::F32, &Device::Cpu).get_with_hints((4, 3), "fc.weight", Init::Randn { mean: 0.0, stdev: 1.0 }).unwrap();
//! let wb = b.var_builder(DType::F32, &Device::Cpu).get_with_hints((4, 3), "fc.weight", Init::Randn { mean: 0.0, stdev: 1.0 }).unwrap();
//! assert_eq!(wa.to_vec2::<f32>().unwrap(), wb.to_vec2::<f32>().unwrap());
//! assert_eq!(a.var_map().all_vars().len(), 1);
//! ```

use arfpn_boxes::SplitMix64;
use candle_core::{DType, Device, Result, Shape, Tensor, Var};
use candle_nn::init::{FanInOut, NormalOrUniform};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, VarBuilder, VarMap};

/// A [`VarMap`] whose new variables are drawn from a seeded generator (see the module docs).
/// Cloning shares the variables, like `VarMap`.
#[derive(Clone)]
pub struct SeededVarMap {
    vars: VarMap,
    seed: u64,
}

/// FNV-1a of the name, mixed with the seed: the per-variable stream.
fn stream_seed(seed: u64, name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// The values of a new variable of `shape` drawn as `init` from `rng` (row-major).
pub fn init_values(init: Init, shape: &Shape, rng: &mut SplitMix64) -> Vec<f64> {
    let n = shape.elem_count();
    match init {
        Init::Const(v) => vec![v; n],
        Init::Randn { mean, stdev } => (0..n).map(|_| mean + stdev * rng.normal()).collect(),
        Init::Uniform { lo, up } => (0..n).map(|_| rng.range(lo, up)).collect(),
        Init::Kaiming {
            dist,
            fan,
            non_linearity,
        } => {
            let fan = fan_of(fan, shape).max(1) as f64;
            let std = non_linearity.gain() / fan.sqrt();
            match dist {
                NormalOrUniform::Normal => (0..n).map(|_| std * rng.normal()).collect(),
                NormalOrUniform::Uniform => {
                    let bound = 3f64.sqrt() * std;
                    (0..n).map(|_| rng.range(-bound, bound)).collect()
                }
            }
        }
    }
}

/// PyTorch's fan: `dims[1] * receptive field` (in) or `dims[0] * receptive field` (out).
fn fan_of(fan: FanInOut, shape: &Shape) -> usize {
    fan.for_shape(shape)
}

impl SeededVarMap {
    /// An empty map whose variables will be drawn from `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            vars: VarMap::new(),
            seed,
        }
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The variables (shared with this map).
    pub fn var_map(&self) -> &VarMap {
        &self.vars
    }

    /// A `VarBuilder` that creates missing variables here, seeded.
    pub fn var_builder(&self, dtype: DType, device: &Device) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(self.clone()), dtype, device.clone())
    }

    /// Every variable, sorted by name.
    pub fn named_vars(&self) -> Vec<(String, Var)> {
        let data = self.vars.data().lock().unwrap_or_else(|p| p.into_inner());
        let mut v: Vec<(String, Var)> = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

impl SimpleBackend for SeededVarMap {
    fn get(&self, s: Shape, name: &str, h: Init, dtype: DType, dev: &Device) -> Result<Tensor> {
        let mut data = self.vars.data().lock().unwrap_or_else(|p| p.into_inner());
        if let Some(v) = data.get(name) {
            if v.shape() != &s {
                candle_core::bail!("shape mismatch on {name}: {s:?} <> {:?}", v.shape());
            }
            return Ok(v.as_tensor().clone());
        }
        let mut rng = SplitMix64::new(stream_seed(self.seed, name));
        let values = init_values(h, &s, &mut rng);
        let t = Tensor::from_vec(values, s, &Device::Cpu)?
            .to_dtype(dtype)?
            .to_device(dev)?;
        let var = Var::from_tensor(&t)?;
        let out = var.as_tensor().clone();
        data.insert(name.to_string(), var);
        Ok(out)
    }

    fn get_unchecked(&self, name: &str, _dtype: DType, _dev: &Device) -> Result<Tensor> {
        let data = self.vars.data().lock().unwrap_or_else(|p| p.into_inner());
        match data.get(name) {
            Some(v) => Ok(v.as_tensor().clone()),
            None => {
                candle_core::bail!("no variable named `{name}` (a shape is needed to create it)")
            }
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.vars
            .data()
            .lock()
            .map(|d| d.contains_key(name))
            .unwrap_or(false)
    }
}

/// The initialisations the arfpn modules use, by name (what torchvision and detectron2 use).
pub mod inits {
    use candle_nn::init::{FanInOut, NonLinearity, NormalOrUniform};
    use candle_nn::Init;

    /// ResNet convolutions: `kaiming_normal_(mode="fan_out", nonlinearity="relu")`.
    pub const KAIMING_FAN_OUT: Init = Init::Kaiming {
        dist: NormalOrUniform::Normal,
        fan: FanInOut::FanOut,
        non_linearity: NonLinearity::ReLU,
    };
    /// FPN convolutions (torchvision, detectron2 `c2_xavier_fill`): `kaiming_uniform_(a=1)`,
    /// i.e. uniform in `±sqrt(3 / fan_in)`.
    pub const KAIMING_UNIFORM_A1: Init = Init::Kaiming {
        dist: NormalOrUniform::Uniform,
        fan: FanInOut::FanIn,
        non_linearity: NonLinearity::Linear,
    };
    /// PyTorch's default `nn.Linear`/`nn.Conv2d` weight init: `kaiming_uniform_(a=sqrt(5))`,
    /// uniform in `±1/sqrt(fan_in)`.
    pub const TORCH_DEFAULT: Init = Init::Kaiming {
        dist: NormalOrUniform::Uniform,
        fan: FanInOut::FanIn,
        non_linearity: NonLinearity::ExplicitGain(0.577_350_269_189_625_8), // sqrt(1/3)
    };
    /// `N(0, std²)`.
    pub const fn normal(std: f64) -> Init {
        Init::Randn {
            mean: 0.0,
            stdev: std,
        }
    }
    /// Zeros (biases).
    pub const ZEROS: Init = Init::Const(0.0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_weights_other_seed_other_weights_and_order_free() {
        let dev = Device::Cpu;
        let init = inits::KAIMING_FAN_OUT;
        let a = SeededVarMap::new(1);
        let va = a.var_builder(DType::F32, &dev);
        let x1 = va.get_with_hints((8, 4, 3, 3), "a.weight", init).unwrap();
        let y1 = va
            .get_with_hints((5,), "b.weight", inits::normal(0.01))
            .unwrap();
        // Other order, same seed: same values per name.
        let b = SeededVarMap::new(1);
        let vb = b.var_builder(DType::F32, &dev);
        let y2 = vb
            .get_with_hints((5,), "b.weight", inits::normal(0.01))
            .unwrap();
        let x2 = vb.get_with_hints((8, 4, 3, 3), "a.weight", init).unwrap();
        let f = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(f(&x1), f(&x2));
        assert_eq!(f(&y1), f(&y2));
        let c = SeededVarMap::new(2);
        let x3 = c
            .var_builder(DType::F32, &dev)
            .get_with_hints((8, 4, 3, 3), "a.weight", init)
            .unwrap();
        assert_ne!(f(&x1), f(&x3));
        // Existing variables are returned, not redrawn; a shape change is an error.
        let again = va.get_with_hints((8, 4, 3, 3), "a.weight", init).unwrap();
        assert_eq!(f(&again), f(&x1));
        assert!(va.get_with_hints((8, 4), "a.weight", init).is_err());
    }

    #[test]
    fn init_statistics_match_their_definitions() {
        let mut rng = SplitMix64::new(3);
        let s = Shape::from((64, 32, 3, 3));
        // kaiming fan-out: std = sqrt(2 / (64 * 9)).
        let v = init_values(inits::KAIMING_FAN_OUT, &s, &mut rng);
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let std = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
        let want = (2.0 / (64.0 * 9.0f64)).sqrt();
        assert!(mean.abs() < 0.01 * want * 10.0, "{mean}");
        assert!((std / want - 1.0).abs() < 0.03, "{std} vs {want}");
        // kaiming uniform a=1: bound sqrt(3 / fan_in) = sqrt(3 / 288).
        let v = init_values(inits::KAIMING_UNIFORM_A1, &s, &mut rng);
        let bound = (3.0 / 288.0f64).sqrt();
        let max = v.iter().cloned().fold(0.0f64, |m, x| m.max(x.abs()));
        assert!(max <= bound && max > 0.98 * bound, "{max} vs {bound}");
        // torch default: bound 1/sqrt(fan_in).
        let v = init_values(inits::TORCH_DEFAULT, &s, &mut rng);
        let bound = 1.0 / 288.0f64.sqrt();
        let max = v.iter().cloned().fold(0.0f64, |m, x| m.max(x.abs()));
        assert!(
            max <= bound * (1.0 + 1e-12) && max > 0.98 * bound,
            "{max} vs {bound}"
        );
    }
}
