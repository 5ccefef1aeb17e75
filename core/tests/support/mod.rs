//! Shared by core's integration tests (each test binary includes what it uses).
#![allow(dead_code, unreachable_pub)]

pub mod alloc;
pub mod mutate;
pub mod samples;
