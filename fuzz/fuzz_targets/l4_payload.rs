//! Fuzz target: where the L4 payload of a classified frame starts and ends (the classifier's
//! `payload_off`, then the IP length that cuts link-layer padding), and the application
//! hints `picket analyze` builds from it.
#![no_main]

use agent_common::{classify_eth, classify_ip};
use picket_analyze::app::{AppStats, l4_payload};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut app = AppStats::default();
    for parsed in [classify_eth(data), classify_ip(data, 0)] {
        let Ok(s) = parsed else {
            continue;
        };
        let p = l4_payload(&s, data);
        if !p.is_empty() {
            // The payload is the frame's bytes from `payload_off` on, after the L4 header.
            assert!(s.has_l4() && s.l4_off <= s.payload_off);
            let start = usize::from(s.payload_off);
            assert_eq!(p.as_ptr(), data[start..].as_ptr());
            assert!(start + p.len() <= data.len());
        }
        app.observe(&s, data, 1);
    }
    let _ = app.finish();
});
