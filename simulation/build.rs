//! Declares `tokio_unstable`, which the simulation checks for: built with
//! `RUSTFLAGS="--cfg tokio_unstable"`, it seeds tokio's own random choices too.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(tokio_unstable)");
}
