//! The `kinfold` command's library: configuration loading, the demo, file import and the growth CSV tool, shared by the binary
//! and the end-to-end tests so that both start Kinfold the same way.

pub mod check;
pub mod config;
pub mod demo;
pub mod growth_csv;
pub mod import;
pub mod pki;
pub mod scenario;
pub mod smart_client;
