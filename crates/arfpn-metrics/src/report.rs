//! Everything at once ([`Report`]) and its renderings: text table, JSON, CSV.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::{
    best_f1, confusion_matrix, evaluate_coco, evaluate_voc, prf_at, CocoClassResult, CocoOptions,
    CocoResult, ConfusionMatrix, Dataset, MetricsError, PrfPoint, VocMethod, VocOptions, VocResult,
};

/// Options of [`Report::evaluate`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReportOptions {
    /// VOC matching options; `method` is ignored (both methods are computed).
    pub voc: VocOptions,
    /// Options of the COCO evaluation.
    pub coco: CocoOptions,
    /// Score threshold of the P/R/F1 columns and of the confusion matrix (0.5).
    pub score_threshold: f64,
}

impl Default for ReportOptions {
    fn default() -> Self {
        Self {
            voc: VocOptions::default(),
            coco: CocoOptions::default(),
            score_threshold: 0.5,
        }
    }
}

/// One class's row of the report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassReport {
    /// The class name, from [`Dataset::class_names`].
    pub name: String,
    /// Number of ground-truth boxes that count for recall (VOC difficult policy applied).
    pub npos: usize,
    /// True positives over all detections of the class (no score threshold) at the VOC IoU
    /// threshold.
    pub tp: usize,
    /// False positives over all detections of the class (no score threshold) at the VOC
    /// IoU threshold.
    pub fp: usize,
    /// VOC2007 11-point AP; `None` when the class has no ground truth that counts.
    pub voc07_ap: Option<f64>,
    /// VOC2010+ all-point AP; `None` when the class has no ground truth that counts.
    pub voc_ap: Option<f64>,
    /// COCO AP, AP50 and AP75 of the class.
    pub coco: CocoClassResult,
    /// P/R/F1 at [`ReportOptions::score_threshold`] (VOC matching).
    pub at_threshold: PrfPoint,
    /// P/R/F1 at the F1-maximising threshold; `None` without detections.
    pub best_f1: Option<PrfPoint>,
}

/// VOC07, VOC all-point and COCO results, per-class P/R/F1 and the confusion matrix.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The options the report was computed with.
    pub options: ReportOptions,
    /// VOC evaluation with [`VocMethod::ElevenPoint`] (VOC2007 AP).
    pub voc07: VocResult,
    /// VOC evaluation with [`VocMethod::AllPoint`] (VOC2010+ AP).
    pub voc: VocResult,
    /// The full COCO evaluation.
    pub coco: CocoResult,
    /// One row per class, in class-index order.
    pub classes: Vec<ClassReport>,
    /// Class-agnostically matched confusion matrix at the VOC IoU threshold and
    /// [`ReportOptions::score_threshold`].
    pub confusion: ConfusionMatrix,
}

fn opt(v: Option<f64>) -> Value {
    v.map_or(Value::Null, |x| json!(x))
}

impl Report {
    /// Runs every evaluation. Class names must be unique (they key the JSON output).
    pub fn evaluate(data: &Dataset, opts: &ReportOptions) -> Result<Self, MetricsError> {
        let mut names: Vec<&String> = data.class_names.iter().collect();
        names.sort();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(MetricsError::BadOption {
                option: "class_names",
                reason: format!("duplicate class name {:?}", w[0]),
            });
        }
        if !opts.score_threshold.is_finite() {
            return Err(MetricsError::BadOption {
                option: "score_threshold",
                reason: format!("{} is not finite", opts.score_threshold),
            });
        }
        let voc07 = evaluate_voc(
            data,
            &VocOptions {
                method: VocMethod::ElevenPoint,
                ..opts.voc
            },
        )?;
        let voc = evaluate_voc(
            data,
            &VocOptions {
                method: VocMethod::AllPoint,
                ..opts.voc
            },
        )?;
        let coco = evaluate_coco(data, &opts.coco)?;
        let confusion = confusion_matrix(
            data,
            opts.voc.iou_threshold,
            opts.score_threshold,
            opts.voc.convention,
        )?;
        let classes = (0..data.num_classes())
            .map(|k| {
                let c = &voc.per_class[k];
                ClassReport {
                    name: data.class_names[k].clone(),
                    npos: c.npos,
                    tp: c.tp,
                    fp: c.fp,
                    voc07_ap: voc07.per_class[k].ap,
                    voc_ap: c.ap,
                    coco: coco.per_class[k],
                    at_threshold: prf_at(&c.curve, c.npos, opts.score_threshold),
                    best_f1: best_f1(&c.curve, c.npos),
                }
            })
            .collect();
        Ok(Report {
            options: opts.clone(),
            voc07,
            voc,
            coco,
            classes,
            confusion,
        })
    }

    /// The summary object of the `evaluate` example's `--json` output:
    /// `{"voc07": {"map", "per_class": {NAME: {"ap", "npos", "tp", "fp"}}}, "voc": {same},
    /// "coco": {"ap", "ap50", "ap75", "per_class": {NAME: {"ap", "ap50", "ap75"}}}}`, `null`
    /// for undefined values.
    pub fn summary_json(&self) -> Value {
        let voc = |r: &VocResult| {
            let mut per = Map::new();
            for (c, cr) in r.per_class.iter().zip(&self.classes) {
                per.insert(
                    cr.name.clone(),
                    json!({"ap": opt(c.ap), "npos": c.npos, "tp": c.tp, "fp": c.fp}),
                );
            }
            json!({"map": opt(r.map), "per_class": per})
        };
        let mut per = Map::new();
        for c in &self.classes {
            per.insert(
                c.name.clone(),
                json!({"ap": opt(c.coco.ap), "ap50": opt(c.coco.ap50), "ap75": opt(c.coco.ap75)}),
            );
        }
        let s = &self.coco.stats;
        json!({
            "voc07": voc(&self.voc07),
            "voc": voc(&self.voc),
            "coco": {"ap": opt(s.ap), "ap50": opt(s.ap50), "ap75": opt(s.ap75), "per_class": per},
        })
    }

    /// Everything: the summary plus the 12 COCO stats, per-class P/R/F1 and the confusion
    /// matrix.
    pub fn to_json(&self) -> Value {
        let mut v = self.summary_json();
        let s = self.coco.stats;
        v["coco"]["stats"] = json!({
            "ap": opt(s.ap), "ap50": opt(s.ap50), "ap75": opt(s.ap75),
            "ap_small": opt(s.ap_small), "ap_medium": opt(s.ap_medium), "ap_large": opt(s.ap_large),
            "ar1": opt(s.ar1), "ar10": opt(s.ar10), "ar_max": opt(s.ar_max),
            "ar_small": opt(s.ar_small), "ar_medium": opt(s.ar_medium), "ar_large": opt(s.ar_large),
        });
        v["score_threshold"] = json!(self.options.score_threshold);
        let mut prf = Map::new();
        for c in &self.classes {
            prf.insert(
                c.name.clone(),
                json!({"at_threshold": c.at_threshold, "best_f1": c.best_f1}),
            );
        }
        v["prf"] = Value::Object(prf);
        v["confusion"] = json!({
            "labels": self.confusion_labels(),
            "counts": self.confusion.counts.chunks(self.classes.len() + 1).collect::<Vec<_>>(),
        });
        v
    }

    fn confusion_labels(&self) -> Vec<String> {
        let mut l: Vec<String> = self.classes.iter().map(|c| c.name.clone()).collect();
        l.push("background".into());
        l
    }

    /// CSV, one row per class plus a mean row, full precision, empty cells for undefined.
    pub fn to_csv(&self) -> String {
        let f = |v: Option<f64>| v.map_or(String::new(), |x| x.to_string());
        let mut s = String::from(
            "class,npos,tp,fp,voc07_ap,voc_ap,coco_ap,coco_ap50,coco_ap75,threshold,precision,recall,f1,best_threshold,best_precision,best_recall,best_f1\n",
        );
        for c in &self.classes {
            let a = &c.at_threshold;
            let b = c.best_f1;
            let _ = writeln!(
                s,
                "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
                csv_field(&c.name),
                c.npos,
                c.tp,
                c.fp,
                f(c.voc07_ap),
                f(c.voc_ap),
                f(c.coco.ap),
                f(c.coco.ap50),
                f(c.coco.ap75),
                a.threshold,
                a.precision,
                a.recall,
                a.f1,
                f(b.map(|b| b.threshold)),
                f(b.map(|b| b.precision)),
                f(b.map(|b| b.recall)),
                f(b.map(|b| b.f1)),
            );
        }
        let st = &self.coco.stats;
        let _ = writeln!(
            s,
            "mean,,,,{},{},{},{},{},,,,,,,,",
            f(self.voc07.map),
            f(self.voc.map),
            f(st.ap),
            f(st.ap50),
            f(st.ap75)
        );
        s
    }

    /// The VOC all-point PR curves as CSV, one row per ranked (non-ignored) detection:
    /// `class,rank,score,tp,fp,precision,recall` (cumulative counts).
    pub fn pr_curves_csv(&self) -> String {
        let mut s = String::from("class,rank,score,tp,fp,precision,recall\n");
        for (c, cr) in self.voc.per_class.iter().zip(&self.classes) {
            let k = &c.curve;
            for i in 0..k.scores.len() {
                let _ = writeln!(
                    s,
                    "{},{},{},{},{},{},{}",
                    csv_field(&cr.name),
                    i + 1,
                    k.scores[i],
                    k.tp[i],
                    k.fp[i],
                    k.precision[i],
                    k.recall[i]
                );
            }
        }
        s
    }

    /// A readable table: per class counts, APs and P/R/F1, the mean row, pycocotools' 12
    /// lines and the confusion matrix.
    pub fn to_table(&self) -> String {
        let f = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.4}"));
        let w = self
            .classes
            .iter()
            .map(|c| c.name.len())
            .max()
            .unwrap_or(5)
            .max(5);
        let mut s = String::new();
        let thr = self.options.score_threshold;
        let _ = writeln!(
            s,
            "{:<w$} {:>6} {:>6} {:>6} {:>7} {:>7} {:>7} {:>7} {:>7} | {:>6} {:>6} {:>6} | {:>6} {:>6} {:>6} {:>6}",
            "class", "GT", "TP", "FP", "AP07", "AP", "cocoAP", "AP50", "AP75",
            format!("P@{thr}"), "R", "F1", "bestT", "P", "R", "F1"
        );
        for c in &self.classes {
            let a = &c.at_threshold;
            let b = c.best_f1;
            let _ = writeln!(
                s,
                "{:<w$} {:>6} {:>6} {:>6} {:>7} {:>7} {:>7} {:>7} {:>7} | {:>6.3} {:>6.3} {:>6.3} | {:>6} {:>6} {:>6} {:>6}",
                c.name, c.npos, c.tp, c.fp,
                f(c.voc07_ap), f(c.voc_ap), f(c.coco.ap), f(c.coco.ap50), f(c.coco.ap75),
                a.precision, a.recall, a.f1,
                b.map_or("-".into(), |b| format!("{:.3}", b.threshold)),
                b.map_or("-".into(), |b| format!("{:.3}", b.precision)),
                b.map_or("-".into(), |b| format!("{:.3}", b.recall)),
                b.map_or("-".into(), |b| format!("{:.3}", b.f1)),
            );
        }
        let st = &self.coco.stats;
        let _ = writeln!(
            s,
            "{:<w$} {:>6} {:>6} {:>6} {:>7} {:>7} {:>7} {:>7} {:>7}",
            "mean",
            "",
            "",
            "",
            f(self.voc07.map),
            f(self.voc.map),
            f(st.ap),
            f(st.ap50),
            f(st.ap75)
        );
        let o = &self.voc.options;
        let _ = writeln!(
            s,
            "\nVOC: IoU {} ({:?}, {:?} boxes, difficult {:?}); classes without ground truth are left out of the mean.",
            o.iou_threshold, o.comparison, o.convention, o.difficult
        );
        let md = self.coco.options.max_dets;
        let lines = [
            ("Average Precision", "0.50:0.95", "all", md[2], st.ap),
            ("Average Precision", "0.50", "all", md[2], st.ap50),
            ("Average Precision", "0.75", "all", md[2], st.ap75),
            (
                "Average Precision",
                "0.50:0.95",
                "small",
                md[2],
                st.ap_small,
            ),
            (
                "Average Precision",
                "0.50:0.95",
                "medium",
                md[2],
                st.ap_medium,
            ),
            (
                "Average Precision",
                "0.50:0.95",
                "large",
                md[2],
                st.ap_large,
            ),
            ("Average Recall", "0.50:0.95", "all", md[0], st.ar1),
            ("Average Recall", "0.50:0.95", "all", md[1], st.ar10),
            ("Average Recall", "0.50:0.95", "all", md[2], st.ar_max),
            ("Average Recall", "0.50:0.95", "small", md[2], st.ar_small),
            ("Average Recall", "0.50:0.95", "medium", md[2], st.ar_medium),
            ("Average Recall", "0.50:0.95", "large", md[2], st.ar_large),
        ];
        s.push_str("\nCOCO (pycocotools rules):\n");
        for (what, iou, area, m, v) in lines {
            let short = if what.starts_with("Average P") {
                "(AP)"
            } else {
                "(AR)"
            };
            let _ = writeln!(
                s,
                " {what:<18} {short} @[ IoU={iou:<9} | area={area:>6} | maxDets={m:>3} ] = {:.3}",
                v.unwrap_or(-1.0)
            );
        }
        let _ = write!(
            s,
            "\nConfusion matrix (rows: ground truth, columns: predicted; score >= {thr}, IoU >= {}):\n{}",
            o.iou_threshold,
            self.confusion_table()
        );
        s
    }

    /// The confusion matrix as text.
    pub fn confusion_table(&self) -> String {
        let labels = self.confusion_labels();
        let w = labels.iter().map(|l| l.len()).max().unwrap_or(4).max(5);
        let n = labels.len();
        let mut s = format!("{:<w$}", "");
        for l in &labels {
            let _ = write!(s, " {l:>w$}");
        }
        s.push('\n');
        for (t, l) in labels.iter().enumerate() {
            let _ = write!(s, "{l:<w$}");
            for p in 0..n {
                let _ = write!(s, " {:>w$}", self.confusion.counts[t * n + p]);
            }
            s.push('\n');
        }
        s
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}
