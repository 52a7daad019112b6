//! arfpn built as a dependent gets it: candle-core from crates.io, not the workspace's patch.

use std::path::Path;

use arfpn_consumer::scenario::{
    check_torchvision_detections, compare_losses, torchvision_fixture, training_losses, Res,
};

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("consumer/ sits in the repository")
}

#[test]
fn detections_match_torchvision_with_stock_candle() -> Res {
    let n = check_torchvision_detections(&torchvision_fixture(repo_root()))?;
    assert!(n >= 20, "only {n} detections checked");
    Ok(())
}

#[test]
fn training_steps_match_the_workspace_build() -> Res {
    let losses = training_losses(&torchvision_fixture(repo_root()), 3)?;
    let want = std::fs::read_to_string(repo_root().join("consumer/expected_losses.json"))?;
    compare_losses(&losses, &want)
}
