//! The workspace side of the stock-candle consumer (`consumer/`): the same scenario, run with
//! the workspace's patched candle-core, must give the losses in `consumer/expected_losses.json`
//! that the consumer (stock candle-core from crates.io) is checked against in CI.
//! `ARFPN_BLESS=1` rewrites that file from this build.

#[path = "../../../consumer/src/scenario.rs"]
mod scenario;

use std::path::Path;

use scenario::{
    check_torchvision_detections, compare_losses, losses_json, torchvision_fixture,
    training_losses, Res,
};

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .and_then(Path::parent)
        .expect("crates/arfpn sits two levels down")
}

#[test]
fn consumer_scenario_detections_match_torchvision() -> Res {
    let n = check_torchvision_detections(&torchvision_fixture(repo_root()))?;
    assert!(n >= 20, "only {n} detections checked");
    Ok(())
}

#[test]
fn consumer_scenario_losses_are_the_recorded_ones() -> Res {
    let losses = training_losses(&torchvision_fixture(repo_root()), 3)?;
    let path = repo_root().join("consumer/expected_losses.json");
    if std::env::var_os("ARFPN_BLESS").is_some() {
        std::fs::write(&path, losses_json(&losses))?;
    }
    // The losses moved: training happened, so this is not comparing constants.
    assert!(losses[2].total < losses[0].total, "{losses:?}");
    compare_losses(&losses, &std::fs::read_to_string(&path)?)
}
