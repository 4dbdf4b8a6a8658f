//! Parser processes: `docpipe` re-executed in its parser mode, reused for many
//! documents. The parent sends a request frame on stdin and reads the answer
//! frame on stdout; it kills the process when a parse runs past its time
//! limit. The child limits its own address space with setrlimit, so a runaway
//! parser fails its allocation and dies instead of taking the machine.
//!
//! Frames: request = u32 LE header length, JSON header, u64 LE body length,
//! body; response = u32 LE length, JSON `Result<Extracted, ParseError>`.

use std::io::{Read, Write};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::errors::Code;
use crate::extract::ParseError;
use crate::model::Extracted;

#[derive(serde::Serialize, serde::Deserialize)]
struct Request {
    mime: String,
    limits: super::ParseLimits,
}

pub struct Sandbox {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    /// The process exits by itself after this long without a document.
    idle_exit: Duration,
    last_used: std::time::Instant,
}

impl Sandbox {
    /// Starts `command` (the docpipe binary and its parser-mode argument) with
    /// the memory limit and the idle time after which it exits as its last
    /// arguments.
    pub fn spawn(
        command: &[String],
        max_memory_mb: u64,
        idle_exit: Duration,
    ) -> std::io::Result<Sandbox> {
        let (program, args) = command
            .split_first()
            .ok_or_else(|| std::io::Error::other("no parser command configured"))?;
        let mut child = Command::new(program)
            .args(args)
            .arg(max_memory_mb.to_string())
            .arg(idle_exit.as_millis().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()?;
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| std::io::Error::other("no stdin"))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| std::io::Error::other("no stdout"))?;
        Ok(Sandbox {
            child,
            stdin,
            stdout: BufReader::new(stdout),
            idle_exit,
            last_used: std::time::Instant::now(),
        })
    }

    /// Idle for half its exit time: it may be exiting, so the next document
    /// goes to a fresh process instead.
    pub fn is_stale(&self) -> bool {
        !self.idle_exit.is_zero() && self.last_used.elapsed() >= self.idle_exit / 2
    }

    /// The process's resident memory in MiB (0 if it cannot be read).
    pub fn rss_mb(&self) -> u64 {
        let Some(pid) = self.child.id() else {
            return 0;
        };
        std::fs::read_to_string(format!("/proc/{pid}/statm"))
            .ok()
            .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
            .map_or(0, |pages| pages * 4096 / (1024 * 1024))
    }

    /// Parses one document. On `timeout` or `crashed` the caller must drop
    /// this sandbox (dropping kills the process).
    pub async fn parse(
        &mut self,
        mime: &str,
        body: &[u8],
        limits: &super::ParseLimits,
        timeout: Duration,
    ) -> Result<Extracted, ParseError> {
        self.last_used = std::time::Instant::now();
        let exchange = async {
            let header = serde_json::to_vec(&Request {
                mime: mime.to_string(),
                limits: limits.clone(),
            })
            .map_err(std::io::Error::other)?;
            self.stdin
                .write_all(&(header.len() as u32).to_le_bytes())
                .await?;
            self.stdin.write_all(&header).await?;
            self.stdin
                .write_all(&(body.len() as u64).to_le_bytes())
                .await?;
            self.stdin.write_all(body).await?;
            self.stdin.flush().await?;
            let len = self.stdout.read_u32_le().await? as usize;
            let mut buf = vec![0u8; len];
            self.stdout.read_exact(&mut buf).await?;
            serde_json::from_slice::<Result<Extracted, ParseError>>(&buf)
                .map_err(std::io::Error::other)
        };
        match tokio::time::timeout(timeout, exchange).await {
            Err(_) => {
                let _ = self.child.start_kill();
                Err(ParseError::new(
                    Code::Timeout,
                    format!(
                        "parsing took longer than {} ms; the parser was stopped",
                        timeout.as_millis()
                    ),
                ))
            }
            Ok(Err(_io)) => Err(ParseError::new(Code::Crashed, self.describe_death().await)),
            Ok(Ok(result)) => result,
        }
    }

    async fn describe_death(&mut self) -> String {
        use std::os::unix::process::ExitStatusExt;
        let status = match tokio::time::timeout(Duration::from_secs(2), self.child.wait()).await {
            Ok(Ok(s)) => s,
            _ => {
                let _ = self.child.start_kill();
                return "the parser process stopped answering".into();
            }
        };
        match status.signal() {
            Some(libc::SIGABRT) => {
                "the parser process aborted (out of memory under its limit, or a stack overflow)"
                    .into()
            }
            Some(libc::SIGSEGV) => "the parser process crashed (segmentation fault)".into(),
            Some(libc::SIGKILL) => "the parser process was killed".into(),
            Some(sig) => format!("the parser process died from signal {sig}"),
            None => format!("the parser process exited unexpectedly ({status})"),
        }
    }
}

/// Entry point of the parser mode. `args` holds the memory limit in MiB and
/// the idle time in ms after which the process exits (0: never). Returns the
/// process exit code.
pub fn child_main(args: &[String]) -> i32 {
    crate::memory::limit_arenas();
    let max_mb: u64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(1024);
    limit_memory(max_mb);
    // Panics are reported in the answer frame, not on stderr.
    std::panic::set_hook(Box::new(|_| {}));
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let mut input = stdin.lock();
    let mut output = stdout.lock();
    let idle_ms: i32 = args
        .get(1)
        .and_then(|a| a.parse::<u64>().ok())
        .map_or(0, |ms| ms.min(i32::MAX as u64) as i32);
    loop {
        if idle_ms > 0 && !input_within(idle_ms) {
            return 0; // idle: give the memory back by exiting
        }
        let mut len4 = [0u8; 4];
        if input.read_exact(&mut len4).is_err() {
            return 0; // parent closed the pipe: done
        }
        let mut header = vec![0u8; u32::from_le_bytes(len4) as usize];
        let mut len8 = [0u8; 8];
        if input.read_exact(&mut header).is_err() || input.read_exact(&mut len8).is_err() {
            return 1;
        }
        let mut body = vec![0u8; u64::from_le_bytes(len8) as usize];
        if input.read_exact(&mut body).is_err() {
            return 1;
        }
        let result: Result<Extracted, ParseError> = match serde_json::from_slice::<Request>(&header)
        {
            Err(e) => Err(ParseError::new(
                Code::Internal,
                format!("bad request frame: {e}"),
            )),
            Ok(req) => std::panic::catch_unwind(|| {
                limit_memory_soft(match req.limits.memory_mb {
                    0 => max_mb,
                    mb => mb.min(max_mb),
                });
                #[cfg(feature = "failpoints")]
                crate::faults::parser(&body);
                super::parse(&req.mime, &body, &req.limits)
            })
            .unwrap_or_else(|panic| {
                let msg = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                Err(ParseError::new(
                    Code::ParserPanic,
                    format!("the parser panicked: {msg}"),
                ))
            }),
        };
        drop(body);
        let answer = serde_json::to_vec(&result).unwrap_or_default();
        drop(result);
        // What one document's parse allocated goes back to the system, so
        // an idle parser process stays small.
        crate::memory::release_free_memory();
        if output
            .write_all(&(answer.len() as u32).to_le_bytes())
            .is_err()
            || output.write_all(&answer).is_err()
            || output.flush().is_err()
        {
            return 1;
        }
    }
}

/// This document's memory: the soft address-space limit, under the hard
/// one set at start.
fn limit_memory_soft(mb: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain libc calls with a valid pointer to an initialised struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_AS, &mut lim) == 0 {
            lim.rlim_cur =
                (mb.max(1).saturating_mul(1024 * 1024) as libc::rlim_t).min(lim.rlim_max);
            libc::setrlimit(libc::RLIMIT_AS, &lim);
        }
    }
}

fn limit_memory(max_mb: u64) {
    let bytes = max_mb.saturating_mul(1024 * 1024) as libc::rlim_t;
    let lim = libc::rlimit {
        rlim_cur: bytes,
        rlim_max: bytes,
    };
    let no_core = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain libc calls with valid pointers to initialised structs.
    unsafe {
        libc::setrlimit(libc::RLIMIT_AS, &lim);
        libc::setrlimit(libc::RLIMIT_CORE, &no_core);
    }
}

/// Whether standard input has something to read (or is closed) within
/// `ms` milliseconds.
fn input_within(ms: i32) -> bool {
    let mut fd = libc::pollfd {
        fd: 0,
        events: libc::POLLIN,
        revents: 0,
    };
    loop {
        // SAFETY: one valid pollfd for the duration of the call.
        let n = unsafe { libc::poll(&mut fd, 1, ms) };
        if n >= 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return n != 0;
        }
    }
}
