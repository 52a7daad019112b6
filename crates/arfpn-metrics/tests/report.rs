//! P/R/F1, confusion matrix, report renderings and plots on hand-worked cases.

use arfpn_metrics::{
    best_f1, confusion_matrix, envelope_steps, evaluate_voc, plot_pr_curves, prf_at, BoxConvention,
    Dataset, Detection, GtBox, Rect, Report, ReportOptions, VocOptions,
};

fn r(x1: f64, y1: f64, x2: f64, y2: f64) -> Rect {
    Rect::from_corners(x1, y1, x2, y2)
}

fn sq(i: usize) -> Rect {
    r(20.0 * i as f64, 0.0, 20.0 * i as f64 + 10.0, 10.0)
}

/// Class "a": 4 GT; dets (score, hit?): .9 TP, .8 FP, .7 TP, .7 TP, .3 FP.
/// Class "b": 1 GT (image 1), found only by a det labelled "a" at .6: a FP of "a" for VOC,
/// and a b-as-a cell in the confusion matrix.
fn case() -> Dataset {
    let mut d = Dataset::new(2, vec!["a".into(), "b".into()]);
    for i in 0..4 {
        d.gts.push(GtBox::new(0, 0, sq(i)));
    }
    d.gts.push(GtBox::new(1, 1, sq(0)));
    d.dets.push(Detection::new(0, 0, sq(0), 0.9));
    d.dets.push(Detection::new(0, 0, sq(9), 0.8));
    d.dets.push(Detection::new(0, 0, sq(1), 0.7));
    d.dets.push(Detection::new(0, 0, sq(2), 0.7));
    d.dets.push(Detection::new(0, 0, sq(8), 0.3));
    d.dets.push(Detection::new(1, 0, sq(0), 0.6));
    d
}

#[test]
fn prf_at_thresholds_and_best_f1() {
    let d = case();
    let res = evaluate_voc(&d, &VocOptions::default()).unwrap();
    let c = &res.per_class[0];
    // Ranked: .9 TP, .8 FP, .7 TP, .7 TP, .6 FP (image 1), .3 FP.
    assert_eq!(c.curve.tp, [1, 1, 2, 3, 3, 3]);
    let p = prf_at(&c.curve, c.npos, 0.7); // keeps both 0.7 ties
    assert_eq!((p.tp, p.fp, p.precision, p.recall), (3, 1, 0.75, 0.75));
    assert_eq!(p.f1, 0.75);
    let p = prf_at(&c.curve, c.npos, 0.95);
    assert_eq!(
        (p.tp, p.fp, p.precision, p.recall, p.f1),
        (0, 0, 0.0, 0.0, 0.0)
    );
    let p = prf_at(&c.curve, c.npos, 0.0);
    assert_eq!((p.tp, p.fp), (3, 3));
    // Cuts: .9 -> F1 2*(1*.25)/1.25 = .4; .8 -> .333; .7 -> .75 (best); .6 -> .667; .3 -> .6
    let b = best_f1(&c.curve, c.npos).unwrap();
    assert_eq!((b.threshold, b.tp, b.fp, b.f1), (0.7, 3, 1, 0.75));
    assert!(best_f1(&res.per_class[1].curve, 1).is_none());
}

#[test]
fn confusion_matrix_class_agnostic() {
    let d = case();
    let m = confusion_matrix(&d, 0.5, 0.5, BoxConvention::Continuous).unwrap();
    // rows truth (a, b, bg), cols predicted (a, b, bg)
    assert_eq!(m.get(0, 0), 3); // a found as a
    assert_eq!(m.get(0, 2), 1); // a missed (sq(3))
    assert_eq!(m.get(1, 0), 1); // b predicted as a
    assert_eq!(m.get(2, 0), 1); // false alarm at .8 (the .3 one is below the threshold)
    assert_eq!(m.counts.iter().sum::<usize>(), 6);
    let m = confusion_matrix(&d, 0.5, 0.0, BoxConvention::Continuous).unwrap();
    assert_eq!(m.get(2, 0), 2);
}

#[test]
fn report_json_has_the_interface_shape() {
    let d = case();
    let rep = Report::evaluate(&d, &ReportOptions::default()).unwrap();
    let v = rep.summary_json();
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["coco", "voc", "voc07"]);
    for k in ["voc07", "voc"] {
        let a = &v[k]["per_class"]["a"];
        assert_eq!(a.as_object().unwrap().len(), 4);
        assert_eq!(
            (a["npos"].as_u64(), a["tp"].as_u64(), a["fp"].as_u64()),
            (Some(4), Some(3), Some(3))
        );
        assert!(v[k]["map"].is_f64());
        // class b: GT, no detections -> AP 0 (not null)
        assert_eq!(v[k]["per_class"]["b"]["ap"].as_f64(), Some(0.0));
    }
    let c = &v["coco"];
    assert_eq!(c.as_object().unwrap().len(), 4);
    for k in ["ap", "ap50", "ap75"] {
        assert!(c[k].is_f64() && c["per_class"]["a"][k].is_f64());
    }
    assert_eq!(c["per_class"]["b"]["ap"].as_f64(), Some(0.0));
    // Full JSON, CSV and table carry the same numbers.
    let full = rep.to_json();
    assert_eq!(full["prf"]["a"]["best_f1"]["f1"].as_f64(), Some(0.75));
    assert_eq!(full["confusion"]["counts"][1][0].as_u64(), Some(1));
    let csv = rep.to_csv();
    assert_eq!(csv.lines().count(), 4);
    assert!(csv.lines().nth(1).unwrap().starts_with("a,4,3,3,"));
    let curves = rep.pr_curves_csv();
    assert_eq!(curves.lines().count(), 1 + 6);
    assert_eq!(
        curves.lines().nth(3).unwrap(),
        "a,3,0.7,2,1,0.6666666666666666,0.5"
    );
    let table = rep.to_table();
    assert!(
        table.contains("Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ]")
    );
    // An undefined AP is null, and duplicate names are refused.
    let mut d2 = case();
    d2.class_names.push("c".into());
    let v2 = Report::evaluate(&d2, &ReportOptions::default())
        .unwrap()
        .summary_json();
    assert!(v2["voc"]["per_class"]["c"]["ap"].is_null());
    assert!(v2["coco"]["per_class"]["c"]["ap"].is_null());
    d2.class_names[2] = "a".into();
    assert!(Report::evaluate(&d2, &ReportOptions::default()).is_err());
}

#[test]
fn envelope_steps_by_hand() {
    // rec .5 .5 1, prec 1 .5 2/3 -> envelope 1 (0..0.5], 2/3 (0.5..1]
    let pts = envelope_steps(&[0.5, 0.5, 1.0], &[1.0, 0.5, 2.0 / 3.0]);
    assert_eq!(
        pts,
        [(0.0, 1.0), (0.5, 1.0), (0.5, 2.0 / 3.0), (1.0, 2.0 / 3.0)]
    );
}

#[test]
fn pr_plots_are_written_as_png_and_svg() {
    let d = case();
    let res = evaluate_voc(&d, &VocOptions::default()).unwrap();
    let dir = std::env::temp_dir().join(format!("arfpn-metrics-plot-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let png = dir.join("pr.png");
    plot_pr_curves(&res, &d.class_names, &png).unwrap();
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[1..4], b"PNG");
    assert!(
        bytes.len() > 10_000,
        "a blank PNG is much smaller: {}",
        bytes.len()
    );
    let svg = dir.join("pr.svg");
    plot_pr_curves(&res, &d.class_names, &svg).unwrap();
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.contains("a (AP 0.625)"), "legend with AP"); // 0.25*1 + 0.5*0.75
    assert!(text.contains("Recall") && text.contains("Precision"));
    assert!(plot_pr_curves(&res, &d.class_names, dir.join("pr.gif")).is_err());
    // Colour-blind-safe Okabe-Ito colours, none of them the yellow that is unreadable on
    // white: the first curve is Okabe-Ito blue (#0072B2), and no curve uses plotters'
    // default palette's first colours.
    assert!(
        text.to_ascii_uppercase().contains("#0072B2"),
        "Okabe-Ito blue"
    );
    for k in 0..14 {
        let c = arfpn_metrics::series_color(k);
        let rgb = (c.0, c.1, c.2);
        assert!(arfpn_metrics::OKABE_ITO.contains(&rgb), "{k}: {rgb:?}");
        assert_ne!(rgb, (240, 228, 66), "curve {k} is yellow");
    }
    assert_ne!(
        arfpn_metrics::series_color(0),
        arfpn_metrics::series_color(1)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn empty_inputs_do_not_panic() {
    for (ni, nc) in [(0, 0), (0, 2), (3, 0), (3, 2)] {
        let d = Dataset::new(ni, (0..nc).map(|k| format!("c{k}")).collect());
        let rep = Report::evaluate(&d, &ReportOptions::default()).unwrap();
        assert_eq!(rep.voc.map, None);
        assert_eq!(rep.coco.stats.ap, None);
        assert!(rep.summary_json()["voc07"]["map"].is_null());
        assert!(!rep.to_table().is_empty());
    }
}
