//! The feature pyramid network (Lin et al. 2017): lateral 1×1, top-down nearest 2× + add, 3×3
//! outputs, plus P6 by stride-2 subsampling of P5.

use crate::config::FpnConfig;
use crate::error::{FpnError, Result};
use arfpn_kernels::{add_upsample_nearest2x, Conv2dConfig};
use arfpn_nn::{conv2d, Conv2d};
use arfpn_nn::{FeatureMap, FeatureMaps, ShapeSpec};
use candle_core::{Module, Tensor};
use candle_nn::VarBuilder;

/// A feature pyramid over backbone outputs whose strides double from level to level.
///
/// Outputs are named `p{log2(stride)}` (`p2`–`p5` for C2–C5, plus `p6`), fine to coarse, each
/// with `out_channels` channels. Parameters follow torchvision's `FeaturePyramidNetwork`:
/// `inner_blocks.{i}.0.{weight,bias}` (the 1×1 laterals) and `layer_blocks.{i}.0.{weight,bias}`
/// (the 3×3 outputs), `i` the input level's position, finest first (detectron2 calls them
/// `fpn_lateral{l}` / `fpn_output{l}` with `l = i + 2` for C2–C5). New weights get
/// torchvision's `kaiming_uniform_(a=1)`, biases zero.
///
/// **Input size:** the top-down pathway needs every input level to be exactly twice the size
/// of the next coarser one, so images must be padded to a multiple of the coarsest input
/// stride ([`Fpn::size_divisibility`], 32 for C2–C5): use [`arfpn_nn::ImageBatch`] / [`arfpn_nn::pad_to_multiple`].
/// [`Fpn::forward`] checks this and returns [`FpnError::Input`] otherwise; it never pads.
///
/// ```
/// use arfpn_fpn::{Fpn, FpnConfig};
/// use arfpn_nn::ShapeSpec;
/// use candle_core::{DType, Device};
/// use candle_nn::{VarBuilder, VarMap};
/// let ins = [ShapeSpec::new("c2", 16, 4), ShapeSpec::new("c3", 32, 8)];
/// let vm = VarMap::new();
/// let fpn = Fpn::new(&FpnConfig { out_channels: 8, extra_p6: true }, &ins,
///                    VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu)).unwrap();
/// let names: Vec<_> = fpn.output_shapes().into_iter().map(|s| (s.name, s.stride)).collect();
/// assert_eq!(names, [("p2".into(), 4), ("p3".into(), 8), ("p4".into(), 16)]);
/// ```
pub struct Fpn {
    laterals: Vec<Conv2d>,
    outputs: Vec<Conv2d>,
    in_shapes: Vec<ShapeSpec>,
    out_shapes: Vec<ShapeSpec>,
    extra_p6: bool,
}

fn log2_exact(stride: usize) -> Option<u32> {
    stride.is_power_of_two().then(|| stride.trailing_zeros())
}

impl Fpn {
    /// Builds the FPN for inputs described by `in_shapes` (fine to coarse), checking that
    /// strides are powers of two that double from level to level and channels are non-zero.
    pub fn new(config: &FpnConfig, in_shapes: &[ShapeSpec], vb: VarBuilder) -> Result<Self> {
        if config.out_channels == 0 {
            return Err(FpnError::Config {
                field: "out_channels".into(),
                reason: "must be at least 1".into(),
            });
        }
        if in_shapes.is_empty() {
            return Err(FpnError::InputShapes("no input levels".into()));
        }
        let mut levels = Vec::with_capacity(in_shapes.len());
        for (i, s) in in_shapes.iter().enumerate() {
            let l = log2_exact(s.stride).ok_or_else(|| {
                FpnError::InputShapes(format!(
                    "level `{}` has stride {}, which is not a power of two",
                    s.name, s.stride
                ))
            })?;
            if s.channels == 0 {
                return Err(FpnError::InputShapes(format!(
                    "level `{}` has 0 channels",
                    s.name
                )));
            }
            if i > 0 && s.stride != 2 * in_shapes[i - 1].stride {
                return Err(FpnError::InputShapes(format!(
                    "strides must double from level to level (log2-contiguous, fine to coarse): \
                     `{}` has stride {} after `{}` with stride {}",
                    s.name,
                    s.stride,
                    in_shapes[i - 1].name,
                    in_shapes[i - 1].stride
                )));
            }
            levels.push(l);
        }
        let oc = config.out_channels;
        let one = Conv2dConfig::default();
        let three = Conv2dConfig {
            padding: 1,
            ..Default::default()
        };
        let mut laterals = Vec::new();
        let mut outputs = Vec::new();
        let mut out_shapes = Vec::new();
        for (i, (s, l)) in in_shapes.iter().zip(&levels).enumerate() {
            laterals.push(conv2d(
                s.channels,
                oc,
                1,
                one,
                true,
                arfpn_nn::inits::KAIMING_UNIFORM_A1,
                vb.pp("inner_blocks").pp(i).pp("0"),
            )?);
            outputs.push(conv2d(
                oc,
                oc,
                3,
                three,
                true,
                arfpn_nn::inits::KAIMING_UNIFORM_A1,
                vb.pp("layer_blocks").pp(i).pp("0"),
            )?);
            out_shapes.push(ShapeSpec::new(format!("p{l}"), oc, s.stride));
        }
        if config.extra_p6 {
            let last = levels[levels.len() - 1] + 1;
            out_shapes.push(ShapeSpec::new(format!("p{last}"), oc, 1 << last));
        }
        Ok(Self {
            laterals,
            outputs,
            in_shapes: in_shapes.to_vec(),
            out_shapes,
            extra_p6: config.extra_p6,
        })
    }

    /// Name, channels and stride of every output level, fine to coarse.
    pub fn output_shapes(&self) -> Vec<ShapeSpec> {
        self.out_shapes.clone()
    }

    /// What [`forward`](Fpn::forward) expects, as given at build time.
    pub fn input_shapes(&self) -> &[ShapeSpec] {
        &self.in_shapes
    }

    /// Image height and width must be multiples of this (the coarsest input stride).
    pub fn size_divisibility(&self) -> usize {
        self.in_shapes[self.in_shapes.len() - 1].stride
    }

    fn check_inputs(&self, feats: &[FeatureMap]) -> Result<()> {
        if feats.len() != self.in_shapes.len() {
            return Err(FpnError::Input(format!(
                "expected {} levels ({}), got {}",
                self.in_shapes.len(),
                self.in_shapes
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                feats.len()
            )));
        }
        for (f, s) in feats.iter().zip(&self.in_shapes) {
            if f.tensor.rank() != 4 {
                return Err(FpnError::Input(format!(
                    "level `{}`: expected [N, C, H, W], got {:?}",
                    f.name,
                    f.tensor.dims()
                )));
            }
            let c = f.channels()?;
            if c != s.channels || f.stride != s.stride {
                return Err(FpnError::Input(format!(
                    "level `{}` has {c} channels and stride {}, the FPN was built for `{}` with {} \
                     channels and stride {}",
                    f.name, f.stride, s.name, s.channels, s.stride
                )));
            }
        }
        for pair in feats.windows(2) {
            let (hf, wf) = pair[0].spatial_size()?;
            let (hc, wc) = pair[1].spatial_size()?;
            if hf != 2 * hc || wf != 2 * wc {
                return Err(FpnError::Input(format!(
                    "level `{}` is {hf}x{wf} and `{}` is {hc}x{wc}; the top-down 2x upsampling \
                     needs exactly twice the size: pad images to a multiple of {} \
                     (arfpn_nn::pad_to_multiple)",
                    pair[0].name,
                    pair[1].name,
                    self.size_divisibility()
                )));
            }
        }
        Ok(())
    }

    /// P-levels from backbone levels (fine to coarse, as described by
    /// [`input_shapes`](Fpn::input_shapes)).
    pub fn forward(&self, feats: &[FeatureMap]) -> Result<FeatureMaps> {
        self.check_inputs(feats)?;
        let n = feats.len();
        let mut outs: Vec<Option<Tensor>> = vec![None; n];
        let mut inner = self.laterals[n - 1].forward(&feats[n - 1].tensor)?;
        outs[n - 1] = Some(self.outputs[n - 1].forward(&inner)?);
        for i in (0..n - 1).rev() {
            let lateral = self.laterals[i].forward(&feats[i].tensor)?;
            inner = add_upsample_nearest2x(&lateral, &inner)?;
            outs[i] = Some(self.outputs[i].forward(&inner)?);
        }
        let mut maps: FeatureMaps = outs
            .into_iter()
            .zip(&self.out_shapes)
            .map(|(t, s)| FeatureMap::new(s.name.clone(), s.stride, t.expect("every level is set")))
            .collect();
        if self.extra_p6 {
            let p6 = subsample2(&maps[n - 1].tensor)?;
            let s = &self.out_shapes[n];
            maps.push(FeatureMap::new(s.name.clone(), s.stride, p6));
        }
        Ok(maps)
    }
}

/// Every second row and column starting at 0: `max_pool2d(kernel 1, stride 2)`, output
/// `ceil(H/2) x ceil(W/2)`. Differentiable (index_select).
pub(crate) fn subsample2(x: &Tensor) -> candle_core::Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    let rows: Vec<u32> = (0..h as u32).step_by(2).collect();
    let cols: Vec<u32> = (0..w as u32).step_by(2).collect();
    let rows = Tensor::new(rows.as_slice(), x.device())?;
    let cols = Tensor::new(cols.as_slice(), x.device())?;
    x.index_select(&rows, 2)?.index_select(&cols, 3)
}
