//! Weight names are a contract: torchvision's `fasterrcnn_resnet50_fpn` names and shapes
//! (committed list from `scripts/export_torchvision_names.py`, no torch at test time) match
//! `fpn-r50`'s, and the full name list of the paper's R50 CS-ARFPN is pinned in a golden
//! file (`ARFPN_BLESS=1` rewrites it after a deliberate change).

use std::collections::BTreeMap;

use arfpn::{presets, Detector};
use candle_core::{DType, Device, Tensor};

fn names_and_shapes(det: &Detector) -> BTreeMap<String, Vec<usize>> {
    det.vars()
        .named_vars()
        .into_iter()
        .map(|(n, v)| (n, v.dims().to_vec()))
        .collect()
}

fn classes(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("c{i}")).collect()
}

#[test]
fn fpn_r50_has_torchvisions_names_and_shapes() -> Result<(), Box<dyn std::error::Error>> {
    let text = include_str!("golden/torchvision_fasterrcnn_resnet50_fpn.txt");
    let tv: BTreeMap<String, Vec<usize>> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (n, s) = l.split_once(' ').unwrap_or((l, ""));
            let dims = s.split('x').filter_map(|d| d.parse().ok()).collect();
            (n.to_string(), dims)
        })
        .collect();
    assert_eq!(tv.len(), 295);
    let det = Detector::new(presets::fpn_r50(&classes(90)), 0, &Device::Cpu)?;
    let ours = names_and_shapes(&det);
    let missing: Vec<&String> = tv.keys().filter(|k| !ours.contains_key(*k)).collect();
    let unexpected: Vec<&String> = ours.keys().filter(|k| !tv.contains_key(*k)).collect();
    assert!(
        missing.is_empty() && unexpected.is_empty(),
        "missing {missing:?}, unexpected {unexpected:?}"
    );
    for (name, shape) in &tv {
        let mut expected = shape.clone();
        // Our predictor has no background box regressor (4 rows fewer).
        if name.starts_with("roi_heads.box_predictor.bbox_pred") {
            expected[0] -= 4;
        }
        assert_eq!(ours[name], expected, "{name}");
    }
    // A torchvision-named backbone/FPN/RPN file loads with nothing missing or left over.
    let dir = std::env::temp_dir().join(format!("arfpn-names-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let file: std::collections::HashMap<String, Tensor> = tv
        .iter()
        .filter(|(n, _)| !n.starts_with("roi_heads."))
        .map(|(n, s)| Tensor::zeros(s.as_slice(), DType::F32, &Device::Cpu).map(|t| (n.clone(), t)))
        .collect::<Result<_, _>>()?;
    let path = dir.join("tv.safetensors");
    candle_core::safetensors::save(&file, &path)?;
    let report = det.load_backbone_weights(&path)?;
    assert!(report.is_complete(), "{report}");
    assert_eq!(report.loaded.len(), file.len());
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

#[test]
fn cs_arfpn_r50_names_match_the_golden_list() -> Result<(), Box<dyn std::error::Error>> {
    let det = Detector::new(presets::cs_arfpn_r50(&classes(14)), 0, &Device::Cpu)?;
    let listing: String = names_and_shapes(&det)
        .into_iter()
        .map(|(n, s)| {
            let dims: Vec<String> = s.iter().map(|d| d.to_string()).collect();
            format!("{n} {}\n", dims.join("x"))
        })
        .collect();
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/golden/cs_arfpn_r50_14_classes.txt"
    );
    if std::env::var_os("ARFPN_BLESS").is_some() {
        std::fs::write(path, &listing)?;
    }
    let golden = std::fs::read_to_string(path)
        .map_err(|e| format!("{path}: {e} (run with ARFPN_BLESS=1 to create it)"))?;
    if golden != listing {
        let g: Vec<&str> = golden.lines().collect();
        let l: Vec<&str> = listing.lines().collect();
        let first = g
            .iter()
            .zip(&l)
            .position(|(a, b)| a != b)
            .unwrap_or(g.len().min(l.len()));
        panic!(
            "parameter names changed ({} golden vs {} now); first difference at line {}: {:?} vs {:?}",
            g.len(),
            l.len(),
            first + 1,
            g.get(first),
            l.get(first)
        );
    }
    Ok(())
}
