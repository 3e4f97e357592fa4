use aya::programs::{Xdp, SchedClassifier};
static OBJ: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/picket"));
fn main() -> anyhow::Result<()> {
    let mut ebpf = aya::EbpfLoader::new().load(OBJ)?;
    for name in ["picket_xdp", "picket_tc_ingress", "picket_tc_egress"] {
        let p = ebpf.program_mut(name).unwrap();
        let r = if name == "picket_xdp" { let x: &mut Xdp = p.try_into()?; x.load() } else { let x: &mut SchedClassifier = p.try_into()?; x.load() };
        match r { Ok(()) => println!("{name} ok"), Err(aya::programs::ProgramError::LoadError { io_error, verifier_log }) => { println!("{name}: {io_error}\n{verifier_log}"); } Err(e) => println!("{name}: {e}") }
    }
    Ok(())
}
