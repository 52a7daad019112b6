//! Test helpers shared by the arfpn crates. A dev-dependency only (`publish = false`): no
//! library code of the workspace depends on it.
//!
//! * [`GradCheck`]: one f64 central finite-difference gradient check against candle's
//!   autograd, for plain input tensors ([`GradCheck::inputs`]) or for variables inside a
//!   model ([`GradCheck::vars`]), with the probed elements ([`Probes`]) and the acceptance
//!   rule ([`Tolerance`]) chosen per test. A failure is an error
//!   ([`TestkitError::GradientMismatch`]) that names the worst element.
//! * Seeded tensors on [`arfpn_boxes::SplitMix64`]: [`uniform`] (in `[-1, 1)`; plain values:
//!   [`uniform_vec`], [`uniform_values`]), [`randn`],
//!   [`weighted_sum`] (a scalar whose gradient reaches every output element), [`reseed`]
//!   (overwrites every variable of a `VarMap` deterministically) and [`max_abs_diff`].
//! * [`shared_data`]: finds `../shared/data/<name>` beside the workspace; when it is absent
//!   it prints `SKIP <test>: ...` and returns `None`, or fails the test when
//!   `ARFPN_DATA_REQUIRED=1` (CI sets it).
//! * `fixture` (feature `fixture`): the tiny attention-ResNet + FPN that the FPN's and the
//!   workspace's cross-crate tests share.
//!
//! ```
//! use arfpn_testkit::{uniform, weighted_sum, GradCheck, Tolerance};
//! use candle_core::{DType, Device};
//!
//! let x = uniform(1, &[2, 3], DType::F64, &Device::Cpu)?;
//! // d/dx sum(r * x^2) = 2 r x, checked element by element.
//! let report = GradCheck::new(1e-6, Tolerance::mixed(1e-8, 1e-8))
//!     .inputs(&[x], |a| weighted_sum(&a[0].sqr()?, 2))?;
//! assert_eq!(report.checked(), 6);
//! # Ok::<(), arfpn_testkit::TestkitError>(())
//! ```
//!
//! # Dependency cycles
//!
//! Without features the testkit depends only on candle, `thiserror` and `arfpn-boxes`, so
//! every crate above `arfpn-boxes` (arfpn-nn, arfpn-roi-align, arfpn-rpn, arfpn-backbone, ...)
//! can take it as a dev-dependency without a cycle. Feature `fixture` adds `arfpn-backbone`
//! and `arfpn-fpn`; it is enabled only by crates whose tests need the fixture. For
//! `arfpn-fpn` itself that is a dev-dependency cycle (`arfpn-fpn` -> testkit -> `arfpn-fpn`),
//! which cargo allows and which is sound for **integration tests** (`tests/*.rs`): they link
//! the one `arfpn-fpn` library the testkit links too, so the fixture's types are the test's
//! types. It is not for **unit tests** inside `arfpn-fpn`/`arfpn-backbone`/`arfpn-nn`
//! (`#[cfg(test)]` in `src/`): those are a second build of the crate, whose types differ
//! from the ones the testkit sees. Crate-agnostic helpers (finite differences, seeded
//! tensors, [`shared_data`]) exchange only candle and std types, so they work from unit
//! tests anywhere; the fixture is for integration tests of the crates above the FPN.
//!
//! cargo unifies the features of a workspace build, so `cargo test --workspace` builds the
//! testkit with `fixture` for every crate; nothing depends on that, and `cargo test -p
//! arfpn-nn` builds it without.

mod data;
mod error;
#[cfg(feature = "fixture")]
pub mod fixture;
mod grad;
mod random;

pub use data::{shared_data, DATA_REQUIRED_ENV, DATA_ROOT_ENV};
pub use error::{Result, TestkitError};
pub use grad::{GradCheck, GradReport, ProbeResult, Probes, Target, Tolerance};
pub use random::{max_abs_diff, randn, reseed, uniform, uniform_values, uniform_vec, weighted_sum};
