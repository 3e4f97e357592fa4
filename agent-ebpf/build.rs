//! Build script of the BPF crate: target-arch cfg, rebuild on a new bpf-linker, and the
//! linker flag that keeps zero-fills inline.

fn main() -> anyhow::Result<()> {
    aya_build::emit_bpf_target_arch_cfg()?;
    // Rebuild when bpf-linker changes (aya-template does the same).
    if let Ok(linker) = which::which("bpf-linker") {
        println!("cargo:rerun-if-changed={}", linker.display());
    }
    // By default bpf-linker expands memcpy/memset "in order", which turns every zeroed
    // aggregate into a call to a byte-at-a-time memset loop on each packet
    // (a memset loop the verifier must walk per packet). Keep the stores inline instead.
    println!("cargo:rustc-link-arg-bins=--disable-expand-memcpy-in-order");
    // Headers are alignment-1 types: without this, LLVM loads each of their fields a byte at
    // a time and reassembles it with shifts. The kernel allows misaligned packet and map
    // value access unless the program asks for strict alignment.
    println!("cargo:rustc-link-arg-bins=--cpu-features=+allows-misaligned-mem-access");
    Ok(())
}
