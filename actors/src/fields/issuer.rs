//! Who issued a document, when no e-mail sender says it: names the text
//! offers as the issuer, each scored by the evidence for it, the best kept.
//!
//! Candidates: a company name with its legal form ("… GmbH", "… Inc."),
//! the value of a seller's label ("Sold by", "Verkäufer"), the holder of the
//! account to pay into ("Titulaire du compte", "payable to"), the
//! letterhead's first name-like line, a name alone in the footer, and a word
//! of the text that is the domain of a web or e-mail address in it.
//! Evidence: how often the name recurs, whether an address's domain is the
//! name, and against it, a customer's label next to it ("Bill to").

use std::collections::HashMap;
use std::sync::LazyLock;

use regex::Regex;

use super::templates::{find_lower as find_word, floor};
use super::values::{EMAIL, URL};

/// A company name and its legal form, in the languages docpipe reads.
static LEGAL_NAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?:^|[^\p{L}\p{N}])((?:\p{Lu}[\p{L}\p{N}&'.-]*)(?:[ ](?:\p{Lu}[\p{L}\p{N}&'.-]*|&|de|of|and|und|et|\p{N}+)){0,5}),?[ ](Inc\b\.?|Ltd\b\.?|Limited\b|LLC\b|GmbH\b|AG\b|S\.A\.|SA\b|SAS\b|SARL\b|Sarl\b|S\.à r\.l\.|plc\b|PLC\b|B\.V\.|BV\b|N\.V\.|NV\b|S\.p\.A\.|SpA\b|S\.r\.l\.|Srl\b|KG\b|OHG\b|e\.K\.|UG\b|Pvt\.? Ltd\b\.?|Private Limited\b|Corp\b\.?|Corporation\b|Oy\b|AB\b|ApS\b|A/S\b|sp\. z o\.o\.|spółka akcyjna\b|S\.L\.)",
    )
    .unwrap()
});

/// Labels whose value is the seller.
const SELLER: &[&str] = &[
    "sold by",
    "seller",
    "vendor",
    "supplier",
    "issued by",
    "service provider",
    "verkäufer",
    "lieferant",
    "fournisseur",
    "vendeur",
    "sprzedawca",
    "proveedor",
    "emisor",
    "fornitore",
    "leverancier",
];

/// Labels whose value is who gets paid: the issuer, as a rule.
const PAYEE: &[&str] = &[
    "account holder",
    "account name",
    "beneficiary",
    "payable to",
    "in favor of",
    "in favour of",
    "kontoinhaber",
    "empfänger",
    "titulaire du compte",
    "bénéficiaire",
    "odbiorca",
];

/// Words near a name that make it the customer's.
const CUSTOMER: &[&str] = &[
    "bill to",
    "billed to",
    "ship to",
    "sold to",
    "invoice to",
    "invoiced to",
    "customer",
    "client",
    "billing address",
    "shipping address",
    "delivery address",
    "attn",
    "guest",
    "kunde",
    "rechnungsempfänger",
    "lieferanschrift",
    "destinataire",
    "nabywca",
    "odbiorca",
];

/// Words that title a document rather than name anyone.
const TITLE_WORDS: &[&str] = &[
    "invoice",
    "invoices",
    "receipt",
    "bill",
    "statement",
    "payment",
    "tax",
    "retail",
    "rechnung",
    "quittung",
    "facture",
    "reçu",
    "faktura",
    "paragon",
    "factura",
    "fattura",
    "page",
    "seite",
    "summary",
    "original",
    "copy",
];

/// Domains that say nothing about the issuer.
const COMMON_DOMAINS: &[&str] = &[
    "gmail",
    "googlemail",
    "yahoo",
    "hotmail",
    "outlook",
    "live",
    "icloud",
    "aol",
    "gmx",
    "web",
    "example",
    "paypal",
];

struct Candidate {
    /// The name as the text writes it, in its most telling form.
    name: String,
    /// How telling that form is (a legal name over a label's value…).
    form: u8,
    score: f32,
}

/// The issuer's name and its confidence, from the text alone.
pub(super) fn find(text: &str) -> Option<(String, f32)> {
    let lines: Vec<&str> = text.lines().take(3_000).collect();
    // ASCII lower case, so that offsets in it are offsets in the line.
    let lower: Vec<String> = lines.iter().map(|l| l.to_ascii_lowercase()).collect();
    let mut candidates: HashMap<String, Candidate> = HashMap::new();
    let mut add = |name: &str, form: u8, score: f32| {
        let name = clean(name);
        let key = key(&name);
        if key.chars().filter(|c| c.is_alphabetic()).count() < 2 {
            return;
        }
        let c = candidates.entry(key).or_insert(Candidate {
            name: name.clone(),
            form,
            score: 0.0,
        });
        c.score += score;
        if form > c.form {
            c.form = form;
            c.name = name;
        }
    };

    for line in &lines {
        for c in LEGAL_NAME.captures_iter(line) {
            let name = format!("{} {}", &c[1], &c[2]);
            if !is_title(&c[1]) {
                add(&name, 4, 2.0);
            }
        }
    }
    for (labels, score) in [(SELLER, 3.0), (PAYEE, 2.0)] {
        for (i, low) in lower.iter().enumerate() {
            for label in labels {
                let Some(at) = find_word(low, label) else {
                    continue;
                };
                let rest = &lines[i][floor(lines[i], at + label.len())..];
                let rest = first_cell(rest.trim_start_matches([' ', ':', '-', '–', '\t']));
                let value = if name_like(rest) {
                    Some(rest)
                } else if rest.is_empty() {
                    // The value below the label: the next name-like line,
                    // past a remark in brackets.
                    lines[i + 1..]
                        .iter()
                        .take(3)
                        .map(|l| first_cell(l.trim()))
                        .find(|l| !l.starts_with('(') && name_like(l))
                } else {
                    None
                };
                if let Some(v) = value {
                    add(v, 3, score);
                }
            }
        }
    }
    // The letterhead: the first name-like cell of the first lines, its
    // address cut off ("ACME GmbH - Street 1 - Town").
    if let Some(head) = lines
        .iter()
        .filter(|l| !l.trim().is_empty())
        .take(3)
        .map(|l| first_cell(l.trim()))
        .map(|l| l.split(" - ").next().unwrap_or(l))
        .map(strip_title)
        .find(|l| name_like(l))
    {
        add(head, 2, 1.5);
    }
    // A name alone on a line of the footer (past the first lines).
    let tail: Vec<&str> = lines
        .iter()
        .skip(8)
        .rev()
        .filter(|l| !l.trim().is_empty())
        .take(12)
        .copied()
        .collect();
    for l in tail {
        let l = l.trim();
        if first_cell(l) == l && name_like(l) && l.split_whitespace().count() <= 3 {
            add(l, 1, 1.0);
        }
    }
    // The domains of the addresses in the text, and the words that are one.
    let domains = domains(text, &lower);
    for d in &domains {
        for (i, low) in lower.iter().enumerate() {
            // The word itself, not an address it is part of.
            if let Some(at) = find_word(low, d).filter(|&at| {
                !low[..at].ends_with(['@', '.', '/']) && !low[at + d.len()..].starts_with(['@'])
            }) {
                let word = &lines[i][floor(lines[i], at)..floor(lines[i], at + d.len())];
                add(word, 1, 1.0);
                break;
            }
        }
    }

    let mut best: Option<(f32, String)> = None;
    for (key, c) in candidates {
        let mut score = c.score;
        let squashed: String = key.chars().filter(|c| c.is_alphanumeric()).collect();
        if domains
            .iter()
            .any(|d| d.len() >= 3 && (squashed.contains(d.as_str()) || d.contains(&squashed)))
        {
            score += 2.0;
        }
        let mut seen = 0;
        let mut customer = false;
        for (i, low) in lower.iter().enumerate() {
            if find_word(low, &key).is_some() {
                seen += 1;
                let above = i.checked_sub(1).map_or("", |j| lower[j].as_str());
                customer |= CUSTOMER
                    .iter()
                    .any(|w| find_word(low, w).is_some() || find_word(above, w).is_some());
            }
        }
        score += 0.5 * seen.min(6) as f32;
        if customer {
            score -= 6.0;
        }
        if best.as_ref().is_none_or(|(b, _)| score > *b) {
            best = Some((score, c.name));
        }
    }
    let (score, name) = best?;
    (score >= 2.0).then(|| (name, (0.3 + score / 20.0).min(0.85)))
}

/// Whether a piece of text reads like a name: a few words, mostly letters,
/// not a sentence, not a document's title.
fn name_like(s: &str) -> bool {
    let s = s.trim();
    let letters = s.chars().filter(|c| c.is_alphabetic()).count();
    s.len() >= 2
        && s.len() <= 80
        && s.split_whitespace().count() <= 6
        && letters * 2 > s.chars().count()
        && s.starts_with(|c: char| c.is_uppercase() || c.is_numeric())
        && !s.contains([':', ';', '@', '/'])
        && !s.ends_with(['.', '!', '?', ','])
        && !is_title(s)
        && !is_label(s)
}

/// Whether a piece of text is a column's or a field's label ("Bank Name",
/// "Account No"), not a name.
fn is_label(s: &str) -> bool {
    const LABEL_ENDS: &[&str] = &[
        "name", "number", "no", "nr", "address", "date", "code", "id", "details",
    ];
    s.rsplit(|c: char| !c.is_alphanumeric())
        .find(|w| !w.is_empty())
        .is_some_and(|w| LABEL_ENDS.contains(&w.to_ascii_lowercase().as_str()))
}

/// Whether every word is one that titles a document ("Payment Receipt").
fn is_title(s: &str) -> bool {
    s.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .all(|w| TITLE_WORDS.contains(&w.to_lowercase().as_str()))
}

/// A line's title words at its end cut off ("Amazon Web Services Invoice").
fn strip_title(s: &str) -> &str {
    let mut s = s.trim_end();
    while let Some((head, last)) = s.rsplit_once(' ') {
        if !TITLE_WORDS.contains(&last.to_lowercase().as_str()) {
            break;
        }
        s = head.trim_end();
    }
    s
}

/// The text up to a run of spaces (the next cell of a laid-out line).
fn first_cell(s: &str) -> &str {
    s.split("  ").next().unwrap_or(s).trim()
}

/// A name without what trails it: commas, colons, brackets.
fn clean(name: &str) -> String {
    name.trim()
        .trim_end_matches([',', ':', ';', '-', '–', '(', ' '])
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The key a name is counted under: lower case (ASCII, as the lines it is
/// looked for in), its legal form dropped.
fn key(name: &str) -> String {
    let lower = LEGAL_NAME
        .captures(name)
        .map_or(name, |c| c.get(1).map_or(name, |m| m.as_str()))
        .to_ascii_lowercase();
    lower
        .trim_end_matches(|c: char| !c.is_alphanumeric())
        .to_string()
}

/// The domain names (the label before the public suffix) of the web and
/// e-mail addresses in the text, but for mail providers and the addresses
/// of a line that credits a program ("Powered by …").
fn domains(text: &str, lower: &[String]) -> Vec<String> {
    let credits: Vec<&String> = lower
        .iter()
        .filter(|l| {
            ["powered by", "generated by", "created with", "made with"]
                .iter()
                .any(|w| l.contains(w))
        })
        .collect();
    let mut out: Vec<String> = Vec::new();
    let hosts = URL
        .find_iter(text)
        .map(|m| {
            let s = m.as_str().to_lowercase();
            let s = s.split("://").last().unwrap_or(&s).to_string();
            s.split(['/', '?', '#', ':'])
                .next()
                .unwrap_or("")
                .to_string()
        })
        .chain(
            EMAIL
                .find_iter(text)
                .map(|m| m.as_str().rsplit('@').next().unwrap_or("").to_lowercase()),
        );
    for host in hosts {
        let labels: Vec<&str> = host.split('.').filter(|l| !l.is_empty()).collect();
        if labels.len() < 2 {
            continue;
        }
        // "example.co.uk": the label before a short second-level suffix.
        let mut i = labels.len() - 2;
        if i > 0 && ["co", "com", "org", "net", "ac", "gov"].contains(&labels[i]) {
            i -= 1;
        }
        let d = labels[i].to_string();
        if d.len() < 3 || COMMON_DOMAINS.contains(&d.as_str()) || d == "www" {
            continue;
        }
        if credits.iter().any(|l| l.contains(&host)) {
            continue;
        }
        if !out.contains(&d) {
            out.push(d);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_legal_name_a_seller_label_and_the_domain_agree() {
        let text = "Bill to:\nBlue Ltd\nMain Street 1\n\nInvoice 42\nTotal 9.50\n\n\
                    Sold by: Harbour Tools GmbH\nwww.harbourtools.de  info@harbourtools.de\n\
                    Harbour Tools GmbH - Kaiserstr. 1 - Berlin";
        assert_eq!(find(text).unwrap().0, "Harbour Tools GmbH");
    }

    #[test]
    fn the_customer_block_does_not_issue() {
        let text =
            "Customer: Blue Ltd\nBlue Ltd\nInvoice 7\n\nAccount holder: Red Sails\nRed Sails";
        assert_eq!(find(text).unwrap().0, "Red Sails");
    }

    #[test]
    fn a_column_label_is_no_name() {
        assert!(is_label("Bank Name"));
        assert!(is_label("Account No."));
        assert!(!is_label("HDFC Bank"));
        assert!(!name_like("Bank Name"));
    }

    #[test]
    fn a_letterhead_loses_its_title_word() {
        let text = "Northwind Traders Invoice\nInvoice number: 5\nnorthwind traders thanks you";
        assert_eq!(find(text).unwrap().0, "Northwind Traders");
        assert_eq!(find("Payment Receipt\nthe amount is 5"), None);
    }
}
