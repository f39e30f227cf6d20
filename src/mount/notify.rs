//! systemd's readiness protocol without libsystemd: when `NOTIFY_SOCKET` is set (a unit of
//! `Type=notify`), the mount tells systemd `READY=1` once the filesystem is usable and
//! `STOPPING=1` when it begins to unmount, as datagrams on that socket (a path, or an
//! abstract name written `@name`). Without the variable nothing happens.

use std::os::unix::net::UnixDatagram;

/// The variable systemd sets for `Type=notify` services.
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// Sends `state` (newline-separated `KEY=value` lines) to systemd, if it listens. Failing to
/// notify is logged, never fatal: the mount itself works either way.
pub fn notify(state: &str) {
    let Some(socket) = std::env::var_os(NOTIFY_SOCKET) else {
        return;
    };
    if let Err(e) = send(&socket.to_string_lossy(), state) {
        log::warn!("cannot notify systemd at {}: {e}", socket.to_string_lossy());
    }
}

fn send(socket: &str, state: &str) -> std::io::Result<()> {
    let datagram = UnixDatagram::unbound()?;
    match socket.strip_prefix('@') {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            let address = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
            datagram.send_to_addr(state.as_bytes(), &address)?;
        }
        None => {
            datagram.send_to(state.as_bytes(), socket)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_to_a_path_and_to_an_abstract_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let listener = UnixDatagram::bind(&path).unwrap();
        send(path.to_str().unwrap(), "READY=1\nSTATUS=mounted").unwrap();
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=mounted");

        use std::os::linux::net::SocketAddrExt;
        let name = format!("s3rolefs-test-{}", std::process::id());
        let address = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let listener = UnixDatagram::bind_addr(&address).unwrap();
        send(&format!("@{name}"), "STOPPING=1").unwrap();
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1");
    }
}
