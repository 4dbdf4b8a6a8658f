//! The learned classifier: users' corrections through `PATCH` train it in
//! the background, its predictions carry a calibrated confidence and their
//! source, and the model survives a restart.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(60);

/// No configured types: every type here is learned from corrections.
fn config() -> String {
    format!("types = []\n{FAST_CONFIG}\n[pipeline.classify]\nretrain_delay_ms = 200\n")
}

const RECIPES: [&str; 4] = [
    "Preheat the oven to 180 degrees. Whisk three eggs with sugar, fold in the flour and bake the sponge cake for 30 minutes.",
    "Simmer the tomatoes with garlic and basil, season with salt and pepper, then stir the sauce into the cooked pasta.",
    "Knead the dough with yeast, flour and warm water, let it rise for an hour and bake the bread until golden.",
    "Melt the butter, add chopped onions and fry gently; pour in the stock, simmer the soup and season to taste.",
];
const CARS: [&str; 4] = [
    "The engine misfires at idle: replace the spark plugs and check the ignition coils before the next service.",
    "Check the tyre pressure and the brake fluid level; the brake pads are worn and the discs need replacing.",
    "The gearbox grinds when shifting into second gear; the clutch may need adjusting at the garage.",
    "Change the engine oil and the oil filter every 15,000 km; top up the coolant and inspect the timing belt.",
];
const GARDEN: [&str; 3] = [
    "Prune the roses in early spring, mulch the flower beds and water the seedlings in the greenhouse.",
    "Sow the lettuce and carrot seeds in rows, weed the vegetable beds and compost the grass clippings.",
    "Plant the tulip bulbs in autumn, rake the leaves off the lawn and cut back the perennials in the border.",
];

fn upload_text(s: &Server, name: &str, text: &str) -> String {
    let id = upload_one(s, name, text.as_bytes().to_vec());
    let d = wait_terminal(s, &id, WAIT);
    assert_eq!(d["stage"], "indexed", "{d}");
    id
}

fn set_type(s: &Server, id: &str, doc_type: &str) {
    let (code, v) = patch_json(
        s,
        &format!("/api/v1/documents/{id}"),
        json!({ "doc_type": doc_type }),
    );
    assert_eq!(code, 200, "{v}");
}

fn classifier(s: &Server) -> Value {
    let (code, v) = get_json(&s.url("/api/v1/classifier"));
    assert_eq!(code, 200, "{v}");
    v
}

/// Waits until the classifier has learned from `samples` documents.
fn wait_trained(s: &Server, samples: u64) -> Value {
    let mut last = Value::Null;
    wait_until(
        WAIT,
        &format!("the classifier to learn {samples} documents"),
        || {
            last = classifier(s);
            last["samples"] == samples
        },
    );
    last
}

#[test]
fn corrections_train_the_classifier_and_change_the_next_prediction() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = Server::start(&tmp.path().join("data"), &config(), &[]);
    let c = classifier(&s);
    assert_eq!(c["model"], Value::Null, "{c}");
    assert_eq!(c["samples"], 0);

    // Before any correction nothing types a document.
    let first = upload_text(&s, "r0.txt", RECIPES[0]);
    let d = doc(&s, &first);
    assert_eq!(
        (d["doc_type"].clone(), d["type_source"].clone()),
        (Value::Null, Value::Null),
        "{d}"
    );

    // Three of each, corrected by hand.
    let mut ids = vec![first];
    for (i, t) in RECIPES[1..3].iter().enumerate() {
        ids.push(upload_text(&s, &format!("r{}.txt", i + 1), t));
    }
    for (i, t) in CARS[..3].iter().enumerate() {
        ids.push(upload_text(&s, &format!("c{i}.txt"), t));
    }
    for (i, id) in ids.iter().enumerate() {
        set_type(&s, id, if i < 3 { "recipe" } else { "car" });
    }
    let d = doc(&s, &ids[0]);
    assert_eq!(
        (
            d["doc_type"].as_str(),
            d["type_source"].as_str(),
            d["needs_review"].as_bool()
        ),
        (Some("recipe"), Some("user"), Some(false)),
        "{d}"
    );
    let c = wait_trained(&s, 6);
    assert_eq!(c["model"], "naive_bayes");
    assert_eq!(c["labels"], json!({"car": 3, "recipe": 3}));
    assert!(c["trained_at"].is_string(), "{c}");
    assert!(c["accuracy"].as_f64().unwrap() >= 0.5, "{c}");

    // New documents are typed by the model, with a confidence.
    let r = doc(&s, &upload_text(&s, "r3.txt", RECIPES[3]));
    assert_eq!(r["doc_type"], "recipe", "{r}");
    assert_eq!(r["type_source"], "model", "{r}");
    let conf = r["confidence"].as_f64().unwrap();
    assert!(conf > 0.5 && conf < 1.0, "{r}");
    assert_eq!(r["needs_review"], conf < 0.7, "{r}");
    let car = doc(&s, &upload_text(&s, "c3.txt", CARS[3]));
    assert_eq!(
        (car["doc_type"].as_str(), car["type_source"].as_str()),
        (Some("car"), Some("model")),
        "{car}"
    );

    // A gardening note is new to the model: it picks one of the two types
    // it knows. Two corrections later, the next one is "garden".
    let g0 = upload_text(&s, "g0.txt", GARDEN[0]);
    assert_ne!(doc(&s, &g0)["doc_type"], "garden");
    let g1 = upload_text(&s, "g1.txt", GARDEN[1]);
    set_type(&s, &g0, "garden");
    set_type(&s, &g1, "garden");
    let c = wait_trained(&s, 8);
    assert_eq!(c["labels"]["garden"], 2, "{c}");
    let g2 = doc(&s, &upload_text(&s, "g2.txt", GARDEN[2]));
    assert_eq!(
        (g2["doc_type"].as_str(), g2["type_source"].as_str()),
        (Some("garden"), Some("model")),
        "{g2}"
    );

    // The corrections are audit events, and the model survives a restart.
    let (_, events) = get_json(&s.url(&format!("/api/v1/documents/{g0}/events")));
    assert!(
        events.to_string().contains("garden"),
        "the correction is in the document's events: {events}"
    );
    let before = classifier(&s);
    assert!(s.stop().success());
    s.restart();
    assert_eq!(classifier(&s), before);
    let r = doc(
        &s,
        &upload_text(
            &s,
            "r4.txt",
            "Whisk the eggs and sugar, fold in flour, bake the cake.",
        ),
    );
    assert_eq!(
        (r["doc_type"].as_str(), r["type_source"].as_str()),
        (Some("recipe"), Some("model")),
        "{r}"
    );
}

/// The review queue: predictions below the threshold are listed by
/// `?flag=needs_review` and counted in the status; a correction takes a
/// document out of it; `reprocess --needs-review` types the rest again with
/// the model as it is now.
#[test]
fn unsure_types_are_listed_and_typed_again_once_the_model_has_learnt() {
    let tmp = tempfile::tempdir().unwrap();
    // Every prediction of the model is below a threshold of 1.
    let config = format!("{}review_threshold = 1.0\n", config());
    let s = Server::start(&tmp.path().join("data"), &config, &[]);
    let mut ids = Vec::new();
    for (i, t) in RECIPES[..3].iter().enumerate() {
        ids.push((upload_text(&s, &format!("r{i}.txt"), t), "recipe"));
    }
    for (i, t) in CARS[..3].iter().enumerate() {
        ids.push((upload_text(&s, &format!("c{i}.txt"), t), "car"));
    }
    for (id, t) in &ids {
        set_type(&s, id, t);
    }
    wait_trained(&s, 6);
    assert!(list_ids(&s, "flag=needs_review").is_empty());

    // A gardening note: the model only knows recipes and cars.
    let g0 = upload_text(&s, "g0.txt", GARDEN[0]);
    let d = doc(&s, &g0);
    assert!(
        d["needs_review"] == true && d["type_source"] == "model" && d["doc_type"] != "garden",
        "{d}"
    );
    assert_eq!(list_ids(&s, "flag=needs_review"), vec![g0.clone()]);
    assert_eq!(
        list_ids(&s, "flag=needs_review&stage=indexed"),
        vec![g0.clone()]
    );
    let (_, st) = get_json(&s.url("/api/v1/status"));
    assert_eq!(st["needs_review"], 1, "{st}");
    let (code, v) = get_json(&s.url("/api/v1/documents?flag=unsure"));
    assert_eq!(
        (code, v["code"].as_str()),
        (400, Some("invalid_parameter")),
        "{v}"
    );

    // Two more, corrected: they leave the queue and teach the model.
    let g1 = upload_text(&s, "g1.txt", GARDEN[1]);
    let g2 = upload_text(&s, "g2.txt", GARDEN[2]);
    assert_eq!(list_ids(&s, "flag=needs_review").len(), 3);
    set_type(&s, &g1, "garden");
    set_type(&s, &g2, "garden");
    assert_eq!(list_ids(&s, "flag=needs_review"), vec![g0.clone()]);
    wait_trained(&s, 8);

    let (code, stdout, stderr) = cli(&["reprocess", "--needs-review", "--server", &s.base]);
    assert!(
        code == 0 && stdout.contains("1 documents sent to be typed again"),
        "{stdout}{stderr}"
    );
    let mut d = Value::Null;
    wait_until(WAIT, "the unsure document to be typed again", || {
        d = doc(&s, &g0);
        d["stage"] == "indexed" && d["doc_type"] == "garden"
    });
    assert_eq!(d["type_source"], "model", "{d}");
    let (_, events) = get_json(&s.url(&format!("/api/v1/documents/{g0}/events")));
    let kinds: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert!(kinds.contains(&"reprocess_requested"), "{kinds:?}");
    assert_eq!(
        kinds.iter().filter(|k| **k == "classified").count(),
        2,
        "{kinds:?}"
    );
    // The corrected ones kept the type a person gave them.
    assert_eq!(doc(&s, &g1)["type_source"], "user");

    let (code, v) = post_json(&s, "/api/v1/reprocess", serde_json::json!({"unsure": true}));
    assert_eq!(
        (code, v["code"].as_str()),
        (400, Some("invalid_body")),
        "{v}"
    );
}

#[test]
fn a_matching_rule_wins_over_the_model() {
    let tmp = tempfile::tempdir().unwrap();
    let config = format!(
        "{FAST_CONFIG}\n[pipeline.classify]\nretrain_delay_ms = 200\n\n[[types]]\nname = \"invoice\"\ndescription = \"A bill\"\nkeywords = [\"invoice\"]\npatterns = []\n"
    );
    let s = Server::start(&tmp.path().join("data"), &config, &[]);
    let mut ids = Vec::new();
    for (i, t) in RECIPES[..2].iter().chain(&CARS[..2]).enumerate() {
        ids.push(upload_text(&s, &format!("{i}.txt"), t));
    }
    for (i, id) in ids.iter().enumerate() {
        set_type(&s, id, if i < 2 { "recipe" } else { "car" });
    }
    wait_trained(&s, 4);
    let d = doc(
        &s,
        &upload_text(
            &s,
            "inv.txt",
            "Invoice for the cake: bake, eggs, flour and sugar.",
        ),
    );
    assert_eq!(
        (d["doc_type"].as_str(), d["type_source"].as_str()),
        (Some("invoice"), Some("rule")),
        "{d}"
    );
    let d = doc(
        &s,
        &upload_text(&s, "cake.txt", "Bake the cake with eggs, flour and sugar."),
    );
    assert_eq!(
        (d["doc_type"].as_str(), d["type_source"].as_str()),
        (Some("recipe"), Some("model")),
        "{d}"
    );
}
