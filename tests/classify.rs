//! The learned classifier: users' corrections through `PATCH` train it in
//! the background, its predictions carry a calibrated confidence and their
//! source, and the model survives a restart. Who wins: a rule the user
//! wrote (config or API) beats a confident model; a shipped default type's
//! keyword match types documents until the model has learned, then loses
//! to a confident prediction. Each workspace learns from its own
//! corrections only.

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

fn upload_in(s: &Server, workspace: &str, name: &str, text: &str) -> String {
    let id = upload_to(s, workspace, name, text);
    assert_eq!(wait_terminal(s, &id, WAIT)["stage"], "indexed");
    id
}

fn classifier_of(s: &Server, workspace: &str) -> Value {
    let (code, v) = get_json(&s.url(&format!("/api/v1/classifier?workspace={workspace}")));
    assert_eq!(code, 200, "{v}");
    v
}

/// A recipe that also hits two keywords of the shipped "manual" type.
const RECIPE_GUIDE: &str = "Chapter three of the baking guide: preheat the oven, whisk the eggs with sugar, fold in the flour and bake the cake.";

/// The shipped default types left in place, the built-in embedder on: the
/// "manual" type's keywords type a recipe before anything is learned; once
/// the model has learned recipes from the user's corrections, its
/// confident prediction beats that weak keyword match.
#[test]
fn a_default_types_weak_keyword_match_loses_to_a_confident_model() {
    let tmp = tempfile::tempdir().unwrap();
    let config = format!("{FAST_CONFIG}\n[pipeline.classify]\nretrain_delay_ms = 200\n");
    let table = embed_table();
    let s = Server::start(
        &tmp.path().join("data"),
        &config,
        &[("DOCPIPE_EMBED__TABLE", table.as_str())],
    );
    let d = doc(&s, &upload_text(&s, "guide0.txt", RECIPE_GUIDE));
    assert_eq!(
        (d["doc_type"].as_str(), d["type_source"].as_str()),
        (Some("manual"), Some("default_rule")),
        "{d}"
    );
    let mut ids = Vec::new();
    for (i, t) in RECIPES.iter().chain(&CARS).enumerate() {
        ids.push(upload_text(&s, &format!("{i}.txt"), t));
    }
    for (i, id) in ids.iter().enumerate() {
        set_type(&s, id, if i < 4 { "recipe" } else { "car" });
    }
    let c = wait_trained(&s, 8);
    assert_eq!(c["model"], "naive_bayes+meaning", "{c}");
    assert!(c["meaning_share"].as_f64().is_some(), "{c}");
    let d = doc(
        &s,
        &upload_text(&s, "guide1.txt", &format!("{RECIPE_GUIDE} Serve warm.")),
    );
    assert_eq!(
        (d["doc_type"].as_str(), d["type_source"].as_str()),
        (Some("recipe"), Some("model")),
        "{d}"
    );
    // A document the model has no word for and that a default type's rule
    // matches strongly enough keeps the default type.
    let letter = doc(
        &s,
        &upload_text(
            &s,
            "letter.txt",
            "Dear Sir, yours faithfully and sincerely, dear madam; sincerely yours, dear friend.",
        ),
    );
    assert_eq!(letter["doc_type"], "letter", "{letter}");
}

/// Each workspace's classifier learns from that workspace's corrections
/// only, and a reader of one workspace cannot see another's.
#[test]
fn each_workspace_learns_from_its_own_corrections() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("data"), &config(), &[]);
    let mut corrections = Vec::new();
    for (i, t) in RECIPES[..3].iter().enumerate() {
        corrections.push((upload_in(&s, "a", &format!("r{i}.txt"), t), "recipe"));
        corrections.push((upload_in(&s, "b", &format!("r{i}.txt"), t), "dessert"));
    }
    for (i, t) in CARS[..3].iter().enumerate() {
        corrections.push((upload_in(&s, "a", &format!("c{i}.txt"), t), "car"));
        corrections.push((upload_in(&s, "b", &format!("c{i}.txt"), t), "vehicle"));
    }
    for (id, t) in &corrections {
        set_type(&s, id, t);
    }
    wait_until(WAIT, "both workspaces' classifiers", || {
        classifier_of(&s, "a")["samples"] == 6 && classifier_of(&s, "b")["samples"] == 6
    });
    assert_eq!(
        classifier_of(&s, "a")["labels"],
        json!({"car": 3, "recipe": 3})
    );
    assert_eq!(
        classifier_of(&s, "b")["labels"],
        json!({"dessert": 3, "vehicle": 3})
    );
    let in_a = doc(&s, &upload_in(&s, "a", "r3.txt", RECIPES[3]));
    let in_b = doc(&s, &upload_in(&s, "b", "r3.txt", RECIPES[3]));
    let in_c = doc(&s, &upload_in(&s, "c", "r3.txt", RECIPES[3]));
    assert_eq!(in_a["doc_type"], "recipe", "{in_a}");
    assert_eq!(in_b["doc_type"], "dessert", "{in_b}");
    assert_eq!(in_c["doc_type"], Value::Null, "{in_c}");
    assert_eq!(classifier_of(&s, "c")["model"], Value::Null);

    // A reader of b sees b's classifier by default, and not a's.
    let (code, v) = post_json(
        &s,
        "/api/v1/tokens",
        json!({"name": "reader-b", "role": "reader", "workspaces": ["b"]}),
    );
    assert_eq!(code, 201, "{v}");
    let token = v["token"].as_str().unwrap().to_string();
    let as_b = |path: &str| {
        let (code, _, body) =
            reqwest::send(reqwest::anon_client().get(s.url(path)).bearer_auth(&token));
        (
            code,
            serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null),
        )
    };
    let (code, v) = as_b("/api/v1/classifier");
    assert_eq!((code, v["workspace"].as_str()), (200, Some("b")), "{v}");
    let (code, v) = as_b("/api/v1/classifier?workspace=a");
    assert_eq!(
        (code, v["code"].as_str()),
        (403, Some("workspace_forbidden")),
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
    // A rule made over the API wins too, over a prediction the model is
    // sure of.
    let (code, _, body) = reqwest::send(
        reqwest::async_client()
            .put(s.url("/api/v1/types/menu"))
            .json(&json!({"description": "A menu", "keywords": ["menu"]})),
    );
    assert_eq!(code, 201, "{}", String::from_utf8_lossy(&body));
    let sure = doc(
        &s,
        &upload_text(
            &s,
            "cake2.txt",
            "Whisk eggs with sugar, fold in flour, bake the cake in the oven.",
        ),
    );
    assert_eq!(sure["doc_type"], "recipe", "{sure}");
    let d = doc(
        &s,
        &upload_text(
            &s,
            "menu.txt",
            "Menu: whisk eggs with sugar, fold in flour, bake the cake in the oven.",
        ),
    );
    assert_eq!(
        (d["doc_type"].as_str(), d["type_source"].as_str()),
        (Some("menu"), Some("rule")),
        "{d}"
    );
    assert!(
        sure["confidence"].as_f64().unwrap() > d["confidence"].as_f64().unwrap(),
        "the model was surer ({sure}) than the rule ({d})"
    );
}
