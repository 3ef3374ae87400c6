//! Compiles the XDP programs (bpf/*.bpf.c: the capture program and the benchmark sender's) with
//! clang into OUT_DIR; the crate embeds them.
use std::process::Command;

fn main() {
    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".into());
    let dir = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    println!("cargo:rerun-if-changed=bpf/xdp.h");
    for name in ["spanwatch", "blast"] {
        let src = format!("bpf/{name}.bpf.c");
        println!("cargo:rerun-if-changed={src}");
        let out = dir.join(format!("{name}.bpf.o"));
        let status = Command::new(&clang)
            .args([
                "-O2", "-g", "-target", "bpf", "-Wall", "-Werror", "-c", &src, "-o",
            ])
            .arg(&out)
            .status();
        match status {
            Ok(s) if s.success() => {}
            Ok(s) => panic!("{clang} failed to compile {src}: {s}"),
            Err(e) => panic!("cannot run {clang} to compile {src} (apt-get install clang): {e}"),
        }
    }
}
