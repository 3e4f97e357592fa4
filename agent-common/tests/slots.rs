//! The per-CPU slot tables: classes, 2-way sets with Space-Saving, ticks and merging.
#![cfg(feature = "std")]

use agent_common::{
    Summary,
    classify::{TCP_ACK, TCP_RST, TCP_SYN},
    classify_eth,
    slots::{
        DstSlot, SrcSlot, account_dst, account_src, bytes_to_words, pick, set_index, slot_hash,
        slots_per_cpu,
    },
};
use picket_frames::layers::*;

fn pkt(src: [u8; 4], dst: [u8; 4], l4: L4) -> Summary {
    classify_eth(eth(&Ipv4::new(src, dst).build(&l4)).bytes.as_slice()).expect("valid packet")
}

fn syn(src: [u8; 4]) -> Summary {
    pkt(src, [10, 0, 0, 1], tcp(40000, 80, TCP_SYN))
}

#[test]
fn sender_and_receiver_classes() {
    let (mut a, mut b) = (SrcSlot::default(), SrcSlot::default());
    let (mut c, mut d) = (DstSlot::default(), DstSlot::default());
    for s in [
        syn([1, 1, 1, 1]),
        pkt([1, 1, 1, 1], [10, 0, 0, 1], tcp(40000, 80, TCP_ACK)),
        pkt([1, 1, 1, 1], [10, 0, 0, 1], tcp(40000, 80, TCP_RST)),
        pkt(
            [1, 1, 1, 1],
            [10, 0, 0, 1],
            tcp(40000, 80, TCP_SYN | TCP_ACK),
        ),
        pkt([1, 1, 1, 1], [10, 0, 0, 1], udp(5000, 53)),
        pkt([1, 1, 1, 1], [10, 0, 0, 1], icmp(8, 0)),
        pkt([1, 1, 1, 1], [10, 0, 0, 1], icmp(0, 0)),
    ] {
        account_src(&mut a, &mut b, 7, &s);
        account_dst(&mut c, &mut d, 7, &s);
    }
    assert_eq!(
        (
            a.head.pkts,
            a.syn,
            a.tcp_other,
            a.rst,
            a.synack,
            a.udp,
            a.icmp_req,
            a.icmp_other
        ),
        (7, 1, 1, 1, 1, 1, 1, 1)
    );
    assert_eq!(b.head.tick, 0, "one address uses one way");
    assert_eq!(
        (
            c.head.pkts,
            c.syn_p,
            c.tcp_p,
            c.rst_p,
            c.synack_p,
            c.udp_p,
            c.icmp_req_p,
            c.icmp_other_p
        ),
        (7, 1, 3, 1, 1, 1, 1, 1)
    );
    assert_eq!(c.distinct_sources().value, 1);
}

#[test]
fn a_new_tick_resets_a_slot() {
    let (mut a, mut b) = (SrcSlot::default(), SrcSlot::default());
    account_src(&mut a, &mut b, 1, &syn([1, 1, 1, 1]));
    account_src(&mut a, &mut b, 1, &syn([1, 1, 1, 1]));
    account_src(&mut a, &mut b, 2, &syn([1, 1, 1, 1]));
    assert_eq!((a.head.tick, a.head.pkts, a.syn, a.head.err), (2, 1, 1, 0));
}

#[test]
fn space_saving_bounds_and_keeps_the_heavy_hitter() {
    let (mut a, mut b) = (SrcSlot::default(), SrcSlot::default());
    // A heavy hitter and a stream of one-packet addresses colliding in one set.
    for i in 0..1000u32 {
        account_src(&mut a, &mut b, 1, &syn([9, 9, 9, 9]));
        let o = i.to_be_bytes();
        account_src(&mut a, &mut b, 1, &syn([100, o[1], o[2], o[3]]));
    }
    let heavy = syn([9, 9, 9, 9]).src_words();
    let (h, other) = if a.head.addr == heavy {
        (&a, &b)
    } else {
        (&b, &a)
    };
    assert_eq!(h.head.addr, heavy, "the heavy hitter keeps its way");
    assert_eq!(
        h.head.pkts - h.head.err,
        1000,
        "and every packet of it is counted"
    );
    assert_eq!(h.syn, 1000);
    // The replaced way's lower bound never exceeds what its address really sent.
    assert!(other.head.pkts - other.head.err <= 1);
    assert!(other.syn <= 1);
}

#[test]
fn pick_prefers_the_stale_way() {
    let mut w0 = SrcSlot::default();
    let mut w1 = SrcSlot::default();
    account_src(&mut w0, &mut w1, 3, &syn([1, 1, 1, 1]));
    account_src(&mut w0, &mut w1, 3, &syn([2, 2, 2, 2]));
    assert_ne!(w0.head.addr, w1.head.addr);
    let third = syn([3, 3, 3, 3]).src_words();
    let way = pick(&mut w0, &mut w1, third, 4);
    assert_eq!((way.head.addr, way.head.err), (third, 0));
}

#[test]
fn merging_cpus_sums_counts_and_ors_senders() {
    let mk = |src| {
        let (mut c, mut d) = (DstSlot::default(), DstSlot::default());
        account_dst(&mut c, &mut d, 1, &syn(src));
        c
    };
    let mut x = mk([1, 1, 1, 1]);
    x.merge(&mk([2, 2, 2, 2]));
    assert_eq!((x.head.pkts, x.syn_p), (2, 2));
    assert_eq!(x.distinct_sources().value, 2);
}

#[test]
fn geometry() {
    assert_eq!(slots_per_cpu(65_536, 2), 32_768);
    assert_eq!(slots_per_cpu(65_536, 3), 16_384);
    assert_eq!(slots_per_cpu(1, 4), 2);
    // Partition of CPU 1, bank 1, highest set, with 8 slots per CPU and bank.
    assert_eq!(set_index(1, 3, 8, u32::MAX), 16 + 8 + 6);
    assert_eq!(set_index(0, 2, 8, 5), 4, "way 0 of a set is even");
}

#[test]
fn every_address_bit_moves_the_set() {
    // Flipping any one of the 128 bits moves an address to another of 1024 sets about as
    // often as chance says (1023/1024), for IPv4-mapped and IPv6 addresses and any seed.
    for seed in [0, 1, 0xdead_beef] {
        for base in [
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 0, 0, 1],
            [
                0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x42,
            ],
        ] {
            let set = |a| slot_hash(&bytes_to_words(&a), seed) & 1023;
            let moved = (0..128)
                .filter(|&bit| {
                    let mut a = base;
                    a[bit / 8] ^= 1 << (bit % 8);
                    set(a) != set(base)
                })
                .count();
            assert!(
                moved >= 124,
                "seed {seed:#x}: {moved} of 128 bit flips moved the set"
            );
        }
    }
}

#[test]
fn sequential_sources_spread_over_the_sets() {
    // 16 384 consecutive IPv4 addresses over 1024 sets: 16 each on average; a weak hash
    // piles them up (the busiest set of a random hash holds about 32).
    for seed in [0, 7] {
        let mut load = vec![0u32; 1024];
        for i in 0u32..16_384 {
            let v4 = (0x0a00_0000 + i).to_be_bytes();
            let mut a = [0u8; 16];
            a[10] = 0xff;
            a[11] = 0xff;
            a[12..].copy_from_slice(&v4);
            load[(slot_hash(&bytes_to_words(&a), seed) & 1023) as usize] += 1;
        }
        let busiest = load.iter().max().copied().unwrap_or(0);
        let empty = load.iter().filter(|&&n| n == 0).count();
        assert!(
            busiest <= 40 && empty == 0,
            "seed {seed}: busiest {busiest}, empty {empty}"
        );
    }
}
