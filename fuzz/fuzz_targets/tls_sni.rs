//! Fuzz target: the TLS ClientHello server-name (SNI) extractor of `picket analyze`'s
//! application hints, on arbitrary TCP payloads.
#![no_main]

use picket_analyze::app::client_hello_sni;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some(name) = client_hello_sni(data) else {
        return;
    };
    // Only a handshake record holding a ClientHello has a server name.
    assert!(data.len() >= 9 && data[0] == 0x16 && data[1] == 3 && data[5] == 1);
    // Printable ASCII in lower case (anything else escaped as `\xNN`), and never longer
    // than four characters per input byte.
    assert!(name.bytes().all(|c| (0x20..0x7f).contains(&c)));
    assert!(!name.bytes().any(|c| c.is_ascii_uppercase()));
    assert!(name.len() <= 4 * data.len());
});
