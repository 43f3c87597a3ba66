//! A fake HTTP server on 127.0.0.1 for the providers' copy tests: it records the requests and
//! answers them as a test says.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

/// One request as the fake received it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    /// Header names lower-cased.
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

/// How the fake answers its `n`th request (from 0): a status, headers and a body.
pub type Answer = Box<dyn Fn(&Seen, usize) -> (u16, Vec<(String, String)>, String) + Send + Sync>;

/// A fake HTTP server on 127.0.0.1: it records each request and answers it with
/// `answer(request, n)`, one request a connection.
pub struct FakeHttp {
    pub address: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl FakeHttp {
    pub fn start(answer: Answer) -> FakeHttp {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                if reader.read_line(&mut line).is_err() || line.is_empty() {
                    continue;
                }
                let mut words = line.split_whitespace();
                let (method, target) = (words.next().unwrap().to_string(), words.next().unwrap().to_string());
                let mut headers = BTreeMap::new();
                loop {
                    let mut header = String::new();
                    reader.read_line(&mut header).unwrap();
                    let header = header.trim_end();
                    if header.is_empty() {
                        break;
                    }
                    let (name, value) = header.split_once(':').unwrap();
                    headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
                }
                let length: usize = headers.get("content-length").map_or(0, |l| l.parse().unwrap());
                let mut body = vec![0u8; length];
                reader.read_exact(&mut body).unwrap();
                let request = Seen { method, target, headers, body: String::from_utf8(body).unwrap() };
                let n = {
                    let mut log = log.lock().unwrap();
                    log.push(request.clone());
                    log.len() - 1
                };
                let (status, headers, body) = answer(&request, n);
                let headers: String = headers.iter().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        FakeHttp { address, seen }
    }

    /// The requests so far, in the order they came.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}
