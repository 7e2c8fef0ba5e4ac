//! An HTTP `CONNECT` proxy on loopback that gives a client the names a
//! deployment has (`gw.test`, `api.gw.test`, port 443) without DNS, root or a
//! port-443 listener: those targets are tunnelled to the gateway's TLS
//! listener, every other one is refused with 403, so nothing leaves loopback
//! and the test sees what else the client tried to reach.

use anyhow::Result;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// Longest request head read before the proxy gives up on a client.
const MAX_HEAD: usize = 8 * 1024;

/// One request a client sent the proxy: its target (`host:port` for a
/// `CONNECT`, the URL for anything else) and whether it was tunnelled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tunnel {
    pub target: String,
    pub tunnelled: bool,
}

pub struct ConnectProxy {
    /// `http://127.0.0.1:PORT`, what the client's proxy setting names.
    pub url: String,
    seen: Arc<Mutex<Vec<Tunnel>>>,
    task: JoinHandle<()>,
}

impl Drop for ConnectProxy {
    fn drop(&mut self) {
        // The accept loop owns every tunnel: they end with it.
        self.task.abort();
    }
}

impl ConnectProxy {
    /// Tunnels each `host:port` in `routes` to its address; refuses the rest.
    pub async fn start(routes: &[(&str, SocketAddr)]) -> Result<ConnectProxy> {
        let routes: Arc<HashMap<String, SocketAddr>> = Arc::new(
            routes
                .iter()
                .map(|(target, to)| (target.to_ascii_lowercase(), *to))
                .collect(),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let task = tokio::spawn(async move {
            let mut tunnels = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((client, _)) = accepted else { continue };
                        tunnels.spawn(serve(client, routes.clone(), log.clone()));
                    }
                    // Finished tunnels are reaped as they end.
                    Some(_) = tunnels.join_next(), if !tunnels.is_empty() => {}
                }
            }
        });
        Ok(ConnectProxy { url, seen, task })
    }

    /// Every `CONNECT` so far, in order.
    pub fn tunnels(&self) -> Vec<Tunnel> {
        self.seen.lock().expect("proxy log").clone()
    }
}

/// A request head's target, and whether it is a `CONNECT` (only those are
/// ever tunnelled).
fn request_target(head: &str) -> Option<(String, bool)> {
    let line = head.lines().next()?;
    let mut parts = line.split(' ');
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    if !version.starts_with("HTTP/1.") || parts.next().is_some() {
        return None;
    }
    Some((target.to_ascii_lowercase(), method == "CONNECT"))
}

async fn serve(
    mut client: TcpStream,
    routes: Arc<HashMap<String, SocketAddr>>,
    seen: Arc<Mutex<Vec<Tunnel>>>,
) {
    let mut head = Vec::new();
    let mut chunk = [0u8; 1024];
    let end = loop {
        if let Some(at) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        if head.len() > MAX_HEAD {
            return;
        }
        match client.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&chunk[..n]),
        }
    };
    let target = request_target(&String::from_utf8_lossy(&head[..end]));
    let route = target
        .as_ref()
        .filter(|(_, connect)| *connect)
        .and_then(|(t, _)| routes.get(t).copied());
    if let Some((target, _)) = &target {
        seen.lock().expect("proxy log").push(Tunnel {
            target: target.clone(),
            tunnelled: route.is_some(),
        });
    }
    let upstream = match route {
        Some(to) => TcpStream::connect(to).await.ok(),
        None => None,
    };
    let Some(mut upstream) = upstream else {
        let _ = client
            .write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .await;
        return;
    };
    let _ = upstream.set_nodelay(true);
    let _ = client.set_nodelay(true);
    if client
        .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        .await
        .is_err()
    {
        return;
    }
    // Bytes the client sent after its request head belong to the tunnel.
    if upstream.write_all(&head[end..]).await.is_err() {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sends `request_line` and reads the proxy's answer head.
    async fn ask(proxy: &ConnectProxy, request_line: &str) -> (TcpStream, String) {
        let mut s = TcpStream::connect(proxy.url.trim_start_matches("http://"))
            .await
            .expect("proxy reachable");
        s.write_all(format!("{request_line}\r\nHost: gw.test\r\n\r\n").as_bytes())
            .await
            .expect("write");
        let mut answer = Vec::new();
        let mut byte = [0u8; 1];
        while !answer.ends_with(b"\r\n\r\n") {
            if s.read(&mut byte).await.expect("read") == 0 {
                break;
            }
            answer.push(byte[0]);
        }
        (s, String::from_utf8_lossy(&answer).into_owned())
    }

    async fn connect(proxy: &ConnectProxy, target: &str) -> (TcpStream, String) {
        ask(proxy, &format!("CONNECT {target} HTTP/1.1")).await
    }

    #[tokio::test]
    async fn tunnels_the_named_targets_and_refuses_the_rest() {
        let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let echo_addr = echo.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = echo.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        let proxy = ConnectProxy::start(&[("gw.test:443", echo_addr)])
            .await
            .unwrap();

        let (mut tunnel, answer) = connect(&proxy, "GW.test:443").await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        tunnel.write_all(b"through").await.unwrap();
        let mut back = [0u8; 7];
        tunnel.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"through");

        let (_, refused) = connect(&proxy, "api.github.com:443").await;
        assert!(refused.starts_with("HTTP/1.1 403"), "{refused}");
        // The same name on another port is another target.
        let (_, other_port) = connect(&proxy, "gw.test:8443").await;
        assert!(other_port.starts_with("HTTP/1.1 403"), "{other_port}");
        // Plain HTTP is never forwarded, even to a tunnelled name.
        let (_, plain) = ask(&proxy, "GET http://gw.test:443/ HTTP/1.1").await;
        assert!(plain.starts_with("HTTP/1.1 403"), "{plain}");
        assert_eq!(
            proxy.tunnels(),
            vec![
                Tunnel {
                    target: "gw.test:443".into(),
                    tunnelled: true
                },
                Tunnel {
                    target: "api.github.com:443".into(),
                    tunnelled: false
                },
                Tunnel {
                    target: "gw.test:8443".into(),
                    tunnelled: false
                },
                Tunnel {
                    target: "http://gw.test:443/".into(),
                    tunnelled: false
                },
            ]
        );
    }

    #[test]
    fn request_heads_name_their_target() {
        assert_eq!(
            request_target("CONNECT A:443 HTTP/1.1\r\n\r\n"),
            Some(("a:443".into(), true))
        );
        assert_eq!(
            request_target("GET http://gw.test:443/ HTTP/1.1\r\n\r\n"),
            Some(("http://gw.test:443/".into(), false))
        );
        assert_eq!(request_target("CONNECT a:443\r\n\r\n"), None);
    }
}
