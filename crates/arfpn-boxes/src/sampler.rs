//! Balanced positive/negative sampling of matched predictions.

use serde::{Deserialize, Serialize};

use crate::{BoxError, Match, SplitMix64};

/// The predictions chosen for the loss, each list in ascending index order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BalancedSample {
    /// Indices of sampled foreground ([`Match::Matched`]) predictions.
    pub positive: Vec<usize>,
    /// Indices of sampled [`Match::Background`] predictions.
    pub negative: Vec<usize>,
}

impl BalancedSample {
    /// `positive.len() + negative.len()`.
    pub fn len(&self) -> usize {
        self.positive.len() + self.negative.len()
    }

    /// Nothing sampled.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// torchvision's `BalancedPositiveNegativeSampler` (detectron2's `subsample_labels`):
/// up to `batch_size_per_image * positive_fraction` positives chosen uniformly at random,
/// then negatives to fill the batch. [`Match::Ignore`] is never sampled. When there are
/// few positives the batch is filled with negatives; when both run short, the batch is
/// smaller than `batch_size_per_image`.
///
/// ```
/// use arfpn_boxes::{BalancedSampler, Match, SplitMix64};
/// let s = BalancedSampler::new(4, 0.5).unwrap();
/// let m = [Match::Matched(0), Match::Background, Match::Ignore, Match::Background, Match::Background];
/// let out = s.sample(&m, &mut SplitMix64::new(0));
/// assert_eq!(out.positive, vec![0]);
/// assert_eq!(out.negative, vec![1, 3, 4]); // 1 positive, so 3 negatives fill the batch
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct BalancedSampler {
    /// The most predictions sampled per image, positives and negatives together.
    pub batch_size_per_image: usize,
    /// The largest share of the batch given to positives, in `[0, 1]`; the number of
    /// positives is `batch_size_per_image * positive_fraction` rounded down.
    pub positive_fraction: f32,
}

impl BalancedSampler {
    /// `positive_fraction` must lie in `[0, 1]`.
    pub fn new(batch_size_per_image: usize, positive_fraction: f32) -> Result<Self, BoxError> {
        let s = Self {
            batch_size_per_image,
            positive_fraction,
        };
        s.validate()?;
        Ok(s)
    }

    /// Checks the fields (useful after deserialising).
    pub fn validate(&self) -> Result<(), BoxError> {
        if !(0.0..=1.0).contains(&self.positive_fraction) {
            return Err(BoxError::invalid(
                "positive_fraction",
                format!("must be in [0, 1], got {}", self.positive_fraction),
            ));
        }
        Ok(())
    }

    /// Samples from matcher output.
    pub fn sample(&self, matches: &[Match], rng: &mut SplitMix64) -> BalancedSample {
        let mut pos = Vec::new();
        let mut neg = Vec::new();
        for (i, m) in matches.iter().enumerate() {
            match m {
                Match::Matched(_) => pos.push(i),
                Match::Background => neg.push(i),
                Match::Ignore => {}
            }
        }
        self.sample_indices(pos, neg, rng)
    }

    /// Samples from explicit candidate lists (consumed; any order).
    pub fn sample_indices(
        &self,
        mut positive: Vec<usize>,
        mut negative: Vec<usize>,
        rng: &mut SplitMix64,
    ) -> BalancedSample {
        // torchvision: int(batch * fraction), truncated.
        let want_pos = (self.batch_size_per_image as f64 * self.positive_fraction as f64) as usize;
        let num_pos = want_pos.min(positive.len());
        let num_neg = (self.batch_size_per_image - num_pos).min(negative.len());
        rng.choose_prefix(&mut positive, num_pos);
        rng.choose_prefix(&mut negative, num_neg);
        positive.truncate(num_pos);
        negative.truncate(num_neg);
        positive.sort_unstable();
        negative.sort_unstable();
        BalancedSample { positive, negative }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proportions_and_limits() {
        let s = BalancedSampler::new(256, 0.5).unwrap();
        let mut rng = SplitMix64::new(1);
        // Plenty of both: exactly 128 + 128, all distinct and of the right kind.
        let mut m = vec![Match::Background; 5000];
        for i in (0..5000).step_by(10) {
            m[i] = Match::Matched(0);
        }
        for i in (5..5000).step_by(10) {
            m[i] = Match::Ignore;
        }
        let out = s.sample(&m, &mut rng);
        assert_eq!((out.positive.len(), out.negative.len()), (128, 128));
        assert!(out.positive.iter().all(|&i| m[i].is_foreground()));
        assert!(out.negative.iter().all(|&i| m[i] == Match::Background));
        assert!(out.positive.windows(2).all(|w| w[0] < w[1]));
        assert!(out.negative.windows(2).all(|w| w[0] < w[1]));
        // Few positives: negatives fill the batch.
        let mut m = vec![Match::Background; 1000];
        m[3] = Match::Matched(1);
        let out = s.sample(&m, &mut rng);
        assert_eq!((out.positive, out.negative.len()), (vec![3], 255));
        // No ground truth at all: 256 negatives.
        let out = s.sample(&[Match::Background; 300], &mut rng);
        assert_eq!((out.positive.len(), out.negative.len()), (0, 256));
        // Both short.
        let out = s.sample(
            &[Match::Background, Match::Matched(0), Match::Ignore],
            &mut rng,
        );
        assert_eq!((out.positive, out.negative), (vec![1], vec![0]));
        assert!(BalancedSampler::new(256, 1.5).is_err());
        assert!(BalancedSampler::new(256, f32::NAN).is_err());
    }

    #[test]
    fn seeded_and_uniform() {
        let s = BalancedSampler::new(10, 0.5).unwrap();
        let m = vec![Match::Matched(0); 100];
        let a = s.sample(&m, &mut SplitMix64::new(9));
        let b = s.sample(&m, &mut SplitMix64::new(9));
        assert_eq!(a, b);
        // Each of 100 positives is chosen with probability 5/100.
        let mut rng = SplitMix64::new(2);
        let mut counts = vec![0usize; 100];
        for _ in 0..4000 {
            for i in s.sample(&m, &mut rng).positive {
                counts[i] += 1;
            }
        }
        // Expected 200 each; binomial sd ~ 13.8.
        assert!(
            counts.iter().all(|&c| (140..260).contains(&c)),
            "{counts:?}"
        );
    }
}
