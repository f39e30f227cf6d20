//! mounts.toml: entries read into flags, errors with file:line and a fix, add/remove keeping
//! the rest of the file as it was.

use super::*;

const FILE: &str = "/home/u/.config/s3rolefs/mounts.toml";

fn parse(text: &str) -> Result<MountsFile, SavedError> {
    MountsFile::parse(
        Path::new(FILE),
        text.to_string(),
        Some(Path::new("/home/u")),
    )
}

fn error(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

/// Every option of `mount` under its own name: values, switches on and off, `-` or `_`.
#[test]
fn entries_become_mount_flags() {
    let file = parse(
        "# mine\n[photos]\nbucket = \"my-bucket:photos/\"\nmountpoint = \"~/Photos\"\n\
         region = \"eu-west-1\"\nwrite_back = true\nread-only = false\ncache_dir_size = \"10G\"\n\
         upload_concurrency = 4\nmetadata_ttl = 2.5\n\n[logs]\nbucket = \"logs\"\nmountpoint = \"/mnt/logs\"\n",
    )
    .unwrap();
    assert_eq!(file.mounts.len(), 2);
    let photos = file.get("photos").unwrap();
    assert_eq!(photos.source, "my-bucket:photos/");
    assert_eq!(photos.mountpoint, Path::new("/home/u/Photos"));
    assert_eq!(photos.line, 2);
    assert_eq!(
        photos.flags(),
        [
            "--region",
            "eu-west-1",
            "--write-back",
            "--cache-dir-size",
            "10G",
            "--upload-concurrency",
            "4",
            "--metadata-ttl",
            "2.5"
        ]
    );
    assert_eq!(file.get("logs").unwrap().line, 12);
    assert!(file.get("logs").unwrap().flags().is_empty());
}

/// A misspelt option names the file, its line, and where the options are listed.
#[test]
fn unknown_option_names_file_line_and_fix() {
    let err = error("[a]\nbucket = \"b\"\nmountpoint = \"/m\"\nregoin = \"x\"\n");
    assert!(
        err.starts_with(&format!("{FILE}:4: unknown option \"regoin\"")),
        "{err}"
    );
    assert!(err.contains("s3rolefs mount --help"), "{err}");
}

/// Wrong value kinds, missing keys, relative mount points, bad names, broken TOML, and
/// options that are not options: each with its line and the fix.
#[test]
fn bad_entries_name_their_line_and_fix() {
    let cases: [(&str, &str); 9] = [
        (
            "[a]\nbucket = \"b\"\nmountpoint = \"/m\"\nwrite_back = \"yes\"\n",
            ":4: write_back is a switch: write write_back = true",
        ),
        (
            "[a]\nbucket = \"b\"\nmountpoint = \"/m\"\nregion = true\n",
            ":4: region takes a value",
        ),
        (
            "[a]\nmountpoint = \"/m\"\n",
            ":1: mount a has no bucket; add a line bucket =",
        ),
        (
            "\n[a]\nbucket = \"b\"\n",
            ":2: mount a has no mountpoint; add a line mountpoint =",
        ),
        (
            "[a]\nbucket = \"b\"\nmountpoint = \"data\"\n",
            ":3: mountpoint \"data\" is relative; write an absolute path",
        ),
        (
            "[\"my mount\"]\nbucket = \"b\"\nmountpoint = \"/m\"\n",
            ":1: invalid name \"my mount\"",
        ),
        (
            "[a]\nbucket = \"b\"\nmountpoint = \"/m\"\nregion = \"x\n",
            ":4: ",
        ),
        (
            "bucket = \"b\"\n",
            ":1: bucket is not a mount; a mount is a table",
        ),
        (
            "[a]\nbucket = \"b\"\nmountpoint = \"/m\"\nforeground = true\n",
            ":4: foreground is not saved",
        ),
    ];
    for (text, wanted) in cases {
        let err = error(text);
        assert!(err.starts_with(FILE), "{err}");
        assert!(err.contains(wanted), "{wanted:?} not in {err:?}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    let err = error("[a]\nbucket = \"b\"\nmountpoint = \"/m\"\nregion = \"x\n");
    assert!(err.contains("fix the TOML"), "{err}");
    let err = error("[a]\nbucket = \"b\"\nmountpoint = \"/m\"\nall = true\n");
    assert!(err.contains(":4: unknown option \"all\""), "{err}");
}

/// `add` appends, `remove` takes one entry (and the comment above it) out: the rest of the
/// file, comments and spacing included, stays byte for byte.
#[test]
fn add_and_remove_keep_the_rest_of_the_file() {
    let original = "# my mounts\n\n# the photos\n[photos]\nbucket = \"p\"   # aligned\nmountpoint = \"/m/p\"\n\n# logs, read-only\n[logs]\nbucket = \"l\"\nmountpoint = \"/m/l\"\nread_only = true\n";
    let mut file = parse(original).unwrap();
    file.add(SavedMount {
        name: "work".into(),
        source: "work-bucket:docs/".into(),
        mountpoint: "/home/u/Work".into(),
        options: vec![
            ("region".into(), Some("eu-west-1".into())),
            ("write_back".into(), None),
        ],
        line: 0,
    })
    .unwrap();
    let added = file.text().to_string();
    assert!(added.starts_with(original), "{added}");
    assert!(added.ends_with("\n[work]\nbucket = \"work-bucket:docs/\"\nmountpoint = \"/home/u/Work\"\nregion = \"eu-west-1\"\nwrite_back = true\n"), "{added}");
    let again = parse(&added).unwrap();
    assert_eq!(
        again.get("work").unwrap().flags(),
        ["--region", "eu-west-1", "--write-back"]
    );

    let err = file
        .add(SavedMount {
            name: "logs".into(),
            source: "x".into(),
            mountpoint: "/x".into(),
            options: vec![],
            line: 0,
        })
        .unwrap_err();
    assert!(err.to_string().contains("s3rolefs remove logs"), "{err}");

    let mut file = parse(&added).unwrap();
    file.remove("photos").unwrap();
    assert_eq!(
        file.text(),
        added.replace(
            "# the photos\n[photos]\nbucket = \"p\"   # aligned\nmountpoint = \"/m/p\"\n\n",
            ""
        )
    );
    let err = file.remove("photos").unwrap_err().to_string();
    assert!(err.contains("the saved mounts are logs, work"), "{err}");
}

/// A first `add` makes the file with a header that says how to edit it.
#[test]
fn first_add_writes_a_header_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s3rolefs/mounts.toml");
    let mut file = MountsFile::load(&path, None).unwrap();
    assert!(file.mounts.is_empty());
    let err = file.get("x").unwrap_err().to_string();
    assert!(err.contains("s3rolefs add NAME"), "{err}");
    file.add(SavedMount {
        name: "data".into(),
        source: "b".into(),
        mountpoint: "/mnt/data".into(),
        options: vec![],
        line: 0,
    })
    .unwrap();
    file.save().unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("# Saved s3rolefs mounts"), "{text}");
    let back = MountsFile::load(&path, None).unwrap();
    assert_eq!(back.get("data").unwrap().source, "b");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&path).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o644);
}

/// A mounts.toml that is a symlink (a dotfiles repository) is written through, not replaced.
#[test]
fn save_writes_through_a_symlink() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("dotfiles-mounts.toml");
    std::fs::write(&real, "[a]\nbucket = \"b\"\nmountpoint = \"/m\"\n").unwrap();
    let link = dir.path().join("mounts.toml");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let mut file = MountsFile::load(&link, None).unwrap();
    file.remove("a").unwrap();
    file.save().unwrap();
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(std::fs::read_to_string(&real).unwrap(), "");
}
