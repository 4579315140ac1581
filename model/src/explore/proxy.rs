//! The Explorer's front door: stateright serves its UI on a private port and
//! this proxy serves it on `--addr`, adding one script to the page
//! (raft-explorer.js) that says when a link was made for other bounds or
//! names a path that does not exist here. stateright 0.31's UI cannot be
//! extended otherwise.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;

const SCRIPT: &str = include_str!("raft-explorer.js");
/// Largest request body forwarded (the UI sends none above a few bytes).
const MAX_BODY: usize = 1 << 20;

/// What the page is told about this Explorer.
pub struct Identity {
    /// `svg::header::bounds_tag` of the served bounds.
    pub tag: String,
    pub bounds: String,
    pub command: String,
    /// A new body for stateright's answer to a `/.states` request (target,
    /// body), or None to pass it on unchanged.
    pub rewrite_states: Rewrite,
}

pub type Rewrite = Box<dyn Fn(&str, &[u8]) -> Option<Vec<u8>> + Send + Sync>;

/// Serves `listener` forever, forwarding to the Explorer at `backend`.
pub fn run(listener: TcpListener, backend: String, id: Identity) {
    let id = std::sync::Arc::new(id);
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        let (backend, id) = (backend.clone(), id.clone());
        thread::spawn(move || {
            // A client that goes away mid-request is not an error of ours.
            let _ = handle(conn, &backend, &id);
        });
    }
}

/// One request per connection (`Connection: close`): the UI's requests
/// are small and few.
fn handle(mut conn: TcpStream, backend: &str, id: &Identity) -> io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header == "\r\n" || header == "\n" {
            break;
        }
        let lower = header.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    // The UI's requests have small bodies; a larger claim is not from it.
    if length > MAX_BODY {
        return conn.write_all(
            b"HTTP/1.1 413 Payload Too Large\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
        );
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or("GET"), parts.next().unwrap_or("/"));
    if method == "GET" && target == "/raft-explorer.js" {
        return respond(&mut conn, "application/javascript", SCRIPT.as_bytes());
    }
    let mut up = TcpStream::connect(backend)?;
    write!(
        up,
        "{method} {target} HTTP/1.1\r\nHost: {backend}\r\nConnection: close\r\n\
         Content-Length: {length}\r\n\r\n"
    )?;
    up.write_all(&body)?;
    let mut response = Vec::new();
    up.read_to_end(&mut response)?;
    if method == "GET" && target == "/" {
        if let Some(page) = page_with_script(&response, id) {
            return respond(&mut conn, "text/html; charset=utf-8", page.as_bytes());
        }
    }
    if method == "GET" && target.starts_with("/.states") {
        if let Some(json) = ok_body(&response).and_then(|b| (id.rewrite_states)(target, b)) {
            return respond(&mut conn, "application/json", &json);
        }
    }
    conn.write_all(&response)
}

/// Whether `backend` is this program's stateright Explorer.
pub fn answers_as_explorer(backend: &str) -> bool {
    let Ok(mut up) = TcpStream::connect(backend) else {
        return false;
    };
    let asked = write!(
        up,
        "GET /.status HTTP/1.1\r\nHost: {backend}\r\nConnection: close\r\n\r\n"
    );
    let mut answer = String::new();
    asked.is_ok()
        && up.read_to_string(&mut answer).is_ok()
        && answer.starts_with("HTTP/1.1 200")
        && answer.contains("RaftExplorer")
}

fn respond(conn: &mut TcpStream, content_type: &str, body: &[u8]) -> io::Result<()> {
    write!(
        conn,
        "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    )?;
    conn.write_all(body)
}

/// The body of a complete `200 OK` answer (not chunked).
fn ok_body(response: &[u8]) -> Option<&[u8]> {
    let end = response.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&response[..end]).ok()?;
    let plain = head.starts_with("HTTP/1.1 200") && !head.to_ascii_lowercase().contains("chunked");
    plain.then_some(&response[end + 4..])
}

/// stateright's index page with this Explorer's identity and the script,
/// placed before app.js so that they see its first navigation.
fn page_with_script(response: &[u8], id: &Identity) -> Option<String> {
    let body = std::str::from_utf8(ok_body(response)?).ok()?;
    let anchor = "<script src=\"app.js\"></script>";
    if !body.contains(anchor) {
        return None;
    }
    let identity = serde_json::json!({
        "tag": id.tag,
        "bounds": id.bounds,
        "command": id.command,
    });
    // `</` cannot end the inline script early: JSON escapes nothing else here.
    let identity = identity.to_string().replace("</", "<\\/");
    Some(body.replacen(
        anchor,
        &format!(
            "<script>window.RAFT_EXPLORER = {identity};</script>\
             <script src=\"/raft-explorer.js\"></script>{anchor}"
        ),
        1,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_gets_the_identity_before_app_js() {
        let id = Identity {
            tag: "servers3.x".into(),
            bounds: "3 servers".into(),
            command: "raft-model explore </script>".into(),
            rewrite_states: Box::new(|_, _| None),
        };
        let page = "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n<body><script src=\"app.js\"></script></body>";
        let out = page_with_script(page.as_bytes(), &id).unwrap();
        let ident = out.find("RAFT_EXPLORER").unwrap();
        let script = out.find("/raft-explorer.js").unwrap();
        let app = out.find("src=\"app.js\"").unwrap();
        assert!(ident < script && script < app, "{out}");
        assert!(out.contains("\"tag\":\"servers3.x\""), "{out}");
        assert!(!out.contains("explore </script>"), "{out}");
        assert!(page_with_script(b"HTTP/1.1 404 Not Found\r\n\r\n", &id).is_none());
    }

    #[test]
    fn a_request_claiming_a_huge_body_is_refused_without_reading_it() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let id = Identity {
            tag: String::new(),
            bounds: String::new(),
            command: String::new(),
            rewrite_states: Box::new(|_, _| None),
        };
        // No backend is needed: the proxy answers before forwarding.
        thread::spawn(move || run(listener, "127.0.0.1:1".into(), id));
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(b"POST /x HTTP/1.1\r\nContent-Length: 999999999999\r\n\r\n")
            .unwrap();
        let mut answer = String::new();
        c.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    }
}
