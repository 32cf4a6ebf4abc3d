//! End-to-end tests of Hourglass across crates live in `tests/tests/`. This crate has
//! no library code of its own.
