//! `strata view` end to end: a real process serving a real archive, fetched
//! over HTTP the way the viewer does (Range requests).

#[path = "../../server/tests/common/http.rs"]
mod http;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn strata(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_strata"));
    c.args(args).env_remove("STRATA_WEB");
    c
}

/// A built viewer stand-in and a small archive from `strata example`.
fn fixture(dir: &Path) -> (PathBuf, PathBuf) {
    let web = dir.join("dist");
    std::fs::create_dir(&web).unwrap();
    std::fs::write(web.join("index.html"), "<!doctype html>").unwrap();
    std::fs::write(web.join("strata_decoder_bg.wasm"), b"\0asm\x01\0\0\0").unwrap();
    let archive = dir.join("sample volume.strata");
    let o = strata(&[
        "example",
        archive.to_str().unwrap(),
        "--dims",
        "20",
        "18",
        "16",
        "1",
    ])
    .output()
    .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    (web, archive)
}

/// Kills the server if a test fails before stopping it.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `strata view` and reads its one line: (address, `src` path).
fn start(cmd: &mut Command) -> (Server, SocketAddr, String) {
    let mut child = Server(cmd.stdout(Stdio::piped()).spawn().unwrap());
    let mut line = String::new();
    BufReader::new(child.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let rest = line
        .strip_prefix("strata view: http://")
        .unwrap_or_else(|| panic!("unexpected line {line:?}"));
    let rest = rest
        .strip_suffix(" (Ctrl-C to stop)\n")
        .unwrap_or_else(|| panic!("unexpected line {line:?}"));
    let (addr, src) = rest.split_once("/#src=").unwrap();
    (child, addr.parse().unwrap(), http::percent_decode(src))
}

fn clean_failure(o: &Output, needle: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "expected failure, stderr: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("strata: error: "), "{err}");
    assert!(err.contains(needle), "{err:?} should mention {needle:?}");
    assert!(o.stdout.is_empty(), "no URL on failure");
}

#[test]
fn view_serves_the_archive_and_the_viewer_then_stops_on_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let (web, archive) = fixture(dir.path());
    let (mut server, addr, src) = start(&mut strata(&[
        "view",
        archive.to_str().unwrap(),
        "--port",
        "0",
        "--web",
        web.to_str().unwrap(),
    ]));
    assert_eq!(addr.ip().to_string(), "127.0.0.1");
    assert_ne!(addr.port(), 0);
    assert_eq!(src, "archive/sample%20volume.strata");

    let bytes = std::fs::read(&archive).unwrap();
    let r = http::get(addr, &format!("/{src}"), &["Range: bytes=10-99"]);
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &bytes[10..100]);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes 10-99/{}", bytes.len()).as_str())
    );
    let r = http::get(addr, &format!("/{src}"), &[]);
    assert_eq!((r.status, r.body.len()), (200, bytes.len()));
    let r = http::get(addr, "/", &[]);
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, &b"<!doctype html>"[..])
    );
    let r = http::get(addr, "/strata_decoder_bg.wasm", &[]);
    assert_eq!(r.header("content-type"), Some("application/wasm"));

    // Ctrl-C: a graceful stop and a zero exit.
    let pid = server.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = server.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "no exit after SIGINT");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
}

#[test]
fn view_finds_the_viewer_through_strata_web() {
    let dir = tempfile::tempdir().unwrap();
    let (web, archive) = fixture(dir.path());
    let mut cmd = strata(&["view", archive.to_str().unwrap(), "--port", "0"]);
    cmd.env("STRATA_WEB", &web);
    let (_server, addr, _) = start(&mut cmd);
    assert_eq!(http::get(addr, "/", &[]).status, 200);
}

#[test]
fn view_refuses_a_file_that_is_not_an_archive() {
    let dir = tempfile::tempdir().unwrap();
    let (web, _) = fixture(dir.path());
    let web = web.to_str().unwrap();
    let not = dir.path().join("notes.strata");
    std::fs::write(&not, "just some text, long enough to be more than a header").unwrap();
    let o = strata(&["view", not.to_str().unwrap(), "--port", "0", "--web", web])
        .output()
        .unwrap();
    clean_failure(&o, "not a .strata archive");

    let empty = dir.path().join("empty.strata");
    std::fs::write(&empty, "").unwrap();
    let o = strata(&["view", empty.to_str().unwrap(), "--port", "0", "--web", web])
        .output()
        .unwrap();
    clean_failure(&o, "truncated");

    let missing = dir.path().join("missing.strata");
    let o = strata(&[
        "view",
        missing.to_str().unwrap(),
        "--port",
        "0",
        "--web",
        web,
    ])
    .output()
    .unwrap();
    clean_failure(&o, "missing.strata");
}

#[test]
fn view_says_how_to_build_a_missing_viewer() {
    let dir = tempfile::tempdir().unwrap();
    let (_, archive) = fixture(dir.path());
    let nowhere = dir.path().join("no-dist");
    let o = strata(&[
        "view",
        archive.to_str().unwrap(),
        "--port",
        "0",
        "--web",
        nowhere.to_str().unwrap(),
    ])
    .output()
    .unwrap();
    clean_failure(&o, "the viewer is not built");
    clean_failure(&o, "npm ci && npm run build");
}

#[test]
fn view_names_a_busy_port() {
    let dir = tempfile::tempdir().unwrap();
    let (web, archive) = fixture(dir.path());
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    let o = strata(&[
        "view",
        archive.to_str().unwrap(),
        "--port",
        &port,
        "--web",
        web.to_str().unwrap(),
    ])
    .output()
    .unwrap();
    clean_failure(
        &o,
        &format!("port {port} is in use; pass --port 0 for a free one"),
    );
}
