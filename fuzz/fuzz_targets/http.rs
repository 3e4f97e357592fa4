//! Fuzz target: the HTTP/1.x request-head parser of `picket analyze`'s application hints, on
//! arbitrary TCP payloads.
#![no_main]

use picket_analyze::app::{parse_http, printable};

/// True when `part` is a sub-slice of `whole` (the parser only borrows from its input).
fn within(whole: &[u8], part: &[u8]) -> bool {
    let (w, p) = (whole.as_ptr_range(), part.as_ptr_range());
    w.start <= p.start && p.end <= w.end
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some(req) = parse_http(data) else {
        return;
    };
    // A request starts with its method and a space; the target is never empty.
    assert!(data.starts_with(req.method.as_bytes()));
    assert_eq!(data.get(req.method.len()), Some(&b' '));
    assert!(!req.target.is_empty() && within(data, req.target));
    if let Some(host) = req.host {
        assert!(within(data, host));
        assert_eq!(host.trim_ascii(), host);
    }
    // What the report keeps is printable ASCII.
    for s in [
        printable(req.target),
        printable(req.host.unwrap_or_default()),
    ] {
        assert!(s.bytes().all(|c| (0x20..0x7f).contains(&c)));
    }
});
