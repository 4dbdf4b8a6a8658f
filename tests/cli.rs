//! The CLI client commands against the real server.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

#[test]
fn ingest_uploads_a_directory_and_search_and_status_read_it_back() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("data"), FAST_CONFIG, &[]);
    let dir = tmp.path().join("inbox");
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(dir.join("a.txt"), "the gecko ledger").unwrap();
    std::fs::write(dir.join("sub/b.md"), "# Gecko notes\n\nmore gecko").unwrap();
    std::fs::write(dir.join("sub/c.txt"), "the gecko ledger").unwrap(); // same bytes as a.txt
    std::fs::write(dir.join("photo.gif"), b"GIF89a\x01\0\x01\0\x80\0\0").unwrap();

    let (code, out, err) = cli(&["ingest", dir.to_str().unwrap(), "--server", &s.base]);
    assert_eq!(code, 2, "a rejected file makes ingest fail: {out}{err}");
    assert!(
        out.contains("2 accepted, 1 duplicates, 1 rejected"),
        "{out}"
    );
    assert!(
        err.contains("photo.gif") && err.contains("unsupported_media_type"),
        "names the file and why: {err}"
    );

    let ids = list_ids(&s, "limit=100");
    assert_eq!(ids.len(), 2);
    for id in &ids {
        wait_terminal(&s, id, Duration::from_secs(60));
    }
    let (code, out, _) = cli(&["search", "gecko", "--server", &s.base]);
    assert_eq!(code, 0);
    assert!(out.starts_with("2 documents match"), "{out}");
    let (code, out, _) = cli(&["status", "--server", &s.base]);
    assert_eq!(code, 0);
    assert!(
        out.lines()
            .any(|l| l.starts_with("indexed") && l.split_whitespace().nth(1) == Some("2")),
        "{out}"
    );
    // The numbers line up under their headers: each column ends where its
    // header ends.
    let header = out.lines().next().unwrap();
    let ends = |l: &str| -> Vec<usize> {
        let mut ends = Vec::new();
        let b = l.as_bytes();
        for i in 0..b.len() {
            if b[i] != b' ' && (i + 1 == b.len() || b[i + 1] == b' ') {
                ends.push(i);
            }
        }
        ends
    };
    let want: Vec<usize> = ends(header)
        .into_iter()
        .filter(|&e| !header[..=e].ends_with("in")) // "in flight" is one header
        .collect();
    for row in out
        .lines()
        .skip(1)
        .take_while(|l| !l.starts_with("storage"))
    {
        assert_eq!(ends(row)[1..], want[1..], "{header:?}\n{row:?}");
    }
    assert!(out.contains("storage: local"), "{out}");
}

/// `docpipe --version` names the version and the commit it was built from.
#[test]
fn the_version_names_the_commit() {
    let (code, out, _) = cli(&["--version"]);
    assert_eq!(code, 0);
    let commit = out
        .trim()
        .strip_prefix(concat!("docpipe ", env!("CARGO_PKG_VERSION"), " (commit "))
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{out}"));
    let hash = commit.trim_end_matches("+changes");
    assert!(
        hash == "unknown" || (hash.len() == 12 && hash.bytes().all(|b| b.is_ascii_hexdigit())),
        "{out}"
    );
}

#[test]
fn client_commands_name_an_unreachable_server() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let (code, _, err) = cli(&["status", "--server", &url]);
    assert_eq!(code, 2);
    assert!(err.contains("cannot reach") && err.contains(&url), "{err}");
    let (code, _, err) = cli(&["ingest", "/nonexistent/path", "--server", &url]);
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent/path"), "{err}");
}

#[test]
fn token_commands_create_list_and_revoke() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("data"), FAST_CONFIG, &[]);
    let (code, out, err) = cli(&[
        "token",
        "create",
        "--name",
        "scanner",
        "--role",
        "editor",
        "--workspace",
        "acme",
        "--server",
        &s.base,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let field = |name: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("no {name} in {out}"))
    };
    let (id, token) = (field("id:"), field("token:"));
    assert!(token.starts_with("dp_"), "{out}");
    assert!(err.contains("shown this once"), "{err}");

    let (code, out, _) = cli(&["token", "list", "--server", &s.base]);
    assert_eq!(code, 0);
    let row = out.lines().find(|l| l.starts_with(&id)).expect("listed");
    assert!(
        row.contains("scanner") && row.contains("editor") && row.contains("acme"),
        "{row}"
    );
    assert!(!out.contains(&token), "the secret is never listed");

    // The new token works for the CLI, in its workspace.
    let (code, out, _) = Command::new(BIN)
        .args(["status", "--server", &s.base])
        .env("DOCPIPE_TOKEN", &token)
        .output()
        .map(|o| {
            (
                o.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&o.stdout).to_string(),
                (),
            )
        })
        .unwrap();
    assert_eq!(code, 0, "{out}");

    let (code, out, _) = cli(&["token", "revoke", &id, "--server", &s.base]);
    assert_eq!(code, 0, "{out}");
    let o = Command::new(BIN)
        .args(["status", "--server", &s.base])
        .env("DOCPIPE_TOKEN", &token)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("not valid"),
        "{:?}",
        o
    );
    // A bad role is refused with the reason.
    let (code, _, err) = cli(&[
        "token", "create", "--name", "x", "--role", "root", "--server", &s.base,
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("role \"root\""), "{err}");
}

/// `docpipe ingest --data-dir` on files of the shared corpus, without a
/// server: one line per file when stderr is not a terminal, killed part
/// way and run again without duplicates, globs choosing the files, and a
/// summary naming each refused file with its reason.
#[test]
fn ingest_into_a_data_directory_resumes_without_duplicates() {
    use sha2::{Digest, Sha256};
    use std::io::BufRead;
    let tmp = tempfile::tempdir().unwrap();
    let inbox = tmp.path().join("in");
    std::fs::create_dir_all(inbox.join("sub")).unwrap();
    let corpus = corpus_files(&["markdown-crates", "html-python-docs"], 30);
    let mut distinct = std::collections::BTreeSet::new();
    for (i, p) in corpus.iter().enumerate() {
        let bytes = std::fs::read(p).unwrap();
        distinct.insert(hex::encode(Sha256::digest(&bytes)));
        let to = if i % 2 == 0 {
            inbox.clone()
        } else {
            inbox.join("sub")
        };
        std::fs::write(to.join(p.file_name().unwrap()), bytes).unwrap();
    }
    // Refused: of a type docpipe does not read; left out by --exclude.
    std::fs::write(
        inbox.join("program.bin"),
        [0x7f, b'E', b'L', b'F', 2, 1, 1, 0],
    )
    .unwrap();
    std::fs::write(inbox.join("notes.skip"), "left out by --exclude").unwrap();
    let data = tmp.path().join("data");
    let config = tmp.path().join("config.toml");
    std::fs::write(&config, FAST_CONFIG).unwrap();
    let ingest = || {
        let mut c = Command::new(BIN);
        c.arg("ingest")
            .arg(&inbox)
            .args(["--exclude", "*.skip", "--data-dir"])
            .arg(&data)
            .arg("--config")
            .arg(&config);
        c
    };
    let mut child = ingest()
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut taken = 0;
    for line in std::io::BufReader::new(child.stderr.take().unwrap()).lines() {
        if line.unwrap().ends_with(": taken") {
            taken += 1;
            if taken == 20 {
                break;
            }
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(taken, 20);
    let out = ingest().output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(
        out.status.code(),
        Some(2),
        "one file is refused: {stdout}{stderr}"
    );
    let first = stdout.lines().next().unwrap_or_default();
    let n = |what: &str| -> usize {
        let (before, _) = first.split_once(what).unwrap_or_else(|| panic!("{stdout}"));
        before.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert_eq!(n(" taken") + n(" there already"), corpus.len(), "{stdout}");
    assert!(n(" there already") >= 20, "{stdout}");
    assert_eq!((n(" refused"), n(" failed")), (1, 0), "{stdout}");
    assert!(
        stdout.contains("refused")
            && stdout.contains("program.bin")
            && stdout.contains("does not read"),
        "{stdout}"
    );
    assert!(!stdout.contains("notes.skip") && !stderr.contains("notes.skip"));
    // One document per distinct file, all of them read.
    let s = Server::start(&data, FAST_CONFIG, &[]);
    let ids = list_ids(&s, "limit=1000");
    assert_eq!(ids.len(), distinct.len());
    for id in &ids {
        assert_eq!(doc(&s, id)["stage"], "indexed");
    }
}
