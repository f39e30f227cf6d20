//! The accept loop: each connection is served by hyper on its own task, with the front
//! service. It is also where "the port refuses connections" happens: while the monitor says
//! so, the listener is closed, and bound again on the same address afterwards.

use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use tokio::sync::oneshot;

use super::front::Front;

/// Serves connections until `shutdown`, closing the port while connections are refused.
pub async fn serve(listener: StdTcpListener, front: Front, mut shutdown: oneshot::Receiver<()>) {
    let monitor = front.monitor.clone();
    let mut refusal = monitor.watch_refusal();
    let mut listener = Some(listener);
    let mut open: Option<tokio::net::TcpListener> = None;
    loop {
        let refused = *refusal.borrow_and_update();
        if let Some(refused) = refused.filter(|r| r.active(Instant::now())) {
            // Dropping the listener closes the port: connecting is refused, as when a server
            // is down.
            (listener, open) = (None, None);
            monitor.set_listening(false);
            let until = async {
                match refused.until {
                    Some(until) => tokio::time::sleep_until(until.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = &mut shutdown => break,
                // An error means the monitor is gone, and the server with it.
                changed = refusal.changed() => if changed.is_err() { break },
                _ = until => {}
            }
            continue;
        }
        let Some(accepting) = &open else {
            match bind(listener.take(), front.addr) {
                Ok(bound) => {
                    open = Some(bound);
                    monitor.set_listening(true);
                }
                Err(e) => {
                    // Another socket took the port while it was closed: try again shortly.
                    log::warn!("s3server: cannot listen again on {}: {e}", front.addr);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            continue;
        };
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            changed = refusal.changed() => {
                if changed.is_err() {
                    break;
                }
                continue;
            }
            accepted = accepting.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                log::warn!("s3server: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let service = front.clone();
        tokio::spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                log::debug!("s3server: connection ended: {e}");
            }
        });
    }
    monitor.set_listening(false);
}

/// The listener bound at start, or a new one on the same address after a refusal.
fn bind(
    listener: Option<StdTcpListener>,
    addr: SocketAddr,
) -> std::io::Result<tokio::net::TcpListener> {
    let listener = match listener {
        Some(listener) => listener,
        None => {
            let listener = StdTcpListener::bind(addr)?;
            listener.set_nonblocking(true)?;
            listener
        }
    };
    tokio::net::TcpListener::from_std(listener)
}
