//! The conversation table: what is one conversation, when a record is (re)claimed, and that
//! a repeated packet writes nothing.
#![cfg(feature = "std")]

use agent_common::{
    Summary,
    classify::{TCP_ACK, TCP_FIN, TCP_SYN},
    classify_eth,
    conv::{
        ANS_EXPIRED, ANS_REPLY, ANS_RST, ANS_RST_BARE, ANS_SYNACK, ANS_UNREACH, Answer,
        ConvGeometry, ConvKey, ConvRec, SEEN_MAX, conv_set, record_answer, record_opening,
        touch_opening,
    },
};
use picket_frames::layers::*;

fn syn(sport: u16, dport: u16, flags: u16) -> Summary {
    let p = eth(&Ipv4::new([198, 51, 100, 7], [192, 0, 2, 1]).build(&tcp(sport, dport, flags)));
    classify_eth(p.bytes.as_slice()).expect("valid packet")
}

fn touch(w: &mut [ConvRec; 2], s: &Summary, tick: u32) -> bool {
    let key = ConvKey::opening(s);
    let [w0, w1] = w;
    touch_opening(w0, w1, &key, key.hash(7), tick, s.tcp_flags, s.src_port)
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

const SCANNER: [u8; 4] = [198, 51, 100, 7];
const VICTIM: [u8; 4] = [192, 0, 2, 1];

fn frame(src: [u8; 4], dst: [u8; 4], l4: L4) -> Summary {
    classify_eth(eth(&Ipv4::new(src, dst).build(&l4)).bytes.as_slice()).expect("valid packet")
}

fn geo(tick: u32) -> ConvGeometry {
    ConvGeometry {
        tick,
        seed: 7,
        per_bank: 64,
    }
}

/// The record of `key` in bank `tick`.
fn find(t: &[ConvRec], key: &ConvKey, tick: u32) -> Option<ConvRec> {
    let i = conv_set(tick, 64, key.hash(7)) as usize;
    t[i..i + 2]
        .iter()
        .find(|r| r.tick == tick && r.init == key.init && r.resp_port == key.resp_port)
        .copied()
}

#[test]
fn answers_meet_their_probe_in_one_record() {
    use agent_common::classify::{IPPROTO_ICMP, IPPROTO_UDP};
    let mut t = vec![ConvRec::default(); 128];
    let probe = frame(SCANNER, VICTIM, tcp(40000, 80, TCP_SYN));
    assert!(record_opening(t.as_mut_slice(), geo(1), &probe));
    let rst = frame(
        VICTIM,
        SCANNER,
        tcp(80, 40000, agent_common::classify::TCP_RST | TCP_ACK),
    );
    assert!(record_answer(t.as_mut_slice(), geo(1), &rst, true));
    let r = find(&t, &ConvKey::opening(&probe), 1).unwrap();
    assert_eq!(
        (r.init_seen, r.resp_seen, r.answer, r.init_port),
        (1, 1, ANS_RST, 40000)
    );
    // A repeated answer writes nothing.
    let before = t.clone();
    for _ in 0..5 {
        record_answer(t.as_mut_slice(), geo(1), &rst, true);
    }
    let after = t.clone();
    record_answer(t.as_mut_slice(), geo(1), &rst, true);
    assert_ne!(before, after);
    assert_eq!(after, t, "saturated: the line stays clean");

    // A UDP probe answered by ICMP port unreachable, matched by the quoted tuple.
    let udp_probe = frame(SCANNER, VICTIM, udp(53, 161));
    assert!(
        !record_answer(t.as_mut_slice(), geo(1), &udp_probe, true),
        "an opening"
    );
    record_opening(t.as_mut_slice(), geo(1), &udp_probe);
    let quote = picket_frames::quote(&eth(&Ipv4::new(SCANNER, VICTIM).build(&udp(53, 161))).bytes);
    let unreach = frame(
        VICTIM,
        SCANNER,
        raw(IPPROTO_ICMP, &picket_frames::icmp_error(3, 3, &quote)),
    );
    assert!(record_answer(t.as_mut_slice(), geo(1), &unreach, true));
    let r = find(&t, &ConvKey::opening(&udp_probe), 1).unwrap();
    assert_eq!(r.answer, ANS_UNREACH);
    // UDP coming back is an answer once the conversation exists.
    let back = frame(VICTIM, SCANNER, udp(161, 53));
    assert!(record_answer(t.as_mut_slice(), geo(1), &back, true));
    assert_eq!(
        find(&t, &ConvKey::opening(&udp_probe), 1).unwrap().answer,
        ANS_UNREACH | ANS_REPLY
    );
    let _ = IPPROTO_UDP;
}

#[test]
fn answer_classes() {
    use agent_common::classify::{IPPROTO_ICMP, IPPROTO_SCTP, TCP_RST};
    let bits = |s: Summary| Answer::of(&s).map(|a| (a.bits, a.or_opening));
    assert_eq!(
        bits(frame(VICTIM, SCANNER, tcp(80, 1, TCP_SYN | TCP_ACK))),
        Some((ANS_SYNACK, false))
    );
    assert_eq!(
        bits(frame(VICTIM, SCANNER, tcp(80, 1, TCP_RST))),
        Some((ANS_RST_BARE, false))
    );
    assert_eq!(
        bits(frame(VICTIM, SCANNER, tcp(80, 1, TCP_ACK))),
        None,
        "ACK class"
    );
    assert_eq!(
        bits(frame(VICTIM, SCANNER, tcp(80, 1, TCP_SYN))),
        None,
        "an opening"
    );
    assert_eq!(
        bits(frame(VICTIM, SCANNER, icmp(0, 0))),
        Some((ANS_REPLY, false))
    );
    assert_eq!(bits(frame(VICTIM, SCANNER, icmp(8, 0))), None);
    assert_eq!(
        bits(frame(
            VICTIM,
            SCANNER,
            raw(IPPROTO_SCTP, &picket_frames::sctp(80, 1, 2))
        )),
        Some((ANS_REPLY, false))
    );
    assert_eq!(
        bits(frame(
            VICTIM,
            SCANNER,
            raw(IPPROTO_SCTP, &picket_frames::sctp(80, 1, 6))
        )),
        Some((agent_common::conv::ANS_ABORT, false))
    );
    assert_eq!(
        bits(frame(
            VICTIM,
            SCANNER,
            raw(IPPROTO_SCTP, &picket_frames::sctp(80, 1, 1))
        )),
        None
    );
    assert_eq!(
        bits(frame(VICTIM, SCANNER, udp(1, 2))),
        Some((ANS_REPLY, true))
    );
    assert_eq!(
        bits(frame(VICTIM, SCANNER, raw(47, &[0; 4]))),
        Some((ANS_REPLY, true))
    );
    // Time exceeded from a router quoting the tracer's probe: keyed on the target.
    let router = [203, 0, 113, 1];
    let quote = picket_frames::quote(&eth(&Ipv4::new(SCANNER, VICTIM).build(&icmp(8, 0))).bytes);
    let te = frame(
        router,
        SCANNER,
        raw(IPPROTO_ICMP, &picket_frames::icmp_error(11, 0, &quote)),
    );
    let a = Answer::of(&te).unwrap();
    assert_eq!(a.bits, ANS_EXPIRED);
    assert_eq!(a.key, ConvKey::opening(&frame(SCANNER, VICTIM, icmp(8, 0))));
    // A quote of someone else's packet answers nothing.
    let te = frame(
        router,
        [10, 0, 0, 1],
        raw(IPPROTO_ICMP, &picket_frames::icmp_error(11, 0, &quote)),
    );
    assert_eq!(Answer::of(&te), None);
}

#[test]
fn answers_across_a_tick_and_bare_rsts_claim_records() {
    use agent_common::classify::TCP_RST;
    let mut t = vec![ConvRec::default(); 128];
    let probe = frame(SCANNER, VICTIM, tcp(40000, 81, TCP_SYN));
    record_opening(t.as_mut_slice(), geo(1), &probe);
    // Answered in the next tick: a `cont` record there carries the answer.
    let synack = frame(VICTIM, SCANNER, tcp(81, 40000, TCP_SYN | TCP_ACK));
    assert!(record_answer(t.as_mut_slice(), geo(2), &synack, false));
    let r = find(&t, &ConvKey::opening(&probe), 2).unwrap();
    assert_eq!((r.cont, r.init_seen, r.answer), (1, 0, ANS_SYNACK));
    // A SYN-ACK of nothing claims nothing.
    let stray = frame(VICTIM, SCANNER, tcp(82, 40000, TCP_SYN | TCP_ACK));
    record_answer(t.as_mut_slice(), geo(2), &stray, true);
    let key = Answer::of(&stray).unwrap().key;
    assert_eq!(find(&t, &key, 2), None);
    // A bare RST (what an ACK probe draws) claims one, unless claims are off (a flood).
    let rst = frame(VICTIM, SCANNER, tcp(83, 40000, TCP_RST));
    let key = Answer::of(&rst).unwrap().key;
    record_answer(t.as_mut_slice(), geo(2), &rst, false);
    assert_eq!(find(&t, &key, 2), None);
    record_answer(t.as_mut_slice(), geo(2), &rst, true);
    let r = find(&t, &key, 2).unwrap();
    assert_eq!(
        (r.cont, r.init_seen, r.answer, r.resp_port),
        (0, 0, ANS_RST_BARE, 83)
    );
}
