//! Loading safetensors into a `VarMap`: the report, shape mismatches, unusable targets.

use arfpn_nn::{count_parameters, load_safetensors, LoadError};
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use std::collections::HashMap;

fn model() -> VarMap {
    let vm = VarMap::new();
    let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
    vb.get((4, 3), "fc.weight").unwrap();
    vb.get(4, "fc.bias").unwrap();
    vb.get(4, "bn.running_mean").unwrap();
    vm
}

/// Writes `tensors` to a temporary safetensors file named after `name`.
fn file(name: &str, tensors: Vec<(&str, Tensor)>) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!(
        "arfpn-nn-{}-{name}.safetensors",
        std::process::id()
    ));
    let map: HashMap<String, Tensor> = tensors
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    candle_core::safetensors::save(&map, &path).unwrap();
    path
}

#[test]
fn report_lists_loaded_missing_unexpected_and_ignored() {
    let cpu = &Device::Cpu;
    let file = file(
        "report",
        vec![
            ("fc.weight", Tensor::ones((4, 3), DType::F64, cpu).unwrap()),
            ("bn.running_mean", Tensor::ones(4, DType::F32, cpu).unwrap()),
            ("head.weight", Tensor::ones(2, DType::F32, cpu).unwrap()),
            ("bn.num_batches_tracked", Tensor::new(3i64, cpu).unwrap()),
        ],
    );
    let vm = model();
    let report = load_safetensors(&vm, &file).unwrap();
    std::fs::remove_file(&file).ok();
    assert_eq!(report.loaded, ["bn.running_mean", "fc.weight"]);
    assert_eq!(report.missing, ["fc.bias"]);
    assert_eq!(report.unexpected, ["head.weight"]);
    assert_eq!(report.ignored, ["bn.num_batches_tracked"]);
    assert!(!report.is_complete());
    assert!(report.to_string().contains("missing: fc.bias"), "{report}");
    let data = vm.data().lock().unwrap();
    // Converted to the variable's dtype (f32) on load.
    assert_eq!(data["fc.weight"].dtype(), DType::F32);
    assert_eq!(
        data["fc.weight"]
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap(),
        12.0
    );
    drop(data);
    assert_eq!(count_parameters(&vm), 12 + 4 + 4);
}

#[test]
fn shape_mismatch_changes_nothing_and_bad_targets_are_errors() {
    let cpu = &Device::Cpu;
    let file = file(
        "mismatch",
        vec![
            ("fc.bias", Tensor::ones(4, DType::F32, cpu).unwrap()),
            ("fc.weight", Tensor::ones((3, 4), DType::F32, cpu).unwrap()),
        ],
    );
    let vm = model();
    let e = load_safetensors(&vm, &file).unwrap_err();
    match &e {
        LoadError::ShapeMismatch {
            name,
            expected,
            found,
            ..
        } => {
            assert_eq!(name, "fc.weight");
            assert_eq!(
                (expected.as_slice(), found.as_slice()),
                (&[4, 3][..], &[3, 4][..])
            );
        }
        other => panic!("{other}"),
    }
    let bias = vm.data().lock().unwrap()["fc.bias"].sum_all().unwrap();
    assert_eq!(
        bias.to_scalar::<f32>().unwrap(),
        0.0,
        "nothing partially loaded"
    );
    assert!(matches!(
        load_safetensors(&VarMap::new(), &file),
        Err(LoadError::EmptyVarMap)
    ));
    std::fs::remove_file(&file).ok();
    let e = load_safetensors(&vm, "/nonexistent/w.safetensors").unwrap_err();
    assert!(matches!(e, LoadError::Read { .. }), "{e}");
    assert!(e.to_string().contains("/nonexistent/w.safetensors"), "{e}");
}
