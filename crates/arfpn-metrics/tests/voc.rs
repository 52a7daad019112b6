//! Hand-worked VOC cases: every number below is computed by hand from the devkit's rules.

use arfpn_metrics::{
    evaluate_voc, BoxConvention, Dataset, Detection, DifficultPolicy, GtBox, IouComparison,
    MetricsError, Outcome, Rect, VocMethod, VocOptions,
};

fn r(x1: f64, y1: f64, x2: f64, y2: f64) -> Rect {
    Rect::from_corners(x1, y1, x2, y2)
}

fn data(num_images: usize, num_classes: usize) -> Dataset {
    Dataset::new(
        num_images,
        (0..num_classes).map(|c| format!("c{c}")).collect(),
    )
}

fn opts(method: VocMethod) -> VocOptions {
    VocOptions {
        method,
        ..VocOptions::default()
    }
}

/// Sum of `n` terms `p / 11` accumulated one by one, as the devkit does.
fn elevenths(terms: &[f64]) -> f64 {
    terms.iter().fold(0.0, |ap, p| ap + p / 11.0)
}

#[test]
fn perfect_detections_give_one() {
    let mut d = data(2, 1);
    for i in 0..2 {
        for k in 0..3 {
            let b = r(20.0 * k as f64, 0.0, 20.0 * k as f64 + 10.0, 10.0);
            d.gts.push(GtBox::new(i, 0, b));
            d.dets.push(Detection::new(i, 0, b, 0.5 + 0.1 * k as f64));
        }
    }
    // 11 * (1/11) accumulated is 1.0000000000000002 in f64, in the devkit as here.
    let one11 = elevenths(&[1.0; 11]);
    for (m, one) in [(VocMethod::ElevenPoint, one11), (VocMethod::AllPoint, 1.0)] {
        let res = evaluate_voc(&d, &opts(m)).unwrap();
        assert_eq!(res.map, Some(one));
        let c = &res.per_class[0];
        assert_eq!((c.npos, c.tp, c.fp, c.ignored), (6, 6, 0, 0));
    }
}

#[test]
fn tp_fp_tp_curve_by_hand() {
    // 2 GT; ranks: TP, FP, TP -> rec .5 .5 1, prec 1 .5 2/3.
    let mut d = data(1, 1);
    d.gts.push(GtBox::new(0, 0, r(0.0, 0.0, 10.0, 10.0)));
    d.gts.push(GtBox::new(0, 0, r(50.0, 0.0, 60.0, 10.0)));
    d.dets
        .push(Detection::new(0, 0, r(0.0, 0.0, 10.0, 10.0), 0.9));
    d.dets
        .push(Detection::new(0, 0, r(100.0, 0.0, 110.0, 10.0), 0.8));
    d.dets
        .push(Detection::new(0, 0, r(50.0, 0.0, 60.0, 10.0), 0.7));
    let all = evaluate_voc(&d, &opts(VocMethod::AllPoint)).unwrap();
    assert_eq!(all.per_class[0].ap, Some(0.5 * 1.0 + 0.5 * (2.0 / 3.0)));
    assert_eq!(all.per_class[0].curve.precision, vec![1.0, 0.5, 2.0 / 3.0]);
    assert_eq!(all.per_class[0].curve.recall, vec![0.5, 0.5, 1.0]);
    let eleven = evaluate_voc(&d, &opts(VocMethod::ElevenPoint)).unwrap();
    let mut terms = vec![1.0; 6];
    terms.extend([2.0 / 3.0; 5]);
    assert_eq!(eleven.per_class[0].ap, Some(elevenths(&terms)));
}

#[test]
fn no_detections_class_only_in_gt_and_class_only_in_dets() {
    // class 0: GT, no dets -> AP 0. class 1: dets, no GT -> undefined, left out of the mean.
    // class 2: perfect -> 1. mAP = (0 + 1) / 2.
    let mut d = data(3, 3);
    d.gts.push(GtBox::new(0, 0, r(0.0, 0.0, 10.0, 10.0)));
    d.dets
        .push(Detection::new(1, 1, r(0.0, 0.0, 10.0, 10.0), 0.9));
    d.gts.push(GtBox::new(2, 2, r(0.0, 0.0, 10.0, 10.0)));
    d.dets
        .push(Detection::new(2, 2, r(0.0, 0.0, 10.0, 10.0), 0.9));
    let one11 = elevenths(&[1.0; 11]);
    for (m, one) in [(VocMethod::ElevenPoint, one11), (VocMethod::AllPoint, 1.0)] {
        let res = evaluate_voc(&d, &opts(m)).unwrap();
        assert_eq!(res.per_class[0].ap, Some(0.0));
        assert_eq!(res.per_class[1].ap, None);
        assert_eq!((res.per_class[1].npos, res.per_class[1].fp), (0, 1));
        assert_eq!(res.per_class[2].ap, Some(one));
        assert_eq!(res.map, Some(one / 2.0));
    }
    // No ground truth at all: no mean.
    let mut e = data(1, 1);
    e.dets
        .push(Detection::new(0, 0, r(0.0, 0.0, 1.0, 1.0), 0.1));
    assert_eq!(evaluate_voc(&e, &VocOptions::default()).unwrap().map, None);
    // Nothing at all (empty images): no panic, no mean.
    assert_eq!(
        evaluate_voc(&data(4, 2), &VocOptions::default())
            .unwrap()
            .map,
        None
    );
}

#[test]
fn duplicates_are_false_positives_without_fallback() {
    // Two identical GT boxes A, B (IoU ties: first wins). Det 1 takes A; det 2 again has A
    // as its argmax (first on ties) -> already taken -> FP, although B is free.
    let mut d = data(1, 1);
    let b = r(0.0, 0.0, 10.0, 10.0);
    d.gts.push(GtBox::new(0, 0, b));
    d.gts.push(GtBox::new(0, 0, b));
    d.dets.push(Detection::new(0, 0, b, 0.9));
    d.dets.push(Detection::new(0, 0, b, 0.8));
    let res = evaluate_voc(&d, &opts(VocMethod::AllPoint)).unwrap();
    let c = &res.per_class[0];
    assert_eq!((c.tp, c.fp), (1, 1));
    assert_eq!(c.ap, Some(0.5));
}

#[test]
fn tied_scores_keep_input_order() {
    // Same score: input order decides. FP first then TP: prec 0, .5 -> AP .5 (envelope);
    // TP first: prec 1 -> AP 1. 11-point likewise (all 11 thresholds at recall 1).
    let gt = r(0.0, 0.0, 10.0, 10.0);
    let miss = r(40.0, 40.0, 50.0, 50.0);
    for (first, second, ap_all, ap11) in [
        (miss, gt, 0.5, elevenths(&[0.5; 11])),
        (gt, miss, 1.0, elevenths(&[1.0; 11])),
    ] {
        let mut d = data(1, 1);
        d.gts.push(GtBox::new(0, 0, gt));
        d.dets.push(Detection::new(0, 0, first, 0.7));
        d.dets.push(Detection::new(0, 0, second, 0.7));
        assert_eq!(
            evaluate_voc(&d, &opts(VocMethod::AllPoint)).unwrap().map,
            Some(ap_all)
        );
        assert_eq!(
            evaluate_voc(&d, &opts(VocMethod::ElevenPoint)).unwrap().map,
            Some(ap11)
        );
    }
    // Ties across images follow the global input order too.
    let mut d = data(2, 1);
    d.gts.push(GtBox::new(1, 0, gt));
    d.dets.push(Detection::new(0, 0, gt, 0.7)); // FP (image 0 has no GT)
    d.dets.push(Detection::new(1, 0, gt, 0.7)); // TP
    assert_eq!(
        evaluate_voc(&d, &opts(VocMethod::AllPoint)).unwrap().map,
        Some(0.5)
    );
}

#[test]
fn difficult_boxes() {
    let normal = r(0.0, 0.0, 10.0, 10.0);
    let hard = r(100.0, 0.0, 110.0, 10.0);
    let mut d = data(1, 1);
    d.gts.push(GtBox::new(0, 0, normal));
    d.gts.push(GtBox::new(0, 0, hard).ignored());
    d.dets.push(Detection::new(0, 0, hard, 0.95)); // on difficult: ignored
    d.dets.push(Detection::new(0, 0, hard, 0.9)); // duplicate on difficult: ignored too
    d.dets.push(Detection::new(0, 0, normal, 0.8)); // TP
                                                    // Difficult takes the argmax: IoU with `normal` 0.6, with `hard2` 1.0 -> ignored, and
                                                    // `normal` stays free for nobody.
    let res = evaluate_voc(&d, &VocOptions::default()).unwrap();
    let c = &res.per_class[0];
    assert_eq!((c.npos, c.tp, c.fp, c.ignored), (1, 1, 0, 2));
    assert_eq!(c.ap, Some(1.0));
    let outcomes: Vec<Outcome> = c.outcomes.iter().map(|o| o.1).collect();
    assert_eq!(
        outcomes,
        [Outcome::Ignored, Outcome::Ignored, Outcome::TruePositive]
    );

    // As ordinary GT: npos 2, ranks TP, FP(dup), TP -> rec .5 .5 1, prec 1 .5 2/3.
    let as_gt = VocOptions {
        difficult: DifficultPolicy::AsGt,
        ..VocOptions::default()
    };
    let c = &evaluate_voc(&d, &as_gt).unwrap().per_class[0];
    assert_eq!((c.npos, c.tp, c.fp), (2, 2, 1));
    assert_eq!(c.ap, Some(0.5 + 0.5 * (2.0 / 3.0)));
    // Dropped: the two detections on it become FP before the TP: prec 1/3 at recall 1.
    let drop = VocOptions {
        difficult: DifficultPolicy::Drop,
        ..VocOptions::default()
    };
    let c = &evaluate_voc(&d, &drop).unwrap().per_class[0];
    assert_eq!((c.npos, c.tp, c.fp), (1, 1, 2));
    assert_eq!(c.ap, Some(1.0 / 3.0));
}

#[test]
fn difficult_box_taking_the_argmax_hides_a_normal_match() {
    // normal GT [0,0,10,10]; difficult GT [2,0,12,10]; det [2,0,12,10]:
    // IoU with normal = 80/120 = 0.667 >= .5, with difficult = 1 -> argmax is the difficult
    // box -> ignored; the normal box remains unmatched (AP 0 at npos 1).
    let mut d = data(1, 1);
    d.gts.push(GtBox::new(0, 0, r(0.0, 0.0, 10.0, 10.0)));
    d.gts
        .push(GtBox::new(0, 0, r(2.0, 0.0, 12.0, 10.0)).ignored());
    d.dets
        .push(Detection::new(0, 0, r(2.0, 0.0, 12.0, 10.0), 0.9));
    let c = &evaluate_voc(&d, &VocOptions::default()).unwrap().per_class[0];
    assert_eq!((c.npos, c.tp, c.fp, c.ignored), (1, 0, 0, 1));
    assert_eq!(c.ap, Some(0.0));
    assert!(c.curve.scores.is_empty());
}

#[test]
fn iou_exactly_at_threshold_under_each_convention() {
    // Continuous: [0,0,10,10] vs [0,0,10,20]: 100 / 200 = 0.5 exactly.
    // PlusOne:    [0,0,9,9]   vs [0,0,9,19]:  100 / 200 = 0.5 exactly.
    for (conv, g, det) in [
        (
            BoxConvention::Continuous,
            r(0.0, 0.0, 10.0, 10.0),
            r(0.0, 0.0, 10.0, 20.0),
        ),
        (
            BoxConvention::PlusOne,
            r(0.0, 0.0, 9.0, 9.0),
            r(0.0, 0.0, 9.0, 19.0),
        ),
    ] {
        let mut d = data(1, 1);
        d.gts.push(GtBox::new(0, 0, g));
        d.dets.push(Detection::new(0, 0, det, 0.9));
        for (cmp, ap) in [
            (IouComparison::GreaterEqual, 1.0),
            (IouComparison::Greater, 0.0),
        ] {
            let o = VocOptions {
                convention: conv,
                comparison: cmp,
                ..VocOptions::default()
            };
            assert_eq!(
                evaluate_voc(&d, &o).unwrap().map,
                Some(ap),
                "{conv:?} {cmp:?}"
            );
        }
    }
    // The conventions differ: continuous [0,0,10,10] vs [0,0,10,20] is 0.5 but with +1
    // it is 121/231 > 0.5; and [0,0,1,1] vs [1,0,2,1] touch (no overlap) continuously but
    // overlap by one pixel column with +1 (IoU 2/6 < 0.5 -> still FP).
    let mut d = data(1, 1);
    d.gts.push(GtBox::new(0, 0, r(0.0, 0.0, 10.0, 10.0)));
    d.dets
        .push(Detection::new(0, 0, r(0.0, 0.0, 10.0, 20.0), 0.9));
    let strict = |conv| VocOptions {
        convention: conv,
        comparison: IouComparison::Greater,
        ..VocOptions::default()
    };
    assert_eq!(
        evaluate_voc(&d, &strict(BoxConvention::Continuous))
            .unwrap()
            .map,
        Some(0.0)
    );
    assert_eq!(
        evaluate_voc(&d, &strict(BoxConvention::PlusOne))
            .unwrap()
            .map,
        Some(1.0)
    );
}

#[test]
fn eleven_point_recall_exactly_03_06_07() {
    // 10 GT, n perfect TPs: recall reaches n/10 at precision 1. The thresholds are k * 0.1:
    // 0.30000000000000004, 0.6000000000000001 and 0.7000000000000001 are NOT reached by
    // recalls 0.3, 0.6, 0.7, so the number of terms is 3, 6, 7 (not 4, 7, 8).
    for (n, terms) in [(3usize, 3usize), (6, 6), (7, 7), (5, 6), (10, 11)] {
        let mut d = data(1, 1);
        for k in 0..10 {
            let b = r(20.0 * k as f64, 0.0, 20.0 * k as f64 + 10.0, 10.0);
            d.gts.push(GtBox::new(0, 0, b));
            if k < n {
                d.dets.push(Detection::new(0, 0, b, 1.0 - 0.01 * k as f64));
            }
        }
        let res = evaluate_voc(&d, &opts(VocMethod::ElevenPoint)).unwrap();
        assert_eq!(res.map, Some(elevenths(&vec![1.0; terms])), "n = {n}");
        // All-point: exactly n/10 (sum of n steps of 0.1).
        let all = evaluate_voc(&d, &opts(VocMethod::AllPoint)).unwrap();
        let want = (0..n).fold(0.0, |s, k| s + ((k + 1) as f64 / 10.0 - k as f64 / 10.0));
        assert_eq!(all.map, Some(want));
    }
}

#[test]
fn bad_input_is_an_error_naming_the_record() {
    let mut d = data(1, 1);
    d.dets
        .push(Detection::new(0, 0, r(0.0, 0.0, 1.0, 1.0), f64::NAN));
    let e = evaluate_voc(&d, &VocOptions::default()).unwrap_err();
    assert!(
        matches!(e, MetricsError::BadDetection { index: 0, .. }),
        "{e}"
    );
    let mut d = data(1, 1);
    d.gts.push(GtBox::new(0, 0, r(0.0, 0.0, 1.0, 1.0)));
    d.gts.push(GtBox::new(0, 0, r(5.0, 0.0, 1.0, 1.0)));
    let e = evaluate_voc(&d, &VocOptions::default()).unwrap_err();
    assert!(matches!(e, MetricsError::BadGt { index: 1, .. }), "{e}");
    assert!(e.to_string().contains("negative"), "{e}");
    let mut d = data(1, 1);
    d.gts.push(GtBox::new(3, 0, r(0.0, 0.0, 1.0, 1.0)));
    assert!(evaluate_voc(&d, &VocOptions::default()).is_err());
    let bad = VocOptions {
        iou_threshold: 1.5,
        ..VocOptions::default()
    };
    assert!(evaluate_voc(&data(1, 1), &bad).is_err());
}
