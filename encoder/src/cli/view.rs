//! `strata view FILE.strata`: serves the web viewer and the archive on
//! 127.0.0.1 and prints the URL to open.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use strata_format::{Event, Limits, StreamReader};
use strata_server::ViewServer;

/// Where `npm run build` puts the viewer, in this source tree.
fn built_web_dir() -> PathBuf {
    let encoder = Path::new(env!("CARGO_MANIFEST_DIR"));
    encoder.parent().unwrap_or(encoder).join("web").join("dist")
}

#[derive(clap::Args)]
pub struct Args {
    /// The .strata archive to view.
    file: PathBuf,
    /// Port to listen on; 0 picks a free one.
    #[arg(long, default_value_t = 7878)]
    port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// The built viewer (default: $STRATA_WEB, else this source tree's
    /// web/dist).
    #[arg(long)]
    web: Option<PathBuf>,
    /// A view for the printed URL, as the viewer's link parameters
    /// (docs/VIEWER.md), e.g. `mode=mip&cmap=hot`: appended to its hash.
    #[arg(long)]
    view: Option<String>,
}

pub fn run(args: Args) -> Result<()> {
    check_header(&args.file)?;
    let view = args
        .view
        .as_deref()
        .map(|v| v.trim_start_matches(['#', '&']))
        .filter(|v| !v.is_empty());
    // The viewer checks every parameter; this only keeps the URL one piece.
    if let Some(v) = view {
        if v.chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '#')
        {
            anyhow::bail!("--view: link parameters cannot contain spaces or '#': {v:?}");
        }
    }
    let web = args
        .web
        .or_else(|| std::env::var_os("STRATA_WEB").map(PathBuf::from))
        .unwrap_or_else(built_web_dir);
    let server = ViewServer::bind(&args.host, args.port, &web, &args.file)?;
    let url = match view {
        Some(v) => format!("{}&{v}", server.url()),
        None => server.url(),
    };
    let mut out = std::io::stdout().lock();
    writeln!(out, "strata view: {url} (Ctrl-C to stop)")?;
    out.flush()?;
    drop(out);
    server.run_until_ctrl_c()?;
    Ok(())
}

/// Reads just enough of `path` to parse and check its header and section
/// table, so a wrong file is an error here rather than a broken page.
fn check_header(path: &Path) -> Result<()> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut reader = StreamReader::new(Limits::default());
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        match reader.poll().with_context(|| path.display().to_string())? {
            Event::Header(_) | Event::Section(_) | Event::End => return Ok(()),
            Event::NeedMore => {}
        }
        let n = file
            .read(&mut chunk)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            reader
                .finish()
                .with_context(|| path.display().to_string())?;
            return Ok(());
        }
        reader.feed(&chunk[..n]);
    }
}
