//! Evidence capture (`--capture-dir`): the packets of flagged sources, written to pcap files.
//!
//! While an alert episode about a source is open, the agent puts the source into the kernel's
//! `FLAGGED` map with a byte budget (`--capture-bytes-per-alert`) and sets `CONFIG_EVIDENCE`;
//! the kernel then copies the first [`EVIDENCE_SNAP`] bytes of that source's ingress packets
//! into the `EVIDENCE` ring buffer until the budget is spent. The agent drains the ring into
//! classic pcap files (nanosecond timestamps, Ethernet, snaplen 256) named
//! `picket-<UTC time>-<n>.pcap`, starts a new file at `--capture-file-bytes`, and deletes the
//! oldest `picket-*.pcap` files of the directory so that together they never exceed
//! `--capture-max-bytes` (a packet that cannot fit is not written).

use std::{
    collections::{HashSet, VecDeque},
    fs::{self, File, OpenOptions},
    io::BufWriter,
    path::{Path, PathBuf},
};

use agent_common::state::{
    AddrKey, EVIDENCE_SNAP, EvidenceRecord, Flagged, MAP_EVIDENCE, MAP_FLAGGED,
};
use anyhow::{Context as _, Result, anyhow};
use aya::{
    Ebpf,
    maps::{HashMap, MapData, RingBuf},
};
use tokio::io::{Interest, unix::AsyncFd};

use picket_capture::{
    link::LINKTYPE_ETHERNET,
    writer::{self, PcapWriter, Resolution},
};
use picket_detect::{detector::Scope, episodes::Episodes};

use crate::maps::KernelMaps;

/// Size of the pcap file header.
pub const PCAP_FILE_HEADER: u64 = writer::FILE_HEADER_LEN;
/// Smallest `--capture-file-bytes`: a file header and a few full records.
pub const MIN_FILE_BYTES: u64 = 4096;

/// Default `--capture-bytes-per-alert`: 1 MiB.
pub const DEFAULT_BYTES_PER_ALERT: u64 = 1 << 20;
/// Default `--capture-max-bytes`: 100 MiB.
pub const DEFAULT_MAX_BYTES: u64 = 100 << 20;
/// Default `--capture-file-bytes`: 16 MiB.
pub const DEFAULT_FILE_BYTES: u64 = 16 << 20;

/// A capture file: nanosecond timestamps (evidence: Ethernet, snaplen [`EVIDENCE_SNAP`]).
fn pcap_writer(
    file: File,
    linktype: u32,
    snap: usize,
) -> std::io::Result<PcapWriter<BufWriter<File>>> {
    PcapWriter::new(
        BufWriter::with_capacity(64 * 1024, file),
        Resolution::Nano,
        linktype,
        snap as u32,
    )
}

/// How a rotator names its files.
#[derive(Clone, Debug)]
enum Naming {
    /// `picket-<UTC time>-<n>.pcap` in a directory, where older ones count too.
    Evidence,
    /// The path given, then `<stem>.<n>.<ext>` beside it (`picket analyze --live --write`).
    Numbered(PathBuf),
}

/// Whether `name` is one of Picket's evidence files.
fn is_evidence_file(name: &str) -> bool {
    name.starts_with("picket-") && name.ends_with(".pcap")
}

/// `picket-YYYYMMDDTHHMMSSZ-NNNNNN.pcap` for a wall-clock time in ns since the Unix epoch.
pub fn file_name(wall_ns: u64, n: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(wall_ns);
    let stamp: String = humantime::format_rfc3339_seconds(t)
        .to_string()
        .chars()
        .filter(|c| !matches!(c, '-' | ':'))
        .collect();
    format!("picket-{stamp}-{n:06}.pcap")
}

/// Writes pcap records into rotated files under a directory, keeping the directory's
/// evidence files within a total size.
pub struct PcapRotator {
    dir: PathBuf,
    file_bytes: u64,
    max_bytes: u64,
    /// Evidence files, oldest first, with their sizes; the last one is `current`'s.
    files: VecDeque<(PathBuf, u64)>,
    current: Option<PcapWriter<BufWriter<File>>>,
    total: u64,
    seq: u64,
    /// Records written.
    pub written: u64,
    /// Records not written because they could not fit under the total size.
    pub refused: u64,
    /// Files opened.
    pub opened: u64,
    /// Files deleted to stay under the total size.
    pub deleted: u64,
    /// Print a line on stderr for every file opened.
    pub verbose: bool,
    naming: Naming,
    linktype: u32,
    snap: usize,
}

impl PcapRotator {
    /// Takes over `dir` (created if needed): its existing `picket-*.pcap` files count
    /// towards `max_bytes`, and the oldest are deleted at once if they exceed it.
    pub fn new(dir: &Path, file_bytes: u64, max_bytes: u64) -> Result<Self> {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let mut found = Vec::new();
        for entry in fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let meta = entry.metadata()?;
            if is_evidence_file(&name) && meta.is_file() {
                found.push((name, entry.path(), meta.len()));
            }
        }
        // Names start with the UTC time, then a zero-padded sequence number.
        found.sort();
        let files: VecDeque<(PathBuf, u64)> = found.into_iter().map(|(_, p, n)| (p, n)).collect();
        let total = files.iter().map(|f| f.1).sum();
        let mut r = PcapRotator::empty(
            dir.to_path_buf(),
            (file_bytes, max_bytes),
            Naming::Evidence,
            LINKTYPE_ETHERNET,
            EVIDENCE_SNAP,
        );
        r.files = files;
        r.total = total;
        r.make_room(0)?;
        Ok(r)
    }

    /// Writes `path` (replaced if it exists), then `<stem>.2.<ext>`, … when a file reaches
    /// `file_bytes`, deleting the oldest to keep them all within `max_bytes`; packets of
    /// `linktype` cut at `snap` bytes.
    pub fn numbered(
        path: &Path,
        linktype: u32,
        snap: usize,
        file_bytes: u64,
        max_bytes: u64,
    ) -> Result<Self> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        Ok(PcapRotator::empty(
            dir,
            (file_bytes, max_bytes),
            Naming::Numbered(path.to_path_buf()),
            linktype,
            snap,
        ))
    }

    /// A rotator with no file yet.
    fn empty(
        dir: PathBuf,
        (file_bytes, max_bytes): (u64, u64),
        naming: Naming,
        linktype: u32,
        snap: usize,
    ) -> Self {
        PcapRotator {
            dir,
            file_bytes,
            max_bytes,
            files: VecDeque::new(),
            current: None,
            total: 0,
            seq: 0,
            written: 0,
            refused: 0,
            opened: 0,
            deleted: 0,
            verbose: false,
            naming,
            linktype,
            snap,
        }
    }

    /// The path of file number `seq` (from 1).
    fn path_of(&self, wall_ns: u64) -> PathBuf {
        match &self.naming {
            Naming::Evidence => self.dir.join(file_name(wall_ns, self.seq)),
            Naming::Numbered(first) if self.seq == 1 => first.clone(),
            Naming::Numbered(first) => {
                let stem = first
                    .file_stem()
                    .map_or_else(Default::default, |s| s.to_string_lossy().into_owned());
                let ext = first
                    .extension()
                    .map_or_else(|| "pcap".into(), |s| s.to_string_lossy().into_owned());
                self.dir.join(format!("{stem}.{}.{ext}", self.seq))
            }
        }
    }

    /// Total size of the evidence files in the directory.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Deletes closed files, oldest first, until `need` more bytes fit under the total.
    fn make_room(&mut self, need: u64) -> Result<()> {
        let closed = self.files.len() - usize::from(self.current.is_some());
        for _ in 0..closed {
            if self.total + need <= self.max_bytes {
                break;
            }
            let Some((path, size)) = self.files.pop_front() else {
                break;
            };
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    // Keep counting it: it still takes room.
                    self.files.push_front((path.clone(), size));
                    return Err(anyhow!("cannot delete {}: {e}", path.display()));
                }
            }
            self.total -= size;
            self.deleted += 1;
        }
        Ok(())
    }

    fn close_current(&mut self) -> Result<()> {
        if let Some(mut w) = self.current.take() {
            w.flush().context("cannot write evidence file")?;
        }
        Ok(())
    }

    fn open_next(&mut self, wall_ns: u64) -> Result<()> {
        loop {
            self.seq += 1;
            let path = self.path_of(wall_ns);
            let numbered = matches!(self.naming, Naming::Numbered(_));
            let opened = OpenOptions::new()
                .write(true)
                .create_new(!numbered)
                .create(numbered)
                .truncate(numbered)
                .open(&path);
            match opened {
                Ok(f) => {
                    let w = pcap_writer(f, self.linktype, self.snap)
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    if self.verbose {
                        tracing::info!("writing evidence to {}", path.display());
                    }
                    self.files.push_back((path, PCAP_FILE_HEADER));
                    self.total += PCAP_FILE_HEADER;
                    self.current = Some(w);
                    self.opened += 1;
                    return Ok(());
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(anyhow!("cannot create {}: {e}", path.display())),
            }
        }
    }

    /// Writes one packet (`data` is at most the snaplen; `orig_len` its length on the wire)
    /// captured at `wall_ns`. Returns false when it could not fit under the total size.
    pub fn write(&mut self, wall_ns: u64, orig_len: u32, data: &[u8]) -> Result<bool> {
        let rec = writer::RECORD_HEADER_LEN + data.len().min(self.snap) as u64;
        let cur_size = match (&self.current, self.files.back()) {
            (Some(_), Some((_, n))) => Some(*n),
            _ => None,
        };
        let need = match cur_size {
            Some(n) if n + rec <= self.file_bytes => rec,
            _ => {
                self.close_current()?;
                PCAP_FILE_HEADER + rec
            }
        };
        self.make_room(need)?;
        if self.total + need > self.max_bytes {
            self.refused += 1;
            return Ok(false);
        }
        if self.current.is_none() {
            self.open_next(wall_ns)?;
        }
        let w = self.current.as_mut().expect("a file is open");
        debug_assert_eq!(w.record_len(data.len()), rec);
        w.write(wall_ns, orig_len, data)
            .context("cannot write evidence file")?;
        if let Some((_, n)) = self.files.back_mut() {
            *n += rec;
        }
        self.total += rec;
        self.written += 1;
        Ok(true)
    }

    /// Flushes the current file, so readers see every record written so far.
    pub fn flush(&mut self) -> Result<()> {
        if let Some(w) = self.current.as_mut() {
            w.flush().context("cannot write evidence file")?;
        }
        Ok(())
    }
}

impl Drop for PcapRotator {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

/// Evidence capture settings.
#[derive(Clone, Debug)]
pub struct CaptureConfig {
    /// Directory of the pcap files.
    pub dir: PathBuf,
    /// Packet bytes captured per flagged source and episode.
    pub bytes_per_alert: u64,
    /// Total size of the directory's evidence files.
    pub max_bytes: u64,
    /// Size at which a new file is started.
    pub file_bytes: u64,
}

/// The sources whose packets are evidence: those of the open source-scoped episodes.
pub fn flagged_sources(episodes: &Episodes) -> HashSet<AddrKey> {
    episodes
        .active()
        .filter(|f| f.scope == Scope::Source)
        .filter_map(|f| f.source)
        .map(AddrKey::from_ip)
        .collect()
}

/// The live agent's evidence capture: flags sources in the kernel and drains the ring.
pub struct Evidence {
    ring: AsyncFd<RingBuf<MapData>>,
    flagged: HashMap<MapData, AddrKey, Flagged>,
    active: HashSet<AddrKey>,
    writer: PcapRotator,
    cfg: CaptureConfig,
    /// `CLOCK_REALTIME - CLOCK_MONOTONIC` in ns.
    clock_offset: i128,
    /// Packets the kernel could not capture because the ring was full.
    ring_dropped: u64,
    /// Sources not flagged because the map was full.
    not_flagged: u64,
}

impl Evidence {
    /// Takes the evidence maps out of the loaded object and prepares the directory.
    pub fn new(ebpf: &mut Ebpf, cfg: CaptureConfig) -> Result<Self> {
        let mut take = |name: &str| {
            ebpf.take_map(name)
                .ok_or_else(|| anyhow!("map {name} missing"))
        };
        let flagged: HashMap<MapData, AddrKey, Flagged> = take(MAP_FLAGGED)?.try_into()?;
        let ring = RingBuf::try_from(take(MAP_EVIDENCE)?)?;
        // SAFETY: the ring buffer owns its map fd, which stays open and unchanged for as long
        // as the AsyncFd (which owns the ring buffer) lives.
        let ring = unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
            .map_err(|e| anyhow!("cannot poll the evidence ring buffer: {}", e.into_parts().1))?;
        let mut writer = PcapRotator::new(&cfg.dir, cfg.file_bytes, cfg.max_bytes)?;
        writer.verbose = true;
        let clock_offset =
            i128::from(crate::maps::wall_ns()) - i128::from(crate::maps::monotonic_ns());
        Ok(Evidence {
            ring,
            flagged,
            active: HashSet::new(),
            writer,
            cfg,
            clock_offset,
            ring_dropped: 0,
            not_flagged: 0,
        })
    }

    /// Flags the sources of the open source-scoped episodes (a fresh budget for each newly
    /// flagged one) and unflags the others; evidence capture in the kernel is on while any
    /// source is flagged.
    pub fn sync(&mut self, maps: &mut KernelMaps, episodes: &Episodes) -> Result<()> {
        let want = flagged_sources(episodes);
        let gone: Vec<AddrKey> = self.active.difference(&want).copied().collect();
        for key in gone {
            if let Ok(f) = self.flagged.get(&key, 0) {
                self.ring_dropped += f.dropped;
            }
            let _ = self.flagged.remove(&key);
            self.active.remove(&key);
        }
        for key in want {
            if self.active.contains(&key) {
                continue;
            }
            let v = Flagged {
                budget: self.cfg.bytes_per_alert,
                captured: 0,
                dropped: 0,
            };
            match self.flagged.insert(key, v, 0) {
                Ok(()) => {
                    self.active.insert(key);
                }
                Err(e) => {
                    if self.not_flagged == 0 {
                        tracing::warn!("cannot capture evidence for {}: {e}", key.ip());
                    }
                    self.not_flagged += 1;
                }
            }
        }
        maps.set_evidence(!self.active.is_empty())
    }

    /// Waits until the ring buffer has records (drain them with [`Evidence::drain`]).
    pub async fn readable(&mut self) {
        if let Ok(mut g) = self.ring.readable_mut().await {
            g.clear_ready();
        }
    }

    /// Writes every record in the ring buffer; returns how many there were.
    pub fn drain(&mut self) -> Result<usize> {
        let mut n = 0;
        let ring = self.ring.get_mut();
        while let Some(item) = ring.next() {
            n += 1;
            if item.len() < std::mem::size_of::<EvidenceRecord>() {
                continue;
            }
            // SAFETY: the record is at least size_of::<EvidenceRecord>() bytes of a Pod type.
            let rec: EvidenceRecord =
                unsafe { std::ptr::read_unaligned(item.as_ptr() as *const EvidenceRecord) };
            drop(item);
            let cap = (rec.hdr.cap_len as usize).min(EVIDENCE_SNAP);
            let wall = (i128::from(rec.hdr.ts_ns) + self.clock_offset).max(0) as u64;
            self.writer
                .write(wall, rec.hdr.wire_len, &rec.data[..cap])?;
        }
        if n > 0 {
            self.writer.flush()?;
        }
        Ok(n)
    }

    /// Drains the ring, unflags every source and returns a one-line account.
    pub fn finish(&mut self, maps: &mut KernelMaps) -> Result<String> {
        let _ = maps.set_evidence(false);
        self.drain()?;
        for key in std::mem::take(&mut self.active) {
            if let Ok(f) = self.flagged.get(&key, 0) {
                self.ring_dropped += f.dropped;
            }
            let _ = self.flagged.remove(&key);
        }
        self.writer.flush()?;
        let w = &self.writer;
        Ok(format!(
            "evidence: {} packets in {} new files under {} ({} bytes in all); {} lost \
             (ring buffer full), {} not written (--capture-max-bytes), {} old files deleted",
            w.written,
            w.opened,
            self.cfg.dir.display(),
            w.total(),
            self.ring_dropped,
            w.refused,
            w.deleted
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!(
            "picket-evidence-{tag}-{}-{}",
            std::process::id(),
            crate::maps::wall_ns()
        ));
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn dir_size(d: &Path) -> (u64, Vec<PathBuf>) {
        let mut files: Vec<PathBuf> = fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        (
            files.iter().map(|p| fs::metadata(p).unwrap().len()).sum(),
            files,
        )
    }

    /// Reads a pcap written by the rotator with picket-capture's reader: (ts_ns, incl,
    /// orig, data) per record.
    fn read_pcap(p: &Path) -> Vec<(u64, u32, u32, Vec<u8>)> {
        use picket_capture::reader::{Format, read_capture};
        let b = fs::read(p).unwrap();
        let mut out = Vec::new();
        let info = read_capture("evidence", &b[..], &mut |_| {}, &mut |f| {
            assert_eq!(f.linktype, LINKTYPE_ETHERNET);
            let incl = f.data.len() as u32;
            out.push((f.ts_ns.unwrap(), incl, f.orig_len, f.data.to_vec()));
        })
        .unwrap();
        assert_eq!(info.format, Format::PcapNs);
        assert!(!info.truncated && info.bytes_read == b.len() as u64);
        out
    }

    #[test]
    fn numbered_files_rotate_beside_the_path_given_within_the_cap() {
        let d = tmpdir("numbered");
        let path = d.join("live.pcap");
        let mut r =
            PcapRotator::numbered(&path, LINKTYPE_ETHERNET, 65_535, 4096, 3 * 4096).unwrap();
        for i in 0..100u64 {
            r.write(i, 1000, &[0u8; 1000]).unwrap();
        }
        r.flush().unwrap();
        let (total, files) = dir_size(&d);
        let names: Vec<String> = files
            .iter()
            .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert!(total <= 3 * 4096, "{total} bytes in {names:?}");
        assert!(
            names
                .iter()
                .all(|n| n.starts_with("live.") && n.ends_with(".pcap")),
            "{names:?}"
        );
        assert!(
            r.opened > 3 && r.deleted > 0 && !path.exists(),
            "the oldest, {path:?}, went first"
        );
        assert!(
            d.join(format!("live.{}.pcap", r.opened)).exists(),
            "{names:?}"
        );
        // Whole packets, not cut at the evidence snaplen.
        let last = fs::read(d.join(format!("live.{}.pcap", r.opened))).unwrap();
        assert_eq!(
            last.len() as u64 % (writer::RECORD_HEADER_LEN + 1000),
            PCAP_FILE_HEADER
        );
    }

    #[test]
    fn header_is_nanosecond_ethernet_snaplen_256() {
        let d = tmpdir("hdr");
        let path = d.join("h.pcap");
        drop(
            pcap_writer(
                File::create(&path).unwrap(),
                LINKTYPE_ETHERNET,
                EVIDENCE_SNAP,
            )
            .unwrap(),
        );
        let h = fs::read(&path).unwrap();
        assert_eq!(h.len() as u64, PCAP_FILE_HEADER);
        assert_eq!(&h[..4], &[0x4d, 0x3c, 0xb2, 0xa1]);
        assert_eq!(u16::from_le_bytes([h[4], h[5]]), 2);
        assert_eq!(u16::from_le_bytes([h[6], h[7]]), 4);
        assert_eq!(u32::from_le_bytes(h[16..20].try_into().unwrap()), 256);
        assert_eq!(u32::from_le_bytes(h[20..24].try_into().unwrap()), 1);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn file_names_sort_by_time_then_sequence() {
        let a = file_name(1_795_000_000_000_000_000, 9);
        let b = file_name(1_795_000_000_000_000_000, 10);
        assert!(
            a.starts_with("picket-2026") && a.ends_with("Z-000009.pcap"),
            "{a}"
        );
        assert!(a < b);
        assert!(is_evidence_file(&a));
    }

    #[test]
    fn records_round_trip() {
        let d = tmpdir("rt");
        {
            let mut w = PcapRotator::new(&d, 1 << 20, 1 << 22).unwrap();
            assert!(w.write(1_795_000_000_123_456_789, 60, &[7u8; 60]).unwrap());
            assert!(
                w.write(1_795_000_001_000_000_001, 1514, &[9u8; 300])
                    .unwrap()
            );
        }
        let (_, files) = dir_size(&d);
        assert_eq!(files.len(), 1);
        let recs = read_pcap(&files[0]);
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0], (1_795_000_000_123_456_789, 60, 60, vec![7u8; 60]));
        // Truncated to the snaplen, with the wire length kept.
        assert_eq!(recs[1].1, 256);
        assert_eq!(recs[1].2, 1514);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn rotates_and_never_exceeds_the_total() {
        let d = tmpdir("rot");
        let (file_bytes, max_bytes) = (5_000, 20_000);
        let mut w = PcapRotator::new(&d, file_bytes, max_bytes).unwrap();
        for i in 0..1000u64 {
            w.write(1_795_000_000_000_000_000 + i, 1000, &[i as u8; 256])
                .unwrap();
            w.flush().unwrap();
            let (size, files) = dir_size(&d);
            assert!(size <= max_bytes, "{size} > {max_bytes} after {i}");
            assert_eq!(size, w.total());
            for f in &files {
                assert!(fs::metadata(f).unwrap().len() <= file_bytes);
            }
        }
        assert_eq!(w.written, 1000);
        assert_eq!(w.refused, 0);
        assert!(
            w.opened > 50 && w.deleted > 40,
            "{} {}",
            w.opened,
            w.deleted
        );
        drop(w);
        // The newest records survive, in order, across the remaining files.
        let (_, files) = dir_size(&d);
        let recs: Vec<_> = files.iter().flat_map(|f| read_pcap(f)).collect();
        assert_eq!(recs.last().unwrap().0, 1_795_000_000_000_000_999);
        assert!(recs.windows(2).all(|p| p[0].0 < p[1].0));
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn existing_files_count_and_others_are_left_alone() {
        let d = tmpdir("old");
        fs::write(
            d.join("picket-20000101T000000Z-000001.pcap"),
            vec![0u8; 9_000],
        )
        .unwrap();
        fs::write(d.join("notes.txt"), b"keep").unwrap();
        let mut w = PcapRotator::new(&d, 5_000, 9_100).unwrap();
        assert_eq!(w.total(), 9_000);
        assert!(
            w.write(1_795_000_000_000_000_000, 100, &[1u8; 100])
                .unwrap()
        );
        assert!(!d.join("picket-20000101T000000Z-000001.pcap").exists());
        assert!(d.join("notes.txt").exists());
        assert_eq!(w.deleted, 1);
        // Over the cap at startup: trimmed at once.
        drop(w);
        fs::write(
            d.join("picket-20000101T000000Z-000002.pcap"),
            vec![0u8; 9_000],
        )
        .unwrap();
        let w = PcapRotator::new(&d, 5_000, 5_000).unwrap();
        assert!(w.total() <= 5_000);
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_record_that_cannot_fit_is_refused() {
        let d = tmpdir("tiny");
        let mut w = PcapRotator::new(&d, 200, 200).unwrap();
        assert!(w.write(1, 60, &[0u8; 60]).unwrap());
        // 24 + 76 = 100 in the first file; a second record needs a new file (file cap 200
        // allows it: 100 + 76 = 176), a third needs room a delete makes.
        for _ in 0..10 {
            w.write(2, 256, &[0u8; 256]).unwrap();
        }
        assert!(w.refused > 0);
        assert!(dir_size(&d).0 <= 200);
        fs::remove_dir_all(&d).unwrap();
    }
}
