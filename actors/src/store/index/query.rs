//! The query language on top of Tantivy's: its grammar and its parser for
//! words, phrases and `AND/OR/NOT`, with docpipe's own names and
//! comparisons put in first.
//!
//! - a word matches as written, and its other forms the index holds (the
//!   terms sharing its stem), worth less; a quoted word or phrase
//!   (`"contributed"`) only as written;
//! - `type:invoice`, `tag:tax`, `language:deu`, `title:…`, `filename:…`,
//!   `body:…` (or `content:…`) name the index's fields;
//! - any other name is a document field: `issuer:acme` matches the word in
//!   the field `issuer`;
//! - `NAME>=V`, `NAME>V`, `NAME<=V`, `NAME<V`, `NAME=V` compare a field, or
//!   `created`, `added` and `year`, with a number (`total>=100`) or a date
//!   (`due_date<2025-01-01`; a year or a month is the whole of it:
//!   `created=2024-03`). Tantivy's own `total:>=100` and `total:[1 TO 5]`
//!   are the same.
//!
//! Sort keys and cursors are here too: every sort is a key (primary value,
//! then the document's number) that the collector ranks, so a cursor is the
//! key of the last hit and the next page is what ranks below it.

use std::ops::Bound;

use tantivy::query::{
    AllQuery, BooleanQuery, BoostQuery, Occur, Query, QueryParser, RangeQuery, TermQuery,
};
use tantivy::query_grammar::{
    Delimiter, UserInputAst, UserInputBound, UserInputLeaf, UserInputLiteral,
};
use tantivy::schema::IndexRecordOption;
use tantivy::{DateTime, DocId, Score, Searcher, SegmentReader, Term};

use super::{date_of_days, days_from_ymd, QueryError, SearchIndex, STEMMED};

/// Where a name in a query points.
enum Target {
    /// A field of the index, by its schema name.
    Index(&'static str),
    /// `created`, `added`: the date fields.
    Date(&'static str),
    Year,
    /// A document field, in the JSON field.
    Doc(String),
}

fn target(name: &str) -> Target {
    match name.to_ascii_lowercase().as_str() {
        "type" | "doc_type" => Target::Index("type"),
        "tag" | "tags" => Target::Index("tag"),
        "language" | "lang" => Target::Index("language"),
        "title" => Target::Index("title"),
        "filename" => Target::Index("filename"),
        "body" | "content" | "text" => Target::Index("body"),
        "created" | "date" => Target::Date("created"),
        "added" => Target::Date("added"),
        "year" => Target::Year,
        _ => Target::Doc(name.strip_prefix("fields.").unwrap_or(name).to_string()),
    }
}

/// The query for `q` (everything when it is blank).
/// What reading a query needs.
pub(super) struct Ctx<'a> {
    pub idx: &'a SearchIndex,
    pub parser: QueryParser,
    pub searcher: &'a Searcher,
    /// Look for the other forms of words (not with typo tolerance, which
    /// is broad enough).
    pub forms: bool,
}

/// The query for `q` (everything when it is blank).
pub(super) fn build(ctx: &Ctx<'_>, q: &str) -> Result<Box<dyn Query>, QueryError> {
    if q.trim().is_empty() {
        return Ok(Box::new(AllQuery));
    }
    let ast = tantivy::query_grammar::parse_query(q)
        .map_err(|_| QueryError(super::describe_syntax_error(q)))?;
    convert(ctx, ast, q)
}

fn convert(ctx: &Ctx<'_>, ast: UserInputAst, q: &str) -> Result<Box<dyn Query>, QueryError> {
    match ast {
        UserInputAst::Clause(clauses) => {
            let mut subs = Vec::with_capacity(clauses.len() + 1);
            for (occur, sub) in clauses {
                subs.push((occur.unwrap_or(Occur::Must), convert(ctx, sub, q)?));
            }
            if subs.iter().all(|(o, _)| *o == Occur::MustNot) {
                subs.push((Occur::Must, Box::new(AllQuery)));
            }
            Ok(Box::new(BooleanQuery::new(subs)))
        }
        UserInputAst::Boost(inner, boost) => Ok(Box::new(BoostQuery::new(
            convert(ctx, *inner, q)?,
            boost.into_inner() as f32,
        ))),
        UserInputAst::Leaf(leaf) => leaf_query(ctx, *leaf, q),
    }
}

fn leaf_query(ctx: &Ctx<'_>, leaf: UserInputLeaf, q: &str) -> Result<Box<dyn Query>, QueryError> {
    let idx = ctx.idx;
    let delegate = |leaf: UserInputLeaf| {
        ctx.parser
            .build_query_from_user_input_ast(UserInputAst::Leaf(Box::new(leaf)))
            .map_err(|e| QueryError(super::describe_query_error(q, &e)))
    };
    // A plain word: as written, or in another form.
    if let UserInputLeaf::Literal(l) = &leaf {
        let plain = l.field_name.is_none()
            && l.delimiter == Delimiter::None
            && !l.prefix
            && l.phrase.chars().all(char::is_alphanumeric);
        if plain && ctx.forms {
            let forms = other_forms(ctx, &l.phrase.to_lowercase())
                .map_err(|e| QueryError(format!("search failed: {e}")))?;
            let exact = delegate(leaf)?;
            if forms.is_empty() {
                return Ok(exact);
            }
            let mut any: Vec<(Occur, Box<dyn Query>)> = vec![(Occur::Should, exact)];
            for form in forms {
                let term = Term::from_field_text(idx.fields.body, &form);
                any.push((
                    Occur::Should,
                    Box::new(BoostQuery::new(
                        Box::new(TermQuery::new(term, IndexRecordOption::WithFreqs)),
                        super::STEM_BOOST,
                    )),
                ));
            }
            return Ok(Box::new(BooleanQuery::new(any)));
        }
    }
    match leaf {
        UserInputLeaf::Literal(lit) => {
            if lit.field_name.is_none() && lit.delimiter == Delimiter::None {
                if let Some((name, op, value)) = comparison(&lit.phrase) {
                    let (lower, upper) = match op {
                        ">=" => (UserInputBound::Inclusive(value), UserInputBound::Unbounded),
                        ">" => (UserInputBound::Exclusive(value), UserInputBound::Unbounded),
                        "<=" => (UserInputBound::Unbounded, UserInputBound::Inclusive(value)),
                        "<" => (UserInputBound::Unbounded, UserInputBound::Exclusive(value)),
                        _ => (
                            UserInputBound::Inclusive(value.clone()),
                            UserInputBound::Inclusive(value),
                        ),
                    };
                    return range(idx, &name, lower, upper);
                }
            }
            match lit.field_name.as_deref().map(target) {
                None => delegate(UserInputLeaf::Literal(lit)),
                Some(Target::Date(_) | Target::Year) => {
                    let v = lit.phrase.clone();
                    range(
                        idx,
                        lit.field_name.as_deref().unwrap_or_default(),
                        UserInputBound::Inclusive(v.clone()),
                        UserInputBound::Inclusive(v),
                    )
                }
                Some(t) => delegate(UserInputLeaf::Literal(UserInputLiteral {
                    field_name: Some(schema_name(t)),
                    ..lit
                })),
            }
        }
        UserInputLeaf::Range {
            field: Some(field),
            lower,
            upper,
        } => range(idx, &field, lower, upper),
        UserInputLeaf::Set {
            field: Some(field),
            elements,
        } => delegate(UserInputLeaf::Set {
            field: Some(schema_name(target(&field))),
            elements,
        }),
        UserInputLeaf::Exists { field } => delegate(UserInputLeaf::Exists {
            field: schema_name(target(&field)),
        }),
        other => delegate(other),
    }
}

/// The most other forms of one word looked for.
const MAX_FORMS: usize = 32;

/// The word stemmed in a language, by its registered tokenizer.
fn stem(idx: &SearchIndex, code: &str, word: &str) -> Option<String> {
    let mut analyzer = idx.index.tokenizers().get(&format!("stem_{code}"))?;
    let mut out = None;
    analyzer.token_stream(word).process(&mut |t| {
        out.get_or_insert_with(|| t.text.clone());
    });
    out
}

/// The languages the index's documents are in (the `language` column's
/// words: a handful).
fn languages_held(searcher: &Searcher) -> tantivy::Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for segment in searcher.segment_readers() {
        if let Some(col) = segment.fast_fields().str("language")? {
            let mut stream = col.dictionary().stream()?;
            while stream.advance() {
                if let Ok(l) = std::str::from_utf8(stream.key()) {
                    if !out.iter().any(|x| x == l) {
                        out.push(l.to_string());
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Words of the body, other than `word`, that share its stem in one of
/// the languages the documents are in (English always): each stem's words are found in the term
/// dictionary as the words it begins (Snowball stems are prefixes of the
/// words they stem, bar a few endings it rewrites), kept if they stem the
/// same in that language.
fn other_forms(ctx: &Ctx<'_>, word: &str) -> tantivy::Result<Vec<String>> {
    let idx = ctx.idx;
    let languages = languages_held(ctx.searcher)?;
    let mut stems: Vec<(&str, String)> = Vec::new();
    for (code, _) in STEMMED
        .iter()
        .filter(|(code, _)| *code == "eng" || languages.iter().any(|l| l == code))
    {
        if let Some(s) = stem(idx, code, word) {
            if !s.is_empty() && !stems.iter().any(|(_, x)| *x == s) {
                stems.push((code, s));
            }
        }
    }
    let mut forms: Vec<String> = Vec::new();
    for segment in ctx.searcher.segment_readers() {
        let inverted = segment.inverted_index(idx.fields.body)?;
        for (code, s) in &stems {
            let mut stream = inverted.terms().range().ge(s.as_bytes()).into_stream()?;
            let mut looked = 0;
            while stream.advance() && looked < 4 * MAX_FORMS {
                looked += 1;
                let Ok(t) = std::str::from_utf8(stream.key()) else {
                    continue;
                };
                if !t.starts_with(s.as_str()) {
                    break;
                }
                if t != word
                    && !forms.iter().any(|f| f == t)
                    && stem(idx, code, t).as_deref() == Some(s.as_str())
                {
                    forms.push(t.to_string());
                    if forms.len() >= MAX_FORMS {
                        return Ok(forms);
                    }
                }
            }
        }
    }
    Ok(forms)
}

fn schema_name(t: Target) -> String {
    match t {
        Target::Index(n) | Target::Date(n) => n.to_string(),
        Target::Year => "year".to_string(),
        Target::Doc(n) => format!("fields.{n}"),
    }
}

/// `total>=100` as (name, operator, value).
fn comparison(word: &str) -> Option<(String, &'static str, String)> {
    let at = word.find(['<', '>', '='])?;
    let (name, rest) = word.split_at(at);
    let valid_name = name
        .chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_')
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '.');
    if !valid_name {
        return None;
    }
    let op = [">=", "<=", ">", "<", "="]
        .into_iter()
        .find(|op| rest.starts_with(op))?;
    let value = &rest[op.len()..];
    (!value.is_empty()).then(|| (name.to_string(), op, value.to_string()))
}

/// A period named by a date: `2024`, `2024-03` or `2024-03-05`, as the day
/// it starts and the day after it ends (days since the epoch).
fn period(v: &str) -> Option<(i64, i64)> {
    let parts: Vec<&str> = v.split('-').collect();
    let num = |s: &str, len: usize| {
        (s.len() == len && s.bytes().all(|b| b.is_ascii_digit())).then_some(())
    };
    match parts.as_slice() {
        [y] => {
            num(y, 4)?;
            Some((
                days_from_ymd(&format!("{y}-01-01"))?,
                days_from_ymd(&format!("{}-01-01", y.parse::<i64>().ok()? + 1))?,
            ))
        }
        [y, m] => {
            num(y, 4)?;
            num(m, 2)?;
            let (y, m): (i64, i64) = (y.parse().ok()?, m.parse().ok()?);
            let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
            Some((
                days_from_ymd(&format!("{y:04}-{m:02}-01"))?,
                days_from_ymd(&format!("{ny:04}-{nm:02}-01"))?,
            ))
        }
        [_, _, _] => {
            let d = days_from_ymd(v)?;
            (v.len() == 10).then_some((d, d + 1))
        }
        _ => None,
    }
}

/// A number as a query may write it: `100`, `1234.56`, `1_000`, `-5`.
fn number(v: &str) -> Option<f64> {
    let n: f64 = v.replace('_', "").parse().ok()?;
    n.is_finite().then_some(n)
}

fn range(
    idx: &SearchIndex,
    name: &str,
    lower: UserInputBound,
    upper: UserInputBound,
) -> Result<Box<dyn Query>, QueryError> {
    let f = idx.fields;
    let target = target(name);
    let bad =
        |v: &str, what: &str| QueryError(format!("cannot compare {name} with {v:?}: give {what}"));
    // Bounds as terms: a date's period widens an inclusive bound to the
    // whole period (`<=2024` is up to the end of 2024).
    let date_bounds =
        |make: &dyn Fn(DateTime) -> Term| -> Result<(Bound<Term>, Bound<Term>), QueryError> {
            let of =
                |v: &str| period(v).ok_or_else(|| bad(v, "a date (YYYY, YYYY-MM or YYYY-MM-DD)"));
            let day = |d: i64| make(date_of_days(d));
            let lo = match &lower {
                UserInputBound::Inclusive(v) => Bound::Included(day(of(v)?.0)),
                UserInputBound::Exclusive(v) => Bound::Included(day(of(v)?.1)),
                UserInputBound::Unbounded => Bound::Unbounded,
            };
            let hi = match &upper {
                UserInputBound::Inclusive(v) => Bound::Excluded(day(of(v)?.1)),
                UserInputBound::Exclusive(v) => Bound::Excluded(day(of(v)?.0)),
                UserInputBound::Unbounded => Bound::Unbounded,
            };
            Ok((lo, hi))
        };
    let num_bounds =
        |make: &dyn Fn(f64) -> Term| -> Result<(Bound<Term>, Bound<Term>), QueryError> {
            let conv = |b: &UserInputBound| -> Result<Bound<Term>, QueryError> {
                Ok(match b {
                    UserInputBound::Inclusive(v) => Bound::Included(make(
                        number(v).ok_or_else(|| bad(v, "a number or a date (YYYY-MM-DD)"))?,
                    )),
                    UserInputBound::Exclusive(v) => Bound::Excluded(make(
                        number(v).ok_or_else(|| bad(v, "a number or a date (YYYY-MM-DD)"))?,
                    )),
                    UserInputBound::Unbounded => Bound::Unbounded,
                })
            };
            Ok((conv(&lower)?, conv(&upper)?))
        };
    // On a document field, `2024` is a number and `2024-03` a month.
    let is_date = |b: &UserInputBound| match b {
        UserInputBound::Inclusive(v) | UserInputBound::Exclusive(v) => {
            v.contains('-') && period(v).is_some()
        }
        UserInputBound::Unbounded => false,
    };
    let (lo, hi) = match target {
        Target::Date(n) => {
            let field = if n == "added" { f.added } else { f.created };
            date_bounds(&|d| Term::from_field_date_for_search(field, d))?
        }
        Target::Year => {
            let conv = |b: &UserInputBound| -> Result<Bound<Term>, QueryError> {
                let year = |v: &str| -> Result<Term, QueryError> {
                    let y: u64 = v.parse().map_err(|_| bad(v, "a year"))?;
                    Ok(Term::from_field_u64(f.year, y))
                };
                Ok(match b {
                    UserInputBound::Inclusive(v) => Bound::Included(year(v)?),
                    UserInputBound::Exclusive(v) => Bound::Excluded(year(v)?),
                    UserInputBound::Unbounded => Bound::Unbounded,
                })
            };
            (conv(&lower)?, conv(&upper)?)
        }
        Target::Doc(path) => {
            let json = |append: &dyn Fn(&mut Term)| {
                let mut t = Term::from_field_json_path(f.fields, &path, false);
                append(&mut t);
                t
            };
            if is_date(&lower) || is_date(&upper) {
                date_bounds(&|d| json(&|t| t.append_type_and_fast_value(d)))?
            } else {
                num_bounds(&|n| json(&|t| t.append_type_and_fast_value(n)))?
            }
        }
        Target::Index(n) => {
            return Err(QueryError(format!(
            "{n} is a word field and cannot be compared; compare a field such as total, or created"
        )))
        }
    };
    Ok(Box::new(RangeQuery::new(lo, hi)))
}

/// What hits are ranked by.
#[derive(Clone, Debug, PartialEq)]
pub enum SortKey {
    Relevance,
    /// The document's date (`created`).
    Date,
    Added,
    /// A document field holding a number, an amount or a date.
    Field(String),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Sort {
    pub key: SortKey,
    pub ascending: bool,
}

impl Default for Sort {
    fn default() -> Self {
        Sort {
            key: SortKey::Relevance,
            ascending: false,
        }
    }
}

impl Sort {
    /// `relevance`, `date`, `added` or a field's name, optionally followed
    /// by `:asc` or `:desc`; the default order is the highest (or newest)
    /// first.
    pub fn parse(s: &str) -> Result<Sort, String> {
        let (name, order) = match s.rsplit_once(':') {
            Some((n, o)) => (n, Some(o)),
            None => (s, None),
        };
        let ascending = match order {
            None | Some("desc") => false,
            Some("asc") => true,
            Some(o) => return Err(format!("unknown sort order {o:?}: use asc or desc")),
        };
        let key = match name.trim() {
            "" | "relevance" | "score" => SortKey::Relevance,
            "date" | "created" => SortKey::Date,
            "added" => SortKey::Added,
            f if f.chars().all(|c| c.is_alphanumeric() || c == '_') => {
                SortKey::Field(f.to_string())
            }
            f => return Err(format!("cannot sort by {f:?}")),
        };
        if key == SortKey::Relevance && ascending {
            return Err("relevance sorts best first only".into());
        }
        Ok(Sort { key, ascending })
    }

    fn tag(&self) -> String {
        let name = match &self.key {
            SortKey::Relevance => "relevance",
            SortKey::Date => "date",
            SortKey::Added => "added",
            SortKey::Field(f) => f,
        };
        format!("{name}:{}", if self.ascending { "asc" } else { "desc" })
    }
}

/// A hit's place in a sort: (primary value, minus the document's number,
/// relevance); hits rank by it, highest first.
pub type Key = (f64, i64, f32);

/// Ranks below every hit: what a document before the cursor gets.
pub(super) const PASSED: Key = (f64::NEG_INFINITY, i64::MIN, 0.0);

/// Where a page ended: the last hit's key, for the sort it was made in.
#[derive(Clone, Debug, PartialEq)]
pub struct Cursor {
    sort: String,
    key: (f64, i64),
}

impl Cursor {
    pub(super) fn after(sort: &Sort, key: Key) -> Cursor {
        Cursor {
            sort: sort.tag(),
            key: (key.0, key.1),
        }
    }

    /// The opaque form handed to clients.
    pub fn encode(&self) -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!(
            "{}|{:x}|{:x}",
            self.sort,
            self.key.0.to_bits(),
            self.key.1
        ))
    }

    pub fn decode(s: &str, sort: &Sort) -> Result<Cursor, String> {
        use base64::Engine;
        let bad = || "the cursor is not one this server gave".to_string();
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| bad())?;
        let raw = String::from_utf8(raw).map_err(|_| bad())?;
        let mut parts = raw.rsplitn(3, '|');
        let seq = parts
            .next()
            .and_then(|p| u64::from_str_radix(p, 16).ok())
            .map(|n| n as i64);
        let bits = parts.next().and_then(|p| u64::from_str_radix(p, 16).ok());
        let (Some(seq), Some(bits), Some(tag)) = (seq, bits, parts.next()) else {
            return Err(bad());
        };
        if tag != sort.tag() {
            return Err(format!(
                "the cursor belongs to another sort ({tag}); ask again without it"
            ));
        }
        Ok(Cursor {
            sort: tag.to_string(),
            key: (f64::from_bits(bits), seq),
        })
    }
}

/// The key of each hit in a segment, for `TopDocs::tweak_score`; a hit at
/// or above the cursor gets [`PASSED`].
pub(super) fn sort_keys(
    sort: Sort,
    cursor: Option<Cursor>,
) -> impl Fn(&SegmentReader) -> Box<dyn Fn(DocId, Score) -> Key> + Send + Sync + 'static {
    move |segment: &SegmentReader| {
        let ff = segment.fast_fields();
        let seq = ff.u64("seq").ok();
        enum Primary {
            Score,
            Number(Option<tantivy::columnar::Column<f64>>),
            Date(Option<tantivy::columnar::Column<DateTime>>),
        }
        let primary = match &sort.key {
            SortKey::Relevance => Primary::Score,
            SortKey::Date => Primary::Date(ff.date("created").ok()),
            SortKey::Added => Primary::Date(ff.date("added").ok()),
            SortKey::Field(name) => {
                let path = format!("fields.{name}");
                match ff.column_opt::<f64>(&path).ok().flatten() {
                    Some(c) => Primary::Number(Some(c)),
                    None => Primary::Date(ff.column_opt::<DateTime>(&path).ok().flatten()),
                }
            }
        };
        let ascending = sort.ascending;
        let cursor = cursor.as_ref().map(|c| c.key);
        Box::new(move |doc: DocId, score: Score| {
            let value = match &primary {
                Primary::Score => Some(score as f64),
                Primary::Number(c) => c.as_ref().and_then(|c| c.first(doc)),
                Primary::Date(c) => c
                    .as_ref()
                    .and_then(|c| c.first(doc))
                    .map(|d| d.into_timestamp_secs() as f64),
            };
            // A document without the value ranks after those with it,
            // whichever the order.
            let primary = match value {
                Some(v) if ascending => -v,
                Some(v) => v,
                None => f64::MIN,
            };
            let seq = seq.as_ref().and_then(|c| c.first(doc)).unwrap_or(0) as i64;
            let key = (primary, -seq, score);
            match cursor {
                Some(c) if (key.0, key.1) >= c => PASSED,
                _ => key,
            }
        })
    }
}
