//! Ollama, optional and untrusted, against a fake Ollama server that speaks
//! the real API (ollama-rs talks to it unchanged): every document ends
//! `indexed` with a type and a source whatever the model does (answers well,
//! answers invalid, truncated or off-schema JSON, stalls, fails with 500,
//! refuses connections); breakers open and recover as configured and the
//! status shows them; documents typed while the LLM was down are flagged
//! `needs_llm` and `docpipe reprocess --llm` runs them through it again.

mod common;

use std::time::Duration;

use common::fake_ollama::{Behaviour, FakeOllama, MODEL};
use common::*;
use futures::StreamExt;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(20);

#[test]
fn the_fake_speaks_the_ollama_api_that_ollama_rs_expects() {
    use ollama_rs::generation::chat::request::ChatMessageRequest;
    use ollama_rs::generation::chat::ChatMessage;
    use ollama_rs::generation::completion::request::GenerationRequest;
    use ollama_rs::generation::embeddings::request::GenerateEmbeddingsRequest;
    use ollama_rs::Ollama;

    let fake = FakeOllama::start(Behaviour::Good);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let o = Ollama::try_new(fake.url()).unwrap();
    rt.block_on(async {
        let models = o.list_local_models().await.unwrap();
        assert_eq!(models[0].name, MODEL);
        let chat = ChatMessageRequest::new(MODEL.into(), vec![ChatMessage::user("hello".into())]);
        let reply = o.send_chat_messages(chat.clone()).await.unwrap();
        assert!(reply.done);
        // No schema asked for: free text (the answer `ask` gets).
        let free = common::fake_ollama::free_answer("hello");
        assert_eq!(reply.message.content, free);
        let mut stream = o.send_chat_messages_stream(chat).await.unwrap();
        let mut streamed = String::new();
        let mut done = false;
        while let Some(part) = stream.next().await {
            let part = part.unwrap();
            streamed.push_str(&part.message.content);
            done |= part.done;
        }
        assert!(done);
        assert_eq!(streamed, free);
        let gen = o
            .generate(GenerationRequest::new(MODEL.into(), "hi"))
            .await
            .unwrap();
        assert_eq!(gen.response, common::fake_ollama::free_answer("hi"));
        let emb = o
            .generate_embeddings(GenerateEmbeddingsRequest::new(
                MODEL.into(),
                vec!["a", "b"].into(),
            ))
            .await
            .unwrap();
        assert_eq!(emb.embeddings.len(), 2);
    });
}

fn config(endpoints: &[String]) -> String {
    format!(
        r#"
[index]
commit_interval_ms = 50
[pipeline.classify]
retrain_delay_ms = 100
review_threshold = 0.5
[ollama]
endpoints = {endpoints:?}
model = "{MODEL}"
timeout_ms = 400
failure_threshold = 2
open_ms = 1500

[[types]]
name = "car"
description = "Notes about cars and their repair"
keywords = ["zzz-car"]
patterns = []
fields = [{{ name = "plate", kind = "identifier" }}]

[[types]]
name = "recipe"
description = "Cooking recipes"
keywords = ["zzz-recipe"]
patterns = []
"#
    )
}

const CAR: &str = "The car engine misfires; replace the spark plugs and check the brake fluid.";
const RECIPE: &str = "A recipe: whisk the eggs with sugar, fold in the flour and bake the cake.";

fn status(s: &Server) -> Value {
    get_json(&s.url("/api/v1/status")).1
}

fn breaker(s: &Server, i: usize) -> String {
    status(s)["llm"]["endpoints"][i]["breaker"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Uploads `text` (made unique by the name: the same bytes twice would be
/// one document) and waits for it.
fn upload_text(s: &Server, name: &str, text: &str) -> Value {
    let id = upload_one(s, name, format!("{text}\n{name}").into_bytes());
    let d = wait_terminal(s, &id, WAIT);
    assert_eq!(d["stage"], "indexed", "{d}");
    assert!(d["doc_type"].is_string(), "every document gets a type: {d}");
    assert!(d["type_source"].is_string(), "and a source: {d}");
    d
}

fn field(d: &Value, name: &str) -> Option<Value> {
    d["fields"]
        .as_array()?
        .iter()
        .find(|f| f["name"] == name)
        .cloned()
}

#[test]
fn every_document_ends_typed_whatever_the_llm_does_and_breakers_recover() {
    let mut fake = FakeOllama::start(Behaviour::Good);
    fake.set_fields(&[("plate", "AB-123")]);
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("data"), &config(&[fake.url()]), &[]);
    let st = status(&s);
    assert_eq!(st["llm"]["configured"], true, "{st}");
    assert_eq!(st["llm"]["model"], MODEL);
    assert_eq!(breaker(&s, 0), "closed");

    // Answering well: the LLM types the documents and fills the car's plate.
    let mut ids = Vec::new();
    for (i, text) in [CAR, RECIPE, CAR, RECIPE].iter().enumerate() {
        let d = upload_text(&s, &format!("good{i}.txt"), text);
        assert_eq!(d["type_source"], "llm", "{d}");
        assert_eq!(
            d["doc_type"],
            if i % 2 == 0 { "car" } else { "recipe" },
            "{d}"
        );
        assert_eq!(d["needs_llm"], false);
        ids.push(d["id"].as_str().unwrap().to_string());
    }
    let car = doc(&s, &ids[0]);
    let plate = field(&car, "plate").expect("the LLM's plate");
    assert_eq!(
        (plate["value"].as_str(), plate["source"].as_str()),
        (Some("AB-123"), Some("llm")),
        "{car}"
    );
    // Confirmed by hand, they train the built-in classifier: the fallback.
    for (i, id) in ids.iter().enumerate() {
        let (code, _) = patch_json(
            &s,
            &format!("/api/v1/documents/{id}"),
            json!({"doc_type": if i % 2 == 0 { "car" } else { "recipe" }}),
        );
        assert_eq!(code, 200);
    }
    let mut c = Value::Null;
    wait_until(WAIT, "the classifier to train", || {
        c = get_json(&s.url("/api/v1/classifier")).1;
        c["samples"] == 4
    });
    assert_eq!(c["labels"], json!({"car": 2, "recipe": 2}), "{c}");

    // Bad answers: asked again once, then the built-in type stands. The
    // endpoint answered, so its breaker stays closed and nothing waits.
    for b in [
        Behaviour::InvalidJson,
        Behaviour::TruncatedJson,
        Behaviour::OffSchema,
    ] {
        fake.set(b);
        let before = fake.chats();
        let d = upload_text(&s, &format!("{b:?}.txt"), CAR);
        assert_eq!(
            (d["doc_type"].as_str(), d["type_source"].as_str()),
            (Some("car"), Some("model")),
            "{b:?}: {d}"
        );
        assert_eq!(d["needs_llm"], false, "{b:?}: {d}");
        assert!(field(&d, "plate").is_none(), "{b:?}: {d}");
        // Type and fields, each asked twice.
        assert_eq!(fake.chats() - before, 4, "{b:?}");
        assert_eq!(breaker(&s, 0), "closed", "{b:?}");
    }

    // Failures: 500s, then stalls past the timeout. A car note asks twice
    // (type, then fields): two failures in a row open the breaker. The
    // documents get the built-in type, flagged needs_llm.
    let mut flagged = Vec::new();
    for (b, name) in [
        (Behaviour::Error500, "e500"),
        (Behaviour::Stall(Duration::from_secs(3)), "stall"),
    ] {
        fake.set(b);
        let d = upload_text(&s, &format!("{name}.txt"), CAR);
        assert_eq!(
            (d["doc_type"].as_str(), d["type_source"].as_str()),
            (Some("car"), Some("model")),
            "{name}: {d}"
        );
        assert_eq!(d["needs_llm"], true, "{name}: {d}");
        flagged.push(d["id"].as_str().unwrap().to_string());
        let st = status(&s);
        assert_eq!(st["llm"]["endpoints"][0]["breaker"], "open", "{name}: {st}");
        // Wait out the open breaker before the next behaviour.
        wait_until(WAIT, "the breaker's open time to pass", || {
            breaker(&s, 0) == "half_open"
        });
    }
    // Connections refused: the same.
    fake.refuse();
    let d = upload_text(&s, "refused.txt", CAR);
    assert_eq!(
        (d["type_source"].as_str(), d["needs_llm"].as_bool()),
        (Some("model"), Some(true)),
        "{d}"
    );
    flagged.push(d["id"].as_str().unwrap().to_string());
    let st = status(&s);
    assert_eq!(st["llm"]["endpoints"][0]["breaker"], "open", "{st}");
    assert!(
        st["llm"]["endpoints"][0]["opened"].as_u64().unwrap() >= 3,
        "{st}"
    );
    assert_eq!(st["needs_llm"], 3, "{st}");
    // While the breaker is open, nothing is sent to the endpoint at all.
    fake.accept(Behaviour::Good);
    let before = fake.chats();
    let d = upload_text(&s, "while-open.txt", CAR);
    assert_eq!(d["needs_llm"], true, "{d}");
    assert_eq!(fake.chats(), before, "an open breaker sends nothing");
    flagged.push(d["id"].as_str().unwrap().to_string());

    // Recovery: once open_ms has passed, one probe goes through, succeeds,
    // and closes the breaker.
    wait_until(WAIT, "the breaker to let a probe through", || {
        breaker(&s, 0) == "half_open"
    });
    let d = upload_text(&s, "recovered.txt", CAR);
    assert_eq!(
        (d["type_source"].as_str(), d["needs_llm"].as_bool()),
        (Some("llm"), Some(false)),
        "{d}"
    );
    assert_eq!(breaker(&s, 0), "closed");

    // The flagged documents go through the LLM again.
    let (code, stdout, stderr) = cli(&["reprocess", "--llm", "--server", &s.base]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("4 documents"), "{stdout}");
    for id in &flagged {
        let mut d = Value::Null;
        wait_until(WAIT, "the flagged document to be typed by the LLM", || {
            d = doc(&s, id);
            d["stage"] == "indexed" && d["type_source"] == "llm"
        });
        assert_eq!(d["needs_llm"], false, "{d}");
    }
    assert_eq!(status(&s)["needs_llm"], 0);
}

#[test]
fn several_endpoints_share_the_work_and_a_dead_one_is_skipped() {
    let a = FakeOllama::start(Behaviour::Good);
    let b = FakeOllama::start(Behaviour::Good);
    // A port nothing listens on.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(
        &tmp.path().join("data"),
        &config(&[a.url(), b.url(), dead]),
        &[],
    );
    let ids: Vec<String> = (0..12)
        .map(|i| {
            upload_one(
                &s,
                &format!("{i}.txt"),
                format!("{RECIPE} ({i})").into_bytes(),
            )
        })
        .collect();
    for id in &ids {
        let d = wait_terminal(&s, id, WAIT);
        assert_eq!(
            (
                d["doc_type"].as_str(),
                d["type_source"].as_str(),
                d["needs_llm"].as_bool()
            ),
            (Some("recipe"), Some("llm"), Some(false)),
            "{d}"
        );
    }
    assert!(
        a.chats() > 0 && b.chats() > 0,
        "both live endpoints answered: {} and {}",
        a.chats(),
        b.chats()
    );
    let st = status(&s);
    assert_eq!(st["llm"]["endpoints"][2]["breaker"], "open", "{st}");
    assert_eq!(
        st["llm"]["endpoints"][2]["failures"], 2,
        "the dead one is tried until its breaker opens: {st}"
    );
}

#[test]
fn reprocess_llm_without_an_llm_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("data"), FAST_CONFIG, &[]);
    assert_eq!(status(&s)["llm"]["configured"], false);
    let (code, v) = post_json(&s, "/api/v1/reprocess", serde_json::json!({"llm": true}));
    assert_eq!(
        (code, v["code"].as_str()),
        (409, Some("llm_unavailable")),
        "{v}"
    );
}

/// A slow LLM behind one Classify worker makes a queue far longer than the
/// lease. Waiting there is not a lost job: every document is typed by the
/// LLM at its first attempt, and no lease expires.
#[test]
fn a_long_queue_before_a_slow_llm_costs_time_not_attempts() {
    let fake = FakeOllama::start(Behaviour::Stall(Duration::from_millis(150)));
    let config = format!(
        "{}\n[pipeline]\nlease_ms = 1000\n[pipeline.extract]\ntimeout_ms = 300\n\
         [pipeline.ocr]\ntimeout_ms = 300\npage_timeout_ms = 300\n",
        config(&[fake.url()])
    );
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("data"), &config, &[]);
    // One request, so that all of them queue at once: ~16 x 150 ms in
    // Classify alone, several leases for the last one.
    let files: Vec<(String, Vec<u8>)> = (0..16)
        .map(|i| (format!("q{i}.txt"), format!("{CAR}\nq{i}").into_bytes()))
        .collect();
    let parts: Vec<(&str, Vec<u8>)> = files.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
    let (code, v) = upload(&s, &parts, None);
    assert_eq!(code, 202, "{v}");
    for d in v["documents"].as_array().unwrap() {
        let d = wait_terminal(&s, d["id"].as_str().unwrap(), WAIT);
        assert_eq!(
            (d["stage"].as_str(), d["type_source"].as_str()),
            (Some("indexed"), Some("llm")),
            "{d}"
        );
    }
    let st = status(&s);
    assert_eq!(st["leases_expired"], 0, "{st}");
    assert_eq!(st["retries_scheduled"], 0, "{st}");
}

/// The actor of the status named `name`.
fn actor(st: &Value, name: &str) -> Value {
    st["actors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == name)
        .cloned()
        .unwrap_or_default()
}

/// The kinds and times of a document's pipeline events.
fn stage_events(s: &Server, id: &str) -> Vec<(String, String)> {
    let (_, ev) = get_json(&s.url(&format!("/api/v1/documents/{id}/events")));
    ev["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["token_id"].is_null())
        .map(|e| {
            (
                e["kind"].as_str().unwrap_or_default().to_string(),
                e["at"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[test]
fn without_an_llm_the_cheap_stages_share_one_durable_step_and_with_one_they_do_not() {
    // No LLM: the Extract job types the document and finds its fields; the
    // three stages are written in one transaction (one time), and the
    // Classify and Enrich workers take nothing.
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("data"), &config(&[]), &[]);
    let d = upload_text(&s, "zzz-car-1.txt", &format!("zzz-car {CAR}"));
    assert_eq!(
        (d["doc_type"].as_str(), d["type_source"].as_str()),
        (Some("car"), Some("rule"))
    );
    let ev = stage_events(&s, d["id"].as_str().unwrap());
    let kinds: Vec<&str> = ev.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        ["extracted", "classified", "enriched", "indexed"],
        "{ev:?}"
    );
    assert!(
        ev[..3].iter().all(|(_, at)| *at == ev[0].1),
        "one transaction: {ev:?}"
    );
    let st = status(&s);
    assert_eq!(actor(&st, "classify")["processed"], 0, "{st}");
    assert_eq!(actor(&st, "enrich")["processed"], 0, "{st}");
    drop(s);

    // With the LLM: Classify and Enrich are durable steps of their own.
    let fake = FakeOllama::start(Behaviour::Good);
    fake.set_fields(&[("plate", "AB-123")]);
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("data"), &config(&[fake.url()]), &[]);
    let d = upload_text(&s, "car-2.txt", CAR);
    assert_eq!(d["type_source"], "llm", "{d}");
    let st = status(&s);
    assert_eq!(actor(&st, "classify")["processed"], 1, "{st}");
    assert_eq!(actor(&st, "enrich")["processed"], 1, "{st}");
    let kinds: Vec<String> = stage_events(&s, d["id"].as_str().unwrap())
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(kinds, ["extracted", "classified", "enriched", "indexed"]);
}
