//! `picket analyze -f FILTER FILE`: a capture filter in libpcap syntax, compiled by libpcap
//! (as tcpdump and tshark compile theirs) and run on the host over each frame of the file,
//! with one program per link type met.

use std::collections::HashMap;

use anyhow::{Result, anyhow};
use picket_analyze::FrameFilter;

/// Link type the expression is checked against up front (Ethernet), so that a bad
/// expression fails before any file is read.
const CHECK_LINKTYPE: u32 = 1;

/// A compiled capture filter.
pub struct PcapFilter {
    expression: String,
    programs: HashMap<u32, pcap::BpfProgram>,
}

impl PcapFilter {
    /// Compiles `expression`; a bad one is a one-line error naming the problem.
    pub fn new(expression: &str) -> Result<Self> {
        let mut f = PcapFilter {
            expression: expression.to_string(),
            programs: HashMap::new(),
        };
        f.program(CHECK_LINKTYPE)?;
        Ok(f)
    }

    fn program(&mut self, linktype: u32) -> Result<&pcap::BpfProgram> {
        if !self.programs.contains_key(&linktype) {
            let program = compile(&self.expression, linktype)?;
            self.programs.insert(linktype, program);
        }
        self.programs
            .get(&linktype)
            .ok_or_else(|| anyhow!("capture filter for link type {linktype} missing"))
    }
}

fn compile(expression: &str, linktype: u32) -> Result<pcap::BpfProgram> {
    let dead = pcap::Capture::dead(pcap::Linktype(linktype as i32))
        .map_err(|e| anyhow!("cannot compile the capture filter: {e}"))?;
    dead.compile(expression, true).map_err(|e| {
        let e = e.to_string().replace('\n', " ");
        if linktype == CHECK_LINKTYPE {
            anyhow!("bad capture filter {expression:?}: {e}")
        } else {
            anyhow!("capture filter {expression:?} does not apply to link type {linktype}: {e}")
        }
    })
}

impl FrameFilter for PcapFilter {
    fn expression(&self) -> &str {
        &self.expression
    }

    fn matches(&mut self, linktype: u32, frame: &[u8]) -> Result<bool> {
        Ok(self.program(linktype)?.filter(frame))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiles_matches_and_names_errors() {
        use picket_frames as frames;
        let mut f = PcapFilter::new("tcp port 80 and host 10.0.0.1").unwrap();
        let web = frames::ipv4(
            [10, 0, 0, 1].into(),
            [10, 0, 0, 2].into(),
            6,
            0,
            &frames::tcp(1234, 80, 2),
        );
        let other = frames::ipv4(
            [10, 0, 0, 3].into(),
            [10, 0, 0, 2].into(),
            6,
            0,
            &frames::tcp(1234, 80, 2),
        );
        assert!(f.matches(1, &web).unwrap());
        assert!(!f.matches(1, &other).unwrap());
        let e = PcapFilter::new("tcp prot 80").err().unwrap().to_string();
        assert!(e.starts_with("bad capture filter \"tcp prot 80\": "), "{e}");
        assert!(!e.contains('\n'));
        // Ethernet addresses mean nothing on raw IP (link type 101).
        let mut f = PcapFilter::new("ether host 00:11:22:33:44:55").unwrap();
        let e = f.matches(101, &web[14..]).unwrap_err().to_string();
        assert!(e.contains("does not apply to link type 101"), "{e}");
    }
}
