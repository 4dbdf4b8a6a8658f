//! A page's text laid out as on the page: each line of the page one line of
//! text, each word at the column its left edge is at, in a grid of the
//! page's typical character width (what `pdftotext -layout` prints).
//!
//! The field rules read this text where it exists: a value right of its
//! label is on the label's line however far right, a value below a column
//! heading is in the heading's columns, a table's cells stay apart by runs
//! of spaces. The flowing text stays what is indexed and shown.

/// One glyph as the PDF draws it: its origin (y downwards), advance and
/// size in points, and whether the PDF starts a word with it.
#[derive(Clone, Debug)]
pub struct Glyph {
    pub x: f64,
    pub y: f64,
    pub advance: f64,
    pub size: f64,
    pub text: String,
    pub new_word: bool,
}

/// The widest line of the grid, in characters.
const MAX_COLUMNS: f64 = 500.0;

/// One whole word: its left and right edges, the baseline of its line
/// (y downwards) and the line's size, in the page's units (points for a
/// PDF, pixels for a scan).
#[derive(Clone, Debug)]
pub struct Word {
    pub x0: f64,
    pub x1: f64,
    pub y: f64,
    pub size: f64,
    pub text: String,
    /// The phrase OCR found the word in (tesseract's line): words of one
    /// phrase stay a space apart unless farther than two and a half times
    /// their height; a PDF's words have none.
    pub phrase: Option<usize>,
}

/// The page's glyphs as lines of text in a character grid.
pub fn render(glyphs: &[Glyph]) -> String {
    // The grid's pitch: the median advance of one character.
    let pitch = median(
        glyphs
            .iter()
            .filter(|g| !g.text.trim().is_empty() && g.advance > 0.0)
            .map(|g| g.advance / g.text.chars().count().max(1) as f64)
            .collect(),
    );
    lay_out(words(glyphs), pitch, true)
}

/// Words already whole (OCR's, from their boxes) laid out the same way, in
/// a grid of their median character width. They never run together: two
/// words stay at least a space apart however close their boxes are.
pub fn render_words(words: Vec<Word>) -> String {
    let pitch = median(
        words
            .iter()
            .filter(|w| w.x1 > w.x0)
            .map(|w| (w.x1 - w.x0) / w.text.chars().count().max(1) as f64)
            .collect(),
    );
    lay_out(words, pitch, false)
}

/// The median of the values, or 5 when there is none worth a column.
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values
        .get(values.len() / 2)
        .copied()
        .filter(|p| *p > 0.5)
        .unwrap_or(5.0)
}

/// Words as lines of text in a grid of `pitch`; `glue` joins words whose
/// boxes touch (glyph runs a PDF split inside a word).
fn lay_out(mut words: Vec<Word>, pitch: f64, glue: bool) -> String {
    if words.is_empty() {
        return String::new();
    }
    let left = words.iter().map(|w| w.x0).fold(f64::INFINITY, f64::min);

    // Lines: words whose baselines are within a third of their size, top
    // to bottom, each left to right.
    words.sort_by(|a, b| a.y.total_cmp(&b.y));
    let mut lines: Vec<Vec<Word>> = Vec::new();
    for w in words {
        match lines.last_mut() {
            Some(line) if (w.y - line[0].y).abs() <= 0.35 * w.size.min(line[0].size) => {
                line.push(w)
            }
            _ => lines.push(vec![w]),
        }
    }
    let mut out = String::new();
    let mut previous: Option<(f64, f64)> = None;
    for mut line in lines {
        line.sort_by(|a, b| a.x0.total_cmp(&b.x0));
        let (y, size) = (line[0].y, line[0].size);
        // A gap of more than two lines' height keeps one blank line.
        if let Some((py, psize)) = previous {
            if y - py > 2.4 * size.max(psize) {
                out.push('\n');
            }
        }
        previous = Some((y, size));
        let mut row = String::new();
        let mut cursor = 0usize;
        let mut end = f64::NEG_INFINITY;
        let mut phrase = None;
        for w in &line {
            // A line is at most MAX_COLUMNS wide, whatever a hostile file
            // says its coordinates are.
            let col = ((w.x0 - left) / pitch).round().clamp(0.0, MAX_COLUMNS) as usize;
            let gap = w.x0 - end;
            // Words a space apart stay one space apart (a large font's
            // space is wider than the grid's pitch); farther apart, the
            // word goes to its column.
            let col = if cursor == 0 {
                col
            } else if glue && gap < 0.15 * w.size {
                cursor
            } else if gap < 0.8 * w.size
                || (w.phrase.is_some() && w.phrase == phrase && gap < 2.5 * w.size)
            {
                cursor + 1
            } else {
                col.max(cursor + 2)
            };
            row.extend(std::iter::repeat_n(' ', col - cursor));
            row.push_str(&w.text);
            cursor = col + w.text.chars().count();
            end = w.x1;
            phrase = w.phrase;
        }
        out.push_str(row.trim_end());
        out.push('\n');
    }
    out.trim_end().to_string()
}

/// Glyphs joined into words: a word ends at a space, a gap, or a jump to
/// another line or back.
fn words(glyphs: &[Glyph]) -> Vec<Word> {
    let mut words: Vec<Word> = Vec::new();
    let mut current: Option<Word> = None;
    for g in glyphs {
        let blank = g.text.trim().is_empty();
        if let Some(w) = &current {
            let apart = blank
                || (g.y - w.y).abs() > 0.3 * g.size.min(w.size)
                || g.x > w.x1 + 0.15 * g.size
                || g.x < w.x1 - 0.5 * g.size
                || (g.new_word && g.x > w.x1 + 0.05 * g.size);
            if apart {
                words.extend(current.take());
            }
        }
        if blank {
            continue;
        }
        let text: String = g.text.chars().filter(|c| !c.is_control()).collect();
        match &mut current {
            Some(w) => {
                w.text.push_str(&text);
                w.x1 = w.x1.max(g.x + g.advance);
            }
            None => {
                current = Some(Word {
                    x0: g.x,
                    x1: g.x + g.advance,
                    y: g.y,
                    size: g.size,
                    text,
                    phrase: None,
                })
            }
        }
    }
    words.extend(current);
    words.retain(|w| !w.text.is_empty());
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Glyphs of `text` from (x, y) in a 10-point font, 5 points a character.
    fn run(x: f64, y: f64, text: &str) -> Vec<Glyph> {
        text.chars()
            .enumerate()
            .map(|(i, c)| Glyph {
                x: x + 5.0 * i as f64,
                y,
                advance: 5.0,
                size: 10.0,
                text: c.to_string(),
                new_word: false,
            })
            .collect()
    }

    #[test]
    fn words_keep_their_columns_and_lines() {
        // Drawn out of order: the right column first, as PDFs often do.
        let mut glyphs = run(300.0, 100.0, "Invoice No: 42");
        glyphs.extend(run(50.0, 100.0, "ACME Ltd"));
        glyphs.extend(run(50.0, 112.0, "Date"));
        glyphs.extend(run(300.0, 112.3, "Total"));
        glyphs.extend(run(50.0, 124.0, "1.1.2020"));
        glyphs.extend(run(300.0, 124.0, "9.50"));
        let page = render(&glyphs);
        let lines: Vec<&str> = page.lines().collect();
        assert_eq!(lines.len(), 3, "{page}");
        assert!(lines[0].starts_with("ACME Ltd "), "{page}");
        assert_eq!(lines[0].find("Invoice"), Some(50));
        assert_eq!(lines[1].find("Total"), Some(50));
        assert_eq!(lines[2].find("9.50"), Some(50));
        assert!(lines[2].starts_with("1.1.2020"));
    }

    #[test]
    fn a_big_gap_keeps_one_blank_line() {
        let mut glyphs = run(50.0, 100.0, "Top");
        glyphs.extend(run(50.0, 400.0, "Bottom"));
        assert_eq!(render(&glyphs), "Top\n\nBottom");
        assert_eq!(render(&[]), "");
    }

    #[test]
    fn a_far_off_glyph_does_not_make_a_huge_line() {
        let mut glyphs = run(50.0, 100.0, "Left");
        glyphs.extend(run(1e12, 100.0, "Far"));
        let page = render(&glyphs);
        assert!(page.len() < 520, "{} characters", page.len());
        assert!(page.starts_with("Left") && page.ends_with("Far"), "{page}");
    }

    /// An OCR word: `text` at x, its line's baseline y, 30 px high, 15 px a
    /// character.
    fn word(x: f64, y: f64, text: &str) -> Word {
        Word {
            x0: x,
            x1: x + 15.0 * text.chars().count() as f64,
            y,
            size: 30.0,
            text: text.into(),
            phrase: None,
        }
    }

    #[test]
    fn ocr_words_are_laid_out_in_rows_and_never_run_together() {
        // A table's columns as OCR reads them: a column after the other,
        // the baselines a few pixels apart; and two words whose boxes touch.
        let words = vec![
            word(100.0, 200.0, "Charges"),
            word(100.0, 250.0, "Credits"),
            word(1200.0, 203.0, "$4.11"),
            word(1200.0, 248.0, "$0.00"),
            word(100.0, 300.0, "Total"),
            word(175.0, 300.0, "due"),
        ];
        let page = render_words(words);
        let lines: Vec<&str> = page.lines().collect();
        assert_eq!(lines.len(), 3, "{page}");
        assert!(lines[0].starts_with("Charges") && lines[0].ends_with("$4.11"));
        assert!(lines[1].starts_with("Credits") && lines[1].ends_with("$0.00"));
        assert_eq!(lines[2], "Total due");
        assert_eq!(lines[0].find('$'), lines[1].find('$'), "{page}");
        assert_eq!(render_words(Vec::new()), "");
    }
}
