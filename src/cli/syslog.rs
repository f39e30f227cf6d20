//! Where a background mount's log goes when no `--log-file` is given: syslog, as one
//! datagram per record on `/dev/log` (`<priority>s3rolefs[pid]: message`, facility daemon),
//! which journald reads too. A mount started by mount(8) or fstab has no terminal: without
//! this its warnings (a failed upload and where its data is kept) would go nowhere.

use std::io::{self, Write};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

/// The local syslog socket.
pub const DEV_LOG: &str = "/dev/log";

/// Facility `daemon` (3), as syslog(3) numbers it.
const FACILITY_DAEMON: u8 = 3;

/// A log sink writing each record as one syslog datagram.
pub struct Syslog {
    path: PathBuf,
    socket: UnixDatagram,
}

impl Syslog {
    /// Connects to the syslog socket at `path`; an error where there is none (a container).
    pub fn connect(path: &Path) -> io::Result<Syslog> {
        let socket = UnixDatagram::unbound()?;
        socket.connect(path)?;
        Ok(Syslog {
            path: path.to_path_buf(),
            socket,
        })
    }
}

impl Write for Syslog {
    /// `buf` is one formatted record (env_logger writes each record whole).
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let record = buf.strip_suffix(b"\n").unwrap_or(buf);
        if self.socket.send(record).is_err() {
            // journald or syslogd restarted: its socket is a new one.
            *self = Syslog::connect(&self.path)?;
            self.socket.send(record)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The `<priority>` of a record of `level`: facility daemon, the matching severity.
pub fn priority(level: log::Level) -> u8 {
    let severity = match level {
        log::Level::Error => 3,
        log::Level::Warn => 4,
        log::Level::Info => 6,
        log::Level::Debug | log::Level::Trace => 7,
    };
    FACILITY_DAEMON * 8 + severity
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_record_is_one_datagram() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let server = UnixDatagram::bind(&path).unwrap();
        let mut sink = Syslog::connect(&path).unwrap();
        let record = format!(
            "<{}>s3rolefs[42]: upload failed\n",
            priority(log::Level::Warn)
        );
        sink.write_all(record.as_bytes()).unwrap();
        let mut buf = [0u8; 128];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"<28>s3rolefs[42]: upload failed");
        assert!(Syslog::connect(&dir.path().join("absent")).is_err());
    }

    #[test]
    fn priorities_are_facility_daemon() {
        assert_eq!(priority(log::Level::Error), 27);
        assert_eq!(priority(log::Level::Info), 30);
        assert_eq!(priority(log::Level::Trace), 31);
    }
}
