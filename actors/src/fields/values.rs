//! Reading values of each kind out of text: dates, amounts, IBANs, and the
//! rest; and normalising a value a user or the LLM gives.

use std::sync::LazyLock;

use regex::Regex;

use super::Context;
use crate::model::Kind;

pub(super) const NOT_TOTAL: &[&str] = &[
    "vat", "tax", "tva", "mwst", "ust", "ht", "net", "excl", "hors", "netto", "items", "qty",
];

pub(super) static DATE_NUMERIC: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b|\b(\d{1,2})([./])(\d{1,2})[./](\d{4}|\d{2})\b|\b(\d{1,2})-(\d{1,2})-(\d{4})\b")
        .unwrap()
});
pub(super) const MONTHS: &str = "january|february|march|april|may|june|july|august|september|october|november|december|jan|feb|mar|apr|jun|jul|aug|sept|sep|oct|nov|dec|januar|jänner|februar|märz|maerz|marz|mär|mai|juni|juli|oktober|okt|dezember|dez|janvier|janv|février|févr|fevrier|mars|avril|avr|juin|juillet|juil|août|aout|septembre|octobre|novembre|décembre|decembre|déc";
pub(super) static DATE_DAY_MONTH: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"(?i)\b(\d{{1,2}})(?:\.|st|nd|rd|th|er)?\s+({MONTHS})\.?,?\s+(\d{{4}})\b"
    ))
    .unwrap()
});
pub(super) static DATE_MONTH_DAY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"(?i)\b({MONTHS})\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?(?:\s?,)?\s+(\d{{4}})\b"
    ))
    .unwrap()
});
pub(super) static AMOUNT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)(€|\$|£|\b(?:eur|usd|gbp|chf|jpy|cad|aud|sek|nok|dkk|pln|czk)\b)?\s*(-?\d{1,3}(?:[.,' \u{a0}]\d{3})+(?:[.,]\d{1,2})?|-?\d+(?:[.,]\d{1,2})?)\s*(€|\$|£|\b(?:eur|euro|euros|usd|gbp|chf|jpy|cad|aud|sek|nok|dkk|pln|czk)\b)?",
    )
    .unwrap()
});
pub(super) static IBAN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b").unwrap());
pub(super) static EMAIL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)\b[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,}\b").unwrap());
pub(super) static URL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"(?i)\b(?:https?://|www\.)[^\s<>"')]+[^\s<>"').,;:]"#).unwrap());
pub(super) static PHONE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,5}\)[ .-]?)?\d{2,5}(?:[ ./-]\d{2,5}){1,5}").unwrap()
});
/// A phone number in the international form (no label needed): it starts
/// with "+", which the regex finds first.
pub(super) static PHONE_INTERNATIONAL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\+\d{1,3}[ .-]?(?:\(\d{1,5}\)[ .-]?)?\d{2,5}(?:[ ./-]\d{2,5}){1,5}").unwrap()
});
pub(super) static VAT_ID: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"\b(?:ATU\d{8}|BE ?0?\d{9}|DE ?\d{9}|DK ?\d{8}|ES ?[A-Z0-9]\d{7}[A-Z0-9]|FR ?[A-Z0-9]{2} ?\d{3} ?\d{3} ?\d{3}|GB ?\d{3} ?\d{4} ?\d{2}|IT ?\d{11}|NL ?\d{9}B\d{2}|CHE-?\d{3}\.\d{3}\.\d{3}|PL ?\d{10}|SE ?\d{12}|IE ?\d{7}[A-Z]{1,2}|LU ?\d{8}|PT ?\d{9})\b",
    )
    .unwrap()
});
pub(super) static IDENTIFIER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[A-Za-z0-9][A-Za-z0-9/_.-]*\d[A-Za-z0-9/_.-]*|[A-Za-z0-9/_.-]*\d").unwrap()
});
pub(super) static NUMBER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"-?\d+(?:[.,]\d+)?").unwrap());

/// The month (1–12) of a name in English, German or French.
pub(super) fn month(name: &str) -> Option<u32> {
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

pub(super) fn valid_date(y: i32, m: u32, d: u32) -> Option<String> {
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => return None,
    };
    ((1..=days).contains(&d) && (1900..=2199).contains(&y)).then(|| format!("{y:04}-{m:02}-{d:02}"))
}

pub(super) fn year(s: &str) -> i32 {
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
        } else if let Some(d) = c.get(8) {
            // Dashes (15-10-2015): day first, a four-digit year.
            let (d, m): (u32, u32) = (d.as_str().parse().unwrap_or(0), c[9].parse().unwrap_or(0));
            let y = year(&c[10]);
            valid_date(y, m, d).or_else(|| valid_date(y, d, m))
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

pub(super) fn currency_code(s: &str) -> Option<String> {
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

/// The text with its dates blanked out (same length, so offsets hold).
pub(super) fn mask_dates(s: &str) -> std::borrow::Cow<'_, str> {
    let mut spans: Vec<(usize, usize)> = Vec::new();
    for re in [&*DATE_NUMERIC, &*DATE_DAY_MONTH, &*DATE_MONTH_DAY] {
        spans.extend(re.find_iter(s).map(|m| (m.start(), m.end())));
    }
    if spans.is_empty() {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    for (i, ch) in s.char_indices() {
        if spans.iter().any(|(a, b)| (*a..*b).contains(&i)) {
            out.extend(std::iter::repeat_n(' ', ch.len_utf8()));
        } else {
            out.push(ch);
        }
    }
    std::borrow::Cow::Owned(out)
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

pub(super) fn ibans(text: &str) -> Vec<(usize, String)> {
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
pub(super) fn read(kind: Kind, s: &str, cx: &Context) -> Option<(String, Option<String>)> {
    let s = s.trim_start_matches([' ', ':', '#', '.', '-', '\t']);
    match kind {
        Kind::Date => dates(s, cx.language)
            .into_iter()
            .next()
            .map(|d| (d.1, None)),
        // An amount is never a date's day or year ("due on August 3, 2014 $4.11").
        Kind::Money => amounts(&mask_dates(s))
            .into_iter()
            .next()
            .map(|a| (a.1, a.2)),
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
            let mut words = s.split_whitespace();
            let word = words.next()?;
            // A short letter prefix apart from its number ("F 1234/12").
            if (1..=3).contains(&word.len())
                && word.chars().all(|c| c.is_ascii_uppercase())
                && !["NO", "NR", "ID", "REF", "NUM"].contains(&word)
            {
                if let Some(id) = words
                    .next()
                    .filter(|n| n.starts_with(|c: char| c.is_ascii_digit()))
                    .and_then(|n| IDENTIFIER.find(n).filter(|m| m.start() == 0))
                {
                    let id = id.as_str().trim_end_matches(['.', ',']);
                    return Some((format!("{word} {id}"), None));
                }
            }
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
