//! ResNet-18/34/50/101 with attention in every residual unit, outputs C2–C5.

use crate::attention::{AttentionFactory, AttentionMap, AttentionSite, NoAttention};
use crate::backbone::Backbone;
use crate::basic_block::BasicBlock;
use crate::bottleneck::Bottleneck;
use crate::config::{BlockKind, ResNetConfig};
use crate::error::{BackboneError, Result};
use crate::stem::Stem;
use arfpn_nn::{FeatureMap, FeatureMaps, ShapeSpec};
use candle_core::Tensor;
use candle_nn::VarBuilder;

enum Unit {
    Basic(BasicBlock),
    Bottleneck(Bottleneck),
}

impl Unit {
    fn frozen_parameters(&self) -> &[String] {
        match self {
            Unit::Basic(b) => b.frozen_parameters(),
            Unit::Bottleneck(b) => b.frozen_parameters(),
        }
    }

    fn forward_t(
        &self,
        x: &Tensor,
        train: bool,
        maps: Option<&mut Vec<AttentionMap>>,
    ) -> candle_core::Result<Tensor> {
        match self {
            Unit::Basic(b) => b.forward_t(x, train, maps),
            Unit::Bottleneck(b) => b.forward_t(x, train, maps),
        }
    }
}

/// The attention maps one residual unit applied, from [`ResNet::forward_traced`].
#[derive(Clone, Debug)]
pub struct UnitAttention {
    /// The unit's parameter prefix, e.g. `"layer2.0"`.
    pub unit: String,
    /// The maps its attention module returned, in the module's order (`channel` then
    /// `spatial` for CBAM); empty without attention.
    pub maps: Vec<AttentionMap>,
}

/// Everything [`ResNet::forward_traced`] records, for inspection and figures.
#[derive(Clone, Debug)]
pub struct ResNetTrace {
    /// Output of the stem (stride 4, before `layer1`).
    pub stem: Tensor,
    /// C2–C5.
    pub features: FeatureMaps,
    /// Attention maps of every unit in forward order (empty maps for [`NoAttention`](crate::NoAttention)).
    pub attention: Vec<UnitAttention>,
}

/// A ResNet backbone whose residual units carry attention.
///
/// Parameter names follow torchvision (`conv1.weight`, `bn1.*`, `layer1.0.conv1.weight`,
/// `layer1.0.downsample.0.weight`, …); attention parameters live under
/// `layer{s}.{u}.attention.*`. The classifier (`fc`) is not part of the backbone.
///
/// ```
/// use arfpn_backbone::{AttentionKind, NormKind, ResNet, ResNetConfig, Backbone};
/// use candle_core::{DType, Device, Tensor};
/// use candle_nn::{VarBuilder, VarMap};
/// let cfg = ResNetConfig::resnet18().with_width(8).with_norm(NormKind::group_norm(4))
///     .with_attention(AttentionKind::channel());
/// let vm = VarMap::new();
/// let net = ResNet::new(&cfg, VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu)).unwrap();
/// let shapes = net.output_shapes();
/// assert_eq!(shapes.iter().map(|s| s.stride).collect::<Vec<_>>(), [4, 8, 16, 32]);
/// let x = Tensor::zeros((1, 3, 64, 64), DType::F32, &Device::Cpu).unwrap();
/// let c = net.forward_t(&x, false).unwrap();
/// assert_eq!(c[3].tensor.dims(), [1, 64, 2, 2]);
/// ```
pub struct ResNet {
    config: ResNetConfig,
    stem: Stem,
    stages: Vec<Vec<Unit>>,
}

impl ResNet {
    /// Builds the network with the attention chosen in `config.attention`.
    pub fn new(config: &ResNetConfig, vb: VarBuilder) -> Result<Self> {
        Self::with_attention_factory(config, &config.attention.clone(), vb)
    }

    /// The old name of [`ResNet::with_attention_factory`], renamed because
    /// [`ResNetConfig::with_attention`] (a builder setting the attention kind) is another thing.
    #[deprecated(since = "0.1.0", note = "renamed `with_attention_factory`")]
    pub fn with_attention(
        config: &ResNetConfig,
        attention: &dyn AttentionFactory,
        vb: VarBuilder,
    ) -> Result<Self> {
        Self::with_attention_factory(config, attention, vb)
    }

    /// Builds the network with a custom attention factory (`config.attention` is ignored;
    /// `config.attention_stages` says which stages get it). The factory is told each unit's
    /// [`AttentionSite`].
    pub fn with_attention_factory(
        config: &ResNetConfig,
        attention: &dyn AttentionFactory,
        vb: VarBuilder,
    ) -> Result<Self> {
        config.validate()?;
        let stem = Stem::new(config.in_channels, config.width, &config.norm, vb.clone())?;
        let mut in_c = config.width;
        let mut stages = Vec::with_capacity(4);
        for (s, &depth) in config.stage_depths.iter().enumerate() {
            let planes = config.planes(s);
            let vbs = vb.pp(format!("layer{}", s + 1));
            let mut units = Vec::with_capacity(depth);
            for u in 0..depth {
                let stride = if s > 0 && u == 0 { 2 } else { 1 };
                let vbu = vbs.pp(u);
                let site = AttentionSite {
                    stage: s + 1,
                    unit: u,
                    channels: config.stage_channels(s),
                };
                let module = if config.has_attention(site.stage) {
                    attention.build(&site, vbu.pp("attention"))?
                } else {
                    Box::new(NoAttention)
                };
                let norm = &config.norm;
                let unit = match config.block {
                    BlockKind::Basic => {
                        BasicBlock::new(in_c, planes, stride, norm, module, vbu).map(Unit::Basic)
                    }
                    BlockKind::Bottleneck => {
                        Bottleneck::new(in_c, planes, stride, norm, module, vbu)
                            .map(Unit::Bottleneck)
                    }
                }?;
                units.push(unit);
                in_c = config.stage_channels(s);
            }
            stages.push(units);
        }
        Ok(Self {
            config: config.clone(),
            stem,
            stages,
        })
    }

    /// The configuration the network was built from.
    pub fn config(&self) -> &ResNetConfig {
        &self.config
    }

    fn check_input(&self, x: &Tensor) -> Result<()> {
        let dims = x.dims();
        if dims.len() != 4 {
            return Err(BackboneError::Input(format!(
                "expected images [N, C, H, W], got shape {dims:?}"
            )));
        }
        if dims[1] != self.config.in_channels {
            return Err(BackboneError::Input(format!(
                "expected {} image channels, got {} (shape {dims:?})",
                self.config.in_channels, dims[1]
            )));
        }
        if dims[2] == 0 || dims[3] == 0 {
            return Err(BackboneError::Input(format!("empty image, shape {dims:?}")));
        }
        Ok(())
    }

    fn run(
        &self,
        x: &Tensor,
        train: bool,
        mut trace: Option<&mut Vec<UnitAttention>>,
    ) -> Result<(Tensor, FeatureMaps)> {
        self.check_input(x)?;
        let stem = self.stem.forward_t(x, train)?;
        let mut y = stem.clone();
        let mut feats = Vec::with_capacity(4);
        for (s, units) in self.stages.iter().enumerate() {
            for (u, unit) in units.iter().enumerate() {
                y = match trace.as_deref_mut() {
                    Some(t) => {
                        let mut maps = Vec::new();
                        let out = unit.forward_t(&y, train, Some(&mut maps))?;
                        t.push(UnitAttention {
                            unit: format!("layer{}.{u}", s + 1),
                            maps,
                        });
                        out
                    }
                    None => unit.forward_t(&y, train, None)?,
                };
            }
            feats.push(FeatureMap::new(format!("c{}", s + 2), 4 << s, y.clone()));
        }
        Ok((stem, feats))
    }

    /// Forward pass that also returns the stem output and every unit's attention maps.
    pub fn forward_traced(&self, x: &Tensor, train: bool) -> Result<ResNetTrace> {
        let mut attention = Vec::new();
        let (stem, features) = self.run(x, train, Some(&mut attention))?;
        Ok(ResNetTrace {
            stem,
            features,
            attention,
        })
    }
}

impl Backbone for ResNet {
    fn output_shapes(&self) -> Vec<ShapeSpec> {
        (0..4)
            .map(|s| ShapeSpec::new(format!("c{}", s + 2), self.config.stage_channels(s), 4 << s))
            .collect()
    }

    fn size_divisibility(&self) -> usize {
        32
    }

    fn forward_t(&self, images: &Tensor, train: bool) -> Result<FeatureMaps> {
        Ok(self.run(images, train, None)?.1)
    }

    /// The stem's and every unit's frozen parameters (frozen batch norms, running
    /// statistics, and what custom attention modules report).
    fn frozen_parameters(&self) -> Vec<String> {
        let mut v = self.stem.frozen_parameters().to_vec();
        for unit in self.stages.iter().flatten() {
            v.extend_from_slice(unit.frozen_parameters());
        }
        v
    }
}
