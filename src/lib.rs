//! Examples and cross-crate tests of the arfpn workspace live in `examples/` and `tests/`.
