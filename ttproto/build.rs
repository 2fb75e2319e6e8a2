//! Compiles the protobuf definitions with the vendored `protoc`, so a fresh machine needs
//! nothing installed by hand.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: a build script is single-threaded; nothing reads the environment concurrently.
    unsafe { std::env::set_var("PROTOC", protoc) };
    println!("cargo:rerun-if-changed=proto/truetime.proto");
    println!("cargo:rerun-if-changed=proto/store.proto");
    tonic_prost_build::configure()
        .compile_protos(&["proto/truetime.proto", "proto/store.proto"], &["proto"])?;
    Ok(())
}
