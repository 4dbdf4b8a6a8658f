//! The Paperless-ngx document list's filters and ordering, read into a
//! [`DocQuery`]. Filters on what docpipe does not have (storage paths,
//! owners, sharing, inbox tags) are accepted and answered as Paperless
//! would answer them for an instance without any: `storage_path__isnull`
//! holds for every document, `owner__id` for none.

use docpipe_actors::{Cmp, Code, DocOrder, DocQuery, LabelFilter};

use super::problem::Problem;

/// What the list asks for besides its filters.
#[derive(Debug, Default)]
pub struct ListOptions {
    pub page: Option<usize>,
    pub page_size: Option<usize>,
    pub query: Option<String>,
    pub more_like_id: Option<i64>,
    pub truncate_content: bool,
    /// A filter that no document passes (e.g. on a storage path).
    pub nothing: bool,
}

fn bad(key: &str, value: &str, what: &str) -> Problem {
    Problem::new(
        Code::InvalidParameter,
        format!("{key}: {value:?} is not {what}"),
    )
    .on_field(key)
}

fn id(key: &str, v: &str) -> Result<i64, Problem> {
    v.trim().parse::<i64>().map_err(|_| bad(key, v, "a number"))
}

fn ids(key: &str, v: &str) -> Result<Vec<i64>, Problem> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| id(key, s))
        .collect()
}

/// DRF's `BooleanField` reading of a query flag.
pub fn boolean(key: &str, v: &str) -> Result<bool, Problem> {
    match v.trim() {
        "true" | "True" | "1" | "yes" | "on" => Ok(true),
        "false" | "False" | "0" | "no" | "off" => Ok(false),
        _ => Err(bad(key, v, "true or false")),
    }
}

fn date(key: &str, v: &str) -> Result<String, Problem> {
    let d = v.trim().get(..10).unwrap_or("");
    let ok = humantime::parse_rfc3339_weak(&format!("{d} 00:00:00")).is_ok();
    if ok {
        Ok(d.to_string())
    } else {
        Err(bad(key, v, "a date (YYYY-MM-DD)"))
    }
}

/// A date and time (RFC 3339, `Z` or an offset), or a date (its midnight,
/// UTC), as ms since the epoch.
pub(crate) fn instant(key: &str, v: &str) -> Result<i64, Problem> {
    let v = v.trim();
    let parsed = if v.len() == 10 {
        humantime::parse_rfc3339_weak(&format!("{v} 00:00:00")).ok()
    } else if let Some((dt, off)) = v
        .get(..19)
        .zip(v.get(19..))
        .filter(|(_, off)| off.len() == 6 && (off.starts_with('+') || off.starts_with('-')))
    {
        let sign: i64 = if off.starts_with('-') { -1 } else { 1 };
        let h: i64 = off[1..3].parse().unwrap_or(0);
        let m: i64 = off[4..6].parse().unwrap_or(0);
        humantime::parse_rfc3339_weak(dt).ok().map(|t| {
            let secs = sign * (h * 3600 + m * 60);
            if secs >= 0 {
                t - std::time::Duration::from_secs(secs as u64)
            } else {
                t + std::time::Duration::from_secs((-secs) as u64)
            }
        })
    } else {
        humantime::parse_rfc3339_weak(v).ok()
    };
    parsed
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as i64)
        .ok_or_else(|| bad(key, v, "a date or an ISO 8601 date-time"))
}

fn cmp(suffix: &str) -> Option<Cmp> {
    Some(match suffix {
        "" | "exact" => Cmp::Eq,
        "gt" => Cmp::Gt,
        "gte" => Cmp::Gte,
        "lt" => Cmp::Lt,
        "lte" => Cmp::Lte,
        _ => return None,
    })
}

fn order(v: &str) -> Option<(DocOrder, bool)> {
    let (desc, name) = match v.trim().strip_prefix('-') {
        Some(n) => (true, n),
        None => (false, v.trim()),
    };
    let by = match name {
        "id" => DocOrder::Number,
        "title" => DocOrder::Title,
        "created" | "created_date" => DocOrder::Created,
        "added" => DocOrder::Added,
        "modified" => DocOrder::Modified,
        "archive_serial_number" => DocOrder::Asn,
        "document_type__name" => DocOrder::DocType,
        "correspondent__name" => DocOrder::Issuer,
        "mime_type" => DocOrder::Mime,
        "page_count" => DocOrder::Pages,
        _ => return None,
    };
    Some((by, desc))
}

/// Reads the list's query string. Unknown keys are ignored, as Paperless
/// (django-filter) ignores them; a known key with a malformed value is a
/// 400 naming it.
pub fn parse(pairs: &[(String, String)]) -> Result<(ListOptions, DocQuery), Problem> {
    let mut o = ListOptions::default();
    let mut q = DocQuery::default();
    for (key, v) in pairs {
        let k = key.as_str();
        let text = || Some(v.clone()).filter(|s| !s.trim().is_empty());
        match k {
            "page" => o.page = Some(id(k, v)?.max(1) as usize),
            "page_size" => o.page_size = Some(id(k, v)?.max(1) as usize),
            "query" => o.query = text(),
            "more_like_id" => o.more_like_id = Some(id(k, v)?),
            "truncate_content" => o.truncate_content = boolean(k, v)?,
            "ordering" => q.order = order(v).or(q.order),
            "id" => q.numbers = Some(vec![id(k, v)?]),
            "id__in" => q.numbers = Some(ids(k, v)?),
            "tags__id" => q.tags_all.push(id(k, v)?),
            "tags__id__all" => q.tags_all.extend(ids(k, v)?),
            "tags__id__in" => q.tags_any = Some(ids(k, v)?),
            "tags__id__none" => q.tags_none.extend(ids(k, v)?),
            "is_tagged" => q.is_tagged = Some(boolean(k, v)?),
            "document_type__id" | "document_type" => q.doc_types = Some(vec![id(k, v)?]),
            "document_type__id__in" => q.doc_types = Some(ids(k, v)?),
            "document_type__id__none" => q.doc_types_none.extend(ids(k, v)?),
            "document_type__isnull" => q.doc_type_null = Some(boolean(k, v)?),
            "correspondent__id" | "correspondent" => q.issuers = Some(vec![id(k, v)?]),
            "correspondent__id__in" => q.issuers = Some(ids(k, v)?),
            "correspondent__id__none" => q.issuers_none.extend(ids(k, v)?),
            "correspondent__isnull" => q.issuer_null = Some(boolean(k, v)?),
            "title__icontains" => q.title_contains = text(),
            "content__icontains" => q.content_contains = text(),
            "title_content" => q.title_or_content = text(),
            "original_filename__icontains" => q.filename_contains = text(),
            "mime_type" => q.mime = text(),
            "archive_serial_number__isnull" => q.asn_null = Some(boolean(k, v)?),
            // What docpipe has none of: no document has a storage path or
            // an owner, none is shared, no tag is an inbox tag.
            "storage_path__isnull" | "owner__isnull" => {
                if !boolean(k, v)? {
                    o.nothing = true;
                }
            }
            "storage_path__id"
            | "storage_path__id__in"
            | "owner__id"
            | "owner__id__in"
            | "shared_by__id" => {
                if !ids(k, v)?.is_empty() {
                    o.nothing = true;
                }
            }
            "is_in_inbox" => {
                if boolean(k, v)? {
                    o.nothing = true;
                }
            }
            _ => {
                if let Some(rest) = k.strip_prefix("archive_serial_number") {
                    if let Some(c) = cmp(rest.trim_start_matches("__")) {
                        q.asn.push((c, id(k, v)?));
                    }
                } else if let Some(rest) = k.strip_prefix("created__date") {
                    if let Some(c) = cmp(rest.trim_start_matches("__")) {
                        q.created.push((c, date(k, v)?));
                    }
                } else if let Some(rest) = k.strip_prefix("created") {
                    if let Some(c) = cmp(rest.trim_start_matches("__")) {
                        q.created.push((c, date(k, v)?));
                    }
                } else if let Some(rest) = k.strip_prefix("added__date") {
                    if let Some(c) = cmp(rest.trim_start_matches("__")) {
                        q.added_date.push((c, date(k, v)?));
                    }
                } else if let Some(rest) = k.strip_prefix("added") {
                    if let Some(c) = cmp(rest.trim_start_matches("__")) {
                        q.added.push((c, instant(k, v)?));
                    }
                }
            }
        }
    }
    Ok((o, q))
}

/// A label list's page and filters (`name__icontains`, `name__istartswith`,
/// `name__iexact`, `id__in`, `id`); other keys are ignored.
pub fn parse_labels(pairs: &[(String, String)]) -> Result<(usize, usize, LabelFilter), Problem> {
    let (mut page, mut size) = (1, 25);
    let mut f = LabelFilter::default();
    for (key, v) in pairs {
        let k = key.as_str();
        let text = || Some(v.trim().to_string()).filter(|s| !s.is_empty());
        match k {
            "page" => page = id(k, v)?.max(1) as usize,
            "page_size" => size = id(k, v)?.clamp(1, 1000) as usize,
            "name__icontains" => f.name_contains = text(),
            "name__istartswith" => f.name_starts = text(),
            "name__iexact" => f.name_is = text(),
            "id" => f.ids = Some(vec![id(k, v)?]),
            "id__in" => f.ids = Some(ids(k, v)?),
            _ => {}
        }
    }
    Ok((page, size, f))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(q: &[(&str, &str)]) -> Vec<(String, String)> {
        q.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn filters_and_orders_are_read_and_bad_values_named() {
        let (o, q) = parse(&pairs(&[
            ("tags__id__all", "3,4"),
            ("document_type__id__in", "7"),
            ("correspondent__isnull", "true"),
            ("created__date__gte", "2024-01-01"),
            ("added__lt", "2024-05-01T10:00:00+02:00"),
            ("ordering", "-created"),
            ("truncate_content", "true"),
            ("fields", "id,title"),
        ]))
        .unwrap();
        assert!(o.truncate_content && !o.nothing);
        assert_eq!(q.tags_all, vec![3, 4]);
        assert_eq!(q.doc_types, Some(vec![7]));
        assert_eq!(q.issuer_null, Some(true));
        assert_eq!(q.created, vec![(Cmp::Gte, "2024-01-01".to_string())]);
        assert_eq!(q.added, vec![(Cmp::Lt, 1_714_550_400_000)]);
        assert_eq!(q.order, Some((DocOrder::Created, true)));
        let e = parse(&pairs(&[("tags__id__all", "x")])).unwrap_err();
        assert!(e.detail.contains("tags__id__all"), "{}", e.detail);
        assert!(parse(&pairs(&[("created__gt", "soon")])).is_err());
        let (o, _) = parse(&pairs(&[("storage_path__id", "2")])).unwrap();
        assert!(o.nothing);
    }
}
