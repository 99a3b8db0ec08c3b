//! `sluice serve` as a child process on a loopback port, and raw HTTP/1.1 requests to it, so
//! tests control every header a browser or an attacker would send. The command itself comes
//! from the caller: only the `sluice` package's own tests know where its binary is.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

/// A running `sluice serve`; killed when dropped.
pub struct Served {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its data directory.
    pub dir: PathBuf,
    /// The console's sign-in link it printed, if it did.
    pub sign_in_link: Option<String>,
}

impl Served {
    /// Spawns `cmd` (a `sluice serve --listen 127.0.0.1:0` whose data directory is `dir`) and
    /// waits until it says where it listens.
    pub fn spawn(mut cmd: Command, dir: &Path) -> Self {
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("sluice serve starts");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        // Keeps draining stderr so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sent = false;
            // `serve` prints the sign-in link before the line that says where it listens.
            let mut link = None;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if !sent {
                    if let Some(rest) = line.strip_prefix("console: ") {
                        link = rest.split_whitespace().next().map(String::from);
                        continue;
                    }
                    if let Some(rest) = line.strip_prefix("sluice serving on http://") {
                        let addr = rest.split_whitespace().next().unwrap_or("").to_string();
                        let _ = tx.send(Ok((addr, link.take())));
                        sent = true;
                        continue;
                    }
                    if line.starts_with("error") {
                        let _ = tx.send(Err(line.clone()));
                        sent = true;
                    }
                }
            }
            if !sent {
                let _ = tx.send(Err("serve exited without listening".into()));
            }
        });
        let (addr, sign_in_link) = match rx.recv_timeout(Duration::from_secs(300)) {
            Ok(Ok((addr, link))) => (addr.parse().expect("a socket address"), link),
            Ok(Err(line)) => {
                let _ = child.kill();
                panic!("sluice serve failed: {line}")
            }
            Err(_) => {
                let _ = child.kill();
                panic!("sluice serve did not start")
            }
        };
        Self {
            child,
            addr,
            dir: dir.to_path_buf(),
            sign_in_link,
        }
    }

    /// Its process id, for signals (`kill -STOP`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends it the signal `name` (`TERM`, `KILL`, `STOP`, `CONT`).
    pub fn signal(&self, name: &str) {
        let sent = Command::new("kill")
            .args([&format!("-{name}"), &self.pid().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "kill -{name} {}", self.pid());
    }

    /// Waits up to `within` for it to exit (after [`Served::signal`]); its exit status, or
    /// `None` when it was still running and was killed.
    pub fn wait(mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = std::time::Instant::now() + within;
        while std::time::Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("the child can be waited for") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// The generated admin token.
    pub fn generated_token(&self) -> String {
        std::fs::read_to_string(self.dir.join("admin.token"))
            .expect("serve wrote admin.token")
            .trim()
            .to_string()
    }

    /// `Host` naming this server the way a browser on loopback does.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.addr.port())
    }

    /// Sends `method path` with `Host: host`, `headers` and `body`; the status and body.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        host: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, String) {
        let mut stream = TcpStream::connect(self.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(300)))
            .unwrap();
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        stream.write_all(head.as_bytes()).unwrap();
        // A refusal may come (and the connection close) before the body is read: then the
        // rest of the body cannot be sent, and the answer is already on its way.
        let _ = stream.write_all(body);
        let mut raw = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
                // A reset after the answer arrived: the unread body made the close abrupt.
                Err(_) if !raw.is_empty() => break,
                Err(e) => panic!("{method} {path}: no answer: {e}"),
            }
        }
        let text = String::from_utf8_lossy(&raw).to_string();
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("not an HTTP response: {text:?}"));
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    }

    /// `GET path` with the admin token, as JSON.
    pub fn get_json(&self, path: &str, token: &str) -> serde_json::Value {
        let auth = format!("Bearer {token}");
        let (status, body) = self.send("GET", path, &self.host(), &[("Authorization", &auth)], b"");
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
