//! Fuzz target: the shared classifier and the state updates on arbitrary frames.
#![no_main]

use agent_common::{
    classify_eth, classify_ip,
    tunnel::{ENCAP_SLOTS, INNER_ERROR_SLOTS},
    slots::{DstSlot, SrcSlot, account_dst, account_src},
    state::{Globals, PlainAdd, SrcState},
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
        // A tunnel is either decoded (its endpoints kept) or not (the reason kept), and its
        // inner headers come after the outer ones.
        assert!((s.encap as usize) < ENCAP_SLOTS && (s.inner_error as usize) < INNER_ERROR_SLOTS);
        assert!(s.encap == 0 || s.inner_error == 0);
        if s.encap != 0 {
            assert!(s.l3_off >= 20);
        }
        g.observe(&s);
        assert_eq!(g.packets, 1);
        assert_eq!(g.encap.iter().sum::<u64>(), u64::from(s.encap != 0));
        if !s.is_ip() {
            continue;
        }
        let mut st = SrcState::ZERO;
        st.init(1);
        st.observe::<PlainAdd>(&s, 2);
        st.observe::<PlainAdd>(&s, 3);
        assert_eq!(st.probes, if s.is_probe() { 2 } else { 0 });
        assert_eq!(st.last_dst, if s.is_probe() { s.dst } else { [0; 16] });
        let (mut a, mut b) = (SrcSlot::default(), SrcSlot::default());
        let (mut c, mut d) = (DstSlot::default(), DstSlot::default());
        for tick in [1, 1, 2] {
            account_src(&mut a, &mut b, tick, &s);
            account_dst(&mut c, &mut d, tick, &s);
        }
        assert_eq!((a.head.pkts, a.head.tick, b.head.tick), (1, 2, 0));
        assert_eq!((c.head.pkts, c.head.err), (1, 0));
        assert!(c.distinct_sources().value <= 1);
    }
});
