//! Bounded TCP reassembly of application heads: HTTP request and response heads, TLS
//! handshake records (the ClientHello) and DNS messages over TCP, whichever way the sender
//! cut them into segments, out of order or retransmitted.
//!
//! Only heads are kept: bodies are skipped by their declared length (`Content-Length`,
//! chunked encoding, TLS record length, DNS length prefix), so a stream costs at most one
//! head's worth of buffer plus a few out-of-order segments. A stream whose framing is lost
//! (a gap the capture never fills, a body without a length, bytes that are no known
//! protocol) falls back to looking for a head at the start of each later segment, as a
//! per-packet reader would.

use crate::HashMap;

/// Longest HTTP head buffered (bytes up to the empty line).
pub const MAX_HTTP_HEAD: usize = 8192;
/// Largest TLS handshake record buffered (the record layer's maximum plus its header).
const MAX_TLS_RECORD: usize = 16384 + 5;
/// Most bytes of one DNS message kept (the header and question are at the front).
const MAX_DNS_MESSAGE: usize = 1024;
/// Out-of-order segments buffered per stream, and their bytes.
const MAX_PENDING: usize = 8;
const MAX_PENDING_BYTES: usize = 32 * 1024;
/// Furthest ahead of the expected sequence number a segment is buffered.
const MAX_AHEAD: u32 = 1 << 20;
/// Most streams (one per direction of a connection) reassembled at once; further ones are
/// read a segment at a time.
pub const MAX_STREAMS: usize = 1 << 18;
/// Most bytes buffered over every stream (heads being read and out-of-order segments); a
/// stream that would go past it drops its buffers and reads its segments on their own.
pub const MAX_BUFFERED: usize = 128 << 20;
/// Bytes a stream needs to tell what protocol it carries.
const MAX_SNIFF: usize = 24;

/// One application head, complete.
#[derive(Debug, PartialEq)]
pub enum Head<'a> {
    /// An HTTP request head (request line through the empty line).
    HttpRequest(&'a [u8]),
    /// An HTTP response head.
    HttpResponse(&'a [u8]),
    /// A TLS handshake record (header included), possibly cut at [`MAX_TLS_RECORD`].
    TlsHandshake(&'a [u8]),
    /// A DNS message without its length prefix, possibly cut at [`MAX_DNS_MESSAGE`].
    Dns(&'a [u8]),
}

/// What the bytes at the reading position are.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    /// Not known yet: the first bytes decide.
    Sniff,
    /// In an HTTP head.
    HttpHead {
        request: bool,
    },
    /// In an HTTP chunked body: the size line, or the trailer section after the last chunk.
    ChunkSize {
        request: bool,
    },
    ChunkTrailer {
        request: bool,
    },
    /// In a TLS record header, or a handshake record being buffered.
    TlsHeader,
    TlsRecord {
        len: usize,
    },
    /// In a DNS length prefix, or a message being buffered.
    DnsLength,
    DnsMessage {
        len: usize,
    },
    /// Framing lost: each later segment is looked at from its start.
    Lost,
}

/// One direction of a connection.
#[derive(Debug)]
struct Stream {
    next_seq: u32,
    mode: Mode,
    /// Bytes of the unit being read (head, record, length prefix).
    buf: Vec<u8>,
    /// Body bytes still to skip before the next head.
    skip: u64,
    /// Mode after the skip (heads again, or the next chunk's size line).
    after_skip: Mode,
    /// Out-of-order segments: sequence number and bytes.
    pending: Vec<(u32, Vec<u8>)>,
    /// DNS framing (port 53) rather than HTTP/TLS sniffing.
    dns: bool,
}

impl Stream {
    fn new(next_seq: u32, dns: bool) -> Self {
        let start = if dns { Mode::DnsLength } else { Mode::Sniff };
        Stream {
            next_seq,
            mode: start,
            buf: Vec::new(),
            skip: 0,
            after_skip: start,
            pending: Vec::new(),
            dns,
        }
    }

    fn start_mode(&self) -> Mode {
        if self.dns {
            Mode::DnsLength
        } else {
            Mode::Sniff
        }
    }

    /// Takes the in-order bytes `data`; `segment_start` is true when they begin a segment.
    fn feed(&mut self, mut data: &[u8], segment_start: bool, on: &mut dyn FnMut(Head<'_>)) {
        if self.mode == Mode::Lost && segment_start {
            self.mode = self.start_mode();
            self.buf.clear();
            self.skip = 0;
        }
        while !data.is_empty() {
            if self.skip > 0 {
                let n = (self.skip.min(data.len() as u64)) as usize;
                self.skip -= n as u64;
                data = &data[n..];
                if self.skip == 0 {
                    self.mode = self.after_skip;
                }
                continue;
            }
            match self.mode {
                Mode::Lost => return,
                Mode::Sniff => {
                    let before = self.buf.len();
                    let take = (MAX_SNIFF - before).min(data.len());
                    self.buf.extend_from_slice(&data[..take]);
                    match sniff(&self.buf) {
                        Some(mode) => {
                            // Read the bytes kept for sniffing in their mode, then `data`.
                            self.buf.truncate(before);
                            let kept = std::mem::take(&mut self.buf);
                            self.mode = mode;
                            self.feed(&kept, false, on);
                        }
                        None if self.buf.len() >= MAX_SNIFF || !could_be_head(&self.buf) => {
                            self.lose()
                        }
                        None => data = &data[take..],
                    }
                }
                _ => {
                    let used = self.feed_unit(data, on);
                    data = &data[used..];
                }
            }
        }
    }

    /// Feeds bytes to the current unit; returns how many of `data` were used.
    fn feed_unit(&mut self, data: &[u8], on: &mut dyn FnMut(Head<'_>)) -> usize {
        let mut used = 0;
        while used < data.len() && self.skip == 0 {
            let rest = &data[used..];
            used += match self.mode {
                Mode::HttpHead { request } => self.http_head(rest, request, on),
                Mode::ChunkSize { request } => self.chunk_size(rest, request),
                Mode::ChunkTrailer { request } => self.chunk_trailer(rest, request),
                Mode::TlsHeader => self.fill(rest, 5, |s| {
                    let len = usize::from(u16::from_be_bytes([s.buf[3], s.buf[4]]));
                    match s.buf[0] {
                        0x16 => s.mode = Mode::TlsRecord { len },
                        // ChangeCipherSpec: what follows is encrypted (read per segment).
                        0x14 => s.lose(),
                        // Alert, application data, heartbeat: skipped.
                        0x15 | 0x17 | 0x18 => {
                            s.buf.clear();
                            s.skip_then(len as u64, Mode::TlsHeader);
                        }
                        _ => s.lose(),
                    }
                }),
                Mode::TlsRecord { len } => {
                    let want = (5 + len).min(MAX_TLS_RECORD);
                    self.fill(rest, want, |s| {
                        on(Head::TlsHandshake(&s.buf));
                        s.buf.clear();
                        s.skip_then((5 + len - want) as u64, Mode::TlsHeader);
                    })
                }
                Mode::DnsLength => self.fill(rest, 2, |s| {
                    let len = usize::from(u16::from_be_bytes([s.buf[0], s.buf[1]]));
                    s.buf.clear();
                    s.mode = Mode::DnsMessage { len };
                }),
                Mode::DnsMessage { len } => {
                    let want = len.min(MAX_DNS_MESSAGE);
                    self.fill(rest, want, |s| {
                        on(Head::Dns(&s.buf));
                        s.buf.clear();
                        s.skip_then((len - want) as u64, Mode::DnsLength);
                    })
                }
                Mode::Sniff | Mode::Lost => return data.len(),
            };
            if self.mode == Mode::Lost {
                return data.len();
            }
        }
        used
    }

    /// Appends to `buf` until it holds `want` bytes, then calls `done`; returns bytes used.
    fn fill(&mut self, data: &[u8], want: usize, done: impl FnOnce(&mut Self)) -> usize {
        let n = want.saturating_sub(self.buf.len()).min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() >= want {
            done(self);
        }
        n
    }

    fn skip_then(&mut self, n: u64, next: Mode) {
        self.skip = n;
        self.after_skip = next;
        self.mode = next;
    }

    fn http_head(&mut self, data: &[u8], request: bool, on: &mut dyn FnMut(Head<'_>)) -> usize {
        let old = self.buf.len();
        // The empty line may straddle what was buffered and the new bytes.
        let from = old.saturating_sub(3);
        let take = (MAX_HTTP_HEAD - old).min(data.len());
        self.buf.extend_from_slice(&data[..take]);
        let Some(end) = memchr::memmem::find(&self.buf[from..], b"\r\n\r\n").map(|i| from + i + 4)
        else {
            if self.buf.len() >= MAX_HTTP_HEAD {
                self.lose();
            }
            return take;
        };
        let head = &self.buf[..end];
        on(if request {
            Head::HttpRequest(head)
        } else {
            Head::HttpResponse(head)
        });
        let framing = body_framing(head, request);
        self.buf.clear();
        let next = Mode::HttpHead { request };
        match framing {
            Body::None => self.mode = next,
            Body::Length(n) => self.skip_then(n, next),
            Body::Chunked => self.mode = Mode::ChunkSize { request },
            // The body runs to the close: later segments are read from their start.
            Body::UntilClose => self.lose(),
        }
        end - old
    }

    fn chunk_size(&mut self, data: &[u8], request: bool) -> usize {
        self.line(data, |s, line| {
            let hex = line.split(|b| *b == b';').next().unwrap_or(&[]);
            match std::str::from_utf8(hex.trim_ascii())
                .ok()
                .and_then(|h| u64::from_str_radix(h, 16).ok())
            {
                Some(0) => s.mode = Mode::ChunkTrailer { request },
                // The chunk and its CRLF.
                Some(n) => s.skip_then(n + 2, Mode::ChunkSize { request }),
                None => s.lose(),
            }
        })
    }

    fn chunk_trailer(&mut self, data: &[u8], request: bool) -> usize {
        self.line(data, |s, line| {
            if line.is_empty() {
                s.mode = Mode::HttpHead { request };
            }
        })
    }

    /// Buffers one CRLF-terminated line (without the CRLF) and calls `done` with it.
    fn line(&mut self, data: &[u8], done: impl FnOnce(&mut Self, &[u8])) -> usize {
        let take = match memchr::memchr(b'\n', data) {
            Some(i) => i + 1,
            None => data.len(),
        };
        if self.buf.len() + take > MAX_HTTP_HEAD {
            self.lose();
            return data.len();
        }
        self.buf.extend_from_slice(&data[..take]);
        if self.buf.last() == Some(&b'\n') {
            let mut line = std::mem::take(&mut self.buf);
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            done(self, &line);
        }
        take
    }

    /// Framing lost: later segments are read from their start.
    fn lose(&mut self) {
        self.mode = Mode::Lost;
        self.buf = Vec::new();
        self.skip = 0;
    }
}

/// The mode a stream starting with `b` is in; `None` while more bytes are needed or when the
/// bytes are no known head (see [`could_be_head`]).
fn sniff(b: &[u8]) -> Option<Mode> {
    if b.len() >= 5 && b[0] == 0x16 && b[1] == 3 {
        return Some(Mode::TlsHeader);
    }
    if b.starts_with(b"HTTP/") {
        return Some(Mode::HttpHead { request: false });
    }
    let sp = b.iter().position(|c| *c == b' ')?;
    (sp > 0 && b[..sp].iter().all(|c| is_tchar(*c))).then_some(Mode::HttpHead { request: true })
}

/// Whether `b` can still grow into a head that [`sniff`] recognises.
fn could_be_head(b: &[u8]) -> bool {
    if b.first() == Some(&0x16) {
        return b.get(1).is_none_or(|v| *v == 3);
    }
    if b"HTTP/".starts_with(&b[..b.len().min(5)]) {
        return true;
    }
    b.iter().all(|c| is_tchar(*c))
}

/// An RFC 9110 token character (the characters of a method name).
pub fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

/// How the body after an HTTP head is delimited.
#[derive(Debug, PartialEq)]
enum Body {
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

fn body_framing(head: &[u8], request: bool) -> Body {
    let mut lines = head
        .split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let first = lines.next().unwrap_or(&[]);
    if !request {
        // 1xx, 204 and 304 responses have no body (responses to HEAD are not told apart).
        let status = first.get(9..12).unwrap_or(&[]);
        if status.first() == Some(&b'1') || status == b"204" || status == b"304" {
            return Body::None;
        }
    }
    let mut length = None;
    for l in lines {
        let Some(colon) = l.iter().position(|b| *b == b':') else {
            continue;
        };
        let (name, value) = (&l[..colon], l[colon + 1..].trim_ascii());
        if name.eq_ignore_ascii_case(b"transfer-encoding") {
            if value
                .rsplit(|b| *b == b',')
                .next()
                .is_some_and(|v| v.trim_ascii().eq_ignore_ascii_case(b"chunked"))
            {
                return Body::Chunked;
            }
            return if request {
                Body::None
            } else {
                Body::UntilClose
            };
        }
        if name.eq_ignore_ascii_case(b"content-length") {
            length = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok());
        }
    }
    match length {
        Some(n) => Body::Length(n),
        None if request => Body::None,
        None => Body::UntilClose,
    }
}

/// A direction of a connection: the flow key (lower endpoint first) and the side sending.
pub type StreamKey = ([u8; 16], u16, [u8; 16], u16, u8);

/// One TCP segment, as the stream table needs it.
pub struct Segment<'a> {
    /// Its direction.
    pub key: StreamKey,
    /// Sequence number.
    pub seq: u32,
    /// SYN set: the stream (re)starts after it.
    pub syn: bool,
    /// FIN or RST set: the stream ends after it.
    pub end: bool,
    /// DNS framing (port 53) rather than HTTP/TLS.
    pub dns: bool,
    /// Its data.
    pub payload: &'a [u8],
}

/// The streams being reassembled.
#[derive(Debug, Default)]
pub struct Streams {
    streams: HashMap<StreamKey, Stream>,
    /// Bytes the streams' buffers hold, at most [`MAX_BUFFERED`].
    buffered: usize,
    /// Segments read on their own because the table or the buffer budget was full.
    pub not_reassembled: u64,
}

impl Streams {
    /// Accounts one TCP segment; complete heads are passed to `on`.
    pub fn segment(&mut self, seg: Segment<'_>, on: &mut dyn FnMut(Head<'_>)) {
        let Segment {
            key,
            seq,
            syn,
            end,
            dns,
            payload,
        } = seg;
        if syn {
            // A new connection (or a port reused): the stream starts after the SYN.
            let data_seq = seq.wrapping_add(1);
            if (self.streams.len() < MAX_STREAMS || self.streams.contains_key(&key))
                && let Some(old) = self.streams.insert(key, Stream::new(data_seq, dns))
            {
                self.buffered -= old.buffered();
            }
        }
        if !payload.is_empty() {
            let data_seq = seq.wrapping_add(u32::from(syn));
            let room = self.streams.len() < MAX_STREAMS;
            match self.streams.get_mut(&key) {
                Some(st) => {
                    let before = st.buffered();
                    st.segment(data_seq, payload, on);
                    self.buffered = self.buffered + st.buffered() - before;
                    if self.buffered > MAX_BUFFERED {
                        self.buffered -= st.buffered();
                        st.drop_buffers();
                        self.not_reassembled += 1;
                    }
                }
                None if room => {
                    // Joined mid-stream: this segment is the start.
                    let mut st = Stream::new(data_seq, dns);
                    st.segment(data_seq, payload, on);
                    self.buffered += st.buffered();
                    self.streams.insert(key, st);
                }
                None => {
                    self.not_reassembled += 1;
                    Stream::new(data_seq, dns).feed(payload, true, on);
                }
            }
        }
        if end && let Some(st) = self.streams.remove(&key) {
            self.buffered -= st.buffered();
        }
    }
}

impl Stream {
    /// Bytes this stream's buffers hold.
    fn buffered(&self) -> usize {
        self.buf.capacity() + self.pending.iter().map(|p| p.1.capacity()).sum::<usize>()
    }

    /// Frees the buffers: framing is lost, later segments are read on their own.
    fn drop_buffers(&mut self) {
        self.lose();
        self.pending = Vec::new();
    }

    fn segment(&mut self, seq: u32, payload: &[u8], on: &mut dyn FnMut(Head<'_>)) {
        let ahead = seq.wrapping_sub(self.next_seq);
        if ahead == 0 || ahead > u32::MAX / 2 {
            self.in_order(seq, payload, on);
            self.drain(on);
            return;
        }
        let buffered: usize = self.pending.iter().map(|p| p.1.len()).sum();
        if self.mode != Mode::Lost
            && ahead < MAX_AHEAD
            && self.pending.len() < MAX_PENDING
            && buffered + payload.len() <= MAX_PENDING_BYTES
        {
            self.pending.push((seq, payload.to_vec()));
            return;
        }
        // A gap the buffer cannot bridge: read what was buffered and this segment in
        // sequence order, each gap jumped over.
        let mut segments = std::mem::take(&mut self.pending);
        segments.push((seq, payload.to_vec()));
        let next = self.next_seq;
        segments.sort_by_key(|(s, _)| s.wrapping_sub(next));
        self.lose();
        for (s, data) in segments {
            let ahead = s.wrapping_sub(self.next_seq);
            if ahead != 0 && ahead <= u32::MAX / 2 {
                self.lose();
                self.next_seq = s;
            }
            self.in_order(s, &data, on);
        }
    }

    /// Reads a segment at or before the expected sequence number: only its new bytes (a
    /// retransmission overlaps what was read).
    fn in_order(&mut self, seq: u32, payload: &[u8], on: &mut dyn FnMut(Head<'_>)) {
        let behind = self.next_seq.wrapping_sub(seq) as usize;
        if let Some(new) = payload.get(behind..).filter(|n| !n.is_empty()) {
            self.next_seq = self.next_seq.wrapping_add(new.len() as u32);
            self.feed(new, behind == 0, on);
        }
    }

    /// Feeds the buffered segments that have become in order.
    fn drain(&mut self, on: &mut dyn FnMut(Head<'_>)) {
        while let Some(i) = self.pending.iter().position(|(s, _)| {
            let ahead = s.wrapping_sub(self.next_seq);
            ahead == 0 || ahead > u32::MAX / 2
        }) {
            let (seq, data) = self.pending.swap_remove(i);
            self.in_order(seq, &data, on);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn heads(segments: &[(u32, &[u8])], dns: bool) -> Vec<String> {
        let mut st = Streams::default();
        let key = ([1; 16], 1000, [2; 16], 80, 0);
        let mut out = Vec::new();
        let seg = |seq, syn, payload| Segment {
            key,
            seq,
            syn,
            end: false,
            dns,
            payload,
        };
        st.segment(seg(99, true, &[]), &mut |_| {});
        for (seq, p) in segments {
            st.segment(seg(*seq, false, p), &mut |h| {
                out.push(match h {
                    Head::HttpRequest(b) => format!("req {}", String::from_utf8_lossy(b)),
                    Head::HttpResponse(b) => format!("resp {}", String::from_utf8_lossy(b)),
                    Head::TlsHandshake(b) => format!("tls {b:?}"),
                    Head::Dns(b) => format!("dns {b:?}"),
                })
            });
        }
        out
    }

    fn req(path: &str) -> String {
        format!("GET {path} HTTP/1.1\r\nHost: a\r\n\r\n")
    }

    #[test]
    fn split_reordered_and_retransmitted_heads() {
        let r = req("/robots.txt");
        let b = r.as_bytes();
        let want = vec![format!("req {r}")];
        // Split in three, in order.
        assert_eq!(
            heads(&[(100, &b[..3]), (103, &b[3..20]), (120, &b[20..])], false),
            want
        );
        // Out of order, with a retransmission overlapping both.
        assert_eq!(
            heads(&[(120, &b[20..]), (100, &b[..10]), (105, &b[5..25])], false),
            want
        );
        // Exact retransmission of a whole request counts once.
        assert_eq!(heads(&[(100, b), (100, b)], false).len(), 1);
    }

    #[test]
    fn pipelined_requests_bodies_and_methods() {
        let body = "PROPFIND / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nGET / HTTP/";
        let mut all = body.as_bytes().to_vec();
        all.extend_from_slice(req("/x").as_bytes());
        all.extend_from_slice(b"POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
        all.extend_from_slice(b"5;x=1\r\nGET /\r\n0\r\nT: 1\r\n\r\n");
        all.extend_from_slice(req("/last").as_bytes());
        let got = heads(&[(100, &all)], false);
        let lines: Vec<&str> = got
            .iter()
            .map(|h| h.split("\r\n").next().unwrap())
            .collect();
        assert_eq!(
            lines,
            [
                "req PROPFIND / HTTP/1.1",
                "req GET /x HTTP/1.1",
                "req POST /c HTTP/1.1",
                "req GET /last HTTP/1.1"
            ]
        );
        // The same bytes one at a time.
        let bytes: Vec<(u32, &[u8])> = (0..all.len())
            .map(|i| (100 + i as u32, &all[i..i + 1]))
            .collect();
        assert_eq!(heads(&bytes, false), got);
    }

    #[test]
    fn tls_and_dns_framing() {
        let mut rec = vec![0x16, 3, 1, 0, 6, 1, 0, 0, 2, 9, 9];
        rec.extend_from_slice(&[0x17, 3, 3, 0, 2, 0xaa, 0xbb]);
        rec.extend_from_slice(&[0x16, 3, 3, 0, 1, 2]);
        let got = heads(&[(100, &rec[..7]), (107, &rec[7..])], false);
        assert_eq!(got.len(), 2, "{got:?}");
        let mut dns = vec![0, 3, 1, 2, 3, 0, 2];
        dns.extend_from_slice(&[4, 5]);
        let got = heads(
            &[(100, &dns[..1]), (101, &dns[1..4]), (104, &dns[4..])],
            true,
        );
        assert_eq!(got, ["dns [1, 2, 3]", "dns [4, 5]"]);
    }

    #[test]
    fn lost_framing_falls_back_to_segment_starts() {
        let r = req("/b");
        // A gap never filled (the segment at 110 is missing, more than MAX_PENDING follow).
        let mut segs: Vec<(u32, Vec<u8>)> = vec![(100, b"GET /a HTT".to_vec())];
        let mut seq = 200;
        for _ in 0..=MAX_PENDING {
            segs.push((seq, r.as_bytes().to_vec()));
            seq += r.len() as u32;
        }
        let refs: Vec<(u32, &[u8])> = segs.iter().map(|(s, p)| (*s, p.as_slice())).collect();
        assert_eq!(heads(&refs, false).len(), MAX_PENDING + 1);
        // Binary data: no heads, then a head starting a later segment.
        let got = heads(&[(100, b"\x00\x01binary"), (108, r.as_bytes())], false);
        assert_eq!(got.len(), 1);
    }
}
