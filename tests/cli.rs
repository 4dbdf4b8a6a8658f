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
