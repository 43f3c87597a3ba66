//! What the binary's integration tests share: synthetic buckets in folders, the binary's
//! processes, and object-store servers on 127.0.0.1. Each test file says `mod support;` and
//! takes what it needs.

#![allow(dead_code)] // Each test file uses its own share of these.

pub mod browser;
pub mod buckets;
pub mod place;
pub mod process;
pub mod servers;
pub mod sidecar;
