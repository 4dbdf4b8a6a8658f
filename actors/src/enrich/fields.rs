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

use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

/// How a field's value is read and written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// `YYYY-MM-DD`.
    Date,
    /// A decimal string ("1234.56") with a `currency` (ISO 4217).
    Money,
    Number,
    Text,
    /// A person or organisation.
    Party,
    /// An invoice, order or customer number, a VAT id.
    Identifier,
    /// Checked by its checksum; written without spaces.
    Iban,
    Email,
    Phone,
    Url,
}

/// A field of a document type.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    pub name: String,
    pub kind: Kind,
    #[serde(default)]
    pub required: bool,
    /// Labels that introduce the value, most telling first. Empty: the
    /// built-in labels of a well-known name (`invoice_number`, `total`,
    /// `due_date`…), else the name with spaces for underscores.
    #[serde(default)]
    pub labels: Vec<String>,
}

/// A value found.
#[derive(Clone, Debug, PartialEq)]
pub struct Found {
    pub name: String,
    pub kind: Kind,
    pub value: String,
    pub currency: Option<String>,
    pub confidence: f32,
    /// `rule` or `llm`.
    pub source: &'static str,
}

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
            "invoice",
            "rechnungsnummer",
            "rechnungs-nr",
            "rechnung nr",
            "rechnung",
            "numéro de facture",
            "facture n°",
            "facture no",
            "facture",
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
const NOT_TOTAL: &[&str] = &[
    "vat", "tax", "tva", "mwst", "ust", "ht", "net", "excl", "hors", "netto", "items", "qty",
];

static DATE_NUMERIC: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b|\b(\d{1,2})([./])(\d{1,2})[./](\d{4}|\d{2})\b")
        .unwrap()
});
const MONTHS: &str = "january|february|march|april|may|june|july|august|september|october|november|december|jan|feb|mar|apr|jun|jul|aug|sept|sep|oct|nov|dec|januar|jänner|februar|märz|mär|mai|juni|juli|oktober|okt|dezember|dez|janvier|janv|février|févr|fevrier|mars|avril|avr|juin|juillet|juil|août|aout|septembre|octobre|novembre|décembre|decembre|déc";
static DATE_DAY_MONTH: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"(?i)\b(\d{{1,2}})(?:\.|st|nd|rd|th|er)?\s+({MONTHS})\.?,?\s+(\d{{4}})\b"
    ))
    .unwrap()
});
static DATE_MONTH_DAY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"(?i)\b({MONTHS})\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?,?\s+(\d{{4}})\b"
    ))
    .unwrap()
});
static AMOUNT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)(€|\$|£|\b(?:eur|usd|gbp|chf|jpy|cad|aud|sek|nok|dkk|pln|czk)\b)?\s*(-?\d{1,3}(?:[.,' \u{a0}]\d{3})+(?:[.,]\d{1,2})?|-?\d+(?:[.,]\d{1,2})?)\s*(€|\$|£|\b(?:eur|euro|euros|usd|gbp|chf|jpy|cad|aud|sek|nok|dkk|pln|czk)\b)?",
    )
    .unwrap()
});
static IBAN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b").unwrap());
static EMAIL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)\b[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,}\b").unwrap());
static URL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"(?i)\b(?:https?://|www\.)[^\s<>"')]+[^\s<>"').,;:]"#).unwrap());
static PHONE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,5}\)[ .-]?)?\d{2,5}(?:[ ./-]\d{2,5}){1,5}").unwrap()
});
static VAT_ID: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"\b(?:ATU\d{8}|BE ?0?\d{9}|DE ?\d{9}|DK ?\d{8}|ES ?[A-Z0-9]\d{7}[A-Z0-9]|FR ?[A-Z0-9]{2} ?\d{3} ?\d{3} ?\d{3}|GB ?\d{3} ?\d{4} ?\d{2}|IT ?\d{11}|NL ?\d{9}B\d{2}|CHE-?\d{3}\.\d{3}\.\d{3}|PL ?\d{10}|SE ?\d{12}|IE ?\d{7}[A-Z]{1,2}|LU ?\d{8}|PT ?\d{9})\b",
    )
    .unwrap()
});
static IDENTIFIER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[A-Za-z0-9][A-Za-z0-9/_.-]*\d[A-Za-z0-9/_.-]*|[A-Za-z0-9/_.-]*\d").unwrap()
});
static NUMBER: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"-?\d+(?:[.,]\d+)?").unwrap());

/// The month (1–12) of a name in English, German or French.
fn month(name: &str) -> Option<u32> {
    let n = name.to_lowercase();
    let n = n.trim_end_matches('.');
    let starts = [
        (1, &["jan", "jän"][..]),
        (2, &["feb", "fév", "fev"]),
        (3, &["mar", "mär"]),
        (4, &["apr", "avr"]),
        (5, &["may", "mai"]),
        (6, &["jun", "juin"]),
        (7, &["jul", "juil"]),
        (8, &["aug", "aoû", "aou"]),
        (9, &["sep"]),
        (10, &["oct", "okt"]),
        (11, &["nov"]),
        (12, &["dec", "dez", "déc"]),
    ];
    // "mars" (French March) and "mai" are checked before the prefixes.
    if n == "mars" {
        return Some(3);
    }
    if n == "juin" {
        return Some(6);
    }
    if n.starts_with("juil") {
        return Some(7);
    }
    starts
        .iter()
        .find(|(_, p)| p.iter().any(|p| n.starts_with(p)))
        .map(|(m, _)| *m)
}

fn valid_date(y: i32, m: u32, d: u32) -> Option<String> {
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => return None,
    };
    ((1..=days).contains(&d) && (1900..=2199).contains(&y)).then(|| format!("{y:04}-{m:02}-{d:02}"))
}

fn year(s: &str) -> i32 {
    let y: i32 = s.parse().unwrap_or(0);
    match (s.len(), y) {
        (2, 0..=69) => 2000 + y,
        (2, _) => 1900 + y,
        _ => y,
    }
}

/// The dates in a piece of text, in order, as `YYYY-MM-DD`, with where
/// each starts.
pub fn dates(text: &str, language: Option<&str>) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for c in DATE_NUMERIC.captures_iter(text) {
        let at = c.get(0).unwrap().start();
        let value = if let Some(y) = c.get(1) {
            valid_date(
                year(y.as_str()),
                c[2].parse().unwrap_or(0),
                c[3].parse().unwrap_or(0),
            )
        } else {
            let (a, b): (u32, u32) = (c[4].parse().unwrap_or(0), c[6].parse().unwrap_or(0));
            let y = year(&c[7]);
            // Dots are day-first everywhere; slashes are month-first in
            // English text unless the first number cannot be a month.
            let month_first = &c[5] == "/" && language == Some("eng") && a <= 12;
            let (m, d) = if month_first { (a, b) } else { (b, a) };
            valid_date(y, m, d).or_else(|| valid_date(y, d, m))
        };
        if let Some(v) = value {
            out.push((at, v));
        }
    }
    for c in DATE_DAY_MONTH.captures_iter(text) {
        if let Some(v) =
            month(&c[2]).and_then(|m| valid_date(year(&c[3]), m, c[1].parse().unwrap_or(0)))
        {
            out.push((c.get(0).unwrap().start(), v));
        }
    }
    for c in DATE_MONTH_DAY.captures_iter(text) {
        if let Some(v) =
            month(&c[1]).and_then(|m| valid_date(year(&c[3]), m, c[2].parse().unwrap_or(0)))
        {
            out.push((c.get(0).unwrap().start(), v));
        }
    }
    out.sort();
    out.dedup_by_key(|(at, _)| *at);
    out
}

fn currency_code(s: &str) -> Option<String> {
    Some(
        match s.to_lowercase().as_str() {
            "€" | "eur" | "euro" | "euros" => "EUR",
            "$" | "usd" => "USD",
            "£" | "gbp" => "GBP",
            other => return Some(other.to_uppercase()),
        }
        .to_string(),
    )
}

/// An amount as a decimal string: the last `.` or `,` followed by one or
/// two digits is the decimal mark, every other separator groups thousands.
pub fn decimal(s: &str) -> Option<String> {
    let s: String = s
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '\'')
        .collect();
    let (neg, s) = match s.strip_prefix('-') {
        Some(rest) => (true, rest.to_string()),
        None => (false, s),
    };
    let mark = s
        .rfind(['.', ','])
        .filter(|&i| (1..=2).contains(&(s.len() - i - 1)));
    let (int, frac) = match mark {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s.as_str(), ""),
    };
    let int: String = int.chars().filter(char::is_ascii_digit).collect();
    if int.is_empty() {
        return None;
    }
    let int = int.trim_start_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    let frac = format!("{frac:0<2}");
    Some(format!("{}{int}.{frac}", if neg { "-" } else { "" }))
}

/// The amounts in a piece of text: (start, decimal, currency).
pub fn amounts(text: &str) -> Vec<(usize, String, Option<String>)> {
    AMOUNT
        .captures_iter(text)
        .filter_map(|c| {
            let number = c.get(2)?;
            // Part of a date, a percentage or a longer number: not an amount.
            let after = &text[number.end()..];
            let before = &text[..number.start()];
            if after.starts_with(['%', '/'])
                || after.starts_with(|ch: char| ch == '.' || ch.is_ascii_digit())
                    && after[1..].starts_with(|ch: char| ch.is_ascii_digit())
                || before.ends_with(['/', '.', '-'])
                    && before[..before.len() - 1].ends_with(|ch: char| ch.is_ascii_digit())
            {
                return None;
            }
            let currency = c
                .get(1)
                .or(c.get(3))
                .and_then(|m| currency_code(m.as_str()));
            Some((number.start(), decimal(number.as_str())?, currency))
        })
        .collect()
}

/// Whether an IBAN's check digits hold (ISO 13616, mod 97).
pub fn iban_valid(iban: &str) -> bool {
    let s: String = iban.chars().filter(|c| !c.is_whitespace()).collect();
    if !(15..=34).contains(&s.len()) || !s.is_ascii() {
        return false;
    }
    let rotated = format!("{}{}", &s[4..], &s[..4]);
    let mut rem: u32 = 0;
    for c in rotated.chars() {
        let v = match c {
            '0'..='9' => c as u32 - '0' as u32,
            'A'..='Z' => c as u32 - 'A' as u32 + 10,
            _ => return false,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

fn ibans(text: &str) -> Vec<(usize, String)> {
    IBAN.find_iter(text)
        .filter_map(|m| {
            // The match may run on into the next word: shorten to a valid one.
            let compact: String = m.as_str().chars().filter(|c| *c != ' ').collect();
            (15..=compact.len())
                .rev()
                .map(|n| &compact[..n])
                .find(|c| iban_valid(c))
                .map(|c| (m.start(), c.to_string()))
        })
        .collect()
}

/// Reads the first value of `kind` in `s`.
fn read(kind: Kind, s: &str, cx: &Context) -> Option<(String, Option<String>)> {
    let s = s.trim_start_matches([' ', ':', '#', '.', '-', '\t']);
    match kind {
        Kind::Date => dates(s, cx.language)
            .into_iter()
            .next()
            .map(|d| (d.1, None)),
        Kind::Money => amounts(s).into_iter().next().map(|a| (a.1, a.2)),
        Kind::Number => NUMBER.find(s).map(|m| (m.as_str().replace(',', "."), None)),
        Kind::Iban => ibans(s).into_iter().next().map(|i| (i.1, None)),
        Kind::Email => EMAIL.find(s).map(|m| (m.as_str().to_string(), None)),
        Kind::Url => URL.find(s).map(|m| (m.as_str().to_string(), None)),
        Kind::Phone => PHONE
            .find(s)
            .filter(|m| m.as_str().chars().filter(char::is_ascii_digit).count() >= 7)
            .map(|m| (m.as_str().trim().to_string(), None)),
        Kind::Identifier => {
            if let Some(v) = VAT_ID.find(s) {
                return Some((v.as_str().replace(' ', ""), None));
            }
            let word = s.split_whitespace().next()?;
            IDENTIFIER
                .find(word)
                .filter(|m| m.start() == 0 && m.as_str().len() >= 3)
                .map(|m| (m.as_str().trim_end_matches(['.', ',']).to_string(), None))
        }
        Kind::Text | Kind::Party => {
            let v = s.trim();
            (!v.is_empty() && v.chars().any(char::is_alphabetic))
                .then(|| (v.chars().take(120).collect::<String>(), None))
        }
    }
}

/// `label` as a whole-word, any-case pattern, compiled once per label.
fn label_regex(label: &str) -> Regex {
    static CACHE: LazyLock<std::sync::RwLock<std::collections::HashMap<String, Regex>>> =
        LazyLock::new(Default::default);
    if let Some(re) = CACHE.read().unwrap_or_else(|e| e.into_inner()).get(label) {
        return re.clone();
    }
    let re = compile_label(label);
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

/// The fields of `specs` found in the text.
pub fn extract(text: &str, specs: &[FieldSpec], cx: &Context) -> Vec<Found> {
    let lines: Vec<&str> = text.lines().take(5_000).collect();
    // Most labels are not in a document at all: a plain search of the
    // lower-cased text rules them out before any regex runs.
    let lower = text.to_lowercase();
    let mut out: Vec<Found> = Vec::new();
    for spec in specs {
        if out.iter().any(|f| f.name == spec.name) {
            continue;
        }
        let labels: Vec<String> = if !spec.labels.is_empty() {
            spec.labels.clone()
        } else if !builtin_labels(&spec.name).is_empty() {
            builtin_labels(&spec.name)
                .iter()
                .map(|s| s.to_string())
                .collect()
        } else {
            vec![spec.name.replace('_', " ")]
        };
        let labels: Vec<String> = labels
            .into_iter()
            .filter(|l| lower.contains(&l.trim().to_lowercase()))
            .collect();
        let found = by_label(&lines, spec, &labels, cx).or_else(|| standalone(text, spec, cx));
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
    out
}

type Value = (String, Option<String>, f32);

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
                if spec.name == "total" {
                    let next = rest.trim_start_matches([' ', ':', '(', '-']).to_lowercase();
                    if NOT_TOTAL.iter().any(|w| {
                        next.starts_with(w)
                            && !next[w.len()..].starts_with(|c: char| c.is_alphabetic())
                    }) {
                        continue;
                    }
                }
                let found = read(spec.kind, rest, cx)
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
        (_, Kind::Phone) => PHONE
            .find_iter(text)
            .find(|m| {
                m.as_str().starts_with('+')
                    && m.as_str().chars().filter(char::is_ascii_digit).count() >= 7
            })
            .map(|m| (m.as_str().trim().to_string(), None, 0.6)),
        ("vat_id", _) => VAT_ID
            .find(text)
            .map(|m| (m.as_str().replace(' ', ""), None, 0.7)),
        ("date", Kind::Date) => dates(text, cx.language)
            .into_iter()
            .next()
            .map(|d| (d.1, None, 0.5)),
        ("issuer", _) => {
            if let Some(sender) = cx.sender {
                return Some((sender.to_string(), None, 0.8));
            }
            // The letterhead: the first line that reads like a name (a few
            // words, not a sentence).
            text.lines()
                .map(str::trim)
                .take(5)
                .find(|l| {
                    l.len() >= 3
                        && l.len() <= 80
                        && l.split_whitespace().count() <= 6
                        && l.chars().filter(|c| c.is_alphabetic()).count() * 2 > l.len()
                        && !l.contains([':', ';'])
                        && !l.ends_with(['.', '!', '?', ','])
                })
                .map(|l| (l.to_string(), None, 0.4))
        }
        _ => None,
    }
}

/// A value a user typed, checked and written the way its kind is stored:
/// dates in any form read here become `YYYY-MM-DD`, amounts a decimal
/// string, IBANs must pass their checksum.
pub fn normalize(
    kind: Kind,
    value: &str,
    currency: Option<&str>,
) -> Result<(String, Option<String>), String> {
    let v = value.trim();
    if v.is_empty() || v.len() > 1000 {
        return Err("a value of 1 to 1000 characters".into());
    }
    let currency = match currency.map(str::trim) {
        Some(c) if c.len() == 3 && c.chars().all(|c| c.is_ascii_alphabetic()) => {
            Some(c.to_ascii_uppercase())
        }
        Some(c) => {
            return Err(format!(
                "currency {c:?} is not an ISO 4217 code like \"EUR\""
            ))
        }
        None => None,
    };
    match kind {
        Kind::Date => dates(v, None)
            .into_iter()
            .next()
            .map(|d| (d.1, None))
            .ok_or_else(|| format!("{v:?} is not a date (YYYY-MM-DD)")),
        Kind::Money => match amounts(v).as_slice() {
            [(_, amount, c)] => Ok((amount.clone(), currency.or(c.clone()))),
            _ => Err(format!("{v:?} is not an amount like \"1234.56\"")),
        },
        Kind::Number => v
            .replace(',', ".")
            .parse::<f64>()
            .map(|_| (v.replace(',', "."), None))
            .map_err(|_| format!("{v:?} is not a number")),
        Kind::Iban => {
            let compact: String = v.chars().filter(|c| !c.is_whitespace()).collect();
            if iban_valid(&compact.to_ascii_uppercase()) {
                Ok((compact.to_ascii_uppercase(), None))
            } else {
                Err(format!(
                    "{v:?} is not an IBAN (its check digits do not match)"
                ))
            }
        }
        Kind::Email if !EMAIL.is_match(v) => Err(format!("{v:?} is not an e-mail address")),
        _ => Ok((v.to_string(), None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, kind: Kind) -> FieldSpec {
        FieldSpec {
            name: name.into(),
            kind,
            required: false,
            labels: Vec::new(),
        }
    }

    fn get<'a>(found: &'a [Found], name: &str) -> Option<&'a Found> {
        found.iter().find(|f| f.name == name)
    }

    #[test]
    fn dates_in_numeric_and_written_forms() {
        let d = |s: &str, lang: &str| dates(s, Some(lang)).into_iter().next().map(|d| d.1);
        let aug3 = Some("2014-08-03".to_string());
        assert_eq!(d("on 2014-08-03", "eng"), aug3);
        assert_eq!(d("am 03.08.2014", "deu"), aug3);
        assert_eq!(d("le 03/08/2014", "fra"), aug3);
        assert_eq!(d("on 08/03/2014", "eng"), aug3);
        assert_eq!(d("on 28/03/2014", "eng"), Some("2014-03-28".into()));
        assert_eq!(d("3 August 2014", "eng"), aug3);
        assert_eq!(d("Aug 3, 2014", "eng"), aug3);
        assert_eq!(d("August 3rd 2014", "eng"), aug3);
        assert_eq!(d("3. August 2014", "deu"), aug3);
        assert_eq!(d("3 août 2014", "fra"), aug3);
        assert_eq!(d("1er mars 2014", "fra"), Some("2014-03-01".into()));
        assert_eq!(d("12. Dezember 2023", "deu"), Some("2023-12-12".into()));
        assert_eq!(d("03.08.14", "deu"), aug3);
        assert_eq!(d("31.02.2014", "deu"), None);
        assert_eq!(d("version 1.2.3", "eng"), None);
    }

    #[test]
    fn amounts_in_both_decimal_conventions() {
        let a = |s: &str| amounts(s).into_iter().next().map(|a| (a.1, a.2));
        assert_eq!(
            a("1,234.56 USD"),
            Some(("1234.56".into(), Some("USD".into())))
        );
        assert_eq!(
            a("1.234,56 €"),
            Some(("1234.56".into(), Some("EUR".into())))
        );
        assert_eq!(a("€ 99"), Some(("99.00".into(), Some("EUR".into()))));
        assert_eq!(a("$12.5"), Some(("12.50".into(), Some("USD".into()))));
        assert_eq!(
            a("1 234,50 EUR"),
            Some(("1234.50".into(), Some("EUR".into())))
        );
        assert_eq!(
            a("CHF 1'250.00"),
            Some(("1250.00".into(), Some("CHF".into())))
        );
        assert_eq!(a("104,90"), Some(("104.90".into(), None)));
        assert_eq!(a("19%"), None);
    }

    #[test]
    fn iban_checksums() {
        assert!(iban_valid("DE89 3704 0044 0532 0130 00"));
        assert!(iban_valid("GB82WEST12345698765432"));
        assert!(iban_valid("FR7630006000011234567890189"));
        assert!(!iban_valid("DE89 3704 0044 0532 0130 01"));
        let found = ibans("IBAN: DE89 3704 0044 0532 0130 00 BIC: COBADEFFXXX");
        assert_eq!(found[0].1, "DE89370400440532013000");
    }

    #[test]
    fn an_invoice_in_english() {
        let text = "ACME Tools Ltd\n12 High Street, London\nINVOICE\nInvoice No: INV-2024-0042\n\
                    Invoice date: 14 March 2024\nDue date: April 13, 2024\n\
                    Description   Qty   Total\nHammer   2   £30.00\nSubtotal £30.00\nVAT (20%) £6.00\n\
                    Total £36.00\nVAT No: GB123456789\nIBAN: GB82 WEST 1234 5698 7654 32\n\
                    billing@acme-tools.co.uk  www.acme-tools.co.uk  +44 20 7946 0958";
        let specs: Vec<FieldSpec> = [
            spec("invoice_number", Kind::Identifier),
            spec("due_date", Kind::Date),
            spec("total", Kind::Money),
        ]
        .into_iter()
        .chain(common_fields())
        .collect();
        let f = extract(
            text,
            &specs,
            &Context {
                language: Some("eng"),
                sender: None,
            },
        );
        let v = |n: &str| get(&f, n).map(|f| f.value.as_str());
        assert_eq!(v("invoice_number"), Some("INV-2024-0042"));
        assert_eq!(v("date"), Some("2024-03-14"));
        assert_eq!(v("due_date"), Some("2024-04-13"));
        assert_eq!(v("total"), Some("36.00"));
        assert_eq!(get(&f, "total").unwrap().currency.as_deref(), Some("GBP"));
        assert_eq!(v("vat_id"), Some("GB123456789"));
        assert_eq!(v("iban"), Some("GB82WEST12345698765432"));
        assert_eq!(v("issuer"), Some("ACME Tools Ltd"));
        assert_eq!(v("email"), Some("billing@acme-tools.co.uk"));
        assert_eq!(v("url"), Some("www.acme-tools.co.uk"));
        assert_eq!(v("phone"), Some("+44 20 7946 0958"));
    }

    #[test]
    fn an_invoice_in_german_with_values_below_labels() {
        let text = "Muster GmbH\nRechnung\nRechnungsnummer:\nRE-7781\nRechnungsdatum: 03.08.2014\n\
                    Nettobetrag 1.000,00 EUR\nMwSt 19% 190,00 EUR\nGesamtbetrag\n1.190,00 EUR\n\
                    Zahlbar bis 17.08.2014\nUSt-IdNr.: DE123456789";
        let specs = [
            spec("invoice_number", Kind::Identifier),
            spec("date", Kind::Date),
            spec("due_date", Kind::Date),
            spec("total", Kind::Money),
            spec("vat_id", Kind::Identifier),
        ];
        let f = extract(
            text,
            &specs,
            &Context {
                language: Some("deu"),
                sender: None,
            },
        );
        let v = |n: &str| get(&f, n).map(|f| f.value.as_str());
        assert_eq!(v("invoice_number"), Some("RE-7781"));
        assert_eq!(get(&f, "invoice_number").unwrap().confidence, 0.75);
        assert_eq!(v("date"), Some("2014-08-03"));
        assert_eq!(v("due_date"), Some("2014-08-17"));
        assert_eq!(v("total"), Some("1190.00"));
        assert_eq!(v("vat_id"), Some("DE123456789"));
    }

    #[test]
    fn user_values_are_checked_by_kind() {
        assert_eq!(
            normalize(Kind::Date, "3 August 2014", None),
            Ok(("2014-08-03".into(), None))
        );
        assert!(normalize(Kind::Date, "soon", None).is_err());
        assert_eq!(
            normalize(Kind::Money, "1.234,56", Some("eur")),
            Ok(("1234.56".into(), Some("EUR".into())))
        );
        assert!(normalize(Kind::Money, "12 and 13", None).is_err());
        assert!(normalize(Kind::Money, "1", Some("euro")).is_err());
        assert!(normalize(Kind::Iban, "DE89 3704 0044 0532 0130 01", None).is_err());
        assert_eq!(
            normalize(Kind::Text, " ACME ", None),
            Ok(("ACME".into(), None))
        );
    }

    #[test]
    fn the_sender_is_the_issuer_of_an_email() {
        let f = extract(
            "Hello,\nplease find attached",
            &common_fields(),
            &Context {
                language: None,
                sender: Some("Alice <alice@example.org>"),
            },
        );
        assert_eq!(
            get(&f, "issuer").unwrap().value,
            "Alice <alice@example.org>"
        );
    }
}
