//! Analytics: documents per type and period, sums of a money field per
//! issuer, type, period and currency, stage latencies and failures, over a
//! window of dates and the scope's workspaces (`GET /api/v1/analytics`).
//!
//! A document's date is the one set by hand, else its `date` field, else
//! the day it was added: what a person means by "the invoices of March".

use std::collections::BTreeMap;

use anyhow::Result;
use rusqlite::{params, Connection};
use serde::Serialize;

use super::schema::workspace_filter;
use crate::model::Scope;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Period {
    Day,
    Week,
    Month,
}

impl Period {
    pub fn parse(s: &str) -> Option<Period> {
        match s {
            "day" => Some(Period::Day),
            "week" => Some(Period::Week),
            "month" => Some(Period::Month),
            _ => None,
        }
    }

    /// SQL of the period of the date `col` (`YYYY-MM-DD`): `2026-12-03`,
    /// `2026-W49` (ISO week), `2026-12`.
    fn sql(self, col: &str) -> String {
        match self {
            Period::Day => col.to_string(),
            Period::Week => format!("strftime('%G-W%V', {col})"),
            Period::Month => format!("substr({col}, 1, 7)"),
        }
    }
}

/// What to count and over which window.
#[derive(Clone, Debug)]
pub struct AnalyticsQuery {
    /// Dates `YYYY-MM-DD`, both ends included.
    pub from: Option<String>,
    pub to: Option<String>,
    pub workspace: Option<String>,
    pub period: Period,
    /// The money field summed.
    pub field: String,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct PerType {
    pub period: String,
    pub doc_type: Option<String>,
    pub documents: u64,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Money {
    pub period: String,
    pub issuer: Option<String>,
    pub doc_type: Option<String>,
    pub field: String,
    pub currency: Option<String>,
    /// A decimal string, exact to the thousandth.
    pub total: String,
    pub documents: u64,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Latency {
    pub p50: u64,
    pub p95: u64,
    pub count: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Analytics {
    pub per_type: Vec<PerType>,
    pub money: Vec<Money>,
    /// Per stage: how long documents took to reach it from the stage
    /// before (`total`: from upload to indexed), over those that reached
    /// it in the window.
    pub latency_ms: BTreeMap<String, Latency>,
    /// Documents that failed in the window, by error code.
    pub failures: BTreeMap<String, u64>,
}

/// The document's date (see the module's doc), as SQL over `d`.
const DOC_DATE: &str = "COALESCE(substr(d.doc_date, 1, 10),
    (SELECT substr(f.value, 1, 10) FROM doc_fields f WHERE f.doc_seq = d.seq AND f.name = 'date'),
    date(d.created_at / 1000, 'unixepoch'))";

pub fn analytics(conn: &Connection, q: &AnalyticsQuery, scope: &Scope) -> Result<Analytics> {
    let from = q.from.clone().unwrap_or_else(|| "0000-01-01".into());
    let to = q.to.clone().unwrap_or_else(|| "9999-12-31".into());
    let ws = workspace_filter("d.workspace", 3);
    let period = q.period.sql("day");

    let mut stmt = conn.prepare(&format!(
        "WITH docs AS (
           SELECT d.doc_type, {DOC_DATE} AS day FROM documents d
           WHERE d.stage != 'deleting' AND (?4 IS NULL OR d.workspace = ?4) AND {ws})
         SELECT {period}, doc_type, COUNT(*) FROM docs WHERE day BETWEEN ?1 AND ?2
         GROUP BY 1, 2 ORDER BY 1, 2"
    ))?;
    let per_type = stmt
        .query_map(params![from, to, scope.sql_param(), q.workspace], |r| {
            Ok(PerType {
                period: r.get(0)?,
                doc_type: r.get(1)?,
                documents: r.get::<_, i64>(2)? as u64,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;

    // Sums in thousandths, as integers: exact for every currency's minor unit.
    let mut stmt = conn.prepare(&format!(
        "WITH docs AS (
           SELECT d.seq, d.doc_type, {DOC_DATE} AS day,
             (SELECT i.value FROM doc_fields i WHERE i.doc_seq = d.seq AND i.name = 'issuer') AS issuer
           FROM documents d
           WHERE d.stage != 'deleting' AND (?4 IS NULL OR d.workspace = ?4) AND {ws})
         SELECT {period}, docs.issuer, docs.doc_type, m.currency,
           SUM(CAST(ROUND(CAST(m.value AS REAL) * 1000) AS INTEGER)), COUNT(*)
         FROM docs JOIN doc_fields m ON m.doc_seq = docs.seq AND m.name = ?5 AND m.kind = 'money'
         WHERE docs.day BETWEEN ?1 AND ?2
         GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4"
    ))?;
    let money = stmt
        .query_map(
            params![from, to, scope.sql_param(), q.workspace, q.field],
            |r| {
                Ok(Money {
                    period: r.get(0)?,
                    issuer: r.get(1)?,
                    doc_type: r.get(2)?,
                    field: q.field.clone(),
                    currency: r.get(3)?,
                    total: thousandths(r.get(4)?),
                    documents: r.get::<_, i64>(5)? as u64,
                })
            },
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;

    // The window in ms, its last day included.
    let ms = |day: &str, end: bool| -> Result<i64> {
        let sql = format!(
            "SELECT CAST(strftime('%s', ?1{}) AS INTEGER) * 1000",
            if end { ", '+1 day'" } else { "" }
        );
        Ok(conn
            .query_row(&sql, [day], |r| r.get::<_, Option<i64>>(0))?
            .unwrap_or(if end { i64::MAX } else { 0 }))
    };
    let (from_ms, to_ms) = (ms(&from, false)?, ms(&to, true)?);
    let ev_ws = workspace_filter("e.workspace", 4);
    let mut stmt = conn.prepare(&format!(
        "SELECT e.doc_id, e.kind, e.at FROM events e
         WHERE e.kind IN ('uploaded', 'extracted', 'classified', 'enriched', 'indexed')
           AND e.doc_id IN (SELECT doc_id FROM events
                            WHERE kind = 'indexed' AND at >= ?1 AND at < ?2)
           AND (?3 IS NULL OR e.workspace = ?3) AND {ev_ws}
         ORDER BY e.doc_id, e.seq"
    ))?;
    let mut rows = stmt.query(params![from_ms, to_ms, q.workspace, scope.sql_param()])?;
    let mut spans: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut doc: Option<String> = None;
    let mut last: BTreeMap<&'static str, i64> = BTreeMap::new();
    const ORDER: [&str; 5] = ["uploaded", "extracted", "classified", "enriched", "indexed"];
    while let Some(r) = rows.next()? {
        let (id, kind, at): (String, String, i64) = (r.get(0)?, r.get(1)?, r.get(2)?);
        if doc.as_deref() != Some(id.as_str()) {
            doc = Some(id);
            last.clear();
        }
        let Some(i) = ORDER.iter().position(|k| *k == kind) else {
            continue;
        };
        if i > 0 {
            // From the latest earlier stage this run of the document reached
            // (one step may write several stages at once).
            if let Some(prev) = ORDER[..i].iter().rev().find_map(|k| last.get(k)) {
                spans
                    .entry(ORDER[i].to_string())
                    .or_default()
                    .push((at - prev).max(0) as u64);
            }
        }
        if kind == "indexed" {
            if let Some(up) = last.get("uploaded") {
                spans
                    .entry("total".into())
                    .or_default()
                    .push((at - up).max(0) as u64);
            }
            // Indexed again after an edit: not another upload-to-index.
            last.remove("uploaded");
        }
        last.insert(ORDER[i], at);
    }
    let latency_ms = spans
        .into_iter()
        .map(|(k, mut v)| {
            v.sort_unstable();
            let pick = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
            let l = Latency {
                p50: pick(0.5),
                p95: pick(0.95),
                count: v.len() as u64,
            };
            (k, l)
        })
        .collect();

    let mut stmt = conn.prepare(&format!(
        "SELECT COALESCE(json_extract(e.detail, '$.code'), 'unknown'), COUNT(*) FROM events e
         WHERE e.kind = 'failed' AND e.at >= ?1 AND e.at < ?2
           AND (?3 IS NULL OR e.workspace = ?3) AND {ev_ws}
         GROUP BY 1 ORDER BY 1"
    ))?;
    let failures = stmt
        .query_map(
            params![from_ms, to_ms, q.workspace, scope.sql_param()],
            |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64)),
        )?
        .collect::<rusqlite::Result<BTreeMap<_, _>>>()?;
    Ok(Analytics {
        per_type,
        money,
        latency_ms,
        failures,
    })
}

/// 1234560 → "1234.56"; at least two decimals.
fn thousandths(n: i64) -> String {
    let sign = if n < 0 { "-" } else { "" };
    let n = n.unsigned_abs();
    let mut s = format!("{sign}{}.{:03}", n / 1000, n % 1000);
    if s.ends_with('0') {
        s.pop();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::thousandths;

    #[test]
    fn sums_are_written_as_decimals() {
        assert_eq!(thousandths(1_234_560), "1234.56");
        assert_eq!(thousandths(1_234_567), "1234.567");
        assert_eq!(thousandths(5), "0.005");
        assert_eq!(thousandths(-2_500), "-2.50");
        assert_eq!(thousandths(0), "0.00");
    }
}
