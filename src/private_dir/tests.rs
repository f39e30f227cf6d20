//! The rules of a private directory, one test each.

use super::*;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

/// A directory of another user, as root: a fresh one given to uid 65534.
fn foreign_dir(parent: &Path) -> Option<PathBuf> {
    if euid() != 0 {
        return None;
    }
    let dir = parent.join("foreign");
    std::fs::create_dir(&dir).unwrap();
    std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
    Some(dir)
}

/// A missing directory is created 0700, its missing parents with it.
#[test]
fn creates_the_directory_0700() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("a/b/s3rolefs");
    let dir = PrivateDir::create(&path).unwrap();
    assert_eq!(dir.path(), path);
    assert_eq!(mode(&path), 0o700);
    assert_eq!(mode(&tmp.path().join("a")), 0o700);
    assert_eq!(std::fs::metadata(&path).unwrap().uid(), euid());
}

/// An existing directory of ours with looser bits is brought to 0700.
#[test]
fn tightens_an_existing_own_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("s3rolefs");
    std::fs::create_dir(&path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    PrivateDir::create(&path).unwrap();
    assert_eq!(mode(&path), 0o700);
}

/// A symlink planted at the name is refused, and its target keeps its mode.
#[test]
fn refuses_a_planted_symlink() {
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("etc");
    std::fs::create_dir(&target).unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755)).unwrap();
    let link = tmp.path().join("s3rolefs");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let err = PrivateDir::create(&link).unwrap_err();
    assert!(matches!(err, PrivateDirError::Symlink { .. }), "{err}");
    assert!(err.to_string().contains("rm "), "{err}");
    assert_eq!(mode(&target), 0o755);
    let file = tmp.path().join("file");
    std::fs::write(&file, b"").unwrap();
    let err = PrivateDir::create(&file).unwrap_err();
    assert!(
        matches!(err, PrivateDirError::NotADirectory { .. }),
        "{err}"
    );
}

/// A directory owned by another uid is refused and left as it is.
#[test]
fn refuses_a_directory_of_another_user() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(path) = foreign_dir(tmp.path()) else {
        return;
    };
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    let err = PrivateDir::create(&path).unwrap_err();
    assert!(
        matches!(err, PrivateDirError::NotOwned { owner: 65534, .. }),
        "{err}"
    );
    assert_eq!(mode(&path), 0o755);
    let parent = PrivateDir::create(tmp.path()).unwrap();
    let err = parent.subdir("foreign").unwrap_err();
    assert!(matches!(err, PrivateDirError::NotOwned { .. }), "{err}");
}

/// A new file is 0600; an existing name, or a symlink planted at it, is refused.
#[test]
fn create_new_refuses_existing_names_and_symlinks() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = PrivateDir::create(&tmp.path().join("d")).unwrap();
    let mut file = dir.create_new("block").unwrap();
    file.write_all(b"data").unwrap();
    assert_eq!(mode(&dir.path().join("block")), 0o600);
    let again = dir.create_new("block").unwrap_err();
    assert_eq!(again.kind(), io::ErrorKind::AlreadyExists);
    let victim = tmp.path().join("victim");
    std::fs::write(&victim, b"keep").unwrap();
    std::os::unix::fs::symlink(&victim, dir.path().join("planted")).unwrap();
    let err = dir.create_new("planted").unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
    assert!(dir.open("planted", libc::O_RDONLY).is_err());
    assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
}

/// Names with a `/`, `.` and `..` are refused by every operation.
#[test]
fn names_must_be_single_components() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = PrivateDir::create(&tmp.path().join("d")).unwrap();
    for bad in ["a/b", "../x", ".", "..", "", "/etc/passwd"] {
        let err = dir.create_new(bad).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{bad:?}");
        assert!(dir.open(bad, libc::O_RDONLY).is_err(), "{bad:?}");
        assert!(dir.remove(bad).is_err(), "{bad:?}");
        assert!(dir.rename("x", bad).is_err(), "{bad:?}");
        let err = dir.subdir(bad).unwrap_err();
        assert!(
            matches!(err, PrivateDirError::BadName { .. }),
            "{bad:?}: {err}"
        );
    }
}

/// Write, rename over, list, remove: the operations a cache makes, all relative.
#[test]
fn files_are_renamed_listed_and_removed_in_place() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = PrivateDir::create(&tmp.path().join("d")).unwrap();
    dir.create_new("x.tmp").unwrap().write_all(b"new").unwrap();
    dir.create_new("x").unwrap().write_all(b"old").unwrap();
    dir.rename("x.tmp", "x").unwrap();
    dir.sync().unwrap();
    let mut text = String::new();
    dir.open("x", libc::O_RDONLY)
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    assert_eq!(text, "new");
    let sub = dir.subdir("blocks").unwrap();
    assert_eq!(mode(sub.path()), 0o700);
    let mut names = dir.list().unwrap();
    names.sort();
    assert_eq!(names, ["blocks", "x"]);
    dir.remove("x").unwrap();
    assert_eq!(dir.list().unwrap(), ["blocks"]);
}
