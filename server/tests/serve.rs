//! The server over real sockets: the viewer's files, the archive with
//! ranges, refusals.

#[path = "common/http.rs"]
mod http;

use std::net::SocketAddr;
use std::path::Path;

use http::{get, request};
use strata_server::{ServeError, ViewServer};

const INDEX: &str = "<!doctype html><title>viewer</title>";
const NAME: &str = "my volume.strata";

fn archive_bytes() -> Vec<u8> {
    (0..1000u32).map(|i| (i * 7 % 251) as u8).collect()
}

/// A web dir (index.html, a .js, a .wasm) and an archive beside it.
fn fixture(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let web = dir.join("web");
    std::fs::create_dir_all(web.join("assets")).unwrap();
    std::fs::write(web.join("index.html"), INDEX).unwrap();
    std::fs::write(web.join("strata-viewer.js"), "export {};\n").unwrap();
    std::fs::write(web.join("strata_decoder_bg.wasm"), b"\0asm\x01\0\0\0").unwrap();
    std::fs::write(web.join("assets/style.css"), "body {}\n").unwrap();
    // A file outside the web dir that traversal would reach.
    std::fs::write(dir.join("secret.txt"), "secret").unwrap();
    let archive = dir.join(NAME);
    std::fs::write(&archive, archive_bytes()).unwrap();
    (web, archive)
}

/// Binds on a free port and serves on a background thread for the rest of
/// the test process.
fn start(web: &Path, archive: &Path) -> (SocketAddr, String) {
    let server = ViewServer::bind("127.0.0.1", 0, web, archive).unwrap();
    let addr = server.local_addr();
    assert_ne!(addr.port(), 0);
    let path = format!("/{}", server.archive_path());
    std::thread::spawn(move || server.run(std::future::pending()).unwrap());
    (addr, path)
}

#[test]
fn serves_the_viewer_files_with_their_types() {
    let dir = tempfile::tempdir().unwrap();
    let (web, archive) = fixture(dir.path());
    let (addr, _) = start(&web, &archive);

    let r = get(addr, "/", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, INDEX.as_bytes());
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    assert_eq!(r.header("cache-control"), Some("no-cache"));

    let r = get(addr, "/index.html", &[]);
    assert_eq!((r.status, r.body.as_slice()), (200, INDEX.as_bytes()));

    let r = get(addr, "/strata_decoder_bg.wasm", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/wasm"));
    assert_eq!(r.body, b"\0asm\x01\0\0\0");

    let r = get(addr, "/strata-viewer.js", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/javascript"));

    let r = get(addr, "/assets/style.css", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/css"));

    let r = get(addr, "/missing.js", &[]);
    assert_eq!(r.status, 404);
    assert_eq!(r.header("cache-control"), Some("no-cache"));
}

#[test]
fn serves_the_archive_with_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let (web, archive) = fixture(dir.path());
    let (addr, path) = start(&web, &archive);
    assert_eq!(path, "/archive/my%20volume.strata");
    let bytes = archive_bytes();

    let r = get(addr, &path, &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, bytes);
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    assert_eq!(r.header("cache-control"), Some("no-cache"));

    let r = get(addr, &path, &["Range: bytes=10-99"]);
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &bytes[10..100]);
    assert_eq!(r.header("content-range"), Some("bytes 10-99/1000"));
    assert_eq!(r.header("content-length"), Some("90"));

    // A suffix range: the last 24 bytes.
    let r = get(addr, &path, &["Range: bytes=-24"]);
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &bytes[976..]);

    // An open-ended range past the end is cut at the end.
    let r = get(addr, &path, &["Range: bytes=990-"]);
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &bytes[990..]);
    assert_eq!(r.header("content-range"), Some("bytes 990-999/1000"));

    let r = get(addr, &path, &["Range: bytes=5000-6000"]);
    assert_eq!(r.status, 416);
    assert_eq!(r.header("content-range"), Some("bytes */1000"));

    let r = request(addr, "HEAD", &path, &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("1000"));
    assert!(r.body.is_empty());

    // Only the archive being viewed is under /archive/.
    assert_eq!(get(addr, "/archive/other.strata", &[]).status, 404);
    assert_eq!(get(addr, "/archive/", &[]).status, 404);
}

#[test]
fn refuses_paths_outside_the_web_dir() {
    let dir = tempfile::tempdir().unwrap();
    let (web, archive) = fixture(dir.path());
    let (addr, _) = start(&web, &archive);
    for target in [
        "/../secret.txt",
        "/assets/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/..%2fsecret.txt",
        "/assets/%2e%2e/%2e%2e/secret.txt",
        "/archive/..%2fsecret.txt",
        "/archive/%2e%2e%2f..%2fsecret.txt",
        "//etc/passwd",
    ] {
        let r = get(addr, target, &[]);
        assert_ne!(r.status, 200, "{target}");
        assert!(!r.body.starts_with(b"secret"), "{target}");
        assert!(!r.body.starts_with(b"root:"), "{target}");
    }
}

#[test]
fn refuses_an_unbuilt_viewer_a_missing_archive_and_a_busy_port() {
    let dir = tempfile::tempdir().unwrap();
    let (web, archive) = fixture(dir.path());

    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    for missing in [empty.clone(), dir.path().join("nowhere")] {
        let err = ViewServer::bind("127.0.0.1", 0, &missing, &archive)
            .err()
            .unwrap();
        assert!(matches!(err, ServeError::ViewerNotBuilt(_)), "{err}");
        let msg = err.to_string();
        assert!(msg.contains("index.html missing"), "{msg}");
        assert!(msg.contains("npm ci && npm run build"), "{msg}");
    }

    let err = ViewServer::bind("127.0.0.1", 0, &web, &dir.path().join("none.strata"))
        .err()
        .unwrap();
    assert!(err.to_string().contains("none.strata"), "{err}");
    let err = ViewServer::bind("127.0.0.1", 0, &web, &web).err().unwrap();
    assert!(err.to_string().contains("is not a file"), "{err}");

    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let err = ViewServer::bind("127.0.0.1", port, &web, &archive)
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        format!("port {port} is in use; pass --port 0 for a free one")
    );
}

#[test]
fn the_url_names_the_archive_in_the_hash() {
    let dir = tempfile::tempdir().unwrap();
    let (web, archive) = fixture(dir.path());
    let server = ViewServer::bind("127.0.0.1", 0, &web, &archive).unwrap();
    let port = server.local_addr().port();
    assert_eq!(
        server.url(),
        format!("http://127.0.0.1:{port}/#src=archive/my%2520volume.strata")
    );

    // What the page does with it: URLSearchParams decodes the value once,
    // giving the archive's URL path, which the server decodes to the name.
    let dir = tempfile::tempdir().unwrap();
    let odd = dir.path().join("a b+c#d%e?f&g=h~é.strata");
    std::fs::write(&odd, b"odd").unwrap();
    let server = ViewServer::bind("127.0.0.1", 0, &web, &odd).unwrap();
    let addr = server.local_addr();
    let url = server.url();
    let value = url.split_once("#src=").unwrap().1;
    assert!(!value.contains(['&', '#', '+', '?', ' ']), "{value}");
    let src = http::percent_decode(value);
    assert_eq!(src, server.archive_path());
    std::thread::spawn(move || server.run(std::future::pending()).unwrap());
    let r = get(addr, &format!("/{src}"), &[]);
    assert_eq!((r.status, r.body.as_slice()), (200, &b"odd"[..]));
}

#[test]
fn stops_when_told_even_with_a_stuck_client() {
    let dir = tempfile::tempdir().unwrap();
    let (web, archive) = fixture(dir.path());
    let server = ViewServer::bind("127.0.0.1", 0, &web, &archive).unwrap();
    let addr = server.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let result = server.run(async {
            let _ = stopped.await;
        });
        done.send(result.is_ok()).unwrap();
    });
    assert_eq!(get(addr, "/", &[]).status, 200);

    // A client that sent half a request and went quiet.
    let mut stuck = std::net::TcpStream::connect(addr).unwrap();
    std::io::Write::write_all(&mut stuck, b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(100));

    let t = std::time::Instant::now();
    stop.send(()).unwrap();
    let ok = finished
        .recv_timeout(strata_server::DRAIN + std::time::Duration::from_secs(10))
        .expect("the server did not stop");
    assert!(ok);
    assert!(t.elapsed() < strata_server::DRAIN + std::time::Duration::from_secs(5));
    // And the port is closed.
    assert!(std::net::TcpStream::connect(addr).is_err());
    drop(stuck);
}
