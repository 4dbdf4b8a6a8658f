//! What a workflow says: when it runs (its triggers), on which documents
//! (its conditions) and what it does (its actions); checked when it is
//! stored, so that a bad rule is refused with what is wrong, and applied as
//! an edit that changes only what differs (so a redelivered event, or the
//! `indexed` event that follows the workflow's own edit, changes nothing).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::{Kind, UserField};
use crate::store::workflows::DocView;
use crate::store::Edit;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    /// Uploaded (or found inside another document).
    Added,
    Indexed,
    Failed,
    /// Changed by a person or a program (not by a workflow).
    Edited,
}

impl Trigger {
    /// The event stream's stage it runs on.
    pub fn stage(self) -> &'static str {
        match self {
            Trigger::Added => "queued",
            Trigger::Indexed => "indexed",
            Trigger::Failed => "failed",
            Trigger::Edited => "edited",
        }
    }
}

/// All must hold (an empty set holds for every document).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Conditions {
    /// The document's type is one of these.
    pub doc_type: Vec<String>,
    /// The document carries every one of these tags.
    pub tags: Vec<String>,
    /// Each field has this value (case and spacing aside; `*`: any value).
    pub fields: BTreeMap<String, String>,
    /// The file name matches this pattern (`*` any run, `?` one character;
    /// case aside).
    pub filename: Option<String>,
    /// The text matches this regular expression (case aside).
    pub text: Option<String>,
    /// The type's confidence is below this.
    pub confidence_below: Option<f64>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Actions {
    pub add_tags: Vec<String>,
    pub remove_tags: Vec<String>,
    pub set_type: Option<String>,
    /// Field values, as a person would set them.
    pub set_fields: BTreeMap<String, String>,
    /// A title from a template: `{field}` is the field's value (also
    /// `{doc_type}`, `{filename}`); not set while a field it names has none.
    pub set_title: Option<String>,
    /// Sends the event to this webhook of the workspace.
    pub webhook: Option<String>,
    /// Puts the document in the review queue.
    pub review: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowDef {
    pub workspace: String,
    pub triggers: Vec<Trigger>,
    #[serde(default)]
    pub conditions: Conditions,
    pub actions: Actions,
}

/// A workflow ready to run: its definition with its patterns compiled.
pub struct Workflow {
    pub name: String,
    pub def: WorkflowDef,
    filename: Option<regex::Regex>,
    text: Option<regex::Regex>,
}

const MAX_TAGS: usize = 100;

impl Workflow {
    /// Checks a definition; the error names what is wrong. `field_kind`
    /// tells each field's kind (for `set_fields`), `known_type` whether a
    /// type exists.
    pub fn compile(
        name: &str,
        def: WorkflowDef,
        field_kind: &dyn Fn(&str) -> Kind,
        known_type: &dyn Fn(&str) -> bool,
    ) -> Result<Workflow, String> {
        if name.is_empty()
            || name.len() > 64
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        {
            return Err(format!(
                "name {name:?}: 1 to 64 letters, digits, '-', '_' or '.'"
            ));
        }
        if def.triggers.is_empty() {
            return Err("triggers is empty; name some of added, indexed, failed, edited".into());
        }
        let c = &def.conditions;
        let a = &def.actions;
        for t in c.tags.iter().chain(&a.add_tags).chain(&a.remove_tags) {
            if t.trim().is_empty() || t.len() > 128 {
                return Err(format!("tag {t:?}: 1 to 128 characters"));
            }
        }
        if a.add_tags.len() + a.remove_tags.len() + c.tags.len() > MAX_TAGS {
            return Err(format!("at most {MAX_TAGS} tags in a workflow"));
        }
        if let Some(t) = a.add_tags.iter().find(|t| a.remove_tags.contains(t)) {
            return Err(format!(
                "actions: tag {t:?} is both in add_tags and in remove_tags"
            ));
        }
        for t in c.doc_type.iter().chain(&a.set_type) {
            if !known_type(t) {
                return Err(format!("there is no document type {t:?}"));
            }
        }
        if let Some(x) = c.confidence_below {
            if !(0.0..=1.0).contains(&x) {
                return Err(format!(
                    "conditions.confidence_below: {x} is not between 0 and 1"
                ));
            }
        }
        for (f, v) in &a.set_fields {
            crate::fields::normalize(field_kind(f), v, None)
                .map_err(|e| format!("actions.set_fields.{f}: {e}"))?;
        }
        if let Some(t) = &a.set_title {
            placeholders(t).map_err(|e| format!("actions.set_title: {e}"))?;
        }
        let filename = c
            .filename
            .as_deref()
            .map(glob)
            .transpose()
            .map_err(|e| format!("conditions.filename: {e}"))?;
        let text = c
            .text
            .as_deref()
            .map(|p| {
                regex::RegexBuilder::new(p)
                    .case_insensitive(true)
                    .size_limit(1 << 20)
                    .build()
            })
            .transpose()
            .map_err(|e| format!("conditions.text: {e}"))?;
        let touches = !a.add_tags.is_empty()
            || !a.remove_tags.is_empty()
            || a.set_type.is_some()
            || !a.set_fields.is_empty()
            || a.set_title.is_some()
            || a.webhook.is_some()
            || a.review;
        if !touches {
            return Err("actions is empty; it would do nothing".into());
        }
        Ok(Workflow {
            name: name.to_string(),
            def,
            filename,
            text,
        })
    }

    pub fn needs_text(&self) -> bool {
        self.text.is_some()
    }

    pub fn stages(&self) -> Vec<String> {
        self.def
            .triggers
            .iter()
            .map(|t| t.stage().to_string())
            .collect()
    }

    /// Whether the document is one the workflow is for.
    pub fn holds(&self, v: &DocView) -> bool {
        let c = &self.def.conditions;
        let d = &v.doc;
        if !c.doc_type.is_empty() && !d.doc_type.as_ref().is_some_and(|t| c.doc_type.contains(t)) {
            return false;
        }
        if !c.tags.iter().all(|t| v.tags.iter().any(|(_, n)| n == t)) {
            return false;
        }
        for (name, want) in &c.fields {
            let Some(f) = d.fields.iter().find(|f| &f.name == name) else {
                return false;
            };
            if want != "*" && squash(&f.value) != squash(want) {
                return false;
            }
        }
        if let Some(re) = &self.filename {
            if !re.is_match(&d.filename) {
                return false;
            }
        }
        if let Some(re) = &self.text {
            if !v.text.as_deref().is_some_and(|t| re.is_match(t)) {
                return false;
            }
        }
        if let Some(x) = c.confidence_below {
            if !d.confidence.is_some_and(|c| c < x) {
                return false;
            }
        }
        true
    }

    /// The edit that brings the document to what the actions say, or None
    /// when it is there already. `tag_ids` gives the id of each tag the
    /// actions add (made beforehand).
    pub fn edit(
        &self,
        v: &DocView,
        tag_ids: &BTreeMap<String, i64>,
        field_kind: &dyn Fn(&str) -> Kind,
    ) -> Option<Edit> {
        let a = &self.def.actions;
        let d = &v.doc;
        let mut e = Edit::default();
        let mut changed = false;
        let now: Vec<i64> = v.tags.iter().map(|(id, _)| *id).collect();
        let mut want: Vec<i64> = v
            .tags
            .iter()
            .filter(|(_, n)| !a.remove_tags.contains(n))
            .map(|(id, _)| *id)
            .collect();
        for t in &a.add_tags {
            if let Some(id) = tag_ids.get(t) {
                if !want.contains(id) {
                    want.push(*id);
                }
            }
        }
        want.sort_unstable();
        if want != now {
            e.tags = Some(want);
            changed = true;
        }
        if let Some(t) = &a.set_type {
            if d.doc_type.as_deref() != Some(t) || d.type_source.as_deref() != Some("user") {
                e.doc_type = Some(Some(t.clone()));
                changed = true;
            }
        }
        let mut fields = Vec::new();
        for (name, raw) in &a.set_fields {
            let kind = field_kind(name);
            let Ok((value, currency)) = crate::fields::normalize(kind, raw, None) else {
                continue;
            };
            let same = d
                .fields
                .iter()
                .any(|f| &f.name == name && f.value == value && f.source == "user");
            if !same {
                fields.push((
                    name.clone(),
                    Some(UserField {
                        kind,
                        value,
                        currency,
                    }),
                ));
            }
        }
        if !fields.is_empty() {
            e.fields = Some(fields);
            changed = true;
        }
        if let Some(t) = a.set_title.as_deref().and_then(|t| render(t, v)) {
            if d.title.as_deref() != Some(t.as_str()) {
                e.title = Some(Some(t));
                changed = true;
            }
        }
        if a.review && !d.needs_review {
            e.needs_review = Some(true);
            changed = true;
        }
        changed.then_some(e)
    }
}

/// Lower case, runs of white space as one space, trimmed.
fn squash(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// A file-name pattern as a regular expression: `*`, `?`, the rest literal.
fn glob(p: &str) -> Result<regex::Regex, String> {
    if p.is_empty() || p.len() > 256 {
        return Err("1 to 256 characters".into());
    }
    let mut re = String::from("(?i)^");
    for ch in p.chars() {
        match ch {
            '*' => re.push_str(".*"),
            '?' => re.push('.'),
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    re.push('$');
    regex::Regex::new(&re).map_err(|e| e.to_string())
}

/// The `{name}` placeholders of a title template.
fn placeholders(t: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut rest = t;
    while let Some(open) = rest.find(['{', '}']) {
        if rest.as_bytes()[open] == b'}' {
            return Err(format!("{t:?} has a '}}' with no '{{' before it"));
        }
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| format!("{t:?} has a '{{' that is not closed"))?;
        let name = &after[..close];
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(format!("{{{name}}} is not a field name"));
        }
        out.push(name.to_string());
        rest = &after[close + 1..];
    }
    if t.trim().is_empty() {
        return Err("the title is empty".into());
    }
    Ok(out)
}

/// The template with each placeholder's value; None while one has none.
fn render(t: &str, v: &DocView) -> Option<String> {
    let mut out = t.to_string();
    for name in placeholders(t).ok()? {
        let value = match name.as_str() {
            "doc_type" => v.doc.doc_type.clone(),
            "filename" => Some(v.doc.filename.clone()),
            f => v
                .doc
                .fields
                .iter()
                .find(|x| x.name == f)
                .map(|x| match &x.currency {
                    Some(c) if x.kind == "money" => format!("{} {c}", x.value),
                    _ => x.value.clone(),
                }),
        }?;
        out = out.replace(&format!("{{{name}}}"), &value);
    }
    Some(out.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(json: serde_json::Value) -> WorkflowDef {
        serde_json::from_value(json).unwrap()
    }

    fn compile(json: serde_json::Value) -> Result<Workflow, String> {
        Workflow::compile("w", def(json), &|_| Kind::Text, &|t| t == "invoice")
    }

    #[test]
    fn bad_rules_are_refused_naming_the_problem() {
        let base = |c: serde_json::Value, a: serde_json::Value| serde_json::json!({"workspace": "default", "triggers": ["indexed"], "conditions": c, "actions": a});
        for (json, names) in [
            (
                base(
                    serde_json::json!({"text": "(unclosed"}),
                    serde_json::json!({"review": true}),
                ),
                "conditions.text",
            ),
            (
                base(
                    serde_json::json!({"doc_type": ["nope"]}),
                    serde_json::json!({"review": true}),
                ),
                "nope",
            ),
            (
                base(serde_json::json!({}), serde_json::json!({})),
                "actions is empty",
            ),
            (
                base(
                    serde_json::json!({}),
                    serde_json::json!({"set_title": "{issuer"}),
                ),
                "not closed",
            ),
            (
                base(
                    serde_json::json!({}),
                    serde_json::json!({"add_tags": ["a"], "remove_tags": ["a"]}),
                ),
                "both",
            ),
            (
                base(
                    serde_json::json!({"confidence_below": 2.0}),
                    serde_json::json!({"review": true}),
                ),
                "confidence_below",
            ),
        ] {
            let e = compile(json.clone())
                .err()
                .unwrap_or_else(|| panic!("{json} compiled"));
            assert!(e.contains(names), "{json}: {e}");
        }
        let e = Workflow::compile(
            "w",
            def(serde_json::json!({"workspace": "default", "triggers": [], "actions": {"review": true}})),
            &|_| Kind::Text,
            &|_| true,
        )
        .err()
        .unwrap();
        assert!(e.contains("triggers"), "{e}");
    }

    #[test]
    fn a_title_template_names_fields_and_waits_for_their_values() {
        assert_eq!(
            placeholders("{issuer} – invoice {invoice_number}").unwrap(),
            ["issuer", "invoice_number"]
        );
        assert!(placeholders("a } b").is_err());
        assert!(placeholders("{Bad Name}").is_err());
        let g = glob("scan-*.PDF").unwrap();
        assert!(g.is_match("Scan-0001.pdf"));
        assert!(!g.is_match("xscan-1.pdf"));
    }
}
