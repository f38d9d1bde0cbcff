//! A TCP proxy in front of a real service that counts the HTTP requests passing through
//! it: tests that a client asks a service once, not once per caller.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A proxy from a local port to `upstream` (host:port), counting the request lines (the
/// start of each HTTP/1 request, `GET /…`, `POST /…`) its clients send. Stops when dropped.
#[derive(Debug)]
pub struct CountingProxy {
    port: u16,
    requests: Arc<AtomicUsize>,
    connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl CountingProxy {
    /// Starts a proxy to `upstream`.
    pub async fn start(upstream: &str) -> Result<CountingProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await.context("binding the proxy")?;
        let port = listener.local_addr()?.port();
        let requests = Arc::new(AtomicUsize::new(0));
        let connections = Arc::new(AtomicUsize::new(0));
        let upstream = upstream.to_owned();
        let (counted, accepted) = (requests.clone(), connections.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                accepted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(relay(client, upstream.clone(), counted.clone()));
            }
        });
        Ok(CountingProxy { port, requests, connections, task })
    }

    /// The proxy's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// HTTP requests seen so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies both ways between `client` and `upstream`, counting the client's request lines.
async fn relay(client: TcpStream, upstream: String, requests: Arc<AtomicUsize>) {
    let Ok(server) = TcpStream::connect(&upstream).await else { return };
    let (mut client_rx, mut client_tx) = client.into_split();
    let (mut server_rx, mut server_tx) = server.into_split();
    let up = async move {
        // What the client sent since the last complete request line: a line may be split
        // over reads.
        let mut pending = Vec::new();
        let mut buf = vec![0u8; 16 * 1024];
        while let Ok(n) = client_rx.read(&mut buf).await {
            if n == 0 || server_tx.write_all(&buf[..n]).await.is_err() {
                break;
            }
            pending.extend_from_slice(&buf[..n]);
            while let Some(end) = pending.windows(2).position(|w| w == b"\r\n") {
                let line = &pending[..end];
                if line.ends_with(b" HTTP/1.1") || line.ends_with(b" HTTP/1.0") {
                    requests.fetch_add(1, Ordering::SeqCst);
                }
                pending.drain(..end + 2);
            }
        }
        let _ = server_tx.shutdown().await;
    };
    let down = async move {
        let _ = tokio::io::copy(&mut server_rx, &mut client_tx).await;
        let _ = client_tx.shutdown().await;
    };
    tokio::join!(up, down);
}
