//! Training targets of the box head, on plain boxes (no tensors): ground truth added to the
//! proposals, IoU matching, balanced sampling, box encoding.

use arfpn_boxes::{BBox, BalancedSampler, BoxCoder, Deltas, GroundTruth, Matcher, SplitMix64};

/// The RoIs sampled from one image and what the head should predict for them.
/// Positives come first: `boxes[..num_positive]` are foreground.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RoiTargets {
    /// The sampled RoIs (proposals or ground-truth boxes), image pixels.
    pub boxes: Vec<BBox>,
    /// Classifier column per RoI: the matched class's index, or `num_classes` (background).
    pub labels: Vec<u32>,
    /// Regression target per positive (`regression[i]` for `boxes[i]`, `i < num_positive`).
    pub regression: Vec<Deltas>,
    /// Number of foreground RoIs: the first `num_positive` entries of `boxes` and `labels`.
    pub num_positive: usize,
}

/// torchvision's `select_training_samples` for one image: the ground-truth boxes are added
/// to the proposals, every candidate is matched (IoU ≥ fg → its box's class, < bg →
/// background, between → ignored), `sampler` draws positives then negatives, and the
/// positives' deltas are encoded with `coder`. Empty ground truth is valid (only
/// background is sampled).
pub fn select_training_rois(
    proposals: &[BBox],
    gt: &GroundTruth,
    num_classes: usize,
    matcher: &Matcher,
    sampler: &BalancedSampler,
    coder: &BoxCoder,
    rng: &mut SplitMix64,
) -> RoiTargets {
    let mut candidates = Vec::with_capacity(proposals.len() + gt.len());
    candidates.extend_from_slice(proposals);
    candidates.extend_from_slice(&gt.boxes);
    let matches = matcher.match_boxes(&gt.boxes, &candidates);
    let sample = sampler.sample(&matches, rng);
    let mut t = RoiTargets {
        num_positive: sample.positive.len(),
        ..Default::default()
    };
    for &i in &sample.positive {
        // The matcher returns Matched(g) only for a ground truth it was given.
        let g = matches[i].gt().unwrap_or_default();
        t.boxes.push(candidates[i]);
        t.labels.push(gt.classes[g].index() as u32);
        t.regression
            .push(coder.encode_one(&candidates[i], &gt.boxes[g]));
    }
    for &i in &sample.negative {
        t.boxes.push(candidates[i]);
        t.labels.push(num_classes as u32);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use arfpn_boxes::ClassId;

    #[test]
    fn hand_made_case_labels_and_deltas() {
        let gt = GroundTruth::new(
            vec![
                BBox::new(0.0, 0.0, 10.0, 10.0),
                BBox::new(20.0, 20.0, 30.0, 30.0),
            ],
            vec![ClassId::new(2), ClassId::new(0)],
        )
        .unwrap();
        let proposals = [
            BBox::new(0.0, 0.0, 10.0, 8.0),    // IoU 0.8 with gt 0 -> class 2
            BBox::new(0.0, 0.0, 10.0, 4.5),    // IoU 0.45 -> background
            BBox::new(40.0, 40.0, 50.0, 50.0), // IoU 0 -> background
            BBox::new(21.0, 20.0, 30.0, 30.0), // IoU 0.9 with gt 1 -> class 0
        ];
        let matcher = Matcher::new(0.5, 0.5, false).unwrap();
        let sampler = BalancedSampler::new(512, 0.25).unwrap();
        let coder = BoxCoder::new([10.0, 10.0, 5.0, 5.0]).unwrap();
        let t = select_training_rois(
            &proposals,
            &gt,
            3,
            &matcher,
            &sampler,
            &coder,
            &mut SplitMix64::new(0),
        );
        // 4 positives (2 proposals + the 2 added gt boxes), 2 negatives; all fit in 512.
        assert_eq!(t.num_positive, 4);
        assert_eq!(t.boxes.len(), 6);
        let mut pos: Vec<(BBox, u32)> = t.boxes[..4]
            .iter()
            .copied()
            .zip(t.labels[..4].iter().copied())
            .collect();
        pos.sort_by(|a, b| a.0.x1.total_cmp(&b.0.x1).then(a.0.y2.total_cmp(&b.0.y2)));
        assert_eq!(pos[0], (BBox::new(0.0, 0.0, 10.0, 8.0), 2));
        assert_eq!(pos[1], (BBox::new(0.0, 0.0, 10.0, 10.0), 2));
        assert_eq!(pos[2], (BBox::new(20.0, 20.0, 30.0, 30.0), 0));
        assert_eq!(t.labels[4..], [3, 3]);
        // The deltas of a gt box to itself are zero; of (0,0,10,8) to (0,0,10,10): dy = 10*(1/8),
        // dh = 5*ln(10/8).
        for (b, d) in t.boxes.iter().zip(&t.regression) {
            if *b == BBox::new(0.0, 0.0, 10.0, 8.0) {
                assert!(
                    (d[1] - 10.0 * 1.0 / 8.0).abs() < 1e-5
                        && (d[3] - 5.0 * (10f32 / 8.0).ln()).abs() < 1e-5
                );
            }
            if gt.boxes.contains(b) {
                assert!(d.iter().all(|v| v.abs() < 1e-6), "{d:?}");
            }
        }
        // No ground truth: everything is background.
        let t = select_training_rois(
            &proposals,
            &GroundTruth::empty(),
            3,
            &matcher,
            &sampler,
            &coder,
            &mut SplitMix64::new(0),
        );
        assert_eq!((t.num_positive, t.labels.len()), (0, 4));
        assert!(t.labels.iter().all(|&l| l == 3));
    }

    #[test]
    fn sampling_caps_positives_at_a_quarter() {
        let g = BBox::new(0.0, 0.0, 10.0, 10.0);
        let gt = GroundTruth::new(vec![g], vec![ClassId::new(0)]).unwrap();
        let mut proposals = vec![g; 20];
        proposals
            .extend((0..100).map(|i| BBox::new(100.0 + i as f32, 0.0, 110.0 + i as f32, 10.0)));
        let t = select_training_rois(
            &proposals,
            &gt,
            1,
            &Matcher::new(0.5, 0.5, false).unwrap(),
            &BalancedSampler::new(16, 0.25).unwrap(),
            &BoxCoder::default(),
            &mut SplitMix64::new(1),
        );
        assert_eq!((t.num_positive, t.boxes.len()), (4, 16));
    }
}
