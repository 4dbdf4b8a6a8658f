//! Invoices and receipts generated in several layouts, languages and number
//! formats, as text and as PDF, each with the fields it truly holds. Used by
//! `tests/fields.rs` and `benches/fields.rs`.

#![allow(dead_code)]

use std::collections::BTreeMap;

/// A generated document and the values of its fields.
pub struct Sample {
    pub name: String,
    pub text: String,
    pub expected: BTreeMap<&'static str, String>,
    /// The expected currency of `total`.
    pub currency: &'static str,
    /// Laid out in columns (labels on one line, their values on the next,
    /// side by side), which the built-in rules do not read.
    pub columns: bool,
}

struct Lang {
    code: &'static str,
    invoice: &'static str,
    receipt: &'static str,
    number: &'static str,
    date: &'static str,
    due: &'static str,
    total: &'static str,
    net: &'static str,
    vat: &'static str,
    vat_id: &'static str,
    thanks: &'static str,
    months: [&'static str; 12],
}

const EN: Lang = Lang {
    code: "en",
    invoice: "INVOICE",
    receipt: "RECEIPT",
    number: "Invoice No.",
    date: "Invoice date",
    due: "Due date",
    total: "Amount due",
    net: "Subtotal",
    vat: "VAT 20%",
    vat_id: "VAT No",
    thanks: "Thank you for your business.",
    months: [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ],
};
const DE: Lang = Lang {
    code: "de",
    invoice: "RECHNUNG",
    receipt: "QUITTUNG",
    number: "Rechnungsnummer",
    date: "Rechnungsdatum",
    due: "Zahlbar bis",
    total: "Gesamtbetrag",
    net: "Nettobetrag",
    vat: "MwSt. 19%",
    vat_id: "USt-IdNr.",
    thanks: "Vielen Dank für Ihren Auftrag.",
    months: [
        "Januar",
        "Februar",
        "März",
        "April",
        "Mai",
        "Juni",
        "Juli",
        "August",
        "September",
        "Oktober",
        "November",
        "Dezember",
    ],
};
const FR: Lang = Lang {
    code: "fr",
    invoice: "FACTURE",
    receipt: "REÇU",
    number: "Facture n°",
    date: "Date de facture",
    due: "Date d'échéance",
    total: "Net à payer",
    net: "Total HT",
    vat: "TVA 20%",
    vat_id: "N° TVA",
    thanks: "Merci de votre confiance.",
    months: [
        "janvier",
        "février",
        "mars",
        "avril",
        "mai",
        "juin",
        "juillet",
        "août",
        "septembre",
        "octobre",
        "novembre",
        "décembre",
    ],
};

const ISSUERS: [&str; 4] = [
    "Northwind Traders Ltd",
    "Muster Handwerk GmbH",
    "Atelier Dupont SARL",
    "Blue Harbour Supplies",
];
const IBANS: [&str; 4] = [
    "GB82 WEST 1234 5698 7654 32",
    "DE89 3704 0044 0532 0130 00",
    "FR76 3000 6000 0112 3456 7890 189",
    "NL91 ABNA 0417 1643 00",
];
const VAT_IDS: [&str; 4] = [
    "GB123456789",
    "DE811569869",
    "FR40303265045",
    "NL123456789B01",
];

/// Amount with the language's conventions: "1,234.56" or "1.234,56".
fn money(cents: u64, lang: &Lang, currency: &str) -> String {
    let (int, frac) = (cents / 100, cents % 100);
    let digits = int.to_string();
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(if lang.code == "en" {
                ','
            } else if lang.code == "fr" {
                ' '
            } else {
                '.'
            });
        }
        grouped.push(c);
    }
    let dec = if lang.code == "en" { '.' } else { ',' };
    match (lang.code, currency) {
        ("en", "GBP") => format!("£{grouped}{dec}{frac:02}"),
        ("en", "USD") => format!("${grouped}{dec}{frac:02}"),
        (_, "EUR") => format!("{grouped}{dec}{frac:02} €"),
        _ => format!("{grouped}{dec}{frac:02} {currency}"),
    }
}

/// A date in one of the forms people write.
fn date(y: u32, m: u32, d: u32, lang: &Lang, style: usize) -> String {
    let month = lang.months[m as usize - 1];
    match (lang.code, style % 3) {
        (_, 0) => format!("{y:04}-{m:02}-{d:02}"),
        ("en", 1) => format!("{month} {d}, {y}"),
        ("en", _) => format!("{d} {month} {y}"),
        ("de", 1) => format!("{d:02}.{m:02}.{y}"),
        ("de", _) => format!("{d}. {month} {y}"),
        (_, 1) => format!("{d:02}/{m:02}/{y}"),
        _ => format!("{d} {month} {y}"),
    }
}

/// `n` documents: invoices (two layouts: label and value on one line, or
/// the value on the line below) and receipts, cycling through English,
/// German and French, currencies and date forms.
pub fn samples(n: usize) -> Vec<Sample> {
    let langs = [&EN, &DE, &FR];
    (0..n)
        .map(|i| {
            let lang = langs[i % 3];
            // 0, 1: invoices with a value beside or below its label; 2: a
            // receipt; 3: an invoice in columns.
            let layout = (i / 3) % 4;
            let k = i % 4;
            let currency = match (lang.code, i % 2) {
                ("en", 0) => "GBP",
                ("en", _) => "USD",
                _ => "EUR",
            };
            let net = 1_000 + (i as u64 * 7_919) % 250_000;
            let tax = net / 5;
            let total = net + tax;
            let (y, m, d) = (
                2023 + (i % 3) as u32,
                1 + (i % 12) as u32,
                1 + (i * 7 % 28) as u32,
            );
            let (dm, dd) = (if m == 12 { 1 } else { m + 1 }, d);
            let dy = if m == 12 { y + 1 } else { y };
            let number = format!("{}-{}-{:04}", ["INV", "RE", "F"][i % 3], y, 17 + i * 13);
            let issuer = ISSUERS[k];
            let mut expected = BTreeMap::new();
            expected.insert("issuer", issuer.to_string());
            expected.insert("date", format!("{y:04}-{m:02}-{d:02}"));
            expected.insert("total", format!("{}.{:02}", total / 100, total % 100));
            let lines: Vec<String> = if layout == 3 {
                expected.insert("invoice_number", number.clone());
                expected.insert("due_date", format!("{dy:04}-{dm:02}-{dd:02}"));
                expected.insert("iban", IBANS[k].replace(' ', ""));
                vec![
                    issuer.to_string(),
                    lang.invoice.to_string(),
                    format!("{:<24}{:<24}{}", lang.number, lang.date, lang.due),
                    format!(
                        "{:<24}{:<24}{}",
                        number,
                        date(y, m, d, lang, i),
                        date(dy, dm, dd, lang, i + 1)
                    ),
                    format!("{:<24}{:<24}{}", lang.net, lang.vat, lang.total),
                    format!(
                        "{:<24}{:<24}{}",
                        money(net, lang, currency),
                        money(tax, lang, currency),
                        money(total, lang, currency)
                    ),
                    format!("IBAN {}", IBANS[k]),
                ]
            } else if layout < 2 {
                expected.insert("invoice_number", number.clone());
                expected.insert("due_date", format!("{dy:04}-{dm:02}-{dd:02}"));
                expected.insert("iban", IBANS[k].replace(' ', ""));
                expected.insert("vat_id", VAT_IDS[k].to_string());
                let pair = |label: &str, value: String| -> Vec<String> {
                    if layout == 0 {
                        vec![format!("{label}: {value}")]
                    } else {
                        vec![format!("{label}:"), value]
                    }
                };
                let mut l = vec![
                    issuer.to_string(),
                    format!(
                        "{} {}",
                        10 + k,
                        [
                            "High Street",
                            "Hauptstraße",
                            "rue de la Paix",
                            "Harbour Road"
                        ][k]
                    ),
                    String::new(),
                    lang.invoice.to_string(),
                ];
                l.extend(pair(lang.number, number.clone()));
                l.extend(pair(lang.date, date(y, m, d, lang, i)));
                l.extend(pair(lang.due, date(dy, dm, dd, lang, i + 1)));
                l.push(String::new());
                l.push(format!("1 x Service {i}    {}", money(net, lang, currency)));
                l.push(format!("{}: {}", lang.net, money(net, lang, currency)));
                l.push(format!("{}: {}", lang.vat, money(tax, lang, currency)));
                l.extend(pair(lang.total, money(total, lang, currency)));
                l.push(String::new());
                l.push(format!("IBAN: {}", IBANS[k]));
                l.push(format!("{}: {}", lang.vat_id, VAT_IDS[k]));
                l.push(lang.thanks.to_string());
                l
            } else {
                vec![
                    issuer.to_string(),
                    lang.receipt.to_string(),
                    date(y, m, d, lang, i),
                    format!("2 x Item {i}    {}", money(net, lang, currency)),
                    format!("{}: {}", lang.vat, money(tax, lang, currency)),
                    format!(
                        "{} {}",
                        ["TOTAL", "SUMME", "TOTAL TTC"][i % 3],
                        money(total, lang, currency)
                    ),
                    lang.thanks.to_string(),
                ]
            };
            Sample {
                name: format!(
                    "{}-{}-{i}",
                    if layout == 2 { "receipt" } else { "invoice" },
                    lang.code
                ),
                text: lines.join("\n"),
                expected,
                currency,
                columns: layout == 3,
            }
        })
        .collect()
}

/// A one-page PDF showing the lines of `text` in Helvetica (WinAnsi).
pub fn pdf(text: &str) -> Vec<u8> {
    let mut content = b"BT /F1 11 Tf 14 TL 56 780 Td\n".to_vec();
    for line in text.lines() {
        content.push(b'(');
        for c in line.chars() {
            match c {
                '(' | ')' | '\\' => {
                    content.push(b'\\');
                    content.push(c as u8);
                }
                '€' => content.extend_from_slice(b"\\200"),
                c if (c as u32) < 0x80 => content.push(c as u8),
                // Latin-1 letters are the same bytes in WinAnsi.
                c if (c as u32) < 0x100 => {
                    content.extend_from_slice(format!("\\{:03o}", c as u32).as_bytes())
                }
                _ => content.push(b'?'),
            }
        }
        content.extend_from_slice(b") Tj T*\n");
    }
    content.extend_from_slice(b"ET");
    let mut stream = format!("<< /Length {} >>\nstream\n", content.len()).into_bytes();
    stream.extend_from_slice(&content);
    stream.extend_from_slice(b"\nendstream");
    pdf_file(&[
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        b"<< /Type /Pages /Count 1 /Kids [3 0 R] >>".to_vec(),
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>".to_vec(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>".to_vec(),
        stream,
    ])
}

/// A PDF of the given objects (numbered from 1; the first is the catalog),
/// with its cross-reference table and trailer.
pub fn pdf_file(objects: &[Vec<u8>]) -> Vec<u8> {
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::with_capacity(objects.len());
    for (i, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(b"\nendobj\n");
    }
    let xref = out.len();
    out.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f \n", offsets.len() + 1).as_bytes(),
    );
    for o in &offsets {
        out.extend_from_slice(format!("{o:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            offsets.len() + 1
        )
        .as_bytes(),
    );
    out
}
