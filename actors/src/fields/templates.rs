//! Templates learned from one correction: where an issuer puts a field.
//!
//! When a user sets a field of a document by hand, the value is looked for
//! in the document's text, and where it sits becomes a template for that
//! issuer and field: after a label on the same line (the label being the
//! words just before it), in the cell below a label that heads a column, or
//! (no label near it) at the same line counted from the top or the bottom.
//! For the issuer itself, the template is its name, found in the text.
//! Identifiers keep their format (letters, digits and separators), so a
//! template never reads a date where an invoice number stood.
//!
//! The next document from that issuer (its issuer found by the rules, or
//! the templated issuer's name found near its top) is read with the
//! issuer's templates first: their values replace the rules' with source
//! `template`. Templates are per workspace; the Catalog stores them with
//! the edit that taught them.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

use super::values::{amounts, dates, read};
use super::Context;
use crate::model::{Found, Kind};

/// The field that names the issuer.
const ISSUER: &str = "issuer";
/// The confidence of a value read by a template.
pub const CONFIDENCE: f32 = 0.95;
/// How far from the top a templated issuer's name is looked for.
const NAME_CHARS: usize = 3_000;
/// Lines read at most.
const MAX_LINES: usize = 5_000;

/// Where an issuer puts one field.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Template {
    pub issuer: String,
    pub field: String,
    pub kind: Kind,
    #[serde(flatten)]
    pub rule: Rule,
    /// For identifiers and text: the value's form, letters as `A`, digits
    /// as `9`, runs collapsed ("INV-2024-0042" is `A-9-9`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
}

/// Where the value sits.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "relation", rename_all = "snake_case")]
pub enum Rule {
    /// After `label` on its line: the `nth` value of the kind after it; on
    /// the `occurrence`-th line holding the label (a label can recur:
    /// "Total" of a table and of the invoice).
    RightOf {
        label: String,
        nth: usize,
        #[serde(default)]
        occurrence: usize,
    },
    /// In the cell below `label`, which heads a column (on the
    /// `occurrence`-th line holding it).
    Below {
        label: String,
        #[serde(default)]
        occurrence: usize,
    },
    /// On line `line` counted from the top (or from the bottom): the `nth`
    /// value of the kind on it.
    Line {
        line: usize,
        from_end: bool,
        nth: usize,
    },
    /// The issuer's name, where the text holds it.
    Name,
}

/// The template for a value a user set, if the text holds the value.
pub fn learn(
    text: &str,
    issuer: &str,
    field: &str,
    kind: Kind,
    value: &str,
    cx: &Context,
) -> Option<Template> {
    let template = |rule, format| Template {
        issuer: issuer.to_string(),
        field: field.to_string(),
        kind,
        rule,
        format,
    };
    if field == ISSUER {
        return find_ci(&text[..floor(text, NAME_CHARS)], value)
            .map(|_| template(Rule::Name, None));
    }
    let format = matches!(kind, Kind::Identifier | Kind::Number).then(|| shape(value));
    let lines: Vec<&str> = text.lines().take(MAX_LINES).collect();
    let mut fallback = None;
    for (i, line) in lines.iter().enumerate() {
        let found = candidates(kind, line, cx);
        for (nth_on_line, (start, v)) in found.iter().enumerate() {
            if !same(kind, v, value) {
                continue;
            }
            if let Some(label) = label_before(&line[..*start]) {
                // ASCII lower-casing keeps byte offsets (and is how
                // `find_ci` compares labels when the template is applied).
                let at = line[..*start]
                    .to_ascii_lowercase()
                    .rfind(&label)
                    .unwrap_or(0)
                    + label.len();
                let nth = found
                    .iter()
                    .filter(|(s, _)| *s >= at && *s < *start)
                    .count();
                let occurrence = occurrence_of(&lines[..i], &label);
                return Some(template(
                    Rule::RightOf {
                        label,
                        nth,
                        occurrence,
                    },
                    format,
                ));
            }
            let column = line[..*start].chars().count();
            if let Some(label) = lines[..i]
                .iter()
                .rev()
                .find(|l| !l.trim().is_empty())
                .and_then(|above| cell_at(above, column))
                .filter(|l| l.chars().any(char::is_alphabetic))
            {
                let label = label.to_ascii_lowercase();
                // The heading's line is above the value's.
                let above = lines[..i]
                    .iter()
                    .rposition(|l| !l.trim().is_empty())
                    .unwrap_or(0);
                let occurrence = occurrence_of(&lines[..above], &label);
                return Some(template(Rule::Below { label, occurrence }, format));
            }
            if fallback.is_none() {
                let from_end = i * 2 > lines.len();
                let line = if from_end { lines.len() - 1 - i } else { i };
                fallback = Some(Rule::Line {
                    line,
                    from_end,
                    nth: nth_on_line,
                });
            }
        }
    }
    fallback.map(|rule| template(rule, format))
}

/// Each workspace's templates, shared by the Extract and Enrich workers;
/// swapped whole after a change.
pub type TemplatesSlot = Arc<RwLock<BTreeMap<String, Arc<Vec<Template>>>>>;

/// The workspace's templates in force.
pub fn current(slot: &TemplatesSlot, workspace: &str) -> Option<Arc<Vec<Template>>> {
    slot.read()
        .unwrap_or_else(|e| e.into_inner())
        .get(workspace)
        .cloned()
}

/// The rules' fields with the values of the sending issuer's templates in
/// their place.
pub fn with_templates(
    mut found: Vec<Found>,
    templates: &[Template],
    text: &str,
    cx: &Context,
) -> Vec<Found> {
    if templates.is_empty() {
        return found;
    }
    let by_rule = found
        .iter()
        .find(|f| f.name == ISSUER)
        .map(|f| f.value.clone());
    // Each issuer once (an issuer has a template per field).
    let mut issuers: Vec<&str> = templates.iter().map(|t| t.issuer.as_str()).collect();
    issuers.sort_unstable();
    issuers.dedup();
    let Some(issuer) = issuer_of(issuers.into_iter(), by_rule.as_deref(), text) else {
        return found;
    };
    let mine: Vec<&Template> = templates
        .iter()
        .filter(|t| t.issuer.eq_ignore_ascii_case(issuer))
        .collect();
    for f in apply(&mine, text, cx) {
        found.retain(|g| g.name != f.name);
        found.push(f);
    }
    found
}

/// The templates' values in a document, for the issuer whose templates
/// these are.
pub fn apply(templates: &[&Template], text: &str, cx: &Context) -> Vec<Found> {
    let lines: Vec<&str> = text.lines().take(MAX_LINES).collect();
    templates
        .iter()
        .filter_map(|t| {
            let (value, currency) = read_with(t, text, &lines, cx)?;
            Some(Found {
                name: t.field.clone(),
                kind: t.kind,
                value,
                currency,
                confidence: CONFIDENCE,
                source: "template",
            })
        })
        .collect()
}

/// Which of the issuers with templates sent this document: the one the
/// rules found, if it has templates, else the one whose name appears first
/// near the top of the text.
pub fn issuer_of<'a>(
    issuers: impl Iterator<Item = &'a str>,
    found: Option<&str>,
    text: &str,
) -> Option<&'a str> {
    let top = text[..floor(text, NAME_CHARS)].to_ascii_lowercase();
    let mut best: Option<(usize, &str)> = None;
    for name in issuers {
        if found.is_some_and(|f| f.eq_ignore_ascii_case(name)) {
            return Some(name);
        }
        if let Some(at) = find_lower(&top, name) {
            if best.is_none_or(|(b, _)| at < b) {
                best = Some((at, name));
            }
        }
    }
    best.map(|(_, n)| n)
}

fn read_with(
    t: &Template,
    text: &str,
    lines: &[&str],
    cx: &Context,
) -> Option<(String, Option<String>)> {
    let fits = |v: &(String, Option<String>)| t.format.as_ref().is_none_or(|f| shape(&v.0) == *f);
    match &t.rule {
        Rule::Name => {
            find_ci(&text[..floor(text, NAME_CHARS)], &t.issuer).map(|_| (t.issuer.clone(), None))
        }
        Rule::RightOf {
            label,
            nth,
            occurrence,
        } => labelled(lines, label, *occurrence).find_map(|i| {
            let line = lines[i];
            let at = find_ci(line, label)? + label.len();
            // A value glued to its label ("N°2022089083") or after a sign.
            let mut rest = line[at..].trim_start_matches(|c: char| {
                !c.is_alphanumeric() && !matches!(c, '$' | '€' | '£' | '-' | '+')
            });
            if matches!(t.kind, Kind::Text | Kind::Party) {
                // The cell after the label, not the columns beyond it.
                let r = rest.trim_start_matches([' ', ':', '\t']);
                rest = r.split("  ").next().unwrap_or(r);
            }
            if matches!(t.kind, Kind::Date | Kind::Money) {
                values(t.kind, rest, cx).into_iter().nth(*nth)
            } else {
                read(t.kind, rest, cx)
            }
            .filter(fits)
        }),
        Rule::Below { label, occurrence } => labelled(lines, label, *occurrence).find_map(|i| {
            let line = lines[i];
            let at = find_ci(line, label)?;
            let column = line[..at].chars().count();
            let below = lines[i + 1..].iter().find(|l| !l.trim().is_empty())?;
            let cell = cell_at(below, column)?;
            read(t.kind, &cell, cx).filter(fits)
        }),
        Rule::Line {
            line,
            from_end,
            nth,
        } => {
            let i = if *from_end {
                lines.len().checked_sub(1 + line)?
            } else {
                *line
            };
            values(t.kind, lines.get(i)?, cx)
                .into_iter()
                .nth(*nth)
                .filter(fits)
        }
    }
}

/// How many of these lines hold the label.
fn occurrence_of(lines: &[&str], label: &str) -> usize {
    lines.iter().filter(|l| find_ci(l, label).is_some()).count()
}

/// The lines holding the label: the `occurrence`-th first, then the others
/// in order.
fn labelled<'a>(
    lines: &'a [&str],
    label: &'a str,
    occurrence: usize,
) -> impl Iterator<Item = usize> + 'a {
    let with: Vec<usize> = (0..lines.len())
        .filter(|&i| find_ci(lines[i], label).is_some())
        .collect();
    let first = with.get(occurrence).copied();
    first
        .into_iter()
        .chain(with.into_iter().filter(move |&i| Some(i) != first))
}

/// The values of a kind on a line, with where each starts.
fn candidates(kind: Kind, line: &str, cx: &Context) -> Vec<(usize, String)> {
    match kind {
        Kind::Date => dates(line, cx.language),
        Kind::Money => amounts(line).into_iter().map(|a| (a.0, a.1)).collect(),
        _ => {
            // Each word start (for text), or each start of a run of letters
            // and digits (values glued to a sign: "N°562044387"), read as
            // the kind.
            let glued = !matches!(kind, Kind::Text | Kind::Party);
            let mut out = Vec::new();
            let mut prev: Option<char> = None;
            for (i, c) in line.char_indices() {
                let starts = if glued {
                    c.is_alphanumeric() && !prev.is_some_and(char::is_alphanumeric)
                } else {
                    !c.is_whitespace()
                        && c != ':'
                        && prev.is_none_or(|p| p.is_whitespace() || p == ':')
                };
                if starts {
                    if let Some((v, _)) = read(kind, &line[i..], cx) {
                        out.push((i, v));
                    }
                }
                prev = Some(c);
            }
            out
        }
    }
}

fn values(kind: Kind, s: &str, cx: &Context) -> Vec<(String, Option<String>)> {
    match kind {
        Kind::Date => dates(s, cx.language)
            .into_iter()
            .map(|d| (d.1, None))
            .collect(),
        Kind::Money => amounts(s).into_iter().map(|a| (a.1, a.2)).collect(),
        _ => candidates(kind, s, cx)
            .into_iter()
            .map(|(_, v)| (v, None))
            .collect(),
    }
}

/// Whether a value read from the text is the one the user set.
fn same(kind: Kind, found: &str, want: &str) -> bool {
    match kind {
        Kind::Text | Kind::Party => found
            .to_lowercase()
            .starts_with(&want.trim().to_lowercase()),
        _ => found.eq_ignore_ascii_case(want.trim()),
    }
}

/// The label just before a value on its line: the words of the last
/// column (text after a run of two spaces or a tab), without trailing
/// punctuation, leaders or a currency; at most four words. None when that
/// holds no letter, or is itself a value (a date or an amount in the
/// column to the left is no label).
fn label_before(before: &str) -> Option<String> {
    let column = before
        .rsplit(['\t', '|'])
        .next()
        .unwrap_or(before)
        .rsplit("  ")
        .find(|s| !s.trim().is_empty())
        .unwrap_or("");
    if !dates(column, None).is_empty() || !amounts(column).is_empty() {
        return None;
    }
    let mut words: Vec<&str> = column.split_whitespace().collect();
    while words
        .last()
        .is_some_and(|w| is_currency(w) || !w.chars().any(char::is_alphanumeric))
    {
        words.pop();
    }
    let words = &words[words.len().saturating_sub(4)..];
    let label = words
        .join(" ")
        .trim_end_matches(|c: char| !c.is_alphanumeric())
        .to_ascii_lowercase();
    label.chars().any(char::is_alphabetic).then_some(label)
}

fn is_currency(w: &str) -> bool {
    let w = w.trim_matches(|c: char| c.is_ascii_punctuation() && c != '$');
    matches!(w, "$" | "€" | "£") || (w.len() == 3 && w.chars().all(|c| c.is_ascii_uppercase()))
}

/// The cell of a line in which `column` (in characters) falls, or which
/// starts within two characters of it: cells are separated by a tab or a
/// run of two spaces or more.
fn cell_at(line: &str, column: usize) -> Option<String> {
    let chars: Vec<char> = line.chars().collect();
    let n = chars.len();
    let mut cells: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < n {
        while i < n && chars[i].is_whitespace() {
            i += 1;
        }
        if i == n {
            break;
        }
        let start = i;
        let end = loop {
            while i < n && !chars[i].is_whitespace() {
                i += 1;
            }
            let (end, gap) = (i, i);
            while i < n && chars[i].is_whitespace() {
                i += 1;
            }
            if i == n || i - gap >= 2 || chars[gap..i].contains(&'\t') {
                break end;
            }
        };
        cells.push((start, end));
    }
    cells
        .into_iter()
        .find(|&(s, e)| (s <= column && column < e) || s.abs_diff(column) <= 2)
        .map(|(s, e)| chars[s..e].iter().collect())
}

/// The form of a value: letters `A`, digits `9`, runs collapsed, other
/// characters as they are.
fn shape(v: &str) -> String {
    let mut out = String::new();
    for c in v.trim().chars() {
        let s = if c.is_alphabetic() {
            'A'
        } else if c.is_ascii_digit() {
            '9'
        } else {
            c
        };
        if !(matches!(s, 'A' | '9') && out.ends_with(s)) {
            out.push(s);
        }
    }
    out
}

/// Where `needle` occurs in `hay`, ignoring ASCII case, at word bounds.
fn find_ci(hay: &str, needle: &str) -> Option<usize> {
    find_lower(&hay.to_ascii_lowercase(), needle)
}

/// [`find_ci`] in a text already lower-cased (ASCII; offsets unchanged).
pub(super) fn find_lower(h: &str, needle: &str) -> Option<usize> {
    let needle = needle.trim();
    if needle.is_empty() {
        return None;
    }
    let n = needle.to_ascii_lowercase();
    let word = |c: Option<char>| c.is_some_and(char::is_alphanumeric);
    h.match_indices(&n).map(|(i, _)| i).find(|&i| {
        (!word(n.chars().next()) || !word(h[..i].chars().next_back()))
            && (!word(n.chars().next_back()) || !word(h[i + n.len()..].chars().next()))
    })
}

/// The largest char boundary of `s` at or below `n`.
pub(super) fn floor(s: &str, n: usize) -> usize {
    if n >= s.len() {
        return s.len();
    }
    (0..=n).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIRST: &str = "Nordwind Bikes Ltd\n12 Harbour Road, Leith\n\nRef. code        Issued          Pay by\nNB/22/0107       3 March 2025    2 April 2025\n\n2 x Touring saddle    GBP 120.00\nGrand sum payable ........ GBP 1,240.00\nThank you.";
    const SECOND: &str = "Nordwind Bikes Ltd\n12 Harbour Road, Leith\n\nRef. code        Issued          Pay by\nNB/22/0131       9 May 2025      8 June 2025\n\n1 x Chain    GBP 30.00\n1 x Bell     GBP 56.50\nGrand sum payable ........ GBP 86.50\nThank you.";

    fn cx() -> Context<'static> {
        Context::default()
    }

    #[test]
    fn one_correction_reads_the_next_document_of_the_issuer() {
        let issuer = "Nordwind Bikes Ltd";
        let number = learn(
            FIRST,
            issuer,
            "invoice_number",
            Kind::Identifier,
            "NB/22/0107",
            &cx(),
        )
        .unwrap();
        assert_eq!(
            number.rule,
            Rule::Below {
                label: "ref. code".into(),
                occurrence: 0
            }
        );
        assert_eq!(number.format.as_deref(), Some("A/9/9"));
        let total = learn(FIRST, issuer, "total", Kind::Money, "1240.00", &cx()).unwrap();
        assert_eq!(
            total.rule,
            Rule::RightOf {
                label: "grand sum payable".into(),
                nth: 0,
                occurrence: 0
            }
        );
        let due = learn(FIRST, issuer, "due_date", Kind::Date, "2025-04-02", &cx()).unwrap();
        assert_eq!(
            due.rule,
            Rule::Below {
                label: "pay by".into(),
                occurrence: 0
            }
        );
        let name = learn(FIRST, issuer, "issuer", Kind::Party, issuer, &cx()).unwrap();
        assert_eq!(name.rule, Rule::Name);

        let all = [&number, &total, &due, &name];
        let found = apply(&all, SECOND, &cx());
        let got: Vec<(&str, &str, &str)> = found
            .iter()
            .map(|f| (f.name.as_str(), f.value.as_str(), f.source))
            .collect();
        assert_eq!(
            got,
            vec![
                ("invoice_number", "NB/22/0131", "template"),
                ("total", "86.50", "template"),
                ("due_date", "2025-06-08", "template"),
                ("issuer", issuer, "template"),
            ]
        );
        assert_eq!(found[1].currency.as_deref(), Some("GBP"));
    }

    #[test]
    fn a_value_the_text_does_not_hold_teaches_nothing() {
        assert_eq!(
            learn(FIRST, "Nordwind", "total", Kind::Money, "99.99", &cx()),
            None
        );
        assert_eq!(
            learn(
                FIRST,
                "Someone Else",
                "issuer",
                Kind::Party,
                "Someone Else",
                &cx()
            ),
            None
        );
    }

    #[test]
    fn the_format_keeps_a_template_from_reading_another_kind_of_value() {
        let t = learn(
            FIRST,
            "N",
            "invoice_number",
            Kind::Identifier,
            "NB/22/0107",
            &cx(),
        )
        .unwrap();
        let other = FIRST.replace("NB/22/0107", "2025-0107");
        assert!(apply(&[&t], &other, &cx()).is_empty());
    }

    #[test]
    fn the_issuer_is_the_one_named_near_the_top() {
        let names = ["Acme GmbH", "Nordwind Bikes Ltd"];
        assert_eq!(
            issuer_of(names.iter().copied(), None, SECOND),
            Some("Nordwind Bikes Ltd")
        );
        assert_eq!(
            issuer_of(names.iter().copied(), Some("acme gmbh"), SECOND),
            Some("Acme GmbH")
        );
        assert_eq!(issuer_of(names.iter().copied(), None, "nobody"), None);
    }

    #[test]
    fn shapes() {
        assert_eq!(shape("INV-2024-0042"), "A-9-9");
        assert_eq!(shape("RE 17"), "A 9");
    }
}
