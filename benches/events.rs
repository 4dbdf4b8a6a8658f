//! Live events under a stalled subscriber (`make bench`).
//!
//! The same ingest (small text documents, uploaded eight at a time, timed
//! until every one is indexed) into the real binary three ways: with no
//! subscriber, with one that reads every event, and with one that stops
//! reading (its socket's receive buffer shrunk to 4 KiB, so that the
//! server's queue for it fills). Prints documents per second for each and
//! whether the stalled subscriber was dropped. Target: the stalled run
//! within noise (±10 %) of the run with none, and the subscriber dropped.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;

mod common;

const DOCS: usize = 10_000;

#[derive(Clone, Copy, PartialEq)]
enum Listener {
    None,
    Reading,
    Stalled,
}

struct Run {
    docs_per_s: f64,
    events_read: u64,
    subscribers_after: u64,
}

fn run(rt: &tokio::runtime::Runtime, who: Listener) -> Run {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let served = common::serve(|cmd| {
        cmd.arg("--data-dir")
            .arg(&data)
            .env("DOCPIPE_SERVER__SUBSCRIBER_QUEUE", "64")
            .env("DOCPIPE_SERVER__SUBSCRIBER_STALL_MS", "1000")
            .env("DOCPIPE_EMBED__BACKEND", "off");
    });
    let (base, client) = (served.base.clone(), served.client.clone());
    let read = Arc::new(AtomicU64::new(0));
    // Kept open (and unread) for the whole run.
    let mut _stalled: Option<std::net::TcpStream> = None;
    match who {
        Listener::None => {}
        Listener::Reading => {
            let (c, b, n) = (client.clone(), base.clone(), read.clone());
            rt.spawn(async move {
                let resp = c
                    .get(format!("{b}/api/v1/events/stream"))
                    .send()
                    .await
                    .unwrap();
                let mut body = resp.bytes_stream();
                while let Some(Ok(chunk)) = body.next().await {
                    let frames = chunk.windows(2).filter(|w| w == b"\n\n").count();
                    n.fetch_add(frames as u64, Relaxed);
                }
            });
        }
        Listener::Stalled => {
            let addr: std::net::SocketAddr = base.strip_prefix("http://").unwrap().parse().unwrap();
            let sock =
                socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
            sock.set_recv_buffer_size(4096).unwrap();
            sock.connect(&addr.into()).unwrap();
            let mut tcp: std::net::TcpStream = sock.into();
            write!(
                tcp,
                "GET /api/v1/events/stream HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\r\n",
                common::TOKEN
            )
            .unwrap();
            _stalled = Some(tcp);
        }
    }
    if who != Listener::None {
        // Connected before the clock starts.
        let deadline = Instant::now() + Duration::from_secs(10);
        while rt.block_on(common::status(client.clone(), base.clone()))["subscribers"] != 1 {
            assert!(Instant::now() < deadline, "the subscriber did not connect");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let started = Instant::now();
    rt.block_on(async {
        let mut tasks = futures::stream::iter(0..DOCS)
            .map(|i| {
                let (c, b) = (client.clone(), base.clone());
                async move {
                    let text = format!(
                        "note {i}: the quarterly report of team {} about apples and pears",
                        i % 17
                    );
                    let form = reqwest::multipart::Form::new().part(
                        "file",
                        reqwest::multipart::Part::bytes(text.into_bytes())
                            .file_name(format!("n{i}.txt")),
                    );
                    let r = c
                        .post(format!("{b}/api/v1/documents"))
                        .multipart(form)
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 202);
                }
            })
            .buffer_unordered(8);
        while tasks.next().await.is_some() {}
        loop {
            let st = common::status(client.clone(), base.clone()).await;
            if st["stages"]["indexed"]["documents"].as_u64() == Some(DOCS as u64) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let secs = started.elapsed().as_secs_f64();
    // A stalled subscriber is dropped once its queue stays full for the
    // stall time: give it that long after the last event.
    let mut subscribers_after = 0;
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        subscribers_after = rt.block_on(common::status(client.clone(), base.clone()))
            ["subscribers"]
            .as_u64()
            .unwrap_or(0);
        if who != Listener::Stalled || subscribers_after == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Run {
        docs_per_s: DOCS as f64 / secs,
        events_read: read.load(Relaxed),
        subscribers_after,
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let none = run(&rt, Listener::None);
    let reading = run(&rt, Listener::Reading);
    let stalled = run(&rt, Listener::Stalled);
    println!("events bench: {DOCS} text documents, uploaded 8 at a time, until all indexed");
    println!("  no subscriber         {:7.1} docs/s", none.docs_per_s);
    println!(
        "  one reading           {:7.1} docs/s ({:+.1} %), {} events read",
        reading.docs_per_s,
        (reading.docs_per_s / none.docs_per_s - 1.0) * 100.0,
        reading.events_read
    );
    println!(
        "  one stalled           {:7.1} docs/s ({:+.1} %), dropped: {}",
        stalled.docs_per_s,
        (stalled.docs_per_s / none.docs_per_s - 1.0) * 100.0,
        if stalled.subscribers_after == 0 {
            "yes"
        } else {
            "NO"
        }
    );
}
