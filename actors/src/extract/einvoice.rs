//! Electronic invoices inside PDFs: Factur-X / ZUGFeRD (and XRechnung in a
//! PDF) attach the invoice as UN/CEFACT Cross-Industry-Invoice XML. Its
//! values are exact, so they become the document's fields as they are,
//! ahead of anything read from the text.

use pdf_extract::{Document, Object};
use quick_xml::events::Event;
use quick_xml::Reader;
use serde_json::{json, Map, Value};

use crate::extract::office::resolve_ref;

/// Names the standards give the attached XML.
const NAMES: [&str; 5] = [
    "factur-x.xml",
    "zugferd-invoice.xml",
    "zugferd_invoice.xml",
    "xrechnung.xml",
    "order-x.xml",
];

/// At most this much XML is read.
const MAX_XML: usize = 4 << 20;

/// The e-invoice of a PDF, if it carries one: `{format, invoice_number,
/// date, due_date, total, currency, …}`.
pub fn from_pdf(doc: &Document) -> Option<Value> {
    let (name, xml) = attached_xml(doc)?;
    let mut v = parse_cii(&xml);
    if v.is_empty() {
        return None;
    }
    v.insert("format".into(), json!(format_of(&name)));
    Some(Value::Object(v))
}

fn format_of(name: &str) -> &'static str {
    match name {
        "factur-x.xml" => "factur-x",
        "xrechnung.xml" => "xrechnung",
        "order-x.xml" => "order-x",
        _ => "zugferd",
    }
}

fn resolve<'a>(doc: &'a Document, o: &'a Object) -> Option<&'a Object> {
    match o {
        Object::Reference(id) => doc.get_object(*id).ok(),
        o => Some(o),
    }
}

/// The first attached file with one of the standard names, as text.
fn attached_xml(doc: &Document) -> Option<(String, String)> {
    let root = resolve(doc, doc.trailer.get(b"Root").ok()?)?
        .as_dict()
        .ok()?;
    let names = resolve(doc, root.get(b"Names").ok()?)?.as_dict().ok()?;
    let tree = resolve(doc, names.get(b"EmbeddedFiles").ok()?)?;
    let mut stack = vec![tree];
    let mut visited = 0;
    while let Some(node) = stack.pop() {
        visited += 1;
        if visited > 1_000 {
            return None;
        }
        let node = node.as_dict().ok()?;
        if let Ok(kids) = node.get(b"Kids").and_then(Object::as_array) {
            stack.extend(kids.iter().filter_map(|k| resolve(doc, k)));
        }
        let Ok(pairs) = node.get(b"Names").and_then(Object::as_array) else {
            continue;
        };
        for pair in pairs.chunks(2) {
            let [key, spec] = pair else { continue };
            let Some(Object::String(key, _)) = resolve(doc, key) else {
                continue;
            };
            let key = String::from_utf8_lossy(key).to_lowercase();
            if !NAMES.contains(&key.as_str()) {
                continue;
            }
            let spec = resolve(doc, spec)?.as_dict().ok()?;
            let ef = resolve(doc, spec.get(b"EF").ok()?)?.as_dict().ok()?;
            let file = ef.get(b"F").or_else(|_| ef.get(b"UF")).ok()?;
            let Some(Object::Stream(stream)) = resolve(doc, file) else {
                continue;
            };
            let bytes = stream
                .decompressed_content()
                .unwrap_or_else(|_| stream.content.clone());
            if bytes.len() > MAX_XML {
                return None;
            }
            return Some((key, String::from_utf8_lossy(&bytes).into_owned()));
        }
    }
    None
}

/// The fields of a Cross-Industry-Invoice: the elements are told apart by
/// the names of their last ancestors.
pub fn parse_cii(xml: &str) -> Map<String, Value> {
    let mut reader = Reader::from_str(xml);
    let mut path: Vec<String> = Vec::new();
    let mut text = String::new();
    let mut out = Map::new();
    let mut scheme: Option<String> = None;
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) => {
                path.push(e.local_name().as_ref().to_string());
                text.clear();
                scheme = e
                    .attributes()
                    .flatten()
                    .find(|a| a.key.local_name().as_ref() == "schemeID")
                    .map(|a| a.value.to_string());
            }
            Ok(Event::Text(t)) => text.push_str(&t.xml10_content()),
            Ok(Event::GeneralRef(r)) => text.push_str(&resolve_ref(&r)),
            Ok(Event::End(_)) => {
                let value = text.trim().to_string();
                if !value.is_empty() {
                    let p: Vec<&str> = path.iter().map(String::as_str).collect();
                    if let Some(name) = field_of(&p, scheme.as_deref()) {
                        if !out.contains_key(name) {
                            let v = match name {
                                "date" | "due_date" => cii_date(&value),
                                _ => Some(value.clone()),
                            };
                            if let Some(v) = v {
                                out.insert(name.into(), json!(v));
                            }
                        }
                    }
                }
                text.clear();
                path.pop();
            }
            Ok(Event::Eof) | Err(_) => break,
            _ => {}
        }
    }
    out
}

/// Which field an element holds, by its path's end.
fn field_of(p: &[&str], scheme: Option<&str>) -> Option<&'static str> {
    let ends = |tail: &[&str]| p.len() >= tail.len() && p[p.len() - tail.len()..] == *tail;
    Some(if ends(&["ExchangedDocument", "ID"]) {
        "invoice_number"
    } else if ends(&["ExchangedDocument", "IssueDateTime", "DateTimeString"]) {
        "date"
    } else if ends(&["DueDateDateTime", "DateTimeString"]) {
        "due_date"
    } else if ends(&[
        "SpecifiedTradeSettlementHeaderMonetarySummation",
        "GrandTotalAmount",
    ]) {
        "total"
    } else if ends(&[
        "SpecifiedTradeSettlementHeaderMonetarySummation",
        "DuePayableAmount",
    ]) {
        "amount_due"
    } else if ends(&[
        "SpecifiedTradeSettlementHeaderMonetarySummation",
        "TaxBasisTotalAmount",
    ]) {
        "net_amount"
    } else if ends(&[
        "SpecifiedTradeSettlementHeaderMonetarySummation",
        "TaxTotalAmount",
    ]) {
        "tax_amount"
    } else if ends(&["ApplicableHeaderTradeSettlement", "InvoiceCurrencyCode"]) {
        "currency"
    } else if ends(&["SellerTradeParty", "Name"]) {
        "issuer"
    } else if ends(&["BuyerTradeParty", "Name"]) {
        "recipient"
    } else if ends(&["SellerTradeParty", "SpecifiedTaxRegistration", "ID"]) && scheme == Some("VA")
    {
        "vat_id"
    } else if ends(&["PayeePartyCreditorFinancialAccount", "IBANID"]) {
        "iban"
    } else if ends(&["BuyerOrderReferencedDocument", "IssuerAssignedID"]) {
        "order_number"
    } else {
        return None;
    })
}

/// A CII date (format 102: `YYYYMMDD`) as `YYYY-MM-DD`.
fn cii_date(s: &str) -> Option<String> {
    let d: String = s.chars().filter(char::is_ascii_digit).collect();
    (d.len() == 8).then(|| format!("{}-{}-{}", &d[..4], &d[4..6], &d[6..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_fields_of_a_cross_industry_invoice() {
        let xml = r#"<?xml version="1.0"?>
<rsm:CrossIndustryInvoice xmlns:rsm="urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100" xmlns:ram="urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100" xmlns:udt="urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100">
 <rsm:ExchangedDocument><ram:ID>F-42</ram:ID><ram:IssueDateTime><udt:DateTimeString format="102">20260131</udt:DateTimeString></ram:IssueDateTime></rsm:ExchangedDocument>
 <rsm:SupplyChainTradeTransaction><ram:ApplicableHeaderTradeAgreement>
  <ram:SellerTradeParty><ram:Name>LE FOURNISSEUR &amp; Fils</ram:Name><ram:SpecifiedTaxRegistration><ram:ID schemeID="VA">FR11123456782</ram:ID></ram:SpecifiedTaxRegistration></ram:SellerTradeParty>
 </ram:ApplicableHeaderTradeAgreement><ram:ApplicableHeaderTradeSettlement>
  <ram:InvoiceCurrencyCode>EUR</ram:InvoiceCurrencyCode>
  <ram:SpecifiedTradePaymentTerms><ram:DueDateDateTime><udt:DateTimeString format="102">20260302</udt:DateTimeString></ram:DueDateDateTime></ram:SpecifiedTradePaymentTerms>
  <ram:SpecifiedTradeSettlementHeaderMonetarySummation><ram:TaxBasisTotalAmount>100.00</ram:TaxBasisTotalAmount><ram:GrandTotalAmount>104.90</ram:GrandTotalAmount></ram:SpecifiedTradeSettlementHeaderMonetarySummation>
 </ram:ApplicableHeaderTradeSettlement></rsm:SupplyChainTradeTransaction>
</rsm:CrossIndustryInvoice>"#;
        let f = parse_cii(xml);
        assert_eq!(f["invoice_number"], "F-42");
        assert_eq!(f["date"], "2026-01-31");
        assert_eq!(f["due_date"], "2026-03-02");
        assert_eq!(f["total"], "104.90");
        assert_eq!(f["net_amount"], "100.00");
        assert_eq!(f["currency"], "EUR");
        assert_eq!(f["issuer"], "LE FOURNISSEUR & Fils");
        assert_eq!(f["vat_id"], "FR11123456782");
    }
}
