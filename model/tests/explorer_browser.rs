//! The Explorer in a real browser: headless Chromium opens the counterexample
//! link that `raft-model check` prints, on an Explorer started with the
//! command printed next to it, and the page names the violated property
//! without a script error; the same link on an Explorer with other bounds
//! says that it was made for other bounds, and a path that exists nowhere
//! says so.
//!
//! Needs Chromium (`apt-get install -y chromium`); RAFT_SKIP_BROWSER=1 skips
//! the test instead. RAFT_UPDATE_SCREENSHOT=1 copies the screenshot to
//! docs/explorer.png.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_raft-model");

fn chromium() -> Option<PathBuf> {
    let names = ["chromium", "chromium-browser", "google-chrome"];
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

fn free_addr() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

fn http_get(addr: &str, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(addr).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.starts_with("HTTP/1.1 200").then_some(out)
}

/// An Explorer started with `command` (as printed, `raft-model` first).
struct Explorer(Child);

impl Explorer {
    fn start(command: &str, addr: &str) -> Explorer {
        let args: Vec<&str> = command.split_whitespace().skip(1).collect();
        assert_eq!(command.split_whitespace().next(), Some("raft-model"));
        let child = Command::new(BIN)
            .args(&args)
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let explorer = Explorer(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while http_get(addr, "/.status").is_none() {
            assert!(
                Instant::now() < deadline,
                "Explorer did not start: {command}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        explorer
    }
}

impl Drop for Explorer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs Chromium headless on `url` with `args`; a hang is killed.
fn browse(chromium: &Path, profile: &Path, args: &[&str], url: &str) -> Output {
    let child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--virtual-time-budget=8000",
            "--window-size=1400,1000",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = child;
    // Pipes are drained while waiting: a DOM dump outgrows a pipe's buffer.
    let drain = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            buf
        })
    };
    let stdout = drain(child.stdout.take().map(|r| Box::new(r) as _));
    let stderr = drain(child.stderr.take().map(|r| Box::new(r) as _));
    // Only a guard against a hung browser, not a speed assertion.
    let deadline = Instant::now() + Duration::from_secs(180);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("chromium did not finish on {url}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

/// Console lines that are script or loading errors.
fn script_errors(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.contains("CONSOLE") || l.contains("Uncaught"))
        .filter(|l| {
            l.contains("Uncaught")
                || l.contains("Failed to load resource")
                || l.contains("Failed. Removing")
        })
        .collect()
}

#[test]
fn a_counterexample_link_names_its_violation_in_chromium() {
    let Some(chromium) = chromium() else {
        if std::env::var("RAFT_SKIP_BROWSER").as_deref() == Ok("1") {
            eprintln!("SKIPPED: Chromium not found and RAFT_SKIP_BROWSER=1");
            return;
        }
        panic!(
            "Chromium is needed for this test: install it with `apt-get install -y chromium` \
             (Debian/Ubuntu), or set RAFT_SKIP_BROWSER=1 to skip it"
        );
    };
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let out = Command::new(BIN)
        .args(["check", "--bug", "vote-twice", "--json", "--addr", &addr])
        .arg("--trace-dir")
        .arg(dir.path().join("traces"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "the seeded bug is found");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let p = report["properties"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "VoteOncePerTerm")
        .unwrap();
    let link = p["explorer"].as_str().unwrap();
    let command = p["explorer_command"].as_str().unwrap();
    assert!(command.ends_with(&format!("--addr {addr}")), "{command}");

    let explorer = Explorer::start(command, &addr);
    // The last step's answer marks the violation where it happens, so the
    // UI's per-state property list does not say "Safety holds" there.
    let path = link
        .split("#/steps/")
        .nth(1)
        .unwrap()
        .split('?')
        .next()
        .unwrap();
    let prefix = path.rsplit_once('/').unwrap().0;
    let states = http_get(&addr, &format!("/.states/{prefix}")).unwrap();
    assert!(
        states.contains(&format!("[\"Always\",\"VoteOncePerTerm\",\"{path}\"]")),
        "{states}"
    );
    let profile = dir.path().join("profile");
    let dom = browse(&chromium, &profile, &["--dump-dom"], link);
    let page = String::from_utf8_lossy(&dom.stdout);
    let log = String::from_utf8_lossy(&dom.stderr);
    assert!(dom.status.success(), "chromium failed: {log}");
    let meaning = raft_model::properties::meaning("VoteOncePerTerm");
    for needle in [
        "✗ VoteOncePerTerm violated at step".to_string(),
        meaning.to_string(),
        command.to_string(),
        "s1 T1 candidate".to_string(),
    ] {
        assert!(page.contains(&needle), "page lacks {needle:?}: {page}");
    }
    assert!(
        !page.contains("role=\"alert\""),
        "a warning on a good link: {page}"
    );
    assert_eq!(script_errors(&log), Vec::<&str>::new(), "{log}");

    let shot = dir.path().join("explorer.png");
    let arg = format!("--screenshot={}", shot.display());
    let out = browse(&chromium, &profile, &[&arg], link);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "a real image"
    );
    if std::env::var("RAFT_UPDATE_SCREENSHOT").as_deref() == Ok("1") {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/explorer.png");
        std::fs::write(docs, &png).unwrap();
    }
    drop(explorer);

    // The same link on an Explorer with other bounds is refused, not shown.
    let other = format!("raft-model explore --bug vote-twice --max-term 3 --addr {addr}");
    let _explorer = Explorer::start(&other, &addr);
    let dom = browse(&chromium, &profile, &["--dump-dom"], link);
    let page = String::from_utf8_lossy(&dom.stdout);
    assert!(
        page.contains("This link was made for other bounds"),
        "{page}"
    );
    assert!(page.contains("max term 3"), "{page}");
    // A path that does not exist here is said so, not a blank page.
    let nowhere = format!("http://{addr}/#/steps/0/99/99");
    let dom = browse(&chromium, &profile, &["--dump-dom"], &nowhere);
    let page = String::from_utf8_lossy(&dom.stdout);
    assert!(page.contains("does not exist in this Explorer"), "{page}");
}
