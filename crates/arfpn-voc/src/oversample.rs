//! Class-aware oversampling of crops that hold rare classes: the paper horizontally flips
//! the crops containing many rare RBCs to add samples of those classes.

use arfpn_boxes::ClassId;
use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::annotation::Sample;
use crate::error::{Result, VocError};
use crate::transforms::hflip;

/// Which samples get an extra, horizontally flipped copy.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OversamplePolicy {
    /// The rare classes (see [`rare_classes`] to pick them by frequency).
    pub rare_classes: Vec<ClassId>,
    /// A sample is oversampled when it holds at least this many objects of rare classes.
    pub min_rare_objects: usize,
}

/// The classes whose share of all objects in `samples` is below `max_share` (e.g. 0.05),
/// ascending by id. Classes that never occur are included (share 0).
pub fn rare_classes(samples: &[Sample], num_classes: usize, max_share: f32) -> Vec<ClassId> {
    let mut counts = vec![0usize; num_classes];
    for s in samples {
        for o in &s.objects {
            if o.class.index() < num_classes {
                counts[o.class.index()] += 1;
            }
        }
    }
    let total: usize = counts.iter().sum();
    (0..num_classes)
        .filter(|&c| total == 0 || (counts[c] as f32 / total as f32) < max_share)
        .map(ClassId::new)
        .collect()
}

/// One entry of an oversampled epoch: sample `index`, flipped or not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Augmented {
    /// Index of the sample in the slice the plan was made from.
    pub index: usize,
    /// Whether this entry is the horizontally mirrored copy (id suffixed `_flip`).
    pub flip: bool,
}

/// Every sample once unflipped, followed by a flipped copy of each sample holding at least
/// `policy.min_rare_objects` objects of the rare classes (in sample order).
pub fn oversample_plan(samples: &[Sample], policy: &OversamplePolicy) -> Result<Vec<Augmented>> {
    if policy.min_rare_objects == 0 {
        return Err(VocError::InvalidArgument {
            name: "min_rare_objects",
            reason: "must be at least 1 (0 would flip every sample)".into(),
        });
    }
    let mut plan: Vec<Augmented> = (0..samples.len())
        .map(|index| Augmented { index, flip: false })
        .collect();
    for (index, s) in samples.iter().enumerate() {
        let rare = s
            .objects
            .iter()
            .filter(|o| policy.rare_classes.contains(&o.class))
            .count();
        if rare >= policy.min_rare_objects {
            plan.push(Augmented { index, flip: true });
        }
    }
    Ok(plan)
}

/// Materialise one plan entry: the image and sample, flipped when `entry.flip`.
pub fn apply(entry: Augmented, img: &RgbImage, sample: &Sample) -> Result<(RgbImage, Sample)> {
    if entry.flip {
        let (i, mut s) = hflip(img, sample)?;
        s.id = format!("{}_flip", s.id);
        Ok((i, s))
    } else {
        Ok((img.clone(), sample.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::annotation::Object;
    use arfpn_boxes::BBox;

    fn sample(id: &str, classes: &[usize]) -> Sample {
        Sample {
            id: id.into(),
            image_path: format!("{id}.png").into(),
            width: 10,
            height: 4,
            objects: classes
                .iter()
                .enumerate()
                .map(|(i, &class)| Object {
                    bbox: BBox::new(i as f32, 0.0, i as f32 + 1.0, 1.0),
                    class: ClassId::new(class),
                    difficult: false,
                    truncated: false,
                })
                .collect(),
        }
    }

    #[test]
    fn rare_class_crops_are_flipped_copies() {
        let samples = vec![
            sample("a", &[0, 0, 0, 0, 0, 0]),
            sample("b", &[0, 0, 1, 0, 0, 0]),
            sample("c", &[2, 1, 0, 0, 0, 0]),
        ];
        // Shares: class 0 = 15/18, class 1 = 2/18, class 2 = 1/18, class 3 = 0.
        assert_eq!(
            rare_classes(&samples, 4, 0.1),
            [ClassId::new(2), ClassId::new(3)]
        );
        assert_eq!(
            rare_classes(&samples, 4, 0.2),
            [ClassId::new(1), ClassId::new(2), ClassId::new(3)]
        );
        let policy = OversamplePolicy {
            rare_classes: vec![ClassId::new(1), ClassId::new(2)],
            min_rare_objects: 2,
        };
        let plan = oversample_plan(&samples, &policy).unwrap();
        assert_eq!(plan.len(), 4);
        assert_eq!(
            plan[3],
            Augmented {
                index: 2,
                flip: true
            }
        );
        assert!(plan[..3].iter().all(|a| !a.flip));
        let policy1 = OversamplePolicy {
            min_rare_objects: 1,
            ..policy.clone()
        };
        assert_eq!(oversample_plan(&samples, &policy1).unwrap().len(), 5);
        assert!(oversample_plan(
            &samples,
            &OversamplePolicy {
                min_rare_objects: 0,
                ..policy
            }
        )
        .is_err());
        // Applying a flip mirrors boxes and pixels.
        let img = RgbImage::from_fn(10, 4, |x, _| image::Rgb([x as u8, 0, 0]));
        let (fi, fs) = apply(plan[3], &img, &samples[2]).unwrap();
        assert_eq!(fs.id, "c_flip");
        assert_eq!(fs.objects[0].bbox, BBox::new(9.0, 0.0, 10.0, 1.0));
        assert_eq!(fs.objects[0].class, ClassId::new(2));
        assert_eq!(fi.get_pixel(9, 0).0[0], 0);
        let (same, s) = apply(plan[0], &img, &samples[0]).unwrap();
        assert_eq!((same, s), (img, samples[0].clone()));
    }
}
