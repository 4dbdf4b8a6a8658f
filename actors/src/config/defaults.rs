//! The document types docpipe ships with, and their fields.

use super::{Matching, TypeConfig};
use crate::model::{FieldSpec, Kind};

/// The document types docpipe ships with; users replace them in config.
pub fn default_types() -> Vec<TypeConfig> {
    let t = |name: &str, description: &str, keywords: &[&str], patterns: &[&str]| TypeConfig {
        name: name.into(),
        description: description.into(),
        matching: Matching::Any,
        keywords: keywords.iter().map(|s| s.to_string()).collect(),
        patterns: patterns.iter().map(|s| s.to_string()).collect(),
        fields: default_fields(name),
    };
    vec![
        t(
            "invoice",
            "A bill asking for payment for goods or services",
            &[
                "invoice",
                "amount due",
                "rechnung",
                "facture",
                "vat",
                "bill to",
            ],
            &[r"(?i)invoice\s*(no|number|#)"],
        ),
        t(
            "receipt",
            "Proof of a payment already made",
            &[
                "receipt",
                "quittung",
                "reçu",
                "thank you for your purchase",
                "change due",
            ],
            &[],
        ),
        t(
            "contract",
            "An agreement between parties",
            &[
                "agreement",
                "contract",
                "hereinafter",
                "terms and conditions",
                "vertrag",
            ],
            &[r"(?i)the parties agree"],
        ),
        t(
            "letter",
            "Correspondence addressed to a person",
            &["dear", "sincerely", "yours faithfully", "sehr geehrte"],
            &[],
        ),
        t(
            "email",
            "An e-mail message",
            &[],
            &[
                r"(?m)^From: .+",
                r"(?m)^Subject: .+",
                r"(?m)^Message-ID: .+",
            ],
        ),
        t(
            "bank_statement",
            "A statement of a bank account's transactions",
            &[
                "account statement",
                "bank statement",
                "kontoauszug",
                "relevé de compte",
                "opening balance",
                "closing balance",
            ],
            &[],
        ),
        t(
            "payslip",
            "A statement of pay for a period of work",
            &[
                "payslip",
                "pay slip",
                "net pay",
                "gehaltsabrechnung",
                "lohnabrechnung",
                "bulletin de paie",
                "bulletin de salaire",
            ],
            &[],
        ),
        t(
            "manual",
            "A manual, guide, specification or report",
            &[
                "manual",
                "chapter",
                "table of contents",
                "reference",
                "documentation",
                "guide",
            ],
            &[],
        ),
        t(
            "other",
            "Anything that is none of the other types",
            &[],
            &[],
        ),
    ]
}

/// The fields of the default types (their labels are built in).
fn default_fields(type_name: &str) -> Vec<FieldSpec> {
    use Kind::*;
    let f: &[(&str, Kind, bool)] = match type_name {
        "invoice" => &[
            ("invoice_number", Identifier, true),
            ("total", Money, true),
            ("due_date", Date, false),
            ("order_number", Identifier, false),
            ("customer_number", Identifier, false),
            ("net_amount", Money, false),
            ("tax_amount", Money, false),
        ],
        "receipt" => &[("total", Money, true)],
        "bank_statement" => &[("iban", Iban, true)],
        "payslip" => &[
            ("employer", Party, false),
            ("net_pay", Money, true),
            ("period", Text, false),
        ],
        _ => &[],
    };
    f.iter()
        .map(|&(name, kind, required)| FieldSpec {
            name: name.into(),
            kind,
            required,
            labels: Vec::new(),
        })
        .collect()
}
