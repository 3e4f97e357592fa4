//! Application hints from L4 payloads (which start at `Summary::payload_off`): HTTP requests,
//! http/https URLs in cleartext, DNS questions and response codes, TLS SNI.
//!
//! TCP heads are reassembled across segments first ([`crate::streams`]); UDP payloads are
//! read one datagram at a time. Every read is bounds-checked; strings taken from packets are
//! made printable (`\xNN` escapes) before they are kept.

use std::{cmp::Reverse, fmt::Write as _};

use crate::HashMap;

use agent_common::{
    Summary,
    classify::{IPPROTO_TCP, IPPROTO_UDP},
};

use super::{
    names,
    report::{Application, DnsName, DnsSummary, HttpRequest, NameCount},
    sorted,
    streams::{Head, Segment, Streams},
};

/// Most distinct entries kept per table; later new entries are only counted.
pub const MAX_ENTRIES: usize = 100_000;
/// Longest URL kept (longer ones are cut).
const MAX_URL: usize = 2048;
/// Longest HTTP request head looked at.
const MAX_HEAD: usize = crate::streams::MAX_HTTP_HEAD;
/// Most DNS compression pointers followed in one name.
const MAX_JUMPS: usize = 32;
const DNS_PORT: u16 = 53;
const SSDP_PORT: u16 = 1900;

/// The bytes of the L4 payload, without link-layer padding past the IP packet's own length.
pub fn l4_payload<'a>(s: &Summary, data: &'a [u8]) -> &'a [u8] {
    if !s.has_l4() || s.payload_off == 0 {
        return &[];
    }
    let l3 = usize::from(s.l3_off);
    let be16 = |off: usize| {
        data.get(off..off + 2)
            .map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])))
    };
    let ip_end = match s.family {
        4 => be16(l3 + 2).map(|total| l3 + total),
        // A zero payload length is a jumbogram: take the captured bytes.
        6 => be16(l3 + 4).filter(|n| *n != 0).map(|n| l3 + 40 + n),
        _ => None,
    };
    let end = ip_end.unwrap_or(data.len()).min(data.len());
    data.get(usize::from(s.payload_off)..end).unwrap_or(&[])
}

/// Updates the entry of `key` in a capped table (creating it when there is room).
fn upsert<K: std::hash::Hash + Eq, V: Default>(
    map: &mut HashMap<K, V>,
    key: K,
    overflow: &mut u64,
    f: impl FnOnce(&mut V),
) {
    if !map.contains_key(&key) && map.len() >= MAX_ENTRIES {
        *overflow += 1;
        return;
    }
    f(map.entry(key).or_default());
}

/// The sequence number of a TCP segment (the classifier checked that the header is there).
pub(crate) fn tcp_seq(s: &Summary, data: &[u8]) -> Option<u32> {
    let off = usize::from(s.l4_off) + 4;
    data.get(off..off + 4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// Counts one entry of a capped table.
fn bump<K: std::hash::Hash + Eq>(map: &mut HashMap<K, u64>, key: K, overflow: &mut u64) {
    upsert(map, key, overflow, |v| *v += 1);
}

#[derive(Clone, Debug, Default)]
struct HttpAgg {
    count: u64,
    first_ns: u64,
}

#[derive(Clone, Debug, Default)]
struct DnsAgg {
    queries: u64,
    responses: u64,
}

/// Application-layer tallies, and the TCP streams their heads come from.
#[derive(Debug, Default)]
pub struct AppStats {
    streams: Streams,
    tally: Tally,
}

/// Entries of each table not kept because it was full.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct NotKept {
    /// HTTP (method, host, URL) entries.
    pub http: u64,
    /// URLs.
    pub urls: u64,
    /// DNS questions.
    pub dns_names: u64,
    /// TLS server names.
    pub tls_sni: u64,
    /// TCP segments read on their own because the stream table was full.
    pub streams: u64,
}

/// The application a flow carried, from its first head: protocol and name (HTTP Host, TLS
/// server name, DNS question).
#[derive(Clone, Debug, Default)]
pub struct Hint {
    /// `http`, `tls`, `dns` or `ssdp`.
    pub app: &'static str,
    /// Host, server name or question name; empty when the head had none.
    pub name: String,
}

/// A flow: IP protocol and the canonical key (lower endpoint first).
pub type HintKey = (u8, crate::flows::FlowKey);

#[derive(Debug, Default)]
struct Tally {
    hints: HashMap<HintKey, Hint>,
    http: HashMap<(String, String, String), HttpAgg>,
    http_requests: u64,
    urls: HashMap<String, u64>,
    dns: HashMap<(String, u16), DnsAgg>,
    rcodes: HashMap<u8, u64>,
    dns_queries: u64,
    dns_responses: u64,
    dns_malformed: u64,
    sni: HashMap<String, u64>,
    client_hellos: u64,
    http_responses: u64,
    status: HashMap<u16, u64>,
    not_kept: NotKept,
}

impl AppStats {
    /// Looks at the payload of one classified packet (`data`: its captured bytes).
    pub fn observe(&mut self, s: &Summary, data: &[u8], ts_ns: u64) {
        let p = l4_payload(s, data);
        let dns = s.src_port == DNS_PORT || s.dst_port == DNS_PORT;
        match s.proto {
            IPPROTO_UDP if dns && !p.is_empty() => self.tally.dns(p, s),
            // SSDP: HTTP requests in UDP datagrams.
            IPPROTO_UDP if s.src_port == SSDP_PORT || s.dst_port == SSDP_PORT => {
                if let Some(req) = parse_http(p) {
                    self.tally.hint(s, "ssdp", req.host.map(printable));
                    self.tally.http_request(req, s, ts_ns);
                }
            }
            IPPROTO_TCP if s.has_l4() => {
                let Some(seq) = tcp_seq(s, data) else {
                    return;
                };
                let (key, side) = crate::flows::canonical(s);
                let flags = s.tcp_flags;
                let syn = flags & agent_common::classify::TCP_SYN != 0;
                let end = flags
                    & (agent_common::classify::TCP_FIN | agent_common::classify::TCP_RST)
                    != 0;
                let tally = &mut self.tally;
                self.streams.segment(
                    Segment {
                        key: (key.0, key.1, key.2, key.3, side as u8),
                        seq,
                        syn,
                        end,
                        dns,
                        payload: p,
                    },
                    &mut |h| tally.head(h, s, ts_ns),
                );
            }
            _ => {}
        }
        if !p.is_empty() && (s.proto == IPPROTO_TCP || s.proto == IPPROTO_UDP) {
            let t = &mut self.tally;
            scan_urls(p, |u| bump(&mut t.urls, u, &mut t.not_kept.urls));
        }
    }

    /// The application flow `key` of IP protocol `proto` carried, if a head told.
    pub fn hint(&self, proto: u8, key: &crate::flows::FlowKey) -> Option<&Hint> {
        self.tally.hints.get(&(proto, *key))
    }

    /// The report section, every entry kept (sorted, largest first).
    pub fn finish(&self) -> Application {
        let mut a = self.tally.finish();
        a.not_kept.streams = self.streams.not_reassembled;
        a
    }
}

impl Tally {
    /// Notes the application of the packet's flow, once (bounded like the flow tables).
    fn hint(&mut self, s: &Summary, app: &'static str, name: Option<String>) {
        let key = (s.proto, crate::flows::canonical(s).0);
        if self.hints.len() >= crate::flows::MAX_TRACKED && !self.hints.contains_key(&key) {
            return;
        }
        self.hints.entry(key).or_insert_with(|| Hint {
            app,
            name: name.unwrap_or_default(),
        });
    }

    fn head(&mut self, h: Head<'_>, s: &Summary, ts_ns: u64) {
        match h {
            Head::HttpRequest(b) => {
                if let Some(req) = parse_http(b) {
                    self.hint(s, "http", req.host.map(printable));
                    self.http_request(req, s, ts_ns);
                }
            }
            Head::HttpResponse(b) => {
                if let Some(code) = b
                    .get(9..12)
                    .filter(|c| b.starts_with(b"HTTP/") && c.iter().all(u8::is_ascii_digit))
                {
                    self.http_responses += 1;
                    self.hint(s, "http", None);
                    let code = code.iter().fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
                    *self.status.entry(code).or_default() += 1;
                }
            }
            Head::TlsHandshake(b) => {
                if b.get(5) == Some(&1) {
                    self.client_hellos += 1;
                    let sni = client_hello_sni(b);
                    self.hint(s, "tls", sni.clone());
                    if let Some(name) = sni {
                        bump(&mut self.sni, name, &mut self.not_kept.tls_sni);
                    }
                }
            }
            Head::Dns(m) => self.dns(m, s),
        }
    }

    fn http_request(&mut self, req: Http<'_>, s: &Summary, ts_ns: u64) {
        self.http_requests += 1;
        let host = req.host.map(printable).unwrap_or_default();
        let target = printable(req.target);
        let url = if target.starts_with("http://")
            || target.starts_with("https://")
            || req.method == "CONNECT"
        {
            target
        } else {
            let authority = if host.is_empty() {
                let ip = agent_common::state::AddrKey { addr: s.dst }.ip();
                let ip = if ip.is_ipv6() {
                    format!("[{ip}]")
                } else {
                    ip.to_string()
                };
                if s.dst_port == 80 {
                    ip
                } else {
                    format!("{ip}:{}", s.dst_port)
                }
            } else {
                host.clone()
            };
            // Origin form (`/path`) or asterisk form (`*`), appended as Wireshark does.
            format!("http://{authority}{target}")
        };
        let key = (req.method.to_string(), host, cut(url));
        upsert(&mut self.http, key, &mut self.not_kept.http, |a| {
            if a.count == 0 {
                a.first_ns = ts_ns;
            }
            a.count += 1;
        });
    }

    fn dns(&mut self, m: &[u8], s: &Summary) {
        let Some(msg) = parse_dns(m) else {
            self.dns_malformed += 1;
            return;
        };
        self.hint(s, "dns", msg.question.as_ref().map(|q| q.0.clone()));
        if msg.response {
            self.dns_responses += 1;
            *self.rcodes.entry(msg.rcode).or_default() += 1;
        } else {
            self.dns_queries += 1;
        }
        if let Some(q) = msg.question {
            upsert(&mut self.dns, q, &mut self.not_kept.dns_names, |a| {
                a.queries += u64::from(!msg.response);
                a.responses += u64::from(msg.response);
            });
        }
    }

    fn finish(&self) -> Application {
        let http = sorted(self.http.iter(), |(k, a)| {
            (Reverse(a.count), &k.2, &k.0, &k.1)
        })
        .into_iter()
        .map(|((method, host, url), a)| HttpRequest {
            method: method.clone(),
            host: host.clone(),
            url: url.clone(),
            count: a.count,
            first_seen: picket_detect::document::rfc3339(a.first_ns),
        })
        .collect();
        let names = sorted(self.dns.iter(), |(k, a)| {
            (Reverse(a.queries + a.responses), &k.0, k.1)
        })
        .into_iter()
        .map(|((name, qtype), a)| DnsName {
            name: name.clone(),
            qtype: names::dns_type(*qtype),
            queries: a.queries,
            responses: a.responses,
        })
        .collect();
        let rcodes = sorted(self.rcodes.iter(), |(rc, n)| (Reverse(**n), **rc))
            .into_iter()
            .map(|(rc, count)| NameCount {
                name: names::dns_rcode(*rc),
                count: *count,
            })
            .collect();
        Application {
            http_requests: self.http_requests,
            http_distinct: self.http.len(),
            http,
            urls_distinct: self.urls.len(),
            urls: counts(&self.urls),
            dns: DnsSummary {
                queries: self.dns_queries,
                responses: self.dns_responses,
                malformed: self.dns_malformed,
                rcodes,
                names_distinct: self.dns.len(),
                names,
            },
            tls_client_hellos: self.client_hellos,
            tls_sni_distinct: self.sni.len(),
            tls_sni: counts(&self.sni),
            http_responses: self.http_responses,
            http_status: sorted(self.status.iter(), |(c, n)| (Reverse(**n), **c))
                .into_iter()
                .map(|(c, n)| NameCount {
                    name: c.to_string(),
                    count: *n,
                })
                .collect(),
            entries_not_kept: self.not_kept.http
                + self.not_kept.urls
                + self.not_kept.dns_names
                + self.not_kept.tls_sni,
            not_kept: self.not_kept,
        }
    }
}

fn counts(map: &HashMap<String, u64>) -> Vec<NameCount> {
    sorted(map.iter(), |(name, n)| (Reverse(**n), *name))
        .into_iter()
        .map(|(name, count)| NameCount {
            name: name.clone(),
            count: *count,
        })
        .collect()
}

fn cut(mut s: String) -> String {
    if s.len() > MAX_URL {
        let mut end = MAX_URL;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

/// Printable ASCII as is; anything else as `\xNN`.
pub fn printable(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len());
    for &c in b {
        if (0x20..0x7f).contains(&c) && c != b'\\' {
            s.push(c as char);
        } else {
            // Into the string itself: no allocation per escaped byte.
            let _ = write!(s, "\\x{c:02x}");
        }
    }
    s
}

fn be16(b: &[u8], off: usize) -> Option<usize> {
    b.get(off..off.checked_add(2)?)
        .map(|x| usize::from(u16::from_be_bytes([x[0], x[1]])))
}

/// The parts of an HTTP request head that the report keeps.
#[derive(Debug, PartialEq)]
pub struct Http<'a> {
    /// The method: any RFC 9110 token (so WebDAV's and extension methods too).
    pub method: &'a str,
    /// The request target, as sent.
    pub target: &'a [u8],
    /// The value of the first `Host` header, trimmed.
    pub host: Option<&'a [u8]>,
}

/// Longest method token accepted.
const MAX_METHOD: usize = 32;

/// An HTTP/1.x request line (`METHOD SP target SP HTTP/x.y`) and its `Host` header.
pub fn parse_http(p: &[u8]) -> Option<Http<'_>> {
    let sp = p.iter().take(MAX_METHOD + 1).position(|b| *b == b' ')?;
    if sp == 0 || !p[..sp].iter().all(|c| crate::streams::is_tchar(*c)) {
        return None;
    }
    // Token characters are ASCII.
    let method = std::str::from_utf8(&p[..sp]).ok()?;
    let head = &p[..p.len().min(MAX_HEAD)];
    let mut lines = head
        .split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let line = lines.next()?;
    let rest = line.get(method.len() + 1..)?;
    let sp = rest.iter().rposition(|b| *b == b' ')?;
    let (target, version) = (&rest[..sp], &rest[sp + 1..]);
    if target.is_empty() || !version.starts_with(b"HTTP/") {
        return None;
    }
    let host = lines.take_while(|l| !l.is_empty()).find_map(|l| {
        let colon = l.iter().position(|b| *b == b':')?;
        l[..colon]
            .eq_ignore_ascii_case(b"host")
            .then(|| l[colon + 1..].trim_ascii())
    });
    Some(Http {
        method,
        target,
        host,
    })
}

/// The server name of a TLS ClientHello that starts at the beginning of `p`.
pub fn client_hello_sni(p: &[u8]) -> Option<String> {
    // Record: type 22 (handshake), version 3.x, length; handshake type 1 (ClientHello).
    if p.len() < 9 || p[0] != 0x16 || p[1] != 3 || p[5] != 1 {
        return None;
    }
    let hs = &p[5..];
    // Type (1) + length (3) + client version (2) + random (32).
    let mut off = 4 + 2 + 32;
    off += 1 + usize::from(*hs.get(off)?); // session id
    off += 2 + be16(hs, off)?; // cipher suites
    off += 1 + usize::from(*hs.get(off)?); // compression methods
    let ext_end = (off + 2 + be16(hs, off)?).min(hs.len());
    off += 2;
    while off + 4 <= ext_end {
        let (ty, len) = (be16(hs, off)?, be16(hs, off + 2)?);
        off += 4;
        if ty == 0 {
            // server_name: list length (2), then entries of type (1), length (2), name.
            let list = hs.get(off..off + len)?;
            let mut e = 2;
            while e + 3 <= list.len() {
                let n = be16(list, e + 1)?;
                let name = list.get(e + 3..e + 3 + n)?;
                if list[e] == 0 {
                    return Some(printable(name).to_ascii_lowercase());
                }
                e += 3 + n;
            }
            return None;
        }
        off += len;
    }
    None
}

/// What the report keeps of a DNS message.
#[derive(Debug, PartialEq)]
pub struct DnsMsg {
    /// The QR bit.
    pub response: bool,
    /// The response code (low 4 bits of the flags).
    pub rcode: u8,
    /// The first question: name in presentation form, and type.
    pub question: Option<(String, u16)>,
}

/// Header and first question of a DNS message; `None` when it cannot be DNS.
pub fn parse_dns(m: &[u8]) -> Option<DnsMsg> {
    let hdr = m.get(..12)?;
    let flags = u16::from_be_bytes([hdr[2], hdr[3]]);
    let qdcount = u16::from_be_bytes([hdr[4], hdr[5]]);
    let opcode = (flags >> 11) & 0xf;
    if opcode > 6 || qdcount > 64 {
        return None;
    }
    let question = if qdcount > 0 {
        let (name, end) = dns_name(m, 12)?;
        Some((name, be16(m, end)? as u16))
    } else {
        None
    };
    Some(DnsMsg {
        response: flags & 0x8000 != 0,
        rcode: (flags & 0xf) as u8,
        question,
    })
}

/// A (possibly compressed) domain name at `off`: the name in presentation form (lower case,
/// `\DDD` escapes) and the offset after it.
pub fn dns_name(m: &[u8], mut off: usize) -> Option<(String, usize)> {
    let mut name = String::new();
    let mut end = None;
    let mut jumps = 0;
    loop {
        let len = *m.get(off)?;
        match len & 0xc0 {
            0 if len == 0 => {
                off += 1;
                break;
            }
            0 => {
                let label = m.get(off + 1..off + 1 + usize::from(len))?;
                for &c in label {
                    match c {
                        b'.' | b'\\' => {
                            name.push('\\');
                            name.push(c as char);
                        }
                        0x21..=0x7e => name.push(c.to_ascii_lowercase() as char),
                        _ => {
                            let _ = write!(name, "\\{c:03}");
                        }
                    }
                }
                name.push('.');
                off += 1 + usize::from(len);
                if name.len() > 1024 {
                    return None;
                }
            }
            0xc0 => {
                let lo = *m.get(off + 1)?;
                end.get_or_insert(off + 2);
                jumps += 1;
                if jumps > MAX_JUMPS {
                    return None;
                }
                off = usize::from(len & 0x3f) << 8 | usize::from(lo);
            }
            _ => return None,
        }
    }
    if name.is_empty() {
        name.push('.');
    }
    Some((name, end.unwrap_or(off)))
}

/// Calls `f` with every http:// or https:// URL in `p`.
fn scan_urls(p: &[u8], mut f: impl FnMut(String)) {
    // Built once: building the searcher cost more than searching most payloads.
    static HTTP: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"http"));
    for i in HTTP.find_iter(p) {
        let rest = &p[i..];
        let scheme = if rest.starts_with(b"http://") {
            7
        } else if rest.starts_with(b"https://") {
            8
        } else {
            continue;
        };
        let n = rest
            .iter()
            .take(MAX_URL)
            .take_while(|b| url_char(**b))
            .count();
        match rest.get(scheme) {
            Some(c) if n > scheme && (c.is_ascii_alphanumeric() || *c == b'[') => {}
            _ => continue,
        }
        // Only URL characters (ASCII) were taken.
        f(String::from_utf8_lossy(&rest[..n]).into_owned());
    }
}

fn url_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~:/?#[]@!$&'()*+,;=%".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_request_heads() {
        let r = parse_http(
            b"GET /a?b=1 HTTP/1.1\r\nUser-Agent: x\r\nhOsT:  example.com:8080 \r\n\r\nbody",
        )
        .unwrap();
        assert_eq!(
            r,
            Http {
                method: "GET",
                target: b"/a?b=1",
                host: Some(b"example.com:8080")
            }
        );
        let r = parse_http(b"CONNECT example.com:443 HTTP/1.1\r\n").unwrap();
        assert_eq!(r.target, b"example.com:443");
        assert!(parse_http(b"GET / FTP/1.0\r\n").is_none());
        assert_eq!(
            parse_http(b"PROPFIND /d HTTP/1.1\r\n\r\n").unwrap().method,
            "PROPFIND"
        );
        assert!(parse_http(b"G(T / HTTP/1.0\r\n").is_none());
        assert!(parse_http(b"GET ").is_none());
        assert_eq!(parse_http(b"GET / HTTP/1.0").unwrap().host, None);
    }

    fn dns_query(name: &[&str], qtype: u16, flags: u16) -> Vec<u8> {
        let mut m = vec![0x12, 0x34];
        m.extend_from_slice(&flags.to_be_bytes());
        m.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
        for l in name {
            m.push(l.len() as u8);
            m.extend_from_slice(l.as_bytes());
        }
        m.push(0);
        m.extend_from_slice(&qtype.to_be_bytes());
        m.extend_from_slice(&[0, 1]);
        m
    }

    #[test]
    fn dns_messages() {
        let q = parse_dns(&dns_query(&["WWW", "example", "com"], 28, 0x0100)).unwrap();
        assert_eq!(
            q,
            DnsMsg {
                response: false,
                rcode: 0,
                question: Some(("www.example.com.".into(), 28))
            }
        );
        let r = parse_dns(&dns_query(&["a.b", "x\u{1}"], 1, 0x8183)).unwrap();
        assert_eq!(r.question.unwrap().0, "a\\.b.x\\001.");
        assert_eq!((r.response, r.rcode), (true, 3));
        // Compression loop, pointer past the end, truncated name, bad opcode.
        let mut looped = dns_query(&[], 1, 0);
        looped.truncate(12);
        looped.extend_from_slice(&[0xc0, 12]);
        assert!(parse_dns(&looped).is_none());
        let mut past = looped.clone();
        past[13] = 200;
        assert!(parse_dns(&past).is_none());
        assert!(parse_dns(&dns_query(&["abc"], 1, 0)[..15]).is_none());
        assert!(parse_dns(&dns_query(&["abc"], 1, 0x7800)).is_none());
        assert_eq!(
            parse_dns(&dns_query(&[], 2, 0)).unwrap().question,
            Some((".".into(), 2))
        );
    }

    fn client_hello(sni: &str) -> Vec<u8> {
        let mut ext = vec![0, 0];
        let entry_len = 3 + sni.len();
        ext.extend_from_slice(&((2 + entry_len) as u16).to_be_bytes());
        ext.extend_from_slice(&(entry_len as u16).to_be_bytes());
        ext.push(0);
        ext.extend_from_slice(&(sni.len() as u16).to_be_bytes());
        ext.extend_from_slice(sni.as_bytes());
        let mut body = vec![3, 3];
        body.extend_from_slice(&[7; 32]);
        body.extend_from_slice(&[0, 0, 2, 0x13, 0x01, 1, 0]);
        body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
        body.extend_from_slice(&ext);
        let mut hs = vec![1, 0];
        hs.extend_from_slice(&(body.len() as u16).to_be_bytes());
        hs.extend_from_slice(&body);
        let mut rec = vec![0x16, 3, 1];
        rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
        rec.extend_from_slice(&hs);
        rec
    }

    #[test]
    fn tls_sni() {
        let ch = client_hello("Example.ORG");
        assert_eq!(client_hello_sni(&ch).as_deref(), Some("example.org"));
        for cut in 0..ch.len() {
            assert!(client_hello_sni(&ch[..cut]).is_none());
        }
    }

    #[test]
    fn urls_in_text() {
        let mut found = Vec::new();
        scan_urls(
            b"see http://a.example/x?y=1 and https://[::1]:8/p\" or http:// or httpx https://\x01",
            |u| found.push(u),
        );
        assert_eq!(found, ["http://a.example/x?y=1", "https://[::1]:8/p"]);
    }

    #[test]
    fn escapes() {
        assert_eq!(printable(b"a\x1b[31mb\\"), "a\\x1b[31mb\\x5c");
    }
}
