//! `picket analyze`: runs the analyzer (crate `picket-analyze`) on the files given (or on live
//! traffic, [`crate::analyze_live`]), prints
//! the report, writes the HTML page and charts asked for, and with `--kernel` checks the
//! captures against the loaded BPF program ([`crate::kernel_check`]).

use std::io::Write as _;

use anyhow::{Context as _, Result};
use picket_analyze::{FrameFilter, analyze_filtered, charts, flow_export, html, text};

use crate::{analyze_live, cli::AnalyzeArgs, kernel_check};

/// Runs `picket analyze`: report on standard output, warnings on standard error, and the
/// HTML page and chart files when asked for.
pub fn run(args: &AnalyzeArgs) -> Result<()> {
    let report = match &args.live {
        Some(iface) => analyze_live::run(args, iface)?,
        None => {
            let options = args.options()?;
            let mut filter = args
                .filter
                .as_deref()
                .map(crate::capture_filter::PcapFilter::new)
                .transpose()?;
            analyze_filtered(
                &args.files,
                &options,
                filter.as_mut().map(|f| f as &mut dyn FrameFilter),
            )?
        }
    };
    for w in &report.warnings {
        tracing::warn!("{w}");
    }
    // The JSON keeps every row; text, HTML and charts show the first --top (a copy, made
    // only when one of them is asked for: the rows of a large capture take a while to copy).
    let shown = (args.html.is_some() || args.plot.is_some() || !args.json)
        .then(|| report.trimmed(args.top));
    if let (Some(path), Some(shown)) = (&args.html, &shown) {
        let page = html::render(shown)?;
        std::fs::write(path, page).with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = &args.flows {
        let format = flow_export::FlowFormat::from_path(path)?;
        let file = std::fs::File::create(path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        flow_export::write(&report, format, file)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let (Some(dir), Some(shown)) = (&args.plot, &shown) {
        charts::write_all(shown, dir)?;
    }
    let printed = match &shown {
        Some(shown) if !args.json => print(|out| out.write_all(text::render(shown).as_bytes())),
        _ => print(|out| {
            serde_json::to_writer_pretty(&mut *out, &report).map_err(std::io::Error::from)?;
            out.write_all(b"\n")
        }),
    };
    match printed {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => return Err(e.into()),
        _ => {}
    }
    if args.kernel {
        kernel_check::report(&kernel_check::check(&args.files)?)?;
    }
    Ok(())
}

/// Writes to standard output through a large buffer, straight from the report (a JSON
/// document of a large capture runs to tens of megabytes: no copy of it is made first).
fn print(
    write: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
    write(&mut out)?;
    out.flush()
}
