//! Generates the tonic/prost code from `proto/` with a vendored protoc (no system package).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // `set_var` is unsafe in edition 2024 because other threads may read the environment;
    // a build script has no other threads.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var("PROTOC", protoc);
    }
    tonic_prost_build::configure().compile_protos(&["proto/inlet/v1/inlet.proto"], &["proto"])?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
