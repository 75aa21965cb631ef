//! A tiny HTTP/1.1 server on loopback (std only) that answers each path
//! prefix with a JSON body set by the test, and records the requests: the
//! shape external APIs are played in by the end-to-end tests.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

/// The server's base URL and its routes.
#[derive(Clone)]
pub struct Loopback {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    routes: Arc<Mutex<BTreeMap<String, (u16, String)>>>,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Loopback {
    /// Bind a port once and serve until the test ends.
    pub fn start() -> Loopback {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let routes: Arc<Mutex<BTreeMap<String, (u16, String)>>> = Default::default();
        let seen: Arc<Mutex<Vec<String>>> = Default::default();
        let (r, s) = (routes.clone(), seen.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).is_err() {
                    continue;
                }
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
                        break;
                    }
                }
                let target = request_line
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or("")
                    .to_string();
                s.lock().unwrap().push(target.clone());
                let path = target.split('?').next().unwrap_or("").to_string();
                // The longest prefix that matches answers.
                let answer = r
                    .lock()
                    .unwrap()
                    .iter()
                    .filter(|(p, _)| path.starts_with(p.as_str()))
                    .max_by_key(|(p, _)| p.len())
                    .map(|(_, a)| a.clone());
                let (status, body) =
                    answer.unwrap_or((404, r#"{"message":"Not Found"}"#.to_string()));
                let head = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(body.as_bytes());
                let mut rest = Vec::new();
                let _ = stream.set_read_timeout(Some(std::time::Duration::from_millis(10)));
                let _ = stream.read_to_end(&mut rest);
            }
        });
        Loopback { base, routes, seen }
    }

    /// Answer paths starting with `prefix` with `status` and `body`.
    pub fn route(&self, prefix: &str, status: u16, body: &str) {
        self.routes
            .lock()
            .unwrap()
            .insert(prefix.to_string(), (status, body.to_string()));
    }

    /// The request targets seen so far (path and query).
    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}
