//! Encoding boxes as deltas relative to reference boxes (anchors or proposals), and back.

use serde::{Deserialize, Serialize};

use crate::{BBox, BoxError};

/// `ln(1000 / 16)`: torchvision's and detectron2's upper clamp on `dw`/`dh` before `exp`,
/// so a wild prediction can grow a box at most 62.5×.
pub const DEFAULT_SCALE_CLAMP: f32 = 4.135_166_6;

/// Box deltas `(dx, dy, dw, dh)` (R-CNN parametrisation, scaled by the coder's weights).
pub type Deltas = [f32; 4];

/// The R-CNN box coder (torchvision's `BoxCoder`, detectron2's `Box2BoxTransform`).
///
/// For a reference box with centre `(px, py)` and size `(pw, ph)` and a target with centre
/// `(gx, gy)` and size `(gw, gh)`, with weights `(wx, wy, ww, wh)`:
///
/// `dx = wx (gx - px) / pw`, `dy = wy (gy - py) / ph`, `dw = ww ln(gw / pw)`, `dh = wh ln(gh / ph)`.
///
/// Decoding inverts this after clamping `dw / ww` and `dh / wh` from above at
/// [`scale_clamp`](Self::scale_clamp) (default `ln(1000/16)`, as torchvision).
///
/// **Non-finite values** are never hidden: a NaN delta decodes to a non-finite box (the
/// clamp keeps NaN, unlike `f32::min`), so callers can drop it with [`BBox::is_finite`];
/// encoding against an empty reference or target gives non-finite deltas.
///
/// ```
/// use arfpn_boxes::{BBox, BoxCoder};
/// let coder = BoxCoder::new([10.0, 10.0, 5.0, 5.0]).unwrap();
/// let anchor = BBox::new(0.0, 0.0, 10.0, 10.0);
/// let gt = BBox::new(1.0, 2.0, 13.0, 10.0);
/// let d = coder.encode_one(&anchor, &gt);
/// let back = coder.decode_one(&anchor, d);
/// assert!((back.x2 - gt.x2).abs() < 1e-5 && (back.y1 - gt.y1).abs() < 1e-5);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct BoxCoder {
    /// `(wx, wy, ww, wh)`: `(1, 1, 1, 1)` in the RPN, `(10, 10, 5, 5)` in the Fast R-CNN head.
    pub weights: [f32; 4],
    /// Upper clamp of `dw / ww` and `dh / wh` before `exp` when decoding.
    pub scale_clamp: f32,
}

impl Default for BoxCoder {
    /// Weights `(1, 1, 1, 1)` and the `ln(1000/16)` clamp (torchvision's RPN coder).
    fn default() -> Self {
        Self {
            weights: [1.0; 4],
            scale_clamp: DEFAULT_SCALE_CLAMP,
        }
    }
}

impl BoxCoder {
    /// A coder with the given weights and the default clamp; each weight must be finite
    /// and positive.
    pub fn new(weights: [f32; 4]) -> Result<Self, BoxError> {
        Self::with_clamp(weights, DEFAULT_SCALE_CLAMP)
    }

    /// A coder with the given weights and `dw`/`dh` clamp (finite, or `+inf` for none).
    pub fn with_clamp(weights: [f32; 4], scale_clamp: f32) -> Result<Self, BoxError> {
        let coder = Self {
            weights,
            scale_clamp,
        };
        coder.validate()?;
        Ok(coder)
    }

    /// Checks the fields (useful after deserialising).
    pub fn validate(&self) -> Result<(), BoxError> {
        if self.weights.iter().any(|w| !(w.is_finite() && *w > 0.0)) {
            return Err(BoxError::invalid(
                "weights",
                format!("must be finite and > 0, got {:?}", self.weights),
            ));
        }
        if self.scale_clamp.is_nan() {
            return Err(BoxError::invalid("scale_clamp", "is NaN"));
        }
        Ok(())
    }

    /// Deltas that take `reference` to `target`.
    pub fn encode_one(&self, reference: &BBox, target: &BBox) -> Deltas {
        let [wx, wy, ww, wh] = self.weights;
        let (pw, ph) = (reference.width(), reference.height());
        let (px, py) = reference.center();
        let (gw, gh) = (target.width(), target.height());
        let (gx, gy) = target.center();
        [
            wx * (gx - px) / pw,
            wy * (gy - py) / ph,
            ww * (gw / pw).ln(),
            wh * (gh / ph).ln(),
        ]
    }

    /// The box that `deltas` make of `reference`.
    pub fn decode_one(&self, reference: &BBox, deltas: Deltas) -> BBox {
        let [wx, wy, ww, wh] = self.weights;
        let (pw, ph) = (reference.width(), reference.height());
        let (px, py) = reference.center();
        let dx = deltas[0] / wx;
        let dy = deltas[1] / wy;
        // `if` rather than `f32::min`: min(NaN, c) would silently turn NaN into c.
        let clamp = |d: f32| {
            if d > self.scale_clamp {
                self.scale_clamp
            } else {
                d
            }
        };
        let dw = clamp(deltas[2] / ww);
        let dh = clamp(deltas[3] / wh);
        let cx = dx * pw + px;
        let cy = dy * ph + py;
        let w = dw.exp() * pw;
        let h = dh.exp() * ph;
        BBox::new(cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h)
    }

    /// [`encode_one`](Self::encode_one) for parallel slices.
    pub fn encode(&self, references: &[BBox], targets: &[BBox]) -> Result<Vec<Deltas>, BoxError> {
        BoxError::check_len("references", references.len(), "targets", targets.len())?;
        Ok(references
            .iter()
            .zip(targets)
            .map(|(r, t)| self.encode_one(r, t))
            .collect())
    }

    /// [`decode_one`](Self::decode_one) for parallel slices.
    pub fn decode(&self, references: &[BBox], deltas: &[Deltas]) -> Result<Vec<BBox>, BoxError> {
        BoxError::check_len("references", references.len(), "deltas", deltas.len())?;
        Ok(references
            .iter()
            .zip(deltas)
            .map(|(r, d)| self.decode_one(r, *d))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clamp_constant_is_ln_1000_over_16() {
        assert!((DEFAULT_SCALE_CLAMP as f64 - (1000.0f64 / 16.0).ln()).abs() < 1e-6);
    }

    #[test]
    fn hand_computed_encoding() {
        // Reference centre (5,5) size 10x10; target centre (7,6) size 20x5.
        let r = BBox::new(0.0, 0.0, 10.0, 10.0);
        let t = BBox::new(-3.0, 3.5, 17.0, 8.5);
        let d = BoxCoder::default().encode_one(&r, &t);
        let expect = [0.2, 0.1, 2f32.ln(), 0.5f32.ln()];
        for k in 0..4 {
            assert!((d[k] - expect[k]).abs() < 1e-6, "{d:?}");
        }
        let d = BoxCoder::new([10.0, 10.0, 5.0, 5.0])
            .unwrap()
            .encode_one(&r, &t);
        let expect = [2.0, 1.0, 5.0 * 2f32.ln(), 5.0 * 0.5f32.ln()];
        for k in 0..4 {
            assert!((d[k] - expect[k]).abs() < 1e-5, "{d:?}");
        }
    }

    #[test]
    fn encode_then_decode_is_identity() {
        let mut rng = crate::SplitMix64::new(5);
        let coders = [
            BoxCoder::default(),
            BoxCoder::new([10.0, 10.0, 5.0, 5.0]).unwrap(),
        ];
        for coder in coders {
            for _ in 0..1000 {
                let mut b = || {
                    let x = rng.next_f32() * 500.0;
                    let y = rng.next_f32() * 500.0;
                    BBox::new(
                        x,
                        y,
                        x + 4.0 + rng.next_f32() * 80.0,
                        y + 4.0 + rng.next_f32() * 80.0,
                    )
                };
                // Size ratios stay below the 62.5x clamp.
                let (r, t) = (b(), b());
                let back = coder.decode_one(&r, coder.encode_one(&r, &t));
                for (a, e) in back.to_array().iter().zip(t.to_array()) {
                    assert!((a - e).abs() < 1e-3, "{back:?} vs {t:?}");
                }
            }
        }
    }

    #[test]
    fn decode_clamps_and_keeps_nan_visible() {
        let coder = BoxCoder::default();
        let r = BBox::new(0.0, 0.0, 16.0, 16.0);
        let huge = coder.decode_one(&r, [0.0, 0.0, 50.0, 50.0]);
        assert!((huge.width() - 1000.0).abs() < 0.1, "{huge:?}");
        assert!(huge.is_finite());
        let nan = coder.decode_one(&r, [0.0, 0.0, f32::NAN, 0.0]);
        assert!(!nan.is_finite());
        let nan = coder.decode_one(&r, [f32::NAN, 0.0, 0.0, 0.0]);
        assert!(!nan.is_finite());
    }

    #[test]
    fn bad_arguments_are_errors() {
        assert!(BoxCoder::new([1.0, 0.0, 1.0, 1.0]).is_err());
        assert!(BoxCoder::new([1.0, f32::NAN, 1.0, 1.0]).is_err());
        assert!(BoxCoder::with_clamp([1.0; 4], f32::NAN).is_err());
        let b = [BBox::new(0.0, 0.0, 1.0, 1.0)];
        let e = BoxCoder::default().encode(&b, &[]).unwrap_err();
        assert!(e.to_string().contains("references"), "{e}");
        assert!(BoxCoder::default().decode(&b, &[]).is_err());
    }
}
