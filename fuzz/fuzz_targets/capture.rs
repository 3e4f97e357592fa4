//! Fuzz target: the capture-file reader `picket analyze` runs on untrusted files (pcap in every
//! byte order and timestamp precision, pcapng with sections, interfaces and packet blocks),
//! then the link-layer decoding and the classifier on every frame it yields.
#![no_main]

use agent_common::packet::Snapshot;
use picket_capture::{link, reader::read_capture};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut frames = 0u64;
    let mut progress = 0u64;
    let result = read_capture(
        "fuzz",
        data,
        &mut |consumed| {
            // Progress only moves forward and never past the input.
            assert!(consumed >= progress && consumed <= data.len() as u64);
            progress = consumed;
        },
        &mut |f| {
            frames += 1;
            // A frame never holds more bytes than the file.
            assert!(f.data.len() <= data.len());
            // As `picket analyze` builds it: the wire length as the file says, even when a
            // corrupt record claims less than it holds.
            let snap = Snapshot {
                data: f.data,
                orig_len: f.orig_len as usize,
            };
            if let Some(Ok(s)) = link::classify(f.linktype, &snap) {
                assert!(s.l3_off as usize <= f.data.len());
                if s.has_l4() {
                    assert!(s.payload_off as usize <= f.data.len());
                }
            }
        },
    );
    match result {
        Ok(info) => {
            assert_eq!(info.packets, frames);
            assert!(info.bytes_read <= data.len() as u64);
            assert!(info.warnings.len() <= 20);
        }
        // Refused only before the first packet (not a capture, or a bad header).
        Err(_) => assert_eq!(frames, 0),
    }
});
