//! The conversation table: what is one conversation, when a record is (re)claimed, and that
//! a repeated packet writes nothing.
#![cfg(feature = "std")]

use agent_common::{
    Summary,
    classify::{TCP_ACK, TCP_FIN, TCP_SYN},
    classify_eth,
    conv::{ConvKey, ConvRec, SEEN_MAX, conv_set, touch_opening},
};
use picket_frames::layers::*;

fn syn(sport: u16, dport: u16, flags: u16) -> Summary {
    let p = eth(&Ipv4::new([198, 51, 100, 7], [192, 0, 2, 1]).build(&tcp(sport, dport, flags)));
    classify_eth(p.bytes.as_slice()).expect("valid packet")
}

fn touch(w: &mut [ConvRec; 2], s: &Summary, tick: u32) -> bool {
    let key = ConvKey::opening(s);
    let [w0, w1] = w;
    touch_opening(w0, w1, &key, key.hash(7), tick, s.tcp_flags)
}

#[test]
fn a_probe_opens_once_per_tick() {
    let mut w = [ConvRec::default(); 2];
    assert!(touch(&mut w, &syn(40000, 80, TCP_SYN), 1));
    assert!(!touch(&mut w, &syn(40000, 80, TCP_SYN), 1));
    // The initiator's port is not part of the conversation.
    assert!(!touch(&mut w, &syn(40001, 80, TCP_SYN | TCP_FIN), 1));
    assert_eq!(w[0].init_flags, (TCP_SYN | TCP_FIN) as u8);
    // Another port is another conversation (the set's other way).
    assert!(touch(&mut w, &syn(40000, 81, TCP_SYN), 1));
    // A new tick opens it again.
    assert!(touch(&mut w, &syn(40000, 80, TCP_SYN), 2));
}

#[test]
fn repeated_packets_stop_writing() {
    let mut w = [ConvRec::default(); 2];
    for _ in 0..10 {
        touch(&mut w, &syn(40000, 80, TCP_SYN), 1);
    }
    assert_eq!(w[0].init_seen, SEEN_MAX);
    let before = w;
    touch(&mut w, &syn(40000, 80, TCP_SYN), 1);
    assert_eq!(w, before, "a saturated record is left as it is");
}

#[test]
fn a_full_set_replaces_the_lighter_way() {
    let mut w = [ConvRec::default(); 2];
    for _ in 0..3 {
        touch(&mut w, &syn(1, 80, TCP_SYN), 1);
    }
    touch(&mut w, &syn(1, 81, TCP_SYN), 1);
    assert!(touch(&mut w, &syn(1, 82, TCP_SYN), 1));
    let ports: Vec<u16> = w.iter().map(|r| r.resp_port).collect();
    assert_eq!(ports, [80, 82], "port 81 (one packet) gave way");
}

#[test]
fn sets_are_even_and_banked() {
    assert_eq!(conv_set(2, 8, 7), 6);
    assert_eq!(conv_set(3, 8, 7), 8 + 6);
    let k = ConvKey::opening(&syn(1, 80, TCP_ACK));
    assert_ne!(k.hash(1), k.hash(2), "seeded");
    assert_eq!(k.hash(1) & 1, 1, "never 0");
}
