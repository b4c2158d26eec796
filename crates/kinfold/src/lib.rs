//! The `kinfold` command's library: configuration loading and the demo, shared by the binary
//! and the end-to-end tests so that both start Kinfold the same way.

pub mod config;
pub mod demo;
