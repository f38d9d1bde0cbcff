//! A real SMTP server for a test: Python's aiosmtpd (from PyPI, in the repository's
//! `.stack/venv`, installed by `scripts/lib/python-env` when missing) on a free
//! 127.0.0.1 port, storing every message in a Maildir the test reads.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};

/// One received message: its headers (name lower-cased) and body.
#[derive(Debug, Clone)]
pub struct Mail {
    /// Header (lower-case name, value), in order.
    pub headers: Vec<(String, String)>,
    /// The body text.
    pub body: String,
}

impl Mail {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
    }
}

/// The running server; stopped when dropped.
#[derive(Debug)]
pub struct SmtpServer {
    /// `smtp://127.0.0.1:<port>`.
    pub url: String,
    child: Child,
    dir: tempfile::TempDir,
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The Python with aiosmtpd: `LTF_PYTHON`, or the repository's venv (created when
/// missing).
fn python() -> Result<PathBuf> {
    if let Ok(p) = std::env::var("LTF_PYTHON") {
        return Ok(p.into());
    }
    let root = repo_root();
    let python = root.join(".stack/venv/bin/python");
    let ok =
        |p: &PathBuf| Command::new(p).args(["-c", "import aiosmtpd"]).stderr(Stdio::null()).status().is_ok_and(|s| s.success());
    if !ok(&python) {
        let status =
            Command::new("bash").arg(root.join("scripts/lib/python-env")).status().context("running scripts/lib/python-env")?;
        ensure!(status.success(), "scripts/lib/python-env failed");
    }
    ensure!(ok(&python), "{} cannot import aiosmtpd", python.display());
    Ok(python)
}

impl SmtpServer {
    /// Starts aiosmtpd with a Maildir handler and waits until it accepts connections.
    pub fn start() -> Result<SmtpServer> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let dir = tempfile::tempdir()?;
        let maildir = dir.path().join("mail");
        let child = Command::new(python()?)
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}"), "-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting aiosmtpd")?;
        let server = SmtpServer { url: format!("smtp://127.0.0.1:{port}"), child, dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                bail!("aiosmtpd did not listen on {port}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(server)
    }

    /// Every message received so far.
    pub fn messages(&self) -> Result<Vec<Mail>> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            let Ok(entries) = std::fs::read_dir(self.dir.path().join("mail").join(sub)) else { continue };
            for e in entries {
                out.push(parse(&std::fs::read_to_string(e?.path())?));
            }
        }
        Ok(out)
    }
}

fn parse(text: &str) -> Mail {
    let text = text.replace("\r\n", "\n");
    let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = headers.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
        } else if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    Mail { headers, body: body.to_owned() }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
