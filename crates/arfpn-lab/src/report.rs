//! The differential-count report: one self-contained HTML page (counts per class with their
//! share, each image's thumbnail and counts), as the `detect` example writes it
//! (`report.html`).

use crate::class_colour;

/// One image of a [`count_report_html`] page.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReportImage {
    /// The image's name (its path, as the user gave it).
    pub name: String,
    /// Detections per class, in class order (`Detections::counts`).
    pub counts: Vec<usize>,
    /// A PNG thumbnail (with the detections drawn), embedded in the page as a data URL.
    pub thumbnail_png: Vec<u8>,
}

/// The differential-count page for `images` counted at `score_threshold` by `model` (a
/// checkpoint path or a description of the model): a table of the total cells per class
/// (in [`class_colour`]s, with their percentage and a bar), then one card per image with its
/// thumbnail and non-zero counts. Class and image names are HTML-escaped.
///
/// ```
/// use arfpn_lab::{count_report_html, ReportImage};
/// let classes = ["RBC".to_string(), "WBC".to_string()];
/// let images = [ReportImage { name: "a.jpg".into(), counts: vec![3, 1], thumbnail_png: vec![] }];
/// let page = count_report_html(&classes, &images, 0.5, "model.safetensors");
/// assert!(page.contains("<td>3</td><td>75.0</td>"));
/// ```
pub fn count_report_html(
    classes: &[String],
    images: &[ReportImage],
    score_threshold: f32,
    model: &str,
) -> String {
    let total = class_totals(classes.len(), images);
    let all: usize = total.iter().sum();
    let mut html = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>arfpn differential count</title><style>\
         body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}\
         td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}th{background:#f3f3f3}td.n{text-align:left}\
         .sw{display:inline-block;width:.9em;height:.9em;margin-right:.4em;vertical-align:middle;border:1px solid #555}\
         .grid{display:flex;flex-wrap:wrap;gap:1em}.card{border:1px solid #ddd;padding:.5em}.bar{height:.8em;background:#0072b2}\
         </style></head><body>",
    );
    html += &format!(
        "<h1>Differential count</h1><p>{} image(s), {} cells at score &ge; {}; checkpoint <code>{}</code>.</p>",
        images.len(),
        all,
        score_threshold,
        escape(model)
    );
    html += "<table><tr><th>class</th><th>cells</th><th>%</th><th></th></tr>";
    for (c, name) in classes.iter().enumerate() {
        let [r, g, b] = class_colour(c);
        let p = percent(total[c], all);
        html += &format!(
            "<tr><td class=\"n\"><span class=\"sw\" style=\"background:rgb({r},{g},{b})\"></span>{}</td><td>{}</td><td>{p:.1}</td><td style=\"width:12em\"><div class=\"bar\" style=\"width:{p:.1}%\"></div></td></tr>",
            escape(name),
            total[c]
        );
    }
    html += &format!("<tr><th>total</th><th>{all}</th><th>100</th><th></th></tr></table><h2>Images</h2><div class=\"grid\">");
    for r in images {
        let n: usize = r.counts.iter().sum();
        let top: Vec<String> = classes
            .iter()
            .zip(&r.counts)
            .filter(|(_, &k)| k > 0)
            .map(|(c, k)| format!("{} {k}", escape(c)))
            .collect();
        html += &format!(
            "<div class=\"card\"><img alt=\"{0}\" src=\"data:image/png;base64,{1}\"><div><b>{0}</b>: {n} cells</div><div style=\"max-width:360px;font-size:.85em\">{2}</div></div>",
            escape(&r.name),
            base64(&r.thumbnail_png),
            top.join(", ")
        );
    }
    html += "</div></body></html>\n";
    html
}

/// Standard base64 (with `=` padding), for the data URLs.
fn base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= c.len() {
                s.push(T[(n >> shift & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

/// Cells of each of `classes` classes over all `images` (the report's totals row).
pub fn class_totals(classes: usize, images: &[ReportImage]) -> Vec<usize> {
    (0..classes)
        .map(|c| images.iter().map(|r| r.counts[c]).sum())
        .collect()
}

/// `n` as a percentage of `of` (0 when `of` is 0), as the report prints shares.
pub fn percent(n: usize, of: usize) -> f64 {
    if of == 0 {
        0.0
    } else {
        100.0 * n as f64 / of as f64
    }
}

/// Text as HTML (element content or a quoted attribute).
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_holds_the_counts_and_escapes_names() {
        let classes = vec!["RBC".to_string(), "<WBC & co>".to_string()];
        let images = vec![
            ReportImage {
                name: "a\"b.jpg".into(),
                counts: vec![6, 2],
                thumbnail_png: b"png".to_vec(),
            },
            ReportImage {
                name: "c.jpg".into(),
                counts: vec![2, 0],
                thumbnail_png: Vec::new(),
            },
        ];
        let page = count_report_html(&classes, &images, 0.5, "runs/<x>.safetensors");
        assert!(page.contains("2 image(s), 10 cells at score &ge; 0.5"));
        assert!(page.contains("<code>runs/&lt;x&gt;.safetensors</code>"));
        // Totals per class with their percentage, and the grand total.
        assert!(page.contains("</span>RBC</td><td>8</td><td>80.0</td>"));
        assert!(page.contains("</span>&lt;WBC &amp; co&gt;</td><td>2</td><td>20.0</td>"));
        assert!(page.contains("<tr><th>total</th><th>10</th>"));
        // Each image's card: escaped name, embedded thumbnail, non-zero counts.
        assert!(page.contains("alt=\"a&quot;b.jpg\" src=\"data:image/png;base64,cG5n\""));
        assert!(page.contains("<b>a&quot;b.jpg</b>: 8 cells"));
        assert!(page.contains("RBC 6, &lt;WBC &amp; co&gt; 2"));
        assert!(page.contains(
            "<b>c.jpg</b>: 2 cells</div><div style=\"max-width:360px;font-size:.85em\">RBC 2</div>"
        ));
        assert!(!page.contains("<WBC"));
    }

    #[test]
    fn base64_pads() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
    }
}
