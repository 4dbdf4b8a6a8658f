//! Tests of the built-in field rules.
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
