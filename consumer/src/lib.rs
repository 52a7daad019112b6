//! A downstream project of `arfpn`, built with stock candle-core from crates.io (see
//! `Cargo.toml`). Its checks live in [`scenario`] and `tests/stock_candle.rs`; the README's
//! Rust snippets are compiled and run here as doctests, with `arfpn` as the only dependency.

pub mod scenario;

/// The README's Rust snippets, as a dependent compiles them.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
