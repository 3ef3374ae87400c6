//! Compiles the XDP program (bpf/spanwatch.bpf.c) with clang into OUT_DIR; the crate embeds it.
use std::process::Command;

fn main() {
    let src = "bpf/spanwatch.bpf.c";
    println!("cargo:rerun-if-changed={src}");
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"))
        .join("spanwatch.bpf.o");
    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".into());
    let status = Command::new(&clang)
        .args([
            "-O2", "-g", "-target", "bpf", "-Wall", "-Werror", "-c", src, "-o",
        ])
        .arg(&out)
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("{clang} failed to compile {src}: {s}"),
        Err(e) => panic!("cannot run {clang} to compile {src} (apt-get install clang): {e}"),
    }
}
