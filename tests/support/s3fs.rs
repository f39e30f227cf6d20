//! s3fs-fuse itself (Debian's `s3fs`), mounted on a [`TestServer`] bucket, so tests can
//! check that what one client writes the other reads the same. Unmounted on drop.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::mount::{mount_type, wait_unmounted};
use super::s3server::TestServer;

/// A running s3fs mount.
pub struct S3fs {
    dir: TempDir,
    mountpoint: PathBuf,
}

impl S3fs {
    /// Mounts `bucket` of `server` with s3fs (path-style, SigV4, xattrs on, no stat
    /// cache: it sees each change at once). Panics with the fix when s3fs is missing:
    /// CI must fail loudly, never skip.
    pub fn mount(server: &TestServer, bucket: &str) -> S3fs {
        let found = Command::new("s3fs").arg("--version").output();
        assert!(
            found.is_ok_and(|o| o.status.success()),
            "s3fs is not installed. Fix: apt-get install -y s3fs (scripts/setup does it)"
        );
        let dir = tempfile::tempdir().expect("a temporary directory");
        let passwd = dir.path().join("passwd");
        std::fs::write(
            &passwd,
            format!("{}:{}\n", server.access_key(), server.secret_key()),
        )
        .expect("the s3fs password file");
        std::fs::set_permissions(&passwd, std::fs::Permissions::from_mode(0o600))
            .expect("mode 0600 on the password file");
        let mountpoint = dir.path().join("mnt");
        std::fs::create_dir(&mountpoint).expect("the s3fs mount point");
        let options = [
            format!("url={}", server.endpoint()),
            "use_path_request_style".into(),
            format!("passwd_file={}", passwd.display()),
            format!("endpoint={}", server.region()),
            "sigv4".into(),
            "use_xattr".into(),
            "max_stat_cache_size=0".into(),
            "enable_noobj_cache".into(),
            "dbglevel=warn".into(),
        ]
        .join(",");
        let out = Command::new("s3fs")
            .arg(bucket)
            .arg(&mountpoint)
            .args(["-o", &options])
            .output()
            .expect("s3fs runs");
        assert!(
            out.status.success(),
            "s3fs failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while mount_type(&mountpoint).as_deref() != Some("fuse.s3fs") {
            assert!(Instant::now() < deadline, "s3fs did not mount within 20 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        S3fs { dir, mountpoint }
    }

    pub fn path(&self) -> &Path {
        &self.mountpoint
    }
}

impl Drop for S3fs {
    fn drop(&mut self) {
        // s3fs uploads what is open at unmount; umount waits for it.
        let _ = Command::new("umount").arg(&self.mountpoint).status();
        if !wait_unmounted(&self.mountpoint) {
            let _ = Command::new("umount")
                .arg("-l")
                .arg(&self.mountpoint)
                .status();
        }
        // Never delete through a mount that is still there.
        if mount_type(&self.mountpoint).is_some() {
            std::mem::forget(std::mem::replace(
                &mut self.dir,
                tempfile::tempdir().expect("a temporary directory"),
            ));
        }
    }
}
