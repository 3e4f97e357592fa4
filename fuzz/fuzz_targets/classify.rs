//! Fuzz target: the shared classifier and the state updates on arbitrary frames.
#![no_main]

use agent_common::{
    classify_eth, classify_ip,
    state::{DIR_INGRESS, DstState, Globals, PlainAdd, SrcState, dst_update},
};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    for parsed in [classify_eth(data), classify_ip(data, 0)] {
        let mut g = Globals::default();
        let s = match parsed {
            Ok(s) => s,
            Err(e) => {
                g.observe_error(e, data.len() as u64);
                assert_eq!(g.parse_error_total(), 1);
                continue;
            }
        };
        // Offsets never point past the bytes read, and they only move forward.
        assert!(s.l3_off as usize <= data.len());
        if s.has_l4() {
            assert!(s.l3_off < s.l4_off && s.l4_off <= s.payload_off);
            assert!(s.payload_off as usize <= data.len());
        }
        g.observe(&s);
        assert_eq!(g.packets, 1);
        if !s.is_ip() {
            continue;
        }
        let mut st = SrcState::ZERO;
        st.init(1, 1);
        st.observe::<PlainAdd>(&s, 2, 1);
        st.observe::<PlainAdd>(&s, 3, 2);
        assert_eq!(st.packets, 2);
        let ports = st.distinct_ports();
        assert!(ports.exact && ports.value <= 1);
        let _ = dst_update(&s, DIR_INGRESS);
        let mut d = DstState::ZERO;
        d.observe_syn::<PlainAdd>(&s, 1, 1);
        d.observe_reply::<PlainAdd>(&s, 2);
        assert!(d.distinct_sources().value <= 1);
    }
});
