//! RPN losses: binary cross-entropy on objectness and smooth-L1 on box deltas, over the
//! sampled anchors, normalised as torchvision does.

use arfpn_nn::{bce_with_logits, smooth_l1};
use candle_core::{DType, Device, Tensor};

use crate::{Result, RpnError, RpnTargets};

/// The two RPN loss terms (scalars, differentiable with respect to the head), named as in
/// torchvision's loss dict.
#[derive(Clone, Debug)]
pub struct RpnLosses {
    /// Mean binary cross-entropy over all sampled anchors of the batch.
    pub loss_objectness: Tensor,
    /// Smooth-L1 summed over positive anchors and their 4 deltas, divided by the number of
    /// sampled anchors (positives and negatives) of the batch.
    pub loss_rpn_box_reg: Tensor,
}

impl RpnLosses {
    /// `loss_objectness + loss_rpn_box_reg`.
    pub fn total(&self) -> Result<Tensor> {
        Ok((&self.loss_objectness + &self.loss_rpn_box_reg)?)
    }
}

/// The RPN loss for a batch. `objectness` is `[N, R]` and `deltas` `[N, R, 4]` (the head's
/// flattened outputs, all levels concatenated), `targets[i]` indexes image `i`'s `R`
/// anchors. With nothing sampled (no anchors) both losses are 0.
pub fn rpn_loss(
    objectness: &Tensor,
    deltas: &Tensor,
    targets: &[RpnTargets],
    smooth_l1_beta: f64,
) -> Result<RpnLosses> {
    let (n, r) = objectness.dims2()?;
    let (n2, r2, four) = deltas.dims3()?;
    if (n2, r2, four) != (n, r, 4) {
        return Err(RpnError::input(
            "deltas",
            format!("shape ({n2}, {r2}, {four}) does not fit objectness ({n}, {r})"),
        ));
    }
    if targets.len() != n {
        return Err(RpnError::input(
            "targets",
            format!("{} images of targets for a batch of {n}", targets.len()),
        ));
    }
    let (dtype, dev) = (objectness.dtype(), objectness.device());
    let mut sampled = Vec::new();
    let mut labels = Vec::new();
    let mut pos = Vec::new();
    let mut reg = Vec::new();
    for (img, t) in targets.iter().enumerate() {
        if t.regression.len() != t.sample.positive.len() {
            return Err(RpnError::input(
                "targets",
                format!(
                    "image {img}: {} regression targets for {} positives",
                    t.regression.len(),
                    t.sample.positive.len()
                ),
            ));
        }
        let base = img * r;
        let labelled = t.sample.positive.iter().map(|&i| (i, 1.0f32));
        let labelled = labelled.chain(t.sample.negative.iter().map(|&i| (i, 0.0f32)));
        for (i, label) in labelled {
            if i >= r {
                return Err(RpnError::input(
                    "targets",
                    format!("image {img}: anchor index {i} out of range (R = {r})"),
                ));
            }
            sampled.push((base + i) as u32);
            labels.push(label);
        }
        pos.extend(t.sample.positive.iter().map(|&i| (base + i) as u32));
        reg.extend(t.regression.iter().flatten().copied());
    }
    let zero = || Tensor::zeros((), dtype, dev);
    if sampled.is_empty() {
        return Ok(RpnLosses {
            loss_objectness: zero()?,
            loss_rpn_box_reg: zero()?,
        });
    }
    let num_sampled = sampled.len();
    let obj = objectness
        .flatten_all()?
        .index_select(&Tensor::new(sampled, dev)?, 0)?;
    let labels = to(dev, dtype, labels, num_sampled)?;
    let objectness_loss = bce_with_logits(&obj, &labels)?.mean_all()?;
    let box_reg = if pos.is_empty() {
        zero()?
    } else {
        let p = pos.len();
        let pred = deltas
            .reshape((n * r, 4))?
            .index_select(&Tensor::new(pos, dev)?, 0)?;
        let target = to(dev, dtype, reg, p * 4)?.reshape((p, 4))?;
        (smooth_l1(&pred, &target, smooth_l1_beta)?.sum_all()? / num_sampled as f64)?
    };
    Ok(RpnLosses {
        loss_objectness: objectness_loss,
        loss_rpn_box_reg: box_reg,
    })
}

fn to(dev: &Device, dtype: DType, v: Vec<f32>, len: usize) -> Result<Tensor> {
    Ok(Tensor::from_vec(v, len, dev)?.to_dtype(dtype)?)
}
