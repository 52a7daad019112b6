//! IoU under the two pixel conventions, written as the reference tools write it.

use serde::{Deserialize, Serialize};

use crate::Rect;

/// How box sizes are measured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum BoxConvention {
    /// Continuous coordinates, width `x2 - x1` (COCO, torchvision, detectron2, this
    /// workspace). Default.
    #[default]
    Continuous,
    /// Inclusive pixel indices, width `x2 - x1 + 1` (VOC devkit, py-faster-rcnn,
    /// mmdetection's `use_legacy_coordinate`).
    PlusOne,
}

/// How an IoU is compared with the matching threshold.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum IouComparison {
    /// `iou >= threshold` (VOC devkit `VOCevaldet.m`, pycocotools). Default.
    #[default]
    GreaterEqual,
    /// `iou > threshold` (py-faster-rcnn / detectron2 `voc_eval.py`).
    Greater,
}

impl IouComparison {
    /// Whether `iou` passes `threshold`.
    #[inline]
    pub fn passes(self, iou: f64, threshold: f64) -> bool {
        match self {
            IouComparison::GreaterEqual => iou >= threshold,
            IouComparison::Greater => iou > threshold,
        }
    }
}

/// IoU of a detection `d` and a ground-truth box `g` as the VOC devkit computes it
/// (`VOCevaldet.m`): `None` when the boxes do not overlap (`iw <= 0 || ih <= 0`), else
/// `iw*ih / (area_d + area_g - iw*ih)`, areas measured per `conv`.
///
/// ```
/// use arfpn_metrics::{voc_iou, BoxConvention, Rect};
/// let a = Rect::from_corners(0.0, 0.0, 10.0, 10.0);
/// let b = Rect::from_corners(5.0, 0.0, 15.0, 10.0);
/// assert_eq!(voc_iou(&a, &b, BoxConvention::Continuous), Some(50.0 / 150.0));
/// assert_eq!(voc_iou(&a, &b, BoxConvention::PlusOne), Some(66.0 / 176.0));
/// ```
#[inline]
pub fn voc_iou(d: &Rect, g: &Rect, conv: BoxConvention) -> Option<f64> {
    let [dx1, dy1, dx2, dy2] = d.corners();
    let [gx1, gy1, gx2, gy2] = g.corners();
    let one = match conv {
        BoxConvention::Continuous => 0.0,
        BoxConvention::PlusOne => 1.0,
    };
    let iw = dx2.min(gx2) - dx1.max(gx1) + one;
    let ih = dy2.min(gy2) - dy1.max(gy1) + one;
    if iw > 0.0 && ih > 0.0 {
        let ua =
            (dx2 - dx1 + one) * (dy2 - dy1 + one) + (gx2 - gx1 + one) * (gy2 - gy1 + one) - iw * ih;
        Some(iw * ih / ua)
    } else {
        None
    }
}

/// IoU of a detection `d` and a ground-truth box `g` as pycocotools computes it
/// (`bbIou` in `maskApi.c`): 0 without overlap; for a crowd ground truth the union is the
/// detection's area alone.
#[inline]
pub fn coco_iou(d: &Rect, g: &Rect, g_crowd: bool) -> f64 {
    let [dx, dy, dw, dh] = d.xywh();
    let [gx, gy, gw, gh] = g.xywh();
    let w = (dw + dx).min(gw + gx) - dx.max(gx);
    if w <= 0.0 {
        return 0.0;
    }
    let h = (dh + dy).min(gh + gy) - dy.max(gy);
    if h <= 0.0 {
        return 0.0;
    }
    let i = w * h;
    let da = dw * dh;
    let u = if g_crowd { da } else { da + gw * gh - i };
    i / u
}
