//! HTTP/1.1 over the server's Unix socket (or any stream): one request a connection,
//! written by hand so that a test controls every byte it sends.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

/// How long a test waits for an answer before it counts as none.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// The bytes of one request with `Connection: close`: the request line, `Host`,
/// `Content-Length`, then `headers`, the bearer `token` if any, and `body`.
pub fn request(
    method: &str,
    path: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// The JSON content type, the header of every request with a JSON body.
pub const JSON: &[(&str, &str)] = &[("Content-Type", "application/json")];

/// Writes `bytes` and reads the answer until the peer closes.
pub fn exchange(stream: &mut (impl Read + Write), bytes: &[u8]) -> std::io::Result<Vec<u8>> {
    stream.write_all(bytes)?;
    let mut out = Vec::new();
    stream.read_to_end(&mut out)?;
    Ok(out)
}

/// One JSON request on `stream` (which the server closes after answering); the
/// status and the body. Panics when no HTTP answer comes.
pub fn fetch_on(
    stream: &mut (impl Read + Write),
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, String) {
    let out =
        exchange(stream, &request(method, path, token, JSON, body.as_bytes())).expect("an answer");
    let r = Response::parse(&out).expect("an HTTP response");
    (r.status, r.body)
}

/// An answer split into its parts.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    /// The status line and the headers, without the blank line.
    pub head: String,
    pub body: String,
}

impl Response {
    /// `None` when `bytes` are not an HTTP answer (no head, no status code).
    pub fn parse(bytes: &[u8]) -> Option<Response> {
        let text = String::from_utf8_lossy(bytes);
        let (head, body) = text.split_once("\r\n\r\n")?;
        let status = head.split(' ').nth(1)?.parse().ok()?;
        Some(Response {
            status,
            head: head.to_owned(),
            body: body.to_owned(),
        })
    }

    /// The body as JSON, `Null` when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// A client of one server's socket; cheap to clone into threads.
#[derive(Clone, Debug)]
pub struct Client {
    socket: PathBuf,
    /// Texts that must never stand in an error body (a number the test sent).
    never_in_errors: Vec<String>,
}

impl Client {
    pub fn new(socket: impl Into<PathBuf>) -> Client {
        Client {
            socket: socket.into(),
            never_in_errors: Vec::new(),
        }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// From now on [`Client::call`] fails the test when an error body holds `text`.
    pub fn forbid_in_errors(&mut self, text: &str) {
        self.never_in_errors.push(text.to_owned());
    }

    /// A fresh connection with the read timeout set.
    pub fn connect(&self) -> std::io::Result<UnixStream> {
        let s = UnixStream::connect(&self.socket)?;
        s.set_read_timeout(Some(READ_TIMEOUT))?;
        Ok(s)
    }

    /// `bytes` on a fresh connection; whatever comes back until the server closes.
    /// The server may answer and close before it has read all of `bytes`: that is
    /// not an error here.
    pub fn raw(&self, bytes: &[u8]) -> Vec<u8> {
        let mut s = self.connect().expect("connect to the server's socket");
        let _ = s.write_all(bytes);
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        out
    }

    /// One JSON request; the status and the whole answer as text (head and body),
    /// status 0 when no HTTP answer came. Never fails on what the server sends.
    pub fn text(&self, method: &str, path: &str, token: Option<&str>, body: &str) -> (u16, String) {
        let out = self.raw(&request(method, path, token, JSON, body.as_bytes()));
        let status = Response::parse(&out).map_or(0, |r| r.status);
        (status, String::from_utf8_lossy(&out).into_owned())
    }

    /// One JSON request; the status and the body, whatever it holds. Panics when no
    /// HTTP answer comes.
    pub fn fetch(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &str,
    ) -> (u16, String) {
        let mut s = self.connect().expect("connect to the server's socket");
        fetch_on(&mut s, method, path, token, body)
    }

    /// One JSON request whose answer must be JSON, as the API promises for every
    /// answer: the status and the body, checked (an error has a code and a message).
    pub fn call(&self, method: &str, path: &str, token: Option<&str>, body: &[u8]) -> (u16, Value) {
        self.call_with(method, path, token, JSON, body)
    }

    /// As [`Client::call`], with the request's own headers (content type among them).
    pub fn call_with(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, Value) {
        let out = self.raw(&request(method, path, token, headers, body));
        std::str::from_utf8(&out).expect("a UTF-8 answer");
        let r = Response::parse(&out).expect("an HTTP response");
        assert!(
            r.head
                .to_ascii_lowercase()
                .contains("content-type: application/json"),
            "{}",
            r.head
        );
        let v: Value =
            serde_json::from_str(&r.body).unwrap_or_else(|_| panic!("not JSON: {}", r.body));
        if r.status >= 400 {
            let code = v["error"]["code"].as_str().expect("an error code");
            assert!(!code.is_empty());
            assert!(v["error"]["message"].as_str().is_some());
            for text in &self.never_in_errors {
                assert!(
                    !r.body.contains(text.as_str()),
                    "a number in an error body: {}",
                    r.body
                );
            }
        }
        (r.status, v)
    }

    /// `POST path` with `body`, as [`Client::call`].
    pub fn post(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        self.call("POST", path, token, body.to_string().as_bytes())
    }

    /// `POST path` with `body`, lenient: the status and the body as JSON (`Null` when
    /// it is not JSON); panics only when no HTTP answer came.
    pub fn post_any(&self, path: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
        let out = self.raw(&request(
            "POST",
            path,
            token,
            JSON,
            body.to_string().as_bytes(),
        ));
        let r = Response::parse(&out).expect("an HTTP response");
        (r.status, r.json())
    }

    /// `POST path` with `body`, as [`Client::try_call`].
    pub fn try_post(
        &self,
        path: &str,
        token: Option<&str>,
        body: &Value,
    ) -> std::io::Result<(u16, Value)> {
        self.try_call("POST", path, token, body.to_string().as_bytes())
    }

    /// One JSON request; `Err` when the server is not there, the connection breaks
    /// or the answer is cut short or not JSON (a killed server: the request is not
    /// acknowledged).
    pub fn try_call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &[u8],
    ) -> std::io::Result<(u16, Value)> {
        let mut s = self.connect()?;
        let out = exchange(&mut s, &request(method, path, token, JSON, body))?;
        let broken =
            || std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "incomplete response");
        std::str::from_utf8(&out).map_err(|_| broken())?;
        let r = Response::parse(&out).ok_or_else(broken)?;
        let v = serde_json::from_str(&r.body).map_err(|_| broken())?;
        Ok((r.status, v))
    }
}
