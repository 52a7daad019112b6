//! Checks of the RPN: crafted proposals, losses, a finite-difference gradient check of the
//! head loss, and bad input.

use arfpn_boxes::{BBox, BalancedSample, BoxCoder, ClassId, GroundTruth, ImageSize, SplitMix64};
use arfpn_nn::{bce_with_logits, smooth_l1};
use arfpn_nn::{FeatureMap, ShapeSpec};
use arfpn_rpn::*;
use arfpn_testkit::{randn, GradCheck, Target, Tolerance};
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};

fn params(pre: usize, post: usize) -> ProposalParams {
    ProposalParams {
        pre_nms_top_n: pre,
        post_nms_top_n: post,
        nms_thresh: 0.7,
        min_size: 1e-3,
        score_thresh: 0.0,
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// A 4×4 map, stride 8, one 16-px square anchor per cell centred on it (offset 0.5).
fn crafted_anchors() -> Vec<BBox> {
    let config = AnchorConfig {
        sizes: Levels::All(vec![16.0]),
        aspect_ratios: Levels::All(vec![1.0]),
        offset: 0.5,
        round_cell_anchors: false,
    };
    let g = AnchorGenerator::new(&config, &["p3".to_string()], &[8]).unwrap();
    g.grid_anchors(0, 4, 4).unwrap().to_vec()
}

#[test]
fn proposals_on_a_crafted_objectness_map() {
    let anchors = crafted_anchors();
    let cell = |y: usize, x: usize| y * 4 + x;
    assert_eq!(anchors[cell(1, 1)], BBox::new(4.0, 4.0, 20.0, 20.0));
    let mut obj = vec![-5.0f32; 16];
    let mut deltas = vec![[0.0f32; 4]; 16];
    obj[cell(1, 1)] = 5.0;
    // (1,2) is shifted one cell left onto (1,1): an exact duplicate, suppressed by NMS.
    obj[cell(1, 2)] = 4.0;
    deltas[cell(1, 2)] = [-0.5, 0.0, 0.0, 0.0];
    // (2,2) has the best logit but NaN deltas; (0,0) has a NaN logit: neither may appear.
    obj[cell(2, 2)] = 10.0;
    deltas[cell(2, 2)] = [0.0, f32::NAN, 0.0, 0.0];
    obj[cell(0, 0)] = f32::NAN;
    // (3,3) grows 2x (its box then sticks out of the 32x32 image and is clipped).
    obj[cell(3, 3)] = 3.0;
    deltas[cell(3, 3)] = [0.0, 0.0, 2f32.ln(), 2f32.ln()];
    let level = LevelPredictions {
        anchors: &anchors,
        objectness: &obj,
        deltas: &deltas,
    };
    let p = select_proposals(
        &[level],
        ImageSize::new(32, 32),
        &BoxCoder::default(),
        &params(100, 4),
    )
    .unwrap();
    assert_eq!(p.len(), 4);
    assert_eq!(p.boxes[0], BBox::new(4.0, 4.0, 20.0, 20.0));
    assert_eq!(p.scores[0], sigmoid(5.0));
    // (3,3): centre (28,28), 32x32 -> (12,12,44,44) clipped to (12,12,32,32).
    assert_eq!(p.boxes[1], BBox::new(12.0, 12.0, 32.0, 32.0));
    assert_eq!(p.scores[1], sigmoid(3.0));
    // Then the -5 logits in index order, skipping (0,0), (1,1)'s neighbours that overlap < 0.7 stay.
    assert_eq!(p.scores[2], sigmoid(-5.0));
    assert_eq!(p.boxes[2], anchors[cell(0, 1)].clip(ImageSize::new(32, 32)));
    assert_eq!(p.levels, vec![0; 4]);
    // pre_nms_top_n = 2 keeps (2,2) [dropped: NaN] and (1,1) only.
    let p = select_proposals(
        &[level],
        ImageSize::new(32, 32),
        &BoxCoder::default(),
        &params(2, 100),
    )
    .unwrap();
    assert_eq!(p.boxes, vec![BBox::new(4.0, 4.0, 20.0, 20.0)]);
    // score_thresh drops low scores; min_size drops the clipped sliver of a far box.
    let strict = ProposalParams {
        score_thresh: 0.5,
        ..params(100, 100)
    };
    let p = select_proposals(
        &[level],
        ImageSize::new(32, 32),
        &BoxCoder::default(),
        &strict,
    )
    .unwrap();
    assert_eq!(p.scores, vec![sigmoid(5.0), sigmoid(3.0)]);
    // Length mismatch is an error, not a panic.
    let bad = LevelPredictions {
        anchors: &anchors,
        objectness: &obj[..3],
        deltas: &deltas,
    };
    assert!(select_proposals(
        &[bad],
        ImageSize::new(32, 32),
        &BoxCoder::default(),
        &params(1, 1)
    )
    .is_err());
}

#[test]
fn pre_nms_top_n_is_per_level_and_nms_is_per_level() {
    let anchors = crafted_anchors();
    let obj: Vec<f32> = (0..16).map(|i| i as f32).collect();
    let deltas = vec![[0.0f32; 4]; 16];
    let level = LevelPredictions {
        anchors: &anchors,
        objectness: &obj,
        deltas: &deltas,
    };
    // The same boxes at two levels: no cross-level suppression, 3 per level.
    let p = select_proposals(
        &[level, level],
        ImageSize::new(32, 32),
        &BoxCoder::default(),
        &params(3, 100),
    )
    .unwrap();
    assert_eq!(p.len(), 6);
    assert_eq!(p.levels.iter().filter(|&&l| l == 1).count(), 3);
    assert!(p.scores.windows(2).all(|w| w[0] >= w[1]));
}

#[test]
fn no_nan_escapes_into_proposals() {
    let anchors = crafted_anchors();
    let mut rng = SplitMix64::new(99);
    let specials = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 1e30, -1e30];
    for _ in 0..200 {
        let mut v = || {
            if rng.below(4) == 0 {
                specials[rng.below(specials.len())]
            } else {
                (rng.next_f32() - 0.5) * 8.0
            }
        };
        let obj: Vec<f32> = (0..16).map(|_| v()).collect();
        let deltas: Vec<[f32; 4]> = (0..16).map(|_| [v(), v(), v(), v()]).collect();
        let level = LevelPredictions {
            anchors: &anchors,
            objectness: &obj,
            deltas: &deltas,
        };
        let p = select_proposals(
            &[level],
            ImageSize::new(30, 25),
            &BoxCoder::default(),
            &params(10, 10),
        )
        .unwrap();
        for (b, s) in p.boxes.iter().zip(&p.scores) {
            assert!(b.is_finite() && s.is_finite(), "{b:?} {s}");
            assert!(
                b.x1 >= 0.0 && b.x2 <= 25.0 && b.y1 >= 0.0 && b.y2 <= 30.0,
                "{b:?}"
            );
            assert!(b.width() >= 1e-3 && b.height() >= 1e-3);
        }
    }
}

#[test]
fn head_output_order_matches_anchor_order() {
    let dev = Device::Cpu;
    let (a, h, w) = (2usize, 2usize, 3usize);
    let obj: Vec<f32> = (0..a * h * w)
        .map(|i| {
            let (aa, y, x) = (i / (h * w), (i / w) % h, i % w);
            (aa * 100 + y * 10 + x) as f32
        })
        .collect();
    let del: Vec<f32> = (0..4 * a * h * w)
        .map(|i| {
            let (c, y, x) = (i / (h * w), (i / w) % h, i % w);
            ((c / 4) * 1000 + (c % 4) * 100 + y * 10 + x) as f32
        })
        .collect();
    let out = LevelOutput {
        objectness: Tensor::from_vec(obj, (1, a, h, w), &dev).unwrap(),
        deltas: Tensor::from_vec(del, (1, 4 * a, h, w), &dev).unwrap(),
    };
    let (o, d) = out.flatten().unwrap();
    let o = o.to_vec2::<f32>().unwrap();
    let d = d.to_vec3::<f32>().unwrap();
    for y in 0..h {
        for x in 0..w {
            for aa in 0..a {
                let r = (y * w + x) * a + aa;
                assert_eq!(o[0][r], (aa * 100 + y * 10 + x) as f32);
                for (k, v) in d[0][r].iter().enumerate() {
                    assert_eq!(*v, (aa * 1000 + k * 100 + y * 10 + x) as f32);
                }
            }
        }
    }
}

#[test]
fn loss_hand_values_and_zero_when_predictions_equal_targets() {
    let dev = Device::Cpu;
    let x = Tensor::new(&[0.0f64, 100.0, -100.0, 2.0], &dev).unwrap();
    let y = Tensor::new(&[1.0f64, 1.0, 0.0, 0.0], &dev).unwrap();
    let l = bce_with_logits(&x, &y).unwrap().to_vec1::<f64>().unwrap();
    let want = [
        2f64.ln(),
        (1.0 + (-100f64).exp()).ln(),
        (1.0 + (-100f64).exp()).ln(),
        2.0 + (1.0 + (-2f64).exp()).ln(),
    ];
    for (a, b) in l.iter().zip(want) {
        assert!((a - b).abs() < 1e-12, "{l:?}");
    }
    let p = Tensor::new(&[0.0f64, 0.05, 1.0], &dev).unwrap();
    let t = Tensor::zeros(3, DType::F64, &dev).unwrap();
    let s = smooth_l1(&p, &t, 0.1).unwrap().to_vec1::<f64>().unwrap();
    for (a, b) in s.iter().zip([0.0, 0.5 * 0.0025 / 0.1, 1.0 - 0.05]) {
        assert!((a - b).abs() < 1e-12, "{s:?}");
    }

    // Two images, 5 anchors each; logits ±40 agree with the labels, deltas equal targets.
    let targets = vec![
        RpnTargets {
            sample: BalancedSample {
                positive: vec![1, 3],
                negative: vec![0, 4],
            },
            regression: vec![[0.1, -0.2, 0.3, 0.05], [1.0, 2.0, -1.0, 0.0]],
        },
        RpnTargets {
            sample: BalancedSample {
                positive: vec![],
                negative: vec![2],
            },
            regression: vec![],
        },
    ];
    let mut obj = vec![0.0f32; 10];
    let mut del = vec![0.7f32; 40];
    for (img, t) in targets.iter().enumerate() {
        for &i in &t.sample.negative {
            obj[img * 5 + i] = -40.0;
        }
        for (&i, r) in t.sample.positive.iter().zip(&t.regression) {
            obj[img * 5 + i] = 40.0;
            del[(img * 5 + i) * 4..(img * 5 + i) * 4 + 4].copy_from_slice(r);
        }
    }
    let obj = Tensor::from_vec(obj, (2, 5), &dev).unwrap();
    let del = Tensor::from_vec(del, (2, 5, 4), &dev).unwrap();
    let l = rpn_loss(&obj, &del, &targets, 1.0 / 9.0).unwrap();
    assert_eq!(l.loss_rpn_box_reg.to_scalar::<f32>().unwrap(), 0.0);
    assert!(l.loss_objectness.to_scalar::<f32>().unwrap() < 1e-15);
    // Wrong deltas: sum of smooth-L1 over positives / 5 sampled anchors.
    let zero_del = Tensor::zeros((2, 5, 4), DType::F32, &dev).unwrap();
    let l = rpn_loss(&obj, &zero_del, &targets, 1.0 / 9.0).unwrap();
    let beta = 1.0f32 / 9.0;
    let sl1 = |d: f32| {
        if d.abs() < beta {
            0.5 * d * d / beta
        } else {
            d.abs() - 0.5 * beta
        }
    };
    let want: f32 = targets
        .iter()
        .flat_map(|t| t.regression.iter().flatten())
        .map(|&d| sl1(d))
        .sum::<f32>()
        / 5.0;
    assert!((l.loss_rpn_box_reg.to_scalar::<f32>().unwrap() - want).abs() < 1e-6);
    // Bad shapes and indices are errors.
    assert!(rpn_loss(&obj, &zero_del, &targets[..1], 1.0 / 9.0).is_err());
    let oob = vec![
        targets[0].clone(),
        RpnTargets {
            sample: BalancedSample {
                positive: vec![],
                negative: vec![5],
            },
            regression: vec![],
        },
    ];
    assert!(rpn_loss(&obj, &zero_del, &oob, 1.0 / 9.0).is_err());
}

fn small_config() -> RpnConfig {
    RpnConfig {
        anchors: AnchorConfig {
            sizes: Levels::Each(vec![vec![8.0, 12.0], vec![16.0, 24.0]]),
            aspect_ratios: Levels::All(vec![1.0]),
            offset: 0.0,
            round_cell_anchors: false,
        },
        batch_size_per_image: 32,
        ..RpnConfig::default()
    }
}

fn small_rpn(dtype: DType) -> (VarMap, RegionProposalNetwork, Vec<FeatureMap>) {
    let dev = Device::Cpu;
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, dtype, &dev);
    let specs = [ShapeSpec::new("p2", 3, 4), ShapeSpec::new("p3", 3, 8)];
    let rpn = RegionProposalNetwork::new(small_config(), &specs, vb).unwrap();
    // Larger head weights than the N(0, 0.01) init so the loss is far from flat.
    for (i, (_, var)) in sorted_vars(&vm).iter().enumerate() {
        let t = (randn(100 + i as u64, var.shape(), dtype, &dev).unwrap() * 0.3).unwrap();
        var.set(&t).unwrap();
    }
    let maps = vec![
        FeatureMap::new("p2", 4, randn(1, (2, 3, 6, 6), dtype, &dev).unwrap()),
        FeatureMap::new("p3", 8, randn(2, (2, 3, 3, 3), dtype, &dev).unwrap()),
    ];
    (vm, rpn, maps)
}

/// The variables of `vm` in name order.
fn sorted_vars(vm: &VarMap) -> Vec<(String, Var)> {
    let mut vars: Vec<(String, Var)> = vm
        .data()
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars
}

fn boxes_only(boxes: Vec<BBox>) -> GroundTruth {
    let classes = vec![ClassId::new(0); boxes.len()];
    GroundTruth::new(boxes, classes).unwrap()
}

fn gt() -> Vec<GroundTruth> {
    vec![
        boxes_only(vec![
            BBox::new(2.0, 3.0, 12.0, 13.0),
            BBox::new(10.0, 8.0, 24.0, 22.0),
        ]),
        GroundTruth::empty(), // an image without ground truth is valid
    ]
}

fn total_loss(rpn: &RegionProposalNetwork, maps: &[FeatureMap]) -> Tensor {
    let out = rpn
        .forward_train(
            maps,
            &[ImageSize::new(24, 24), ImageSize::new(24, 24)],
            &gt(),
            &mut SplitMix64::new(7),
        )
        .unwrap();
    out.losses.total().unwrap()
}

/// Central finite differences (f64) against autograd for entries of every head tensor.
#[test]
fn head_loss_gradient_matches_finite_differences() {
    let (vm, rpn, maps) = small_rpn(DType::F64);
    let vars = sorted_vars(&vm);
    assert_eq!(vars.len(), 6);
    // The first, middle and last element of every variable.
    let targets: Vec<Target> = vars
        .iter()
        .map(|(name, var)| {
            let n = var.elem_count();
            Target::at(name.as_str(), var, vec![0, n / 2, n - 1])
        })
        .collect();
    let report = GradCheck::new(1e-6, Tolerance::mixed(1e-6, 1e-4))
        .vars(&targets, || Ok(total_loss(&rpn, &maps)))
        .unwrap();
    assert_eq!(report.checked(), 18);
}

#[test]
fn training_forward_with_empty_and_degenerate_ground_truth() {
    let (_vm, rpn, maps) = small_rpn(DType::F32);
    let sizes = [ImageSize::new(24, 24), ImageSize::new(20, 24)];
    // No boxes at all, and a zero-area box: all sampled anchors are negatives.
    for gt in [
        vec![GroundTruth::empty(), GroundTruth::empty()],
        vec![
            boxes_only(vec![BBox::new(5.0, 5.0, 5.0, 9.0)]),
            GroundTruth::empty(),
        ],
    ] {
        let out = rpn
            .forward_train(&maps, &sizes, &gt, &mut SplitMix64::new(1))
            .unwrap();
        assert_eq!(out.losses.loss_rpn_box_reg.to_scalar::<f32>().unwrap(), 0.0);
        let o = out.losses.loss_objectness.to_scalar::<f32>().unwrap();
        assert!(o.is_finite() && o > 0.0);
        assert_eq!(out.proposals.len(), 2);
        // The second image is 20 px high: proposals are clipped to it.
        assert!(out.proposals[1]
            .boxes
            .iter()
            .all(|b| b.y2 <= 20.0 && b.x2 <= 24.0));
    }
    let out = rpn
        .forward_train(&maps, &sizes, &gt(), &mut SplitMix64::new(1))
        .unwrap();
    assert!(out.losses.loss_rpn_box_reg.to_scalar::<f32>().unwrap() > 0.0);
    // Deterministic for a seed.
    let again = rpn
        .forward_train(&maps, &sizes, &gt(), &mut SplitMix64::new(1))
        .unwrap();
    assert_eq!(
        out.losses.total().unwrap().to_scalar::<f32>().unwrap(),
        again.losses.total().unwrap().to_scalar::<f32>().unwrap()
    );
    let test = rpn.forward_test(&maps, &sizes).unwrap();
    assert!(test
        .iter()
        .all(|p| !p.is_empty() && p.len() <= 2 * (36 + 9)));
    assert!(rpn
        .forward_train(&maps, &sizes, &gt()[..1], &mut SplitMix64::new(1))
        .is_err());
    assert!(rpn.forward_test(&maps, &sizes[..1]).is_err());
}

#[test]
fn mismatched_levels_are_clear_errors() {
    let dev = Device::Cpu;
    let vb = VarBuilder::zeros(DType::F32, &dev);
    let five =
        [4usize, 8, 16, 32, 64].map(|s| ShapeSpec::new(format!("p{}", s.trailing_zeros()), 8, s));
    // The default anchors have 5 levels: a 4-level FPN is refused at build time.
    let e = RegionProposalNetwork::new(RpnConfig::default(), &five[..4], vb.clone())
        .err()
        .unwrap();
    assert!(
        matches!(
            e,
            RpnError::LevelCount {
                settings: 5,
                levels: 4,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("anchors.sizes"), "{e}");
    assert!(RegionProposalNetwork::new(RpnConfig::default(), &five, vb.clone()).is_ok());
    // Different anchors per location at different levels cannot share one head.
    let uneven = RpnConfig {
        anchors: AnchorConfig {
            sizes: Levels::Each(vec![vec![8.0], vec![16.0, 24.0]]),
            ..AnchorConfig::default()
        },
        ..RpnConfig::default()
    };
    let e = RegionProposalNetwork::new(uneven, &five[..2], vb.clone())
        .err()
        .unwrap();
    assert!(
        matches!(
            e,
            RpnError::AnchorsPerLocation {
                level: 1,
                generator: 6,
                head: 3,
                ..
            }
        ),
        "{e}"
    );
    // A head built for another anchor count.
    let head = RpnHead::new(8, 3, vb.pp("h")).unwrap();
    let e = RegionProposalNetwork::with_head(RpnConfig::default(), &five, head)
        .err()
        .unwrap();
    assert!(
        matches!(
            e,
            RpnError::AnchorsPerLocation {
                generator: 9,
                head: 3,
                ..
            }
        ),
        "{e}"
    );
    // Channels differ between levels.
    let mut odd = five.clone();
    odd[2].channels = 16;
    assert!(RegionProposalNetwork::new(RpnConfig::default(), &odd, vb.clone()).is_err());
    // Bad config values.
    let bad = RpnConfig {
        fg_iou_thresh: 0.2,
        ..RpnConfig::default()
    };
    assert!(RegionProposalNetwork::new(bad, &five, vb.clone()).is_err());
    let bad = RpnConfig {
        smooth_l1_beta: 0.0,
        ..RpnConfig::default()
    };
    assert!(RegionProposalNetwork::new(bad, &five, vb.clone()).is_err());
    // At run time: wrong number of maps, wrong stride.
    let (_vm, rpn, maps) = small_rpn(DType::F32);
    let e = rpn
        .forward_test(
            &maps[..1],
            &[ImageSize::new(24, 24), ImageSize::new(24, 24)],
        )
        .unwrap_err();
    assert!(e.to_string().contains("1 feature maps"), "{e}");
    let mut wrong = maps.clone();
    wrong[1].stride = 16;
    assert!(rpn
        .forward_test(&wrong, &[ImageSize::new(24, 24), ImageSize::new(24, 24)])
        .unwrap_err()
        .to_string()
        .contains("stride"));
}
