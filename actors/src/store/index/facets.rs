//! Facet counts: for every hit (not only the page), how many carry each
//! type, tag, year and language. Counted exactly, from the fast fields, in
//! the same pass as the top hits and the total.

use std::collections::BTreeMap;

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::{Column, StrColumn};
use tantivy::{DocId, Score, SegmentOrdinal, SegmentReader};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum FacetKind {
    Type,
    Tags,
    Year,
    Language,
}

impl FacetKind {
    pub fn parse(s: &str) -> Option<FacetKind> {
        Some(match s.trim() {
            "type" | "doc_type" => FacetKind::Type,
            "tags" | "tag" => FacetKind::Tags,
            "year" => FacetKind::Year,
            "language" => FacetKind::Language,
            _ => return None,
        })
    }

    /// The facet's name in the answer.
    pub fn name(self) -> &'static str {
        match self {
            FacetKind::Type => "type",
            FacetKind::Tags => "tags",
            FacetKind::Year => "year",
            FacetKind::Language => "language",
        }
    }

    fn column(self) -> &'static str {
        match self {
            FacetKind::Type => "type",
            FacetKind::Tags => "tag",
            FacetKind::Year => "year",
            FacetKind::Language => "language",
        }
    }
}

/// Facet name → value → number of hits.
pub type FacetCounts = BTreeMap<&'static str, BTreeMap<String, u64>>;

pub(super) struct Facets(pub Vec<FacetKind>);

enum Counter {
    /// Counts per term ordinal of a keyword column.
    Terms(Option<StrColumn>, Vec<u64>),
    Years(Option<Column<u64>>, BTreeMap<u64, u64>),
}

pub(super) struct SegmentFacets(Vec<(FacetKind, Counter)>);

impl Collector for Facets {
    type Fruit = FacetCounts;
    type Child = SegmentFacets;

    fn for_segment(
        &self,
        _ord: SegmentOrdinal,
        segment: &SegmentReader,
    ) -> tantivy::Result<SegmentFacets> {
        let ff = segment.fast_fields();
        let mut counters = Vec::with_capacity(self.0.len());
        for &kind in &self.0 {
            let counter = match kind {
                FacetKind::Year => Counter::Years(ff.u64(kind.column()).ok(), BTreeMap::new()),
                _ => {
                    let col = ff.str(kind.column())?;
                    let n = col.as_ref().map_or(0, |c| c.num_terms());
                    Counter::Terms(col, vec![0; n])
                }
            };
            counters.push((kind, counter));
        }
        Ok(SegmentFacets(counters))
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<FacetCounts>) -> tantivy::Result<FacetCounts> {
        let mut out: FacetCounts = self.0.iter().map(|k| (k.name(), BTreeMap::new())).collect();
        for fruit in fruits {
            for (name, counts) in fruit {
                let into = out.entry(name).or_default();
                for (value, n) in counts {
                    *into.entry(value).or_insert(0) += n;
                }
            }
        }
        Ok(out)
    }
}

impl SegmentCollector for SegmentFacets {
    type Fruit = FacetCounts;

    fn collect(&mut self, doc: DocId, _score: Score) {
        for (_, counter) in &mut self.0 {
            match counter {
                Counter::Terms(Some(col), counts) => {
                    for ord in col.term_ords(doc) {
                        if let Some(n) = counts.get_mut(ord as usize) {
                            *n += 1;
                        }
                    }
                }
                Counter::Years(Some(col), counts) => {
                    if let Some(y) = col.first(doc) {
                        *counts.entry(y).or_insert(0) += 1;
                    }
                }
                _ => {}
            }
        }
    }

    fn harvest(self) -> FacetCounts {
        let mut out = FacetCounts::new();
        for (kind, counter) in self.0 {
            let mut values = BTreeMap::new();
            match counter {
                Counter::Terms(Some(col), counts) => {
                    let mut name = String::new();
                    for (ord, n) in counts.into_iter().enumerate() {
                        if n > 0 {
                            name.clear();
                            if col.ord_to_str(ord as u64, &mut name).unwrap_or(false) {
                                values.insert(name.clone(), n);
                            }
                        }
                    }
                }
                Counter::Years(_, counts) => {
                    values.extend(counts.into_iter().map(|(y, n)| (y.to_string(), n)));
                }
                Counter::Terms(None, _) => {}
            }
            out.insert(kind.name(), values);
        }
        out
    }
}

/// The catalog numbers (`seq`) of every hit: the documents a semantic
/// search may return.
pub struct Seqs;

pub struct SegmentSeqs(Option<Column<u64>>, Vec<i64>);

impl Collector for Seqs {
    type Fruit = std::collections::HashSet<i64>;
    type Child = SegmentSeqs;

    fn for_segment(
        &self,
        _ord: SegmentOrdinal,
        segment: &SegmentReader,
    ) -> tantivy::Result<SegmentSeqs> {
        Ok(SegmentSeqs(
            segment.fast_fields().u64("seq").ok(),
            Vec::new(),
        ))
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<Vec<i64>>) -> tantivy::Result<Self::Fruit> {
        Ok(fruits.into_iter().flatten().collect())
    }
}

impl SegmentCollector for SegmentSeqs {
    type Fruit = Vec<i64>;

    fn collect(&mut self, doc: DocId, _score: Score) {
        if let Some(seq) = self.0.as_ref().and_then(|c| c.first(doc)) {
            self.1.push(seq as i64);
        }
    }

    fn harvest(self) -> Vec<i64> {
        self.1
    }
}
