//! Fuzz target: the DNS message parser of `picket analyze`'s application hints (header, first
//! question, compressed names), on arbitrary UDP payloads.
#![no_main]

use picket_analyze::app::{dns_name, parse_dns};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some(msg) = parse_dns(data) {
        assert!(msg.rcode <= 0xf);
        if let Some((name, _qtype)) = &msg.question {
            assert!(name.ends_with('.'));
        }
    }
    // A name at the start: the name parser on bytes it has not vetted as a header.
    if let Some((name, end)) = dns_name(data, 0) {
        // Presentation form: printable ASCII, lower case, ending in the root label.
        assert!(name.ends_with('.'));
        assert!(name.bytes().all(|c| (0x21..0x7f).contains(&c)));
        assert!(!name.bytes().any(|c| c.is_ascii_uppercase()));
        // The offset after the name is inside the message (or just past its end).
        assert!(end > 0 && end <= data.len());
        // Labels are at most 63 bytes, each byte at most 4 characters, plus the dot.
        assert!(name.len() <= 1024 + 4 * 63 + 1);
    }
});
