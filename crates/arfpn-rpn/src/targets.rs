//! RPN training targets: match anchors to ground truth, sample, encode.

use arfpn_boxes::{BBox, BalancedSample, BalancedSampler, BoxCoder, Deltas, Matcher, SplitMix64};

/// The sampled anchors of one image and what they should predict.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RpnTargets {
    /// Sampled anchor indices (into the image's anchors, all levels concatenated):
    /// objectness target 1 for `sample.positive`, 0 for `sample.negative`.
    pub sample: BalancedSample,
    /// Regression target of each `sample.positive[i]`: the deltas from the anchor to its
    /// matched ground-truth box.
    pub regression: Vec<Deltas>,
}

/// Targets for one image: anchors matched to `gt` (empty `gt` is valid and gives only
/// negatives), a balanced sample, and encoded deltas for the sampled positives.
pub fn rpn_targets(
    anchors: &[BBox],
    gt: &[BBox],
    matcher: &Matcher,
    sampler: &BalancedSampler,
    coder: &BoxCoder,
    rng: &mut SplitMix64,
) -> RpnTargets {
    let matches = matcher.match_boxes(gt, anchors);
    let sample = sampler.sample(&matches, rng);
    let regression = sample
        .positive
        .iter()
        .map(|&i| {
            // The matcher only returns Matched(g) for a valid gt with positive IoU.
            let g = matches[i].gt().unwrap_or_default();
            coder.encode_one(&anchors[i], &gt[g])
        })
        .collect();
    RpnTargets { sample, regression }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_point_from_anchor_to_gt() {
        let anchors = [
            BBox::new(0.0, 0.0, 10.0, 10.0),
            BBox::new(0.0, 0.0, 10.0, 9.0),
            BBox::new(50.0, 50.0, 60.0, 60.0),
        ];
        let gt = [
            BBox::new(1.0, 0.0, 11.0, 10.0),
            BBox::new(0.0, 0.0, 0.0, 0.0),
        ];
        let m = Matcher::new(0.7, 0.3, true).unwrap();
        let s = BalancedSampler::new(256, 0.5).unwrap();
        let c = BoxCoder::default();
        let t = rpn_targets(&anchors, &gt, &m, &s, &c, &mut SplitMix64::new(0));
        assert_eq!(t.sample.positive, vec![0, 1]);
        assert_eq!(t.sample.negative, vec![2]);
        assert_eq!(t.regression[0], c.encode_one(&anchors[0], &gt[0]));
        assert!(t.regression.iter().flatten().all(|v| v.is_finite()));
        let t = rpn_targets(&anchors, &[], &m, &s, &c, &mut SplitMix64::new(0));
        assert_eq!((t.sample.positive.len(), t.sample.negative.len()), (0, 3));
    }
}
