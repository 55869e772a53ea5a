//! Compiles `proto/infinistream/v1/*.proto` with protox (pure Rust, so a fresh
//! machine needs no `protoc`) and generates prost messages + tonic services.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let dir = root.join("infinistream/v1");
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "proto") {
            println!("cargo:rerun-if-changed={}", path.display());
            files.push(path);
        }
    }
    files.sort();
    println!("cargo:rerun-if-changed={}", dir.display());
    let fds = protox::compile(&files, [&root])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Route messages carry NATS payloads: `Bytes`, so forwarding one copies nothing.
        .bytes(".infinistream.v1.RouteInterest")
        .bytes(".infinistream.v1.RouteMsg")
        // Only CREATED and UPDATED events carry a config: boxed, so every other event
        // (one per commit per watcher) stays small.
        .boxed(".infinistream.v1.StreamEvent.config")
        .compile_fds(fds)?;
    Ok(())
}
