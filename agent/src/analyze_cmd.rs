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
    // The JSON keeps every row; text, HTML and charts show the first --top.
    let shown = report.trimmed(args.top);
    if let Some(path) = &args.html {
        let page = html::render(&shown)?;
        std::fs::write(path, page).with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = &args.flows {
        let format = flow_export::FlowFormat::from_path(path)?;
        let file = std::fs::File::create(path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        flow_export::write(&report, format, file)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(dir) = &args.plot {
        charts::write_all(&shown, dir)?;
    }
    let out = if args.json {
        let mut s = serde_json::to_string_pretty(&report)?;
        s.push('\n');
        s
    } else {
        text::render(&shown)
    };
    match std::io::stdout().lock().write_all(out.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => return Err(e.into()),
        _ => {}
    }
    if args.kernel {
        kernel_check::report(&kernel_check::check(&args.files)?)?;
    }
    Ok(())
}
