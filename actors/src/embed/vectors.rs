//! The vectors of the embedded documents' passages, in memory for search:
//! one flat array of 8-bit rows (each with its scale), the rows of one
//! document side by side. A query is compared with every row (exact
//! search, no graph to build or to drift from SQLite); a document scores
//! its best passage. SQLite's `chunks` table is the durable copy: the
//! Catalog writes it, then (after the commit) replaces the document's rows
//! here; the engine loads it at start.

use std::collections::{BinaryHeap, HashMap};
use std::sync::RwLock;

use super::table::quantize;

/// One passage's vector, as stored: `vector ≈ scale * q`.
#[derive(Clone, Debug)]
pub struct ChunkVector {
    pub no: u32,
    pub page: u32,
    /// Byte offsets into the document's text.
    pub start: u32,
    pub end: u32,
    pub scale: f32,
    pub q: Vec<i8>,
}

impl ChunkVector {
    pub fn new(no: u32, page: u32, start: usize, end: usize, v: &[f32]) -> ChunkVector {
        let (scale, q) = quantize(v);
        ChunkVector {
            no,
            page,
            start: start as u32,
            end: end as u32,
            scale,
            q,
        }
    }
}

/// A document near the query: its best passage and that passage's cosine.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Near {
    pub seq: i64,
    pub score: f32,
    pub chunk: u32,
}

#[derive(Default)]
struct Rows {
    dims: usize,
    q: Vec<i8>,
    scales: Vec<f32>,
    /// The document of each row; 0 once it was dropped.
    owner: Vec<i64>,
    chunk: Vec<u32>,
    /// At a live document's first row, the end of its rows; 0 elsewhere
    /// (so that the scan needs no lookup).
    ends: Vec<u32>,
    /// Each document's rows.
    docs: HashMap<i64, (usize, usize)>,
    dead: usize,
}

#[derive(Default)]
pub struct VectorIndex {
    rows: RwLock<Rows>,
}

impl VectorIndex {
    pub fn new(dims: usize) -> VectorIndex {
        VectorIndex {
            rows: RwLock::new(Rows {
                dims,
                ..Rows::default()
            }),
        }
    }

    pub fn dims(&self) -> usize {
        self.read().dims
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Rows> {
        self.rows.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Rows> {
        self.rows.write().unwrap_or_else(|p| p.into_inner())
    }

    /// (documents, passages) held.
    pub fn len(&self) -> (usize, usize) {
        let r = self.read();
        (r.docs.len(), r.owner.len() - r.dead)
    }

    pub fn is_empty(&self) -> bool {
        self.read().docs.is_empty()
    }

    pub fn contains(&self, seq: i64) -> bool {
        self.read().docs.contains_key(&seq)
    }

    /// The document's rows become `chunks` (none: it has no vectors).
    pub fn replace(&self, seq: i64, chunks: &[ChunkVector]) {
        let mut r = self.write();
        r.drop_doc(seq);
        if r.dims == 0 {
            // An embedder whose width is learnt from its first vectors.
            r.dims = chunks.first().map_or(0, |c| c.q.len());
        }
        let dims = r.dims;
        let first = r.owner.len();
        for c in chunks.iter().filter(|c| c.q.len() == dims) {
            r.q.extend_from_slice(&c.q);
            r.scales.push(c.scale);
            r.owner.push(seq);
            r.chunk.push(c.no);
            r.ends.push(0);
        }
        if r.owner.len() > first {
            let last = r.owner.len();
            r.docs.insert(seq, (first, last));
            r.ends[first] = last as u32;
        }
        r.compact_if_sparse();
    }

    pub fn remove(&self, seq: i64) {
        let mut r = self.write();
        r.drop_doc(seq);
        r.compact_if_sparse();
    }

    pub fn clear(&self) {
        let mut r = self.write();
        let dims = r.dims;
        *r = Rows {
            dims,
            ..Rows::default()
        };
    }

    /// The mean of a document's passages (normalised): what "similar
    /// documents" compares.
    pub fn doc_vector(&self, seq: i64) -> Option<Vec<f32>> {
        let r = self.read();
        let &(a, b) = r.docs.get(&seq)?;
        let mut v = vec![0f32; r.dims];
        for i in a..b {
            let s = r.scales[i];
            for (x, &q) in v.iter_mut().zip(&r.q[i * r.dims..(i + 1) * r.dims]) {
                *x += s * q as f32;
            }
        }
        super::table::normalize(&mut v).then_some(v)
    }

    /// The number of a document's passage nearest `query`.
    pub fn best_chunk(&self, seq: i64, query: &[f32]) -> Option<u32> {
        let r = self.read();
        let &(a, b) = r.docs.get(&seq)?;
        if query.len() != r.dims {
            return None;
        }
        let (_, qq) = quantize(query);
        (a..b)
            .max_by(|&i, &j| {
                let s =
                    |k: usize| dot_i8(&qq, &r.q[k * r.dims..(k + 1) * r.dims]) as f32 * r.scales[k];
                s(i).total_cmp(&s(j))
            })
            .map(|i| r.chunk[i])
    }

    /// The `k` documents whose best passage is nearest `query` (a unit
    /// vector), among those `allow` lets through, best first. A large
    /// index is scanned by several threads, each over its own rows.
    pub fn nearest(
        &self,
        query: &[f32],
        k: usize,
        allow: &(dyn Fn(i64) -> bool + Sync),
    ) -> Vec<Near> {
        let r = self.read();
        if query.len() != r.dims || k == 0 {
            return Vec::new();
        }
        let (qs, qq) = quantize(query);
        let rows = r.owner.len();
        let threads = if rows >= PARALLEL_ROWS {
            std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
        } else {
            1
        };
        // Split where a document's rows start (or at a dropped row).
        let mut bounds = vec![0];
        for t in 1..threads {
            let mut p = rows * t / threads;
            while p < rows && r.ends[p] == 0 && r.owner[p] != 0 {
                p += 1;
            }
            bounds.push(p);
        }
        bounds.push(rows);
        let mut out: Vec<Near> = if threads == 1 {
            r.scan(&qq, qs, 0, rows, k, allow)
        } else {
            let rr = &*r;
            let qq = &qq;
            std::thread::scope(|s| {
                let parts: Vec<_> = bounds
                    .windows(2)
                    .map(|w| {
                        let (from, to) = (w[0], w[1]);
                        s.spawn(move || rr.scan(qq, qs, from, to, k, allow))
                    })
                    .collect();
                parts
                    .into_iter()
                    .flat_map(|h| h.join().unwrap_or_default())
                    .collect()
            })
        };
        out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.seq.cmp(&b.seq)));
        out.truncate(k);
        out
    }
}

/// From this many rows on, a query's scan is split over threads.
const PARALLEL_ROWS: usize = 65_536;

impl Rows {
    /// The best `k` documents of rows `from..to` (`from` at a document's
    /// first row or a dropped one).
    fn scan(
        &self,
        qq: &[i8],
        qs: f32,
        from: usize,
        to: usize,
        k: usize,
        allow: &(dyn Fn(i64) -> bool + Sync),
    ) -> Vec<Near> {
        let dot = dot_fn();
        let dims = self.dims;
        let mut heap: BinaryHeap<std::cmp::Reverse<Ranked>> = BinaryHeap::with_capacity(k + 1);
        let mut i = from;
        while i < to {
            let end = self.ends[i] as usize;
            if end == 0 {
                i += 1;
                continue;
            }
            let seq = self.owner[i];
            if allow(seq) {
                let mut best = Near {
                    seq,
                    score: f32::MIN,
                    chunk: 0,
                };
                for j in i..end {
                    let score =
                        dot(qq, &self.q[j * dims..(j + 1) * dims]) as f32 * qs * self.scales[j];
                    if score > best.score {
                        best.score = score;
                        best.chunk = self.chunk[j];
                    }
                }
                heap.push(std::cmp::Reverse(Ranked(best)));
                if heap.len() > k {
                    heap.pop();
                }
            }
            i = end;
        }
        heap.into_iter().map(|r| r.0 .0).collect()
    }

    fn drop_doc(&mut self, seq: i64) {
        if let Some((a, b)) = self.docs.remove(&seq) {
            self.owner[a..b].fill(0);
            self.ends[a] = 0;
            self.dead += b - a;
        }
    }

    /// Rewrites the rows without the dropped ones once they are half.
    fn compact_if_sparse(&mut self) {
        if self.dead < 1024 || self.dead * 2 < self.owner.len() {
            return;
        }
        let dims = self.dims;
        let mut keep = Rows {
            dims,
            ..Rows::default()
        };
        for i in 0..self.owner.len() {
            let seq = self.owner[i];
            if seq == 0 {
                continue;
            }
            let at = keep.owner.len();
            keep.q.extend_from_slice(&self.q[i * dims..(i + 1) * dims]);
            keep.scales.push(self.scales[i]);
            keep.owner.push(seq);
            keep.chunk.push(self.chunk[i]);
            keep.ends.push(0);
            let (first, end) = *keep
                .docs
                .entry(seq)
                .and_modify(|e| e.1 = at + 1)
                .or_insert((at, at + 1));
            keep.ends[first] = end as u32;
        }
        *self = keep;
    }
}

#[derive(PartialEq)]
struct Ranked(Near);
impl Eq for Ranked {}
impl PartialOrd for Ranked {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Ranked {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.0
            .score
            .total_cmp(&o.0.score)
            .then(o.0.seq.cmp(&self.0.seq))
    }
}

/// The dot product of two rows (values within ±127, as [`quantize`]
/// makes them), with AVX2 where the processor has it.
pub fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    dot_fn()(a, b)
}

/// The dot product for this processor, chosen once per scan.
fn dot_fn() -> fn(&[i8], &[i8]) -> i32 {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        return |a, b| {
            // SAFETY: chosen only when the processor has AVX2.
            unsafe { dot_avx2(a, b) }
        };
    }
    dot_plain
}

/// 32 products at a time: `|a| · (b · sign a)` as unsigned × signed bytes
/// into 16-bit pairs (at most 2 · 127² = 32,258: no saturation), then
/// summed into 32-bit lanes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn dot_avx2(a: &[i8], b: &[i8]) -> i32 {
    use std::arch::x86_64::*;
    let n = a.len().min(b.len());
    let ones = _mm256_set1_epi16(1);
    let mut acc = _mm256_setzero_si256();
    let mut i = 0;
    while i + 32 <= n {
        // SAFETY: i + 32 <= n, within both slices (unaligned loads).
        let va = unsafe { _mm256_loadu_si256(a.as_ptr().add(i) as *const __m256i) };
        let vb = unsafe { _mm256_loadu_si256(b.as_ptr().add(i) as *const __m256i) };
        let pairs = _mm256_maddubs_epi16(_mm256_sign_epi8(va, va), _mm256_sign_epi8(vb, va));
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, ones));
        i += 32;
    }
    let s = _mm_add_epi32(
        _mm256_castsi256_si128(acc),
        _mm256_extracti128_si256(acc, 1),
    );
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
    _mm_cvtsi128_si32(s) + dot_plain(&a[i..n], &b[i..n])
}

#[inline(always)]
fn dot_plain(a: &[i8], b: &[i8]) -> i32 {
    let mut acc = [0i32; 32];
    let mut ca = a.chunks_exact(32);
    let mut cb = b.chunks_exact(32);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for i in 0..32 {
            acc[i] += x[i] as i32 * y[i] as i32;
        }
    }
    let tail: i32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(&x, &y)| x as i32 * y as i32)
        .sum();
    acc.iter().sum::<i32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(v: &[f32]) -> Vec<f32> {
        let mut v = v.to_vec();
        super::super::table::normalize(&mut v);
        v
    }

    #[test]
    fn nearest_ranks_by_best_passage_and_forgets_dropped_documents() {
        let ix = VectorIndex::new(3);
        let c = |no, v: &[f32]| ChunkVector::new(no, 1, 0, 1, &unit(v));
        ix.replace(1, &[c(0, &[1.0, 0.0, 0.0]), c(1, &[0.0, 1.0, 0.0])]);
        ix.replace(2, &[c(0, &[0.7, 0.7, 0.0])]);
        ix.replace(3, &[c(0, &[0.0, 0.0, 1.0])]);
        let q = unit(&[0.0, 1.0, 0.1]);
        let near = ix.nearest(&q, 2, &|_| true);
        assert_eq!(
            near.iter().map(|n| (n.seq, n.chunk)).collect::<Vec<_>>(),
            [(1, 1), (2, 0)]
        );
        assert!(near[0].score > 0.98 && near[0].score <= 1.01, "{near:?}");
        let near = ix.nearest(&q, 5, &|s| s != 1);
        assert_eq!(near.iter().map(|n| n.seq).collect::<Vec<_>>(), [2, 3]);
        ix.remove(2);
        ix.replace(3, &[]);
        assert_eq!(ix.nearest(&q, 5, &|_| true).len(), 1);
        assert_eq!(ix.len(), (1, 2));
    }

    #[test]
    fn dot_products_agree_with_the_plain_sum() {
        let a: Vec<i8> = (0..100).map(|i| (i * 7 % 255 - 127) as i8).collect();
        let b: Vec<i8> = (0..100).map(|i| (i * 13 % 255 - 127) as i8).collect();
        let want: i32 = a.iter().zip(&b).map(|(&x, &y)| x as i32 * y as i32).sum();
        assert_eq!(dot_i8(&a, &b), want);
        assert_eq!(dot_i8(&a, &b), dot_plain(&a, &b));
        // The extremes, where 16-bit pairs come closest to saturating.
        let (lo, hi) = (vec![-127i8; 384], vec![127i8; 384]);
        assert_eq!(dot_i8(&lo, &hi), -127 * 127 * 384);
        assert_eq!(dot_i8(&lo, &lo), 127 * 127 * 384);
    }

    #[test]
    fn a_split_scan_finds_what_one_scan_finds() {
        let ix = VectorIndex::new(4);
        for i in 1..=(PARALLEL_ROWS as i64 + 5_000) {
            let v = unit(&[(i % 7) as f32, (i % 11) as f32, (i % 13) as f32 + 0.5, 1.0]);
            ix.replace(i, &[ChunkVector::new(0, 1, 0, 1, &v)]);
        }
        ix.remove(5);
        let q = unit(&[1.0, 2.0, 3.0, 0.5]);
        let split = ix.nearest(&q, 10, &|s| s % 3 != 0);
        let r = ix.read();
        let (qs, qq) = quantize(&q);
        let mut one = r.scan(&qq, qs, 0, r.owner.len(), 10, &|s| s % 3 != 0);
        one.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.seq.cmp(&b.seq)));
        assert_eq!(split, one);
        assert!(split.iter().all(|n| n.seq % 3 != 0));
    }
}
