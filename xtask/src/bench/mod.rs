//! `cargo xtask bench <name>`: each benchmark measures Octo side by side with its anchor in
//! one run and prints the ratio. No thresholds: the numbers are for people to read.

pub mod fileserver;
pub mod llm;
pub mod proxy;
pub mod session_start;
pub mod snapshot;
pub mod ui;
