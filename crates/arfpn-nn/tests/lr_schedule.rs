//! Learning-rate schedules: hand-computed values.

use arfpn_nn::{LrDecay, LrSchedule};

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * (1.0 + b.abs())
}

#[test]
fn paper_multistep_with_warmup_and_floor() {
    let s = LrSchedule::paper(0.02);
    s.validate().expect("valid");
    assert!(close(s.lr_at(0), 0.02 * 0.001));
    // Half-way through warm-up: 0.001·0.5 + 0.5 = 0.5005.
    assert!(close(s.lr_at(500), 0.02 * 0.5005));
    assert!(close(s.lr_at(1000), 0.02));
    assert!(close(s.lr_at(59_999), 0.02));
    assert!(close(s.lr_at(60_000), 0.002));
    assert!(close(s.lr_at(79_999), 0.002));
    assert!(close(s.lr_at(80_000), 0.0002));
    assert!(close(s.lr_at(110_000), 0.0002));
    // The floor: a small base rate stops at min_lr.
    let s = LrSchedule::paper(1e-4);
    assert!(close(s.lr_at(90_000), 1e-6));
    assert!(close(s.lr_at(0), 1e-6)); // 1e-7 warm-up start floored
}

#[test]
fn cosine_and_constant() {
    let s = LrSchedule {
        base_lr: 0.1,
        warmup_iters: 0,
        warmup_factor: 1.0,
        decay: LrDecay::Cosine { total_iters: 100 },
        min_lr: 0.0,
    };
    assert!(close(s.lr_at(0), 0.1));
    assert!(close(s.lr_at(50), 0.05));
    assert!(close(
        s.lr_at(25),
        0.1 * 0.5 * (1.0 + std::f64::consts::FRAC_1_SQRT_2)
    ));
    assert!(close(s.lr_at(100), 0.0));
    assert!(close(s.lr_at(1000), 0.0));
    let s = LrSchedule { min_lr: 0.01, ..s };
    assert!(close(s.lr_at(50), 0.055));
    assert!(close(s.lr_at(100), 0.01));
    let c = LrSchedule {
        decay: LrDecay::Constant,
        warmup_iters: 10,
        warmup_factor: 0.1,
        ..s
    };
    assert!(close(c.lr_at(5), 0.1 * 0.55));
    assert!(close(c.lr_at(10), 0.1));
}

#[test]
fn validation_and_serde() {
    let mut s = LrSchedule::paper(0.01);
    let json = serde_json::to_string(&s).expect("serialise");
    assert!(json.contains("\"kind\":\"multi_step\""), "{json}");
    assert_eq!(serde_json::from_str::<LrSchedule>(&json).expect("parse"), s);
    s.decay = LrDecay::MultiStep {
        milestones: vec![80_000, 60_000],
        gamma: 0.1,
    };
    assert!(s.validate().unwrap_err().to_string().contains("milestones"));
    s.decay = LrDecay::Cosine { total_iters: 0 };
    assert!(s.validate().is_err());
    s.decay = LrDecay::Constant;
    s.warmup_factor = 2.0;
    assert!(s.validate().is_err());
}
