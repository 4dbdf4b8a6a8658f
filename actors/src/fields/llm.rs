//! Fields from outside the rules: an e-invoice embedded in the document, and
//! the LLM's answer, weighed against what the rules found.

use super::normalize;
use crate::llm::{Asked, Llm};
use crate::model::{FieldSpec, Found, Kind};

/// The values of an e-invoice embedded in the document (exact, confidence
/// 1) in place of those read from its text.
pub fn with_einvoice(
    mut found: Vec<Found>,
    einvoice: &serde_json::Value,
    specs: &[FieldSpec],
) -> Vec<Found> {
    let Some(values) = einvoice.as_object() else {
        return found;
    };
    let currency = values.get("currency").and_then(|c| c.as_str());
    for (name, value) in values {
        let Some(value) = value.as_str() else {
            continue;
        };
        if matches!(name.as_str(), "format" | "currency") {
            continue;
        }
        let kind = specs
            .iter()
            .find(|s| &s.name == name)
            .map(|s| s.kind)
            .unwrap_or(match name.as_str() {
                "total" | "amount_due" | "net_amount" | "tax_amount" => Kind::Money,
                "date" | "due_date" => Kind::Date,
                "recipient" | "issuer" => Kind::Party,
                "iban" => Kind::Iban,
                _ => Kind::Identifier,
            });
        let Ok((value, _)) = normalize(kind, value, None) else {
            continue;
        };
        found.retain(|f| &f.name != name);
        found.push(Found {
            name: name.clone(),
            kind,
            value,
            currency: (kind == Kind::Money)
                .then(|| currency.map(str::to_string))
                .flatten(),
            confidence: 1.0,
            source: "rule",
        });
    }
    found
}

/// Asks the LLM for the type's fields and weighs its values with the
/// rules': the same value → 0.95; a value the rules did not find → 0.7;
/// different values → the rules' stands when they read it beside or below
/// its label (≥ 0.75), else the LLM's at 0.6. An e-invoice's values
/// (confidence 1) are never replaced. Values are checked against their kind
/// like a user's; the ones that fail are dropped.
pub async fn ask_llm(
    llm: &Llm,
    doc_type: &str,
    description: &str,
    specs: &[FieldSpec],
    text: &str,
    found: Vec<Found>,
) -> Asked<Vec<Found>> {
    let list: String = specs
        .iter()
        .map(|f| format!("- {} ({})\n", f.name, f.kind.as_str()))
        .collect();
    let system = format!(
        "You read the fields of a document of type {doc_type:?} ({description}). The fields are:\n{list}\
         Answer with JSON that has every field name as a key and, as its value, the text of the value \
         as the document gives it (dates as YYYY-MM-DD, amounts as digits with a decimal point), \
         or null when the document does not give it."
    );
    let user = crate::llm::truncate(text, llm.config().max_text_chars).to_string();
    let properties: serde_json::Map<String, serde_json::Value> = specs
        .iter()
        .map(|f| {
            (
                f.name.clone(),
                serde_json::json!({"type": ["string", "null"]}),
            )
        })
        .collect();
    let names: Vec<&str> = specs.iter().map(|f| f.name.as_str()).collect();
    let schema = serde_json::json!({
        "type": "object",
        "properties": properties,
        "required": names,
    });
    llm.ask(&system, &user, &schema, |v| {
        let obj = v.as_object().ok_or("expected a JSON object")?;
        if let Some(k) = obj.keys().find(|k| !names.contains(&k.as_str())) {
            return Err(format!("{k:?} is not one of the fields {names:?}"));
        }
        let mut out: Vec<Found> = found.clone();
        for spec in specs {
            let value = match obj.get(&spec.name) {
                None => return Err(format!("the field {:?} is missing", spec.name)),
                Some(serde_json::Value::Null) => continue,
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(serde_json::Value::Number(n)) => n.to_string(),
                Some(other) => {
                    return Err(format!("{:?} is {other}, not a string or null", spec.name))
                }
            };
            let Ok((value, currency)) = normalize(spec.kind, &value, None) else {
                continue;
            };
            let by_rule = out.iter().position(|f| f.name == spec.name);
            let llm_value = |confidence: f32, currency: Option<String>| Found {
                name: spec.name.clone(),
                kind: spec.kind,
                value: value.clone(),
                currency,
                confidence,
                source: "llm",
            };
            match by_rule {
                None => out.push(llm_value(0.7, currency)),
                Some(i) if out[i].confidence >= 1.0 => {}
                Some(i) if out[i].value == value => {
                    let c = out[i].currency.clone().or(currency);
                    out[i] = llm_value(0.95, c);
                }
                Some(i) if out[i].confidence >= 0.75 => {}
                Some(i) => out[i] = llm_value(0.6, currency),
            }
        }
        Ok(out)
    })
    .await
}
