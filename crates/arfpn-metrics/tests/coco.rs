//! Hand-worked COCOeval cases and the COCO JSON reader's errors.

use arfpn_metrics::{
    coco_iou_thresholds, coco_recall_thresholds, evaluate_coco, CocoGt, CocoOptions, Dataset,
    Detection, GtBox, Rect,
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

fn close(a: Option<f64>, b: f64) -> bool {
    a.is_some_and(|a| (a - b).abs() < 1e-15)
}

/// pycocotools' precision of `tp` true positives among `tp + fp`.
fn pr(tp: f64, fp: f64) -> f64 {
    tp / (fp + tp + f64::EPSILON)
}

#[test]
fn thresholds_are_numpy_linspace_bit_for_bit() {
    let t = coco_iou_thresholds();
    assert_eq!(t.len(), 10);
    assert_eq!(t[0], 0.5);
    assert_eq!(t[5], 0.75);
    assert_eq!(t[8], 0.8999999999999999);
    assert_eq!(t[9], 0.95);
    let r = coco_recall_thresholds();
    assert_eq!(r.len(), 101);
    assert_eq!(r[35], 35.0 * 0.01);
    assert_ne!(r[35], 0.35);
    assert_eq!(r[100], 1.0);
}

#[test]
fn perfect_single_detection() {
    let mut d = data(1, 2);
    d.gts.push(GtBox::new(0, 0, r(0.0, 0.0, 10.0, 10.0)));
    d.dets
        .push(Detection::new(0, 0, r(0.0, 0.0, 10.0, 10.0), 0.9));
    let res = evaluate_coco(&d, &CocoOptions::default()).unwrap();
    let one = pr(1.0, 0.0); // 0.9999999999999998, as pycocotools
    assert_eq!(res.precision_at(9, 100, 0, 0, 2), one);
    assert_eq!(res.precision_at(0, 0, 1, 0, 2), -1.0);
    assert!(close(res.stats.ap, one));
    assert!(close(res.stats.ap50, one));
    assert_eq!(res.stats.ar_max, Some(1.0));
    assert!(close(res.stats.ap_small, one)); // area 100 < 32^2
    assert_eq!(res.stats.ap_medium, None);
    assert_eq!(res.stats.ap_large, None);
    assert!(close(res.per_class[0].ap, one));
    assert_eq!(res.per_class[1].ap, None); // no ground truth: undefined, not 0
    assert_eq!(res.stats.to_array()[4], -1.0);
}

#[test]
fn crowd_regions_absorb_any_number_of_detections() {
    // Crowd GT [0,0,100,100]: a det inside it has IoU inter/det_area = 1, so both small
    // dets are matched to it and ignored; the normal GT is found by the third det -> AP 1.
    let mut d = data(1, 1);
    d.gts
        .push(GtBox::new(0, 0, r(0.0, 0.0, 100.0, 100.0)).crowd());
    d.gts.push(GtBox::new(0, 0, r(200.0, 200.0, 210.0, 210.0)));
    d.dets
        .push(Detection::new(0, 0, r(0.0, 0.0, 10.0, 10.0), 0.9));
    d.dets
        .push(Detection::new(0, 0, r(20.0, 20.0, 30.0, 30.0), 0.8));
    d.dets
        .push(Detection::new(0, 0, r(200.0, 200.0, 210.0, 210.0), 0.7));
    let res = evaluate_coco(&d, &CocoOptions::default()).unwrap();
    assert!(close(res.stats.ap, pr(1.0, 0.0)));
    // The same box merely ignored (not crowd): IoU 0.01, both small dets are FP.
    d.gts[0] = GtBox::new(0, 0, r(0.0, 0.0, 100.0, 100.0)).ignored();
    let res = evaluate_coco(&d, &CocoOptions::default()).unwrap();
    assert!(close(res.stats.ap, pr(1.0, 2.0)));
}

#[test]
fn iou_ties_go_to_the_last_ground_truth() {
    // det1 has the same IoU (90/110 = 0.82) with A and B and takes B (the last); det2 == A
    // then takes A with IoU 1. Were ties to go to A, det2 would only get B (IoU 80/120 =
    // 0.67) and be a FP at IoU 0.75, where det1 still matches: AP75 would be ~0.5.
    let mut d = data(1, 1);
    d.gts.push(GtBox::new(0, 0, r(0.0, 0.0, 10.0, 10.0)));
    d.gts.push(GtBox::new(0, 0, r(2.0, 0.0, 12.0, 10.0)));
    d.dets
        .push(Detection::new(0, 0, r(1.0, 0.0, 11.0, 10.0), 0.9));
    d.dets
        .push(Detection::new(0, 0, r(0.0, 0.0, 10.0, 10.0), 0.8));
    let res = evaluate_coco(&d, &CocoOptions::default()).unwrap();
    assert_eq!(res.precision_at(5, 100, 0, 0, 2), pr(2.0, 0.0));
    assert!(close(res.per_class[0].ap75, pr(2.0, 0.0)));
    assert_eq!(res.recall_at(5, 0, 0, 2), 1.0);
}

#[test]
fn max_dets_caps_per_image_and_class() {
    let mut d = data(1, 1);
    for k in 0..3 {
        let b = r(20.0 * k as f64, 0.0, 20.0 * k as f64 + 10.0, 10.0);
        d.gts.push(GtBox::new(0, 0, b));
        d.dets.push(Detection::new(0, 0, b, 0.9 - 0.1 * k as f64));
    }
    let opts = CocoOptions {
        max_dets: [1, 2, 3],
        ..CocoOptions::default()
    };
    let res = evaluate_coco(&d, &opts).unwrap();
    assert!(close(res.stats.ar1, 1.0 / 3.0));
    assert!(close(res.stats.ar10, 2.0 / 3.0));
    assert_eq!(res.stats.ar_max, Some(1.0));
    // With the default cap of 100 nothing is cut.
    let res = evaluate_coco(&d, &CocoOptions::with_max_dets(2)).unwrap();
    assert!(close(res.stats.ar_max, 2.0 / 3.0));
    let bad = CocoOptions {
        max_dets: [10, 2, 3],
        ..CocoOptions::default()
    };
    assert!(evaluate_coco(&d, &bad).is_err());
}

#[test]
fn area_ranges_use_the_annotation_area() {
    // A 40x40 box (1600 px, medium) whose annotation area says 500 (small): it counts as
    // small; the matched detection (area 1600) follows its ground truth.
    let mut d = data(1, 1);
    let mut g = GtBox::new(0, 0, r(0.0, 0.0, 40.0, 40.0));
    g.area = Some(500.0);
    d.gts.push(g);
    d.dets
        .push(Detection::new(0, 0, r(0.0, 0.0, 40.0, 40.0), 0.9));
    let res = evaluate_coco(&d, &CocoOptions::default()).unwrap();
    assert!(close(res.stats.ap_small, pr(1.0, 0.0)));
    // In "medium" the GT is out of range (ignored); the matched det inherits the ignore.
    assert_eq!(res.stats.ap_medium, None);
}

const GT: &str = r#"{"images": [{"id": 7}, {"id": 3}],
 "categories": [{"id": 5, "name": "b"}, {"id": 2, "name": "a"}],
 "annotations": [
   {"image_id": 7, "category_id": 5, "bbox": [0, 0, 10, 10]},
   {"image_id": 3, "category_id": 2, "bbox": [1, 1, 4, 4], "difficult": 1, "area": 9.5},
   {"image_id": 3, "category_id": 2, "bbox": [1, 1, 4, 4], "iscrowd": 1}]}"#;

#[test]
fn coco_json_reader_sorts_ids_and_reads_flags() {
    let mut gt = CocoGt::parse(GT).unwrap();
    assert_eq!(gt.image_ids, [3, 7]);
    assert_eq!(gt.category_ids, [2, 5]);
    assert_eq!(gt.dataset.class_names, ["a", "b"]);
    let g = &gt.dataset.gts;
    assert_eq!(
        (g[0].image, g[0].class, g[0].ignore, g[0].crowd),
        (1, 1, false, false)
    );
    assert_eq!(g[0].rect.corners(), [0.0, 0.0, 10.0, 10.0]);
    assert_eq!((g[1].ignore, g[1].area), (true, Some(9.5)));
    assert!(g[2].crowd);
    gt.add_results(r#"[{"image_id": 7, "category_id": 5, "bbox": [0, 0, 10, 10], "score": 0.5}]"#)
        .unwrap();
    assert_eq!(gt.dataset.dets[0].image, 1);
}

#[test]
fn integral_float_ids_are_accepted_as_pycocotools_does() {
    let mut gt = CocoGt::parse(&GT.replace(r#""image_id": 7"#, r#""image_id": 7.0"#)).unwrap();
    gt.add_results(
        r#"[{"image_id": 7.0, "category_id": 5.0, "bbox": [0, 0, 10, 10], "score": 0.5}]"#,
    )
    .unwrap();
    assert_eq!(gt.dataset.dets.len(), 1);
    assert_eq!((gt.dataset.dets[0].image, gt.dataset.dets[0].class), (1, 1));
    let e = gt
        .add_results(r#"[{"image_id": 7, "category_id": 1.5, "bbox": [0, 0, 1, 1], "score": 1}]"#)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("[0]") && e.contains("`category_id` = 1.5 is not an integer"),
        "{e}"
    );
}

#[test]
fn coco_json_errors_name_the_record() {
    let cases = [
        (
            GT.replace(r#""bbox": [0, 0, 10, 10]"#, r#""box": 1"#),
            "annotations[0]: missing field `bbox`",
        ),
        (
            GT.replace(r#""image_id": 7"#, r#""image_id": 8"#),
            "annotations[0]: unknown image_id 8",
        ),
        (
            GT.replace("[1, 1, 4, 4], \"d", "[1, 1, -4, 4], \"d"),
            "annotations[1]: bbox",
        ),
        (
            GT.replace(r#"{"id": 3}"#, r#"{"idx": 3}"#),
            "images[1]: missing field `id`",
        ),
    ];
    for (text, want) in cases {
        let e = CocoGt::parse(&text).unwrap_err().to_string();
        assert!(e.starts_with(want), "{e:?} should start with {want:?}");
    }
    let mut gt = CocoGt::parse(GT).unwrap();
    let e = gt
        .add_results(
            r#"[{"image_id": 7, "category_id": 5, "bbox": [0, 0, 1, 1], "score": 1},
                         {"image_id": 7, "category_id": 9, "bbox": [0, 0, 1, 1], "score": 1}]"#,
        )
        .unwrap_err();
    assert_eq!(e.to_string(), "detections[1]: unknown category_id 9");
    let e = gt
        .add_results(r#"[{"image_id": 7, "category_id": 5, "bbox": [0, 0, 1, 1]}]"#)
        .unwrap_err();
    assert_eq!(e.to_string(), "detections[0]: missing field `score`");
    assert!(gt
        .add_results(r#"[{"image_id": 7, "category_id": 5, "bbox": [0, 0, 1, 1], "score": NaN}]"#)
        .is_err());
    assert_eq!(gt.dataset.dets.len(), 0, "a failed read adds nothing");
}
