//! Capture reading with `pcap-parser`: the format comes from the magic number, packets come
//! out as [`Frame`]s with their link type and a timestamp in nanoseconds.
//!
//! A file that ends inside a record, or a record the parser rejects, ends the file with a
//! warning: everything before it still counts.

use std::io::Read;

use anyhow::{Result, bail};
use pcap_parser::{
    Block, PcapBlockOwned, PcapError, create_reader, pcap::PcapHeader, traits::PcapNGPacketBlock,
};
use serde::Serialize;

/// The container format, from the magic number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// Classic pcap, microsecond timestamps.
    Pcap,
    /// Classic pcap, nanosecond timestamps.
    PcapNs,
    /// Kuznetsov's "modified" pcap (extra per-record fields), microsecond timestamps.
    PcapModified,
    /// pcapng.
    Pcapng,
}

impl Format {
    /// Recognises the first four bytes of a capture: the format and whether it is big-endian.
    pub fn from_magic(magic: [u8; 4]) -> Option<(Format, bool)> {
        Some(match u32::from_le_bytes(magic) {
            0xa1b2_c3d4 => (Format::Pcap, false),
            0xd4c3_b2a1 => (Format::Pcap, true),
            0xa1b2_3c4d => (Format::PcapNs, false),
            0x4d3c_b2a1 => (Format::PcapNs, true),
            0xa1b2_cd34 => (Format::PcapModified, false),
            0x0a0d_0d0a => (Format::Pcapng, false),
            _ => return None,
        })
    }

    /// Human-readable name.
    pub fn name(self) -> &'static str {
        match self {
            Format::Pcap => "pcap (µs)",
            Format::PcapNs => "pcap (ns)",
            Format::PcapModified => "pcap (modified)",
            Format::Pcapng => "pcapng",
        }
    }
}

/// One captured packet.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    /// Capture time in nanoseconds since the Unix epoch; `None` for pcapng simple packet
    /// blocks, which carry no timestamp.
    pub ts_ns: Option<u64>,
    /// Link type of the packet's interface (lower 16 bits of the pcap header field).
    pub linktype: u32,
    /// Captured bytes.
    pub data: &'a [u8],
    /// Length on the wire.
    pub orig_len: u32,
}

/// What reading one input found besides its packets.
#[derive(Clone, Debug, Serialize)]
pub struct InputInfo {
    /// The file name as given (`-` for standard input).
    pub name: String,
    /// Container format.
    pub format: Format,
    /// True when the file is big-endian (the first section for pcapng).
    pub big_endian: bool,
    /// pcapng sections (1 for pcap).
    pub sections: u32,
    /// Interfaces declared (1 for pcap).
    pub interfaces: u32,
    /// Packet records read.
    pub packets: u64,
    /// Bytes of the file consumed.
    pub bytes_read: u64,
    /// True when reading stopped early (truncated or corrupt file).
    pub truncated: bool,
    /// Problems met while reading.
    pub warnings: Vec<String>,
}

/// Bytes read before the format is decided: enough for any real pcapng section header.
const PREFIX: usize = 64 * 1024;
/// Initial read buffer.
const BUFFER: usize = 256 * 1024;
/// Largest read buffer: records bigger than this are taken as corruption.
const MAX_BUFFER: usize = 64 << 20;
/// Warnings kept per input (the rest are counted).
const MAX_WARNINGS: usize = 20;

#[derive(Clone, Copy)]
struct Iface {
    linktype: u32,
    /// Timestamp units per second.
    units: u64,
    /// Seconds added to every timestamp.
    offset_s: i64,
    snaplen: u32,
}

/// True when `data` starts with a pcapng block other than a section header whose total
/// length field (in the section's byte order) is below the 12 bytes of its own frame.
fn short_ng_block(data: &[u8], big_endian: bool) -> bool {
    const SECTION_HEADER: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];
    let (Some(kind), Some(len)) = (data.get(..4), data.get(4..8)) else {
        return false;
    };
    let len: [u8; 4] = len.try_into().unwrap_or_default();
    let len = if big_endian {
        u32::from_be_bytes(len)
    } else {
        u32::from_le_bytes(len)
    };
    kind != SECTION_HEADER && len < 12
}

/// What the loop does after one `next()`.
enum Step {
    Consume(usize),
    Refill,
    Grow,
    Stop(String),
    Eof,
}

/// Reads a capture from `input`, calling `on_frame` for each packet and `on_progress` with the
/// bytes consumed so far (every few thousand records). Fails only when the input is not a
/// capture at all; problems after the header become warnings in the returned info.
pub fn read_capture<R: Read + Send>(
    name: &str,
    mut input: R,
    on_progress: &mut dyn FnMut(u64),
    on_frame: &mut dyn FnMut(&Frame<'_>),
) -> Result<InputInfo> {
    let mut prefix = Vec::with_capacity(PREFIX);
    (&mut input).take(PREFIX as u64).read_to_end(&mut prefix)?;
    let magic: [u8; 4] = match prefix.get(..4).and_then(|m| m.try_into().ok()) {
        Some(m) => m,
        None if prefix.is_empty() => bail!("{name}: empty file, not a capture"),
        None => bail!(
            "{name}: not a pcap or pcapng capture ({} bytes)",
            prefix.len()
        ),
    };
    let Some((format, big_endian)) = Format::from_magic(magic) else {
        bail!(
            "{name}: not a pcap or pcapng capture (magic {:02x} {:02x} {:02x} {:02x})",
            magic[0],
            magic[1],
            magic[2],
            magic[3]
        );
    };
    let mut reader = match create_reader(BUFFER, std::io::Cursor::new(prefix).chain(input)) {
        Ok(r) => r,
        Err(PcapError::Incomplete(_) | PcapError::Eof | PcapError::UnexpectedEof) => {
            bail!("{name}: truncated {} header", format.name())
        }
        Err(e) => bail!("{name}: bad {} header: {}", format.name(), short_error(&e)),
    };
    let mut info = InputInfo {
        name: name.to_string(),
        format,
        big_endian,
        sections: 0,
        interfaces: 0,
        packets: 0,
        bytes_read: 0,
        truncated: false,
        warnings: Vec::new(),
    };
    let mut legacy: Option<(u32, u64)> = None; // link type, ns per fraction unit
    let mut ifaces: Vec<Iface> = Vec::new();
    let mut capacity = BUFFER;
    let mut dropped = 0u64; // packets on undeclared interfaces
    let mut bad_resolution = false;
    // Byte order of the current pcapng section (each section header says its own).
    let mut section_be = big_endian;
    loop {
        // pcap-parser 0.17 subtracts 12 from a block's length without checking it first (a
        // process-information block of 4 to 11 bytes overflows): refuse such a block here.
        if format == Format::Pcapng && short_ng_block(reader.data(), section_be) {
            stop(
                &mut info,
                reader.consumed(),
                "corrupt record (pcapng block shorter than its 12-byte frame)",
            );
            break;
        }
        let step = match reader.next() {
            Ok((off, block)) => {
                match block {
                    PcapBlockOwned::LegacyHeader(h) => {
                        info.sections = 1;
                        info.interfaces = 1;
                        legacy = Some(legacy_params(&h));
                    }
                    PcapBlockOwned::Legacy(b) => {
                        let (linktype, unit_ns) = legacy.unwrap_or((1, 1000));
                        info.packets += 1;
                        let ts =
                            u64::from(b.ts_sec) * 1_000_000_000 + u64::from(b.ts_usec) * unit_ns;
                        on_frame(&Frame {
                            ts_ns: Some(ts),
                            linktype,
                            data: b.data,
                            orig_len: b.origlen,
                        });
                    }
                    PcapBlockOwned::NG(Block::SectionHeader(shb)) => {
                        section_be = shb.big_endian();
                        info.sections += 1;
                        ifaces.clear();
                    }
                    PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                        info.interfaces += 1;
                        let units = idb.ts_resolution().unwrap_or_else(|| {
                            bad_resolution = true;
                            1_000_000
                        });
                        ifaces.push(Iface {
                            linktype: idb.linktype.0 as u32 & 0xffff,
                            units: units.max(1),
                            offset_s: idb.ts_offset(),
                            snaplen: idb.snaplen,
                        });
                    }
                    PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                        match ifaces.get(epb.if_id as usize) {
                            Some(ifc) => {
                                info.packets += 1;
                                let raw = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
                                on_frame(&Frame {
                                    ts_ns: Some(ng_time(raw, ifc)),
                                    linktype: ifc.linktype,
                                    data: epb.packet_data(),
                                    orig_len: epb.origlen,
                                });
                            }
                            None => dropped += 1,
                        }
                    }
                    PcapBlockOwned::NG(Block::SimplePacket(spb)) => match ifaces.first() {
                        Some(ifc) => {
                            info.packets += 1;
                            let mut data = spb.packet_data();
                            if ifc.snaplen != 0 {
                                data = data.get(..ifc.snaplen as usize).unwrap_or(data);
                            }
                            on_frame(&Frame {
                                ts_ns: None,
                                linktype: ifc.linktype,
                                data,
                                orig_len: spb.origlen,
                            });
                        }
                        None => dropped += 1,
                    },
                    PcapBlockOwned::NG(_) => {}
                }
                Step::Consume(off)
            }
            Err(PcapError::Eof) => Step::Eof,
            Err(PcapError::Incomplete(_)) => Step::Refill,
            Err(PcapError::BufferTooSmall) => Step::Grow,
            Err(PcapError::UnexpectedEof) => {
                Step::Stop("the file ends inside a record (truncated capture)".into())
            }
            Err(PcapError::ReadError) => Step::Stop("read error".into()),
            Err(e) => Step::Stop(format!("corrupt record ({})", short_error(&e))),
        };
        match step {
            Step::Consume(off) => {
                // No shift here: `circular` would move the rest of the buffer each time half
                // of it is consumed; `refill` moves only the partial record left at its end.
                reader.consume_noshift(off);
                if info.packets.is_multiple_of(4096) {
                    on_progress(reader.consumed() as u64);
                }
            }
            Step::Refill => {
                if reader.refill().is_err() {
                    stop(&mut info, reader.consumed(), "read error");
                    break;
                }
            }
            // A record longer than the buffer. Fill the buffer first: when the input ends
            // sooner the next step finds it truncated, and growing the buffer for a length a
            // corrupt record only claims would allocate up to 64 MiB for nothing.
            Step::Grow if reader.data().len() < capacity => {
                if reader.refill().is_err() {
                    stop(&mut info, reader.consumed(), "read error");
                    break;
                }
            }
            Step::Grow => {
                capacity *= 2;
                if capacity > MAX_BUFFER || !reader.grow(capacity) {
                    stop(
                        &mut info,
                        reader.consumed(),
                        "record larger than 64 MiB (corrupt capture)",
                    );
                    break;
                }
            }
            Step::Stop(why) => {
                stop(&mut info, reader.consumed(), &why);
                break;
            }
            Step::Eof => break,
        }
    }
    info.bytes_read = reader.consumed() as u64;
    on_progress(info.bytes_read);
    if dropped > 0 {
        warn(
            &mut info,
            format!("{dropped} packets refer to an undeclared interface and were skipped"),
        );
    }
    if bad_resolution {
        warn(
            &mut info,
            "an interface declares an invalid timestamp resolution; microseconds assumed".into(),
        );
    }
    if info.packets == 0 && !info.truncated {
        warn(&mut info, "no packets".into());
    }
    Ok(info)
}

fn legacy_params(h: &PcapHeader) -> (u32, u64) {
    let unit_ns = if h.is_nanosecond_precision() { 1 } else { 1000 };
    (h.network.0 as u32 & 0xffff, unit_ns)
}

/// pcapng timestamp in nanoseconds since the epoch (saturating; never panics).
fn ng_time(raw: u64, ifc: &Iface) -> u64 {
    let units = i128::from(ifc.units);
    let ns =
        i128::from(raw) / units * 1_000_000_000 + i128::from(raw) % units * 1_000_000_000 / units;
    let ns = ns + i128::from(ifc.offset_s) * 1_000_000_000;
    ns.clamp(0, i128::from(u64::MAX)) as u64
}

fn stop(info: &mut InputInfo, offset: usize, why: &str) {
    info.truncated = true;
    let msg = format!(
        "{why} at byte {offset}; {} packets read before it are reported",
        info.packets
    );
    warn(info, msg);
}

fn warn(info: &mut InputInfo, msg: String) {
    if info.warnings.len() < MAX_WARNINGS {
        info.warnings.push(msg);
    }
}

/// A parser error without the (possibly large) input bytes the library attaches.
fn short_error<I>(e: &PcapError<I>) -> String {
    match e {
        PcapError::NomError(_, kind) | PcapError::OwnedNomError(_, kind) => format!("{kind:?}"),
        PcapError::HeaderNotRecognized => "header not recognised".into(),
        PcapError::Incomplete(n) => format!("{n} more bytes needed"),
        PcapError::BufferTooSmall => "record too large".into(),
        PcapError::Eof | PcapError::UnexpectedEof => "unexpected end of file".into(),
        PcapError::ReadError => "read error".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Timestamp, link type, bytes and original length of a frame.
    type Owned = (Option<u64>, u32, Vec<u8>, u32);

    fn collect(bytes: &[u8]) -> Result<(InputInfo, Vec<Owned>)> {
        let mut frames = Vec::new();
        let info = read_capture("t", bytes, &mut |_| {}, &mut |f| {
            frames.push((f.ts_ns, f.linktype, f.data.to_vec(), f.orig_len))
        })?;
        Ok((info, frames))
    }

    /// A classic pcap with the given magic (written in the file's byte order) and records.
    fn pcap(magic: u32, be: bool, linktype: u32, records: &[(u32, u32, &[u8], u32)]) -> Vec<u8> {
        let w32 = |v: u32| if be { v.to_be_bytes() } else { v.to_le_bytes() };
        let w16 = |v: u16| if be { v.to_be_bytes() } else { v.to_le_bytes() };
        let mut f = Vec::new();
        f.extend_from_slice(&w32(magic));
        f.extend_from_slice(&w16(2));
        f.extend_from_slice(&w16(4));
        f.extend_from_slice(&w32(0));
        f.extend_from_slice(&w32(0));
        f.extend_from_slice(&w32(65535));
        f.extend_from_slice(&w32(linktype));
        for (sec, frac, data, orig) in records {
            f.extend_from_slice(&w32(*sec));
            f.extend_from_slice(&w32(*frac));
            f.extend_from_slice(&w32(data.len() as u32));
            f.extend_from_slice(&w32(*orig));
            f.extend_from_slice(data);
        }
        f
    }

    /// A pcapng section header (little-endian, no options) followed by `blocks`.
    fn pcapng_with(blocks: &[u8]) -> Vec<u8> {
        let mut f = Vec::new();
        for w in [0x0a0d_0d0au32, 28, 0x1a2b_3c4d] {
            f.extend_from_slice(&w.to_le_bytes());
        }
        f.extend_from_slice(&1u16.to_le_bytes());
        f.extend_from_slice(&0u16.to_le_bytes());
        f.extend_from_slice(&u64::MAX.to_le_bytes());
        f.extend_from_slice(&28u32.to_le_bytes());
        f.extend_from_slice(blocks);
        f
    }

    #[test]
    fn a_block_shorter_than_its_frame_is_corrupt_not_a_panic() {
        // A process-information block (type 0x80000001) claiming 8 bytes: pcap-parser 0.17
        // would subtract 12 from it (found by the `capture` fuzz target).
        for len in [4u32, 8, 11] {
            let mut block = 0x8000_0001u32.to_le_bytes().to_vec();
            block.extend_from_slice(&len.to_le_bytes());
            block.extend_from_slice(&[0; 16]);
            let (info, frames) = collect(&pcapng_with(&block)).expect("read");
            assert!(frames.is_empty());
            assert!(info.truncated, "{len}");
            assert!(
                info.warnings
                    .iter()
                    .any(|w| w.contains("shorter than its 12-byte frame")),
                "{len}: {:?}",
                info.warnings
            );
        }
    }

    #[test]
    fn four_pcap_variants() {
        for (magic, be, ns) in [
            (0xa1b2c3d4, false, false),
            (0xa1b2c3d4, true, false),
            (0xa1b23c4d, false, true),
            (0xa1b23c4d, true, true),
        ] {
            let f = pcap(magic, be, 101, &[(10, 5, b"abcd", 60), (11, 7, b"ef", 2)]);
            let (info, frames) = collect(&f).unwrap();
            assert_eq!(info.big_endian, be);
            assert_eq!(info.format, if ns { Format::PcapNs } else { Format::Pcap });
            assert_eq!(frames.len(), 2);
            let unit = if ns { 1 } else { 1000 };
            assert_eq!(
                frames[0],
                (Some(10_000_000_000 + 5 * unit), 101, b"abcd".to_vec(), 60)
            );
            assert_eq!(frames[1].0, Some(11_000_000_000 + 7 * unit));
            assert!(!info.truncated);
        }
    }

    #[test]
    fn truncated_pcap_keeps_what_was_read() {
        let f = pcap(
            0xa1b2c3d4,
            false,
            1,
            &[(1, 0, &[1; 60], 60), (2, 0, &[2; 60], 60)],
        );
        let (info, frames) = collect(&f[..f.len() - 10]).unwrap();
        assert_eq!(frames.len(), 1);
        assert!(info.truncated);
        assert!(
            info.warnings[0].contains("truncated"),
            "{:?}",
            info.warnings
        );
    }

    #[test]
    fn records_longer_than_the_buffer() {
        // A real record larger than the initial buffer is read whole.
        let big = vec![7u8; 3 * BUFFER / 2];
        let f = pcap(0xa1b2c3d4, false, 1, &[(1, 0, &big, big.len() as u32)]);
        let (info, frames) = collect(&f).unwrap();
        assert_eq!((frames.len(), frames[0].2.len()), (1, big.len()));
        assert!(!info.truncated, "{:?}", info.warnings);
        // A small file whose record claims 1 GiB ends as truncated at once, without growing
        // the buffer towards the claim (which would stop at 64 MiB).
        let mut f = pcap(0xa1b2c3d4, false, 1, &[(1, 0, &[1; 60], 60)]);
        for v in [2u32, 0, 1 << 30, 1 << 30] {
            f.extend_from_slice(&v.to_le_bytes());
        }
        f.extend_from_slice(&[0; 100]);
        let (info, frames) = collect(&f).unwrap();
        assert_eq!(frames.len(), 1);
        assert!(
            info.truncated && info.warnings[0].contains("truncated"),
            "{:?}",
            info.warnings
        );
    }

    #[test]
    fn not_a_capture() {
        let e = collect(b"#!/bin/sh\necho hello\n").unwrap_err().to_string();
        assert!(e.contains("not a pcap or pcapng capture"), "{e}");
        assert!(!e.contains('\n'));
        assert!(collect(b"").unwrap_err().to_string().contains("empty"));
        assert!(
            collect(&[0xd4, 0xc3, 0xb2, 0xa1, 2, 0])
                .unwrap_err()
                .to_string()
                .contains("truncated")
        );
    }

    fn block(ty: u32, body: &[u8], be: bool) -> Vec<u8> {
        let w32 = |v: u32| if be { v.to_be_bytes() } else { v.to_le_bytes() };
        let mut body = body.to_vec();
        while !body.len().is_multiple_of(4) {
            body.push(0);
        }
        let len = 12 + body.len() as u32;
        let mut b = w32(ty).to_vec();
        b.extend_from_slice(&w32(len));
        b.extend_from_slice(&body);
        b.extend_from_slice(&w32(len));
        b
    }

    fn section(
        be: bool,
        linktypes: &[(u16, Option<u8>)],
        packets: &[(u32, u64, &[u8])],
    ) -> Vec<u8> {
        let w32 = |v: u32| if be { v.to_be_bytes() } else { v.to_le_bytes() };
        let w16 = |v: u16| if be { v.to_be_bytes() } else { v.to_le_bytes() };
        let mut shb = w32(0x1a2b3c4d).to_vec();
        shb.extend_from_slice(&w16(1));
        shb.extend_from_slice(&w16(0));
        shb.extend_from_slice(&[0xff; 8]);
        let mut out = block(0x0a0d0d0a, &shb, be);
        for (lt, tsresol) in linktypes {
            let mut idb = w16(*lt).to_vec();
            idb.extend_from_slice(&w16(0));
            idb.extend_from_slice(&w32(0));
            if let Some(r) = tsresol {
                idb.extend_from_slice(&w16(9));
                idb.extend_from_slice(&w16(1));
                idb.extend_from_slice(&[*r, 0, 0, 0]);
                idb.extend_from_slice(&[0; 4]);
            }
            out.extend(block(1, &idb, be));
        }
        for (ifid, ts, data) in packets {
            let mut epb = w32(*ifid).to_vec();
            epb.extend_from_slice(&w32((ts >> 32) as u32));
            epb.extend_from_slice(&w32(*ts as u32));
            epb.extend_from_slice(&w32(data.len() as u32));
            epb.extend_from_slice(&w32(data.len() as u32 + 10));
            epb.extend_from_slice(data);
            out.extend(block(6, &epb, be));
        }
        out
    }

    #[test]
    fn pcapng_sections_interfaces_and_simple_packets() {
        let mut f = section(
            false,
            &[(1, None), (101, Some(9))],
            &[(0, 5_000_000, b"eth"), (1, 7_000_000_000, b"raw")],
        );
        f.extend(section(true, &[(113, None)], &[(0, 1, b"sll")]));
        let mut spb = 9u32.to_be_bytes().to_vec();
        spb.extend_from_slice(b"simple!!!");
        f.extend(block(3, &spb, true));
        f.extend(section(false, &[], &[(0, 1, b"orphan")]));
        let (info, frames) = collect(&f).unwrap();
        assert_eq!(info.format, Format::Pcapng);
        assert_eq!((info.sections, info.interfaces), (3, 3));
        assert_eq!(frames.len(), 4);
        assert_eq!(frames[0], (Some(5_000_000_000), 1, b"eth".to_vec(), 13));
        assert_eq!(frames[1], (Some(7_000_000_000), 101, b"raw".to_vec(), 13));
        assert_eq!(frames[2], (Some(1000), 113, b"sll".to_vec(), 13));
        assert_eq!(frames[3], (None, 113, b"simple!!!".to_vec(), 9));
        assert!(
            info.warnings
                .iter()
                .any(|w| w.contains("undeclared interface")),
            "{:?}",
            info.warnings
        );
    }
}
