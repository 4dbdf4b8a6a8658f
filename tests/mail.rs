//! Mailboxes against a real IMAP server on loopback: Debian's Dovecot
//! (`dovecot-imapd`, installed by `make test` when missing), started here
//! with its own configuration, passwd file and Maildir.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;

const USER: &str = "docs";
const PASSWORD: &str = "the-right-password";

fn dovecot_bin() -> PathBuf {
    for p in ["/usr/sbin/dovecot", "/usr/local/sbin/dovecot"] {
        if Path::new(p).exists() {
            return p.into();
        }
    }
    panic!("dovecot is missing: `make test` installs dovecot-imapd (apt)");
}

/// A Dovecot of its own: configuration, passwd file, Maildir and logs in
/// one directory, listening on one loopback port.
struct Dovecot {
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Dovecot {
    fn start(dir: &Path) -> Dovecot {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut d = Dovecot {
            dir: dir.to_path_buf(),
            port,
            child: None,
        };
        d.configure();
        d.boot();
        d
    }

    /// Root may not own mail: the mail is `nobody`'s then.
    fn owner() -> (u32, u32, Option<String>) {
        use std::os::unix::fs::MetadataExt;
        let me = std::fs::metadata("/proc/self").unwrap();
        let uid = me.uid();
        if uid == 0 {
            (65534, 65534, None)
        } else {
            let name = std::env::var("USER").unwrap_or_else(|_| {
                String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout)
                    .unwrap()
                    .trim()
                    .to_string()
            });
            (uid, me.gid(), Some(name))
        }
    }

    fn configure(&self) {
        use std::os::unix::fs::PermissionsExt;
        let d = &self.dir;
        for sub in ["run", "state", "home"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        let (uid, gid, user) = Self::owner();
        let users = match &user {
            Some(u) => format!("default_internal_user = {u}\ndefault_login_user = {u}\n"),
            None => String::new(),
        };
        let conf = format!(
            r#"base_dir = {dir}/run
state_dir = {dir}/state
log_path = {dir}/dovecot.log
info_log_path = {dir}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{dir}/mail/%u
first_valid_uid = 1
{users}passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {dir}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={dir}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service stats {{
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
"#,
            dir = d.display(),
            port = self.port,
        );
        std::fs::write(d.join("dovecot.conf"), conf).unwrap();
        self.set_password(PASSWORD);
        // The Maildir, with the folder messages are moved to.
        for f in ["", ".Archive"] {
            for s in ["cur", "new", "tmp"] {
                std::fs::create_dir_all(self.maildir().join(f).join(s)).unwrap();
            }
        }
        std::fs::create_dir_all(d.join("home").join(USER)).unwrap();
        // Everything under the test's directory reachable by the mail user.
        let mut p = d.clone();
        loop {
            if p == Path::new("/") || p == std::env::temp_dir() {
                break;
            }
            let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755));
            if !p.pop() {
                break;
            }
        }
        chown_tree(&d.join("mail"), uid, gid);
        chown_tree(&d.join("home"), uid, gid);
    }

    fn maildir(&self) -> PathBuf {
        self.dir.join("mail").join(USER)
    }

    fn set_password(&self, pw: &str) {
        std::fs::write(self.dir.join("passwd"), format!("{USER}:{{PLAIN}}{pw}\n")).unwrap();
    }

    fn boot(&mut self) {
        let child = Command::new(dovecot_bin())
            .args(["-F", "-c"])
            .arg(self.dir.join("dovecot.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start dovecot");
        self.child = Some(child);
        let addr = format!("127.0.0.1:{}", self.port);
        let log = self.dir.join("dovecot.log");
        wait_until(Duration::from_secs(30), "dovecot to listen", || {
            std::net::TcpStream::connect(&addr).is_ok()
        });
        let _ = log;
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = c.wait();
        }
        let addr = format!("127.0.0.1:{}", self.port);
        wait_until(Duration::from_secs(30), "dovecot to stop", || {
            std::net::TcpStream::connect(&addr).is_err()
        });
    }

    /// Delivers a message the way a mail delivery agent does: written
    /// into `tmp/`, then renamed into `new/`.
    fn deliver(&self, folder: &str, name: &str, message: &str) {
        let dir = self.maildir().join(folder);
        let tmp = dir.join("tmp").join(name);
        std::fs::write(&tmp, message).unwrap();
        let (uid, gid, _) = Self::owner();
        let _ = std::os::unix::fs::chown(&tmp, Some(uid), Some(gid));
        std::fs::rename(&tmp, dir.join("new").join(name)).unwrap();
    }

    /// Messages in a folder (new and seen).
    fn count(&self, folder: &str) -> usize {
        ["new", "cur"]
            .iter()
            .map(|s| {
                std::fs::read_dir(self.maildir().join(folder).join(s))
                    .map(|d| d.count())
                    .unwrap_or(0)
            })
            .sum()
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn chown_tree(p: &Path, uid: u32, gid: u32) {
    let _ = std::os::unix::fs::chown(p, Some(uid), Some(gid));
    if p.is_dir() {
        for e in std::fs::read_dir(p).unwrap().flatten() {
            chown_tree(&e.path(), uid, gid);
        }
    }
}

/// A message with one text attachment of its own.
fn message(n: usize, from: &str) -> String {
    format!(
        "From: {from}\r\nTo: docs@example.org\r\nSubject: Invoice {n}\r\nDate: Tue, 01 Dec 2026 10:00:0{d} +0000\r\nMessage-ID: <invoice-{n}@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b{n}\"\r\n\r\n--b{n}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nPlease find invoice {n} attached.\r\n--b{n}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Disposition: attachment; filename=\"invoice-{n}.txt\"\r\n\r\nInvoice number INV-{n:04}\r\nTotal due: {n}0.00 EUR\r\n--b{n}--\r\n",
        d = n % 10
    )
}

fn mail_status(s: &Server) -> Value {
    let (_, st) = get_json(&s.url("/api/v1/status"));
    st["mail"][0].clone()
}

/// The e-mails (not their attachments) docpipe holds, all finished.
fn emails(s: &Server) -> Vec<Value> {
    let mut out = Vec::new();
    for id in list_ids(s, "limit=1000") {
        let d = wait_terminal(s, &id, Duration::from_secs(60));
        if d["filename"].as_str().unwrap().starts_with("message-") {
            out.push(d);
        }
    }
    out
}

/// Messages from the configured sender are ingested once each, with their
/// attachments, and moved to the archive folder; a message from anyone
/// else stays. A wrong password and a stopped server show in the status and
/// recover; a restart of docpipe brings nothing twice.
#[test]
fn a_mailbox_is_read_once_across_a_restart_and_recovers_from_a_refused_login_and_a_stopped_server()
{
    let tmp = tempfile::tempdir().unwrap();
    let mut imap = Dovecot::start(&tmp.path().join("imap"));
    imap.deliver("", "1.m", &message(1, "Billing <billing@example.com>"));
    imap.deliver("", "2.m", &message(2, "Billing <billing@example.com>"));
    imap.deliver("", "3.m", &message(3, "Someone <someone@else.org>"));
    let password_file = tmp.path().join("imap-password");
    std::fs::write(&password_file, "not-the-password\n").unwrap();
    let config = format!(
        r#"{FAST_CONFIG}
[[mail]]
name = "billing"
host = "127.0.0.1"
port = {port}
tls = "none"
username = "{USER}"
password_file = "{pw}"
folder = "INBOX"
after = "move"
move_to = "Archive"
from = "billing@example.com"
interval_s = 1
"#,
        port = imap.port,
        pw = password_file.display()
    );
    let data = tmp.path().join("data");
    let mut s = Server::start(&data, &config, &[]);

    // The login is refused: the status says so, and nothing is taken.
    wait_until(
        Duration::from_secs(30),
        "the refused login in the status",
        || mail_status(&s)["state"] == "login_refused",
    );
    let st = mail_status(&s);
    assert_eq!(st["name"], "billing");
    assert!(
        st["last_error"]
            .as_str()
            .unwrap()
            .contains("refused the login"),
        "{st}"
    );
    assert_eq!(st["ingested"], 0);

    // The password fixed in its file: taken without a restart.
    std::fs::write(&password_file, format!("{PASSWORD}\n")).unwrap();
    wait_until(Duration::from_secs(60), "two messages taken", || {
        mail_status(&s)["ingested"] == 2
    });
    // Dovecot moves by copying, then expunging the source, and a Maildir
    // file passes from new/ to cur/: the counts settle together.
    wait_until(
        Duration::from_secs(30),
        "the two moved and the message from someone else staying",
        || imap.count(".Archive") == 2 && imap.count("") == 1,
    );
    let got = emails(&s);
    assert_eq!(got.len(), 2);
    for e in &got {
        assert_eq!(e["stage"], "indexed", "{e}");
        assert_eq!(e["mime"], "message/rfc822", "{e}");
        let d = doc(&s, e["id"].as_str().unwrap());
        assert_eq!(d["attachments"].as_array().unwrap().len(), 1, "{d}");
    }
    let hits = search(&s, "INV-0002");
    assert!(hits["total"].as_u64().unwrap_or(0) >= 1, "{hits}");

    // A restart, and a new message: only that one is taken.
    s.stop();
    imap.deliver("", "4.m", &message(4, "Billing <billing@example.com>"));
    s.restart();
    wait_until(Duration::from_secs(60), "the new message taken", || {
        mail_status(&s)["ingested"] == 1 && imap.count(".Archive") == 3
    });
    assert_eq!(emails(&s).len(), 3, "nothing twice");

    // The server stopped: the status says so; started again, it recovers.
    imap.stop();
    wait_until(
        Duration::from_secs(60),
        "the stopped server in the status",
        || mail_status(&s)["state"] == "unreachable",
    );
    imap.deliver("", "5.m", &message(5, "Billing <billing@example.com>"));
    imap.boot();
    wait_until(
        Duration::from_secs(60),
        "the message taken after the outage",
        || mail_status(&s)["ingested"] == 2,
    );
    wait_until(Duration::from_secs(30), "back to waiting for mail", || {
        mail_status(&s)["state"] == "idle"
    });
    assert_eq!(emails(&s).len(), 4);
    wait_until(Duration::from_secs(30), "four moved, one staying", || {
        imap.count(".Archive") == 4 && imap.count("") == 1
    });
}

/// A password in the clear to a host that is not loopback, or a move with
/// nowhere to go, stops the server at start with a line naming the mailbox.
#[test]
fn a_mailbox_that_would_leak_its_password_or_lacks_settings_is_refused_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("config.toml");
    std::fs::write(
        &config,
        r#"[[mail]]
host = "imap.example.org"
tls = "none"
username = "u"
password = "p"
after = "move"
"#,
    )
    .unwrap();
    let (code, out, err) = cli(&["config", "--config", config.to_str().unwrap()]);
    assert_ne!(code, 0, "{out}");
    assert!(
        err.contains("mail[0]: tls = \"none\" would send the password in the clear"),
        "{err}"
    );
    assert!(
        err.contains("mail[0]: after = \"move\" needs move_to"),
        "{err}"
    );
}
