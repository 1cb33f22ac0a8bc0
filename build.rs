//! Compiles the vendored ONNX protobuf schema (`src/model/onnx/onnx.proto`)
//! into Rust types with prost. protox parses the `.proto` in pure Rust, so a
//! fresh machine needs no system `protoc`.

fn main() {
    const PROTO: &str = "src/model/onnx/onnx.proto";
    println!("cargo:rerun-if-changed={PROTO}");
    println!("cargo:rerun-if-changed=build.rs");
    let descriptors = match protox::compile([PROTO], ["src/model/onnx"]) {
        Ok(set) => set,
        Err(e) => panic!("{PROTO}: {e}"),
    };
    if let Err(e) = prost_build::Config::new().compile_fds(descriptors) {
        panic!("generating Rust types from {PROTO}: {e}");
    }
}
