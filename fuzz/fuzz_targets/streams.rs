//! Fuzz target: the bounded TCP reassembly of application heads (`picket_analyze::streams`),
//! on arbitrary segments of one connection direction: any order, overlap, gap or framing.
#![no_main]

use picket_analyze::streams::{Head, MAX_HTTP_HEAD, Segment, Streams};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut streams = Streams::default();
    let key = ([1; 16], 40000, [2; 16], 80, 0);
    let mut seq = 1000u32;
    let mut rest = data;
    // Each segment: flags (bit 0 SYN, 1 FIN, 2 DNS framing), a signed move of the sequence
    // number, a length, then that many payload bytes.
    while let [flags, d0, d1, len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (payload, next) = tail.split_at(n);
        seq = seq.wrapping_add(i16::from_be_bytes([*d0, *d1]) as u32);
        streams.segment(
            Segment {
                key,
                seq,
                syn: flags & 1 != 0,
                end: flags & 2 != 0,
                dns: flags & 4 != 0,
                payload,
            },
            &mut |h| match h {
                Head::HttpRequest(b) | Head::HttpResponse(b) => {
                    assert!(b.len() <= MAX_HTTP_HEAD && b.ends_with(b"\r\n\r\n"))
                }
                Head::TlsHandshake(b) => assert!(b.len() <= 16384 + 5 && b[0] == 0x16),
                Head::Dns(b) => assert!(b.len() <= 1024),
            },
        );
        seq = seq.wrapping_add(n as u32);
        rest = next;
    }
});
