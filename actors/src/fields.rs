//! Built-in field extraction: values of a document type's fields found next
//! to their labels, in English, German and French.
//!
//! One mechanism for every field: each field has a kind (how its value is
//! read: a date, an amount, an IBAN…) and labels in priority order ("amount
//! due" before "total"). The value is the first one of its kind after the
//! label on the same line (confidence 0.9), in the cell right below it when
//! labels head columns (0.7), or on the next two lines when the label ends
//! its line (0.75).
//! A few kinds stand on their own when no label is found: an IBAN whose
//! checksum holds, e-mail addresses, URLs, VAT ids, the document's first
//! date, and the issuer (the e-mail's sender, else the letterhead's first
//! line), at lower confidence.

use std::sync::{Arc, LazyLock};

use regex::Regex;

use crate::model::{FieldSpec, Found, Kind};

mod issuer;
mod llm;
pub mod templates;
#[cfg(test)]
mod tests;
mod values;

pub use llm::{ask_llm, with_einvoice};
use values::*;
pub use values::{amounts, dates, decimal, iban_valid, normalize};

/// What the extraction reads besides the text.
#[derive(Default)]
pub struct Context<'a> {
    /// The text's ISO 639-3 language (`eng`, `deu`, `fra`): tells 03/08 apart.
    pub language: Option<&'a str>,
    /// An e-mail's sender (`From`).
    pub sender: Option<&'a str>,
}

/// Fields every document gets when found, whatever its type.
pub fn common_fields() -> Vec<FieldSpec> {
    [
        ("date", Kind::Date),
        ("issuer", Kind::Party),
        ("iban", Kind::Iban),
        ("vat_id", Kind::Identifier),
        ("email", Kind::Email),
        ("url", Kind::Url),
        ("phone", Kind::Phone),
    ]
    .into_iter()
    .map(|(name, kind)| FieldSpec {
        name: name.into(),
        kind,
        required: false,
        labels: Vec::new(),
    })
    .collect()
}

/// The built-in labels of the well-known field names.
fn builtin_labels(name: &str) -> &'static [&'static str] {
    match name {
        "invoice_number" => &[
            "invoice number",
            "invoice no",
            "invoice #",
            "invoice nr",
            "rechnungsnr",
            "faktura nr",
            "faktura vat nr",
            "numer faktury",
            "número de factura",
            "factura n",
            "numero fattura",
            "fattura n",
            "factuurnummer",
            "invoice",
            "rechnungsnummer",
            "rechnungs-nr",
            "rechnung nr",
            "rechnung",
            "numéro de facture",
            "facture n°",
            "facture no",
            "facture",
            "receipt number",
            "receipt no",
            "bill number",
            "bill no",
            "booking id",
            "booking reference",
        ],
        "order_number" => &[
            "order number",
            "order no",
            "order #",
            "purchase order",
            "po number",
            "bestellnummer",
            "bestell-nr",
            "auftragsnummer",
            "bon de commande",
            "commande n°",
            "n° de commande",
        ],
        "customer_number" => &[
            "customer number",
            "customer no",
            "customer id",
            "account number",
            "kundennummer",
            "kunden-nr",
            "n° de client",
            "numéro client",
        ],
        "date" => &[
            "invoice date",
            "date of issue",
            "issue date",
            "date",
            "dated",
            "rechnungsdatum",
            "datum",
            "date de facture",
            "date d'émission",
            "data wystawienia",
            "fecha de factura",
            "data fattura",
            "factuurdatum",
        ],
        "due_date" => &[
            "due date",
            "payment due",
            "due by",
            "due",
            "pay by",
            "fälligkeitsdatum",
            "fällig am",
            "fällig",
            "zahlbar bis",
            "date d'échéance",
            "échéance",
            "payable avant",
        ],
        "total" => &[
            "amount due",
            "total due",
            "balance due",
            "grand total",
            "total amount",
            "amount payable",
            "somme à payer",
            "montant à payer",
            "należność ogółem",
            "razem do zapłaty",
            "do zapłaty",
            "importe total",
            "totale fattura",
            "te betalen",
            "net à payer",
            "net a payer",
            "total ttc",
            "montant ttc",
            "gesamtbetrag",
            "rechnungsbetrag",
            "zu zahlen",
            "endbetrag",
            "total",
            "summe",
            "betrag",
            "montant",
        ],
        "net_amount" => &[
            "subtotal",
            "net amount",
            "total ht",
            "nettobetrag",
            "netto",
            "sous-total",
        ],
        "tax_amount" => &[
            "vat amount",
            "total vat",
            "tax",
            "mwst",
            "ust",
            "tva",
            "montant tva",
        ],
        "vat_id" => &[
            "vat id",
            "vat no",
            "vat number",
            "vat reg",
            "ust-idnr",
            "ust-id",
            "ust id",
            "umsatzsteuer-id",
            "n° tva intra",
            "n° tva",
            "tva intracommunautaire",
            "tva",
        ],
        "iban" => &["iban"],
        "issuer" => &[
            "from",
            "issued by",
            "seller",
            "vendor",
            "supplier",
            "verkäufer",
            "fournisseur",
        ],
        "employer" => &["employer", "arbeitgeber", "employeur"],
        "net_pay" => &[
            "net pay",
            "netto-verdienst",
            "auszahlungsbetrag",
            "net à payer",
        ],
        "period" => &[
            "period",
            "pay period",
            "zeitraum",
            "abrechnungszeitraum",
            "période",
        ],
        "email" => &["e-mail", "email"],
        "phone" => &["phone", "tel", "telephone", "telefon", "téléphone"],
        "url" => &["web", "website", "internet"],
        _ => &[],
    }
}

/// After a `total` label, these words mean a different amount ("Total VAT",
/// "Total HT" is before tax).
/// `label` as a whole-word, any-case pattern, compiled once per label.
/// The compiled regex of a label, shared (so its match caches are too).
fn label_regex(label: &str) -> Arc<Regex> {
    static CACHE: LazyLock<std::sync::RwLock<std::collections::HashMap<String, Arc<Regex>>>> =
        LazyLock::new(Default::default);
    if let Some(re) = CACHE.read().unwrap_or_else(|e| e.into_inner()).get(label) {
        return re.clone();
    }
    let re = Arc::new(compile_label(label));
    let mut cache = CACHE.write().unwrap_or_else(|e| e.into_inner());
    // Labels come from the configuration: a bounded set.
    if cache.len() < 10_000 {
        cache.insert(label.to_string(), re.clone());
    }
    re
}

fn compile_label(label: &str) -> Regex {
    let escaped = regex::escape(label.trim());
    let start = if label.starts_with(|c: char| c.is_alphanumeric()) {
        r"\b"
    } else {
        ""
    };
    let end = if label.ends_with(|c: char| c.is_alphanumeric()) {
        r"\b"
    } else {
        ""
    };
    Regex::new(&format!("(?i){start}{escaped}{end}")).expect("escaped label")
}

/// The labels of a field, most telling first.
fn labels_of(spec: &FieldSpec) -> Vec<String> {
    if !spec.labels.is_empty() {
        spec.labels.clone()
    } else if !builtin_labels(&spec.name).is_empty() {
        builtin_labels(&spec.name)
            .iter()
            .map(|s| s.to_string())
            .collect()
    } else {
        vec![spec.name.replace('_', " ")]
    }
}

/// The labels of a schema's fields, and one automaton that finds them all
/// in one pass over a document's lower-cased text. Built once per schema
/// (schemas come from the types in force: a bounded set).
struct SchemaLabels {
    /// Per field, its labels, each with its pattern number.
    labels: Vec<Vec<(String, usize)>>,
    finder: aho_corasick::AhoCorasick,
}

fn schema_labels(specs: &[FieldSpec]) -> Arc<SchemaLabels> {
    type Cache = std::collections::HashMap<Vec<FieldSpec>, Arc<SchemaLabels>>;
    static CACHE: LazyLock<std::sync::RwLock<Cache>> = LazyLock::new(Default::default);
    if let Some(s) = CACHE.read().unwrap_or_else(|e| e.into_inner()).get(specs) {
        return s.clone();
    }
    let mut patterns: Vec<String> = Vec::new();
    let labels = specs
        .iter()
        .map(|spec| {
            labels_of(spec)
                .into_iter()
                .map(|l| {
                    patterns.push(l.trim().to_lowercase());
                    (l, patterns.len() - 1)
                })
                .collect()
        })
        .collect();
    // A DFA: the overlapping search over every document is its hot loop.
    let finder = aho_corasick::AhoCorasick::builder()
        .kind(Some(aho_corasick::AhoCorasickKind::DFA))
        .build(&patterns)
        .expect("literal labels");
    let built = Arc::new(SchemaLabels { labels, finder });
    let mut cache = CACHE.write().unwrap_or_else(|e| e.into_inner());
    if cache.len() < 1_000 {
        cache.insert(specs.to_vec(), built.clone());
    }
    built
}

/// The fields of `specs` found in the text.
pub fn extract(text: &str, specs: &[FieldSpec], cx: &Context) -> Vec<Found> {
    let lines: Vec<&str> = text.lines().take(5_000).collect();
    // Most labels are not in a document at all: one pass of a literal
    // search over the lower-cased text rules them out before any regex runs.
    let lower = text.to_lowercase();
    let schema = schema_labels(specs);
    let mut present = vec![false; schema.finder.patterns_len()];
    for m in schema.finder.find_overlapping_iter(&lower) {
        present[m.pattern().as_usize()] = true;
    }
    let mut out: Vec<Found> = Vec::new();
    for (spec, labels) in specs.iter().zip(&schema.labels) {
        if out.iter().any(|f| f.name == spec.name) {
            continue;
        }
        let labels: Vec<String> = labels
            .iter()
            .filter(|(_, p)| present[*p])
            .map(|(l, _)| l.clone())
            .collect();
        // The issuer is weighed from all the evidence, unless the type
        // names its own labels for it.
        let weighed = spec.name == "issuer" && spec.labels.is_empty();
        let found = if weighed {
            standalone(text, spec, cx)
        } else {
            by_label(&lines, spec, &labels, cx).or_else(|| standalone(text, spec, cx))
        };
        if let Some((value, currency, confidence)) = found {
            out.push(Found {
                name: spec.name.clone(),
                kind: spec.kind,
                value,
                currency,
                confidence,
                source: "rule",
            });
        }
    }
    check_sum(&mut out, &lines, specs);
    out
}

type Value = (String, Option<String>, f32);

/// Words right before a date's label that make it another date than the
/// document's ("Order date", "Due date").
const OTHER_DATE_BEFORE: &[&str] = &[
    "order",
    "due",
    "delivery",
    "ship",
    "shipping",
    "shipment",
    "dispatch",
    "check",
    "payment",
    "expiry",
    "expiration",
    "birth",
    "start",
    "end",
    "booking",
    "print",
    "printed",
    "value",
];
/// Words right after it that do ("Date limite de paiement", "Date of delivery").
const OTHER_DATE_AFTER: &[&str] = &[
    "limite",
    "d'échéance",
    "d’échéance",
    "de livraison",
    "d'expédition",
    "de commande",
    "de paiement",
    "de naissance",
    "of delivery",
    "of order",
    "of birth",
    "of service",
    "due",
];

fn other_date(before: &str, rest: &str) -> bool {
    let last_word = before
        .trim_end()
        .rsplit(|c: char| !c.is_alphanumeric())
        .next()
        .unwrap_or("")
        .to_lowercase();
    let next = rest.trim_start_matches([' ', ':', '.']).to_lowercase();
    OTHER_DATE_BEFORE.contains(&last_word.as_str())
        || OTHER_DATE_AFTER.iter().any(|w| next.starts_with(w))
}

/// The value right of a label on its line. A total's line that is a row of
/// amounts in cells (net, tax, gross) gives its last cell's amount.
fn read_right_of(spec: &FieldSpec, rest: &str, cx: &Context) -> Option<(String, Option<String>)> {
    if spec.name == "total" && spec.kind == Kind::Money {
        let cells: Vec<(String, Option<String>)> = rest
            .split("  ")
            .filter_map(|cell| read(Kind::Money, cell, cx))
            .collect();
        if cells.len() >= 2 {
            return cells.last().cloned();
        }
    }
    read(spec.kind, rest, cx)
}

/// Where an invoice gives net and tax and the sum of the two is an amount
/// on one of its total's lines, that sum is the total.
fn check_sum(out: &mut Vec<Found>, lines: &[&str], specs: &[FieldSpec]) {
    let amount = |name: &str| {
        out.iter()
            .find(|f| f.name == name)
            .and_then(|f| f.value.parse::<f64>().ok())
    };
    let (Some(net), Some(tax)) = (amount("net_amount"), amount("tax_amount")) else {
        return;
    };
    let Some(spec) = specs
        .iter()
        .find(|s| s.name == "total" && s.kind == Kind::Money)
    else {
        return;
    };
    let sum = format!("{:.2}", net + tax);
    if out.iter().any(|f| f.name == "total" && f.value == sum) || tax <= 0.0 {
        return;
    }
    let labels: Vec<Arc<Regex>> = labels_of(spec).iter().map(|l| label_regex(l)).collect();
    let on_a_total_line = lines
        .iter()
        .any(|l| labels.iter().any(|re| re.is_match(l)) && amounts(l).iter().any(|a| a.1 == sum));
    if !on_a_total_line {
        return;
    }
    let currency = out
        .iter()
        .find(|f| f.name == "net_amount")
        .and_then(|f| f.currency.clone());
    out.retain(|f| f.name != "total");
    out.push(Found {
        name: spec.name.clone(),
        kind: Kind::Money,
        value: sum,
        currency,
        confidence: 0.9,
        source: "rule",
    });
}

/// The value after the most telling label found. Totals are read at their
/// last occurrence (the column header "Total" comes first, the sum last).
fn by_label(lines: &[&str], spec: &FieldSpec, labels: &[String], cx: &Context) -> Option<Value> {
    let last = spec.kind == Kind::Money;
    for label in labels {
        let re = label_regex(label);
        let mut hits: Vec<Value> = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            for m in re.find_iter(line) {
                let rest = &line[m.end()..];
                if spec.name == "date" && other_date(&line[..m.start()], rest) {
                    continue;
                }
                if spec.name == "total" {
                    let next = rest.trim_start_matches([' ', ':', '(', '-']).to_lowercase();
                    if NOT_TOTAL.iter().any(|w| {
                        next.starts_with(w)
                            && !next[w.len()..].starts_with(|c: char| c.is_alphabetic())
                    }) {
                        continue;
                    }
                }
                let found = read_right_of(spec, rest, cx)
                    .map(|(v, c)| (v, c, 0.9))
                    .or_else(|| {
                        // A header row: the value is in the cell right below.
                        let col = line[..m.start()].chars().count();
                        if col == 0 && rest.trim().len() <= 2 {
                            return None; // a label alone on its line
                        }
                        let width = m.as_str().chars().count();
                        let below: String = lines.get(i + 1)?.chars().skip(col).collect();
                        let cell = below.trim_start();
                        if below.len() - cell.len() > width + 2 {
                            return None;
                        }
                        let cell = cell.split("  ").next()?;
                        read(spec.kind, cell, cx).map(|(v, c)| (v, c, 0.7))
                    })
                    .or_else(|| {
                        // A label at the end of its line: the value is below it.
                        rest.trim().len().le(&2).then(|| {
                            lines[i + 1..]
                                .iter()
                                .take(2)
                                .find_map(|l| read(spec.kind, l, cx))
                                .map(|(v, c)| (v, c, 0.75))
                        })?
                    });
                if let Some(f) = found {
                    if !last {
                        return Some(f);
                    }
                    hits.push(f);
                }
            }
        }
        if let Some(f) = hits.pop() {
            return Some(f);
        }
    }
    None
}

/// Values of some kinds that need no label.
fn standalone(text: &str, spec: &FieldSpec, cx: &Context) -> Option<Value> {
    match (spec.name.as_str(), spec.kind) {
        (_, Kind::Iban) => ibans(text).into_iter().next().map(|i| (i.1, None, 0.9)),
        (_, Kind::Email) => EMAIL
            .find(text)
            .map(|m| (m.as_str().to_string(), None, 0.6)),
        (_, Kind::Url) => URL.find(text).map(|m| (m.as_str().to_string(), None, 0.6)),
        // Without a label only the international form: "03.08.2014" is a
        // date, not a number to call.
        (_, Kind::Phone) => PHONE_INTERNATIONAL
            .find_iter(text)
            .find(|m| m.as_str().chars().filter(char::is_ascii_digit).count() >= 7)
            .map(|m| (m.as_str().trim().to_string(), None, 0.6)),
        ("vat_id", _) => VAT_ID
            .find(text)
            .map(|m| (m.as_str().replace(' ', ""), None, 0.7)),
        ("date", Kind::Date) => dates(text, cx.language)
            .into_iter()
            .next()
            .map(|d| (d.1, None, 0.5)),
        ("issuer", _) => match cx.sender {
            Some(sender) => Some((sender.to_string(), None, 0.8)),
            None => issuer::find(text).map(|(name, confidence)| (name, None, confidence)),
        },
        _ => None,
    }
}
