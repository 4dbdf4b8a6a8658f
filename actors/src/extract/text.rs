//! Plain text, Markdown and HTML, with encoding detection. These parsers are
//! linear and safe, so they run in-process on the blocking pool.

use scraper::{Html, Node};

/// Decodes bytes of unknown encoding: BOM, then UTF-8, then chardetng's guess.
pub fn decode(bytes: &[u8]) -> String {
    if let Some((enc, bom_len)) = encoding_rs::Encoding::for_bom(bytes) {
        return enc
            .decode_without_bom_handling(&bytes[bom_len..])
            .0
            .into_owned();
    }
    if let Ok(s) = std::str::from_utf8(bytes) {
        return s.to_string();
    }
    let mut det = chardetng::EncodingDetector::new();
    det.feed(bytes, true);
    let enc = det.guess(None, true);
    enc.decode_without_bom_handling(bytes).0.into_owned()
}

/// Markdown to readable text: the words, without the markup.
pub fn markdown_to_text(src: &str) -> (Option<String>, String) {
    use pulldown_cmark::{Event, Parser, Tag, TagEnd};
    let mut out = String::with_capacity(src.len());
    let mut title: Option<String> = None;
    let mut in_first_heading = false;
    for ev in Parser::new(src) {
        match ev {
            Event::Start(Tag::Heading { .. }) if title.is_none() => {
                in_first_heading = true;
                title = Some(String::new());
            }
            Event::End(TagEnd::Heading(_)) => {
                in_first_heading = false;
                out.push('\n');
            }
            Event::Text(t) | Event::Code(t) => {
                if in_first_heading {
                    if let Some(h) = title.as_mut() {
                        h.push_str(&t);
                    }
                }
                out.push_str(&t);
            }
            Event::SoftBreak | Event::HardBreak => out.push('\n'),
            Event::End(TagEnd::Paragraph | TagEnd::Item | TagEnd::CodeBlock | TagEnd::TableRow) => {
                out.push('\n')
            }
            Event::End(TagEnd::TableCell) => out.push('\t'),
            _ => {}
        }
    }
    (title.filter(|t| !t.trim().is_empty()), out)
}

/// HTML to visible text: no scripts, styles or templates; block elements end lines.
pub fn html_to_text(src: &str) -> (Option<String>, String) {
    let doc = Html::parse_document(src);
    let mut out = String::with_capacity(src.len() / 2);
    let mut title = None;
    // Iterative walk (a deeply nested page must not overflow the stack).
    let mut stack = vec![doc.tree.root()];
    while let Some(node) = stack.pop() {
        match node.value() {
            Node::Element(el) => {
                let name = el.name();
                if matches!(
                    name,
                    "script" | "style" | "noscript" | "template" | "svg" | "head"
                ) {
                    if name == "head" {
                        // The title is the one thing in <head> we keep.
                        for d in node.descendants() {
                            if let Node::Element(e) = d.value() {
                                if e.name() == "title" && title.is_none() {
                                    let t: String = d
                                        .descendants()
                                        .filter_map(|n| n.value().as_text().map(|t| t.to_string()))
                                        .collect();
                                    title = Some(t.trim().to_string()).filter(|t| !t.is_empty());
                                }
                            }
                        }
                    }
                    continue;
                }
                if is_block(name) && !out.ends_with('\n') && !out.is_empty() {
                    out.push('\n');
                }
            }
            Node::Text(t) => {
                let s: &str = t;
                if !s.trim().is_empty() {
                    if !out.is_empty() && !out.ends_with(['\n', ' ']) {
                        out.push(' ');
                    }
                    out.push_str(&collapse_ws(s));
                }
            }
            _ => {}
        }
        let children: Vec<_> = node.children().collect();
        stack.extend(children.into_iter().rev());
    }
    (title, out)
}

fn is_block(name: &str) -> bool {
    matches!(
        name,
        "p" | "div"
            | "br"
            | "li"
            | "tr"
            | "h1"
            | "h2"
            | "h3"
            | "h4"
            | "h5"
            | "h6"
            | "pre"
            | "section"
            | "article"
            | "table"
            | "ul"
            | "ol"
            | "dl"
            | "dt"
            | "dd"
            | "blockquote"
            | "header"
            | "footer"
    )
}

fn collapse_ws(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_handles_utf8_bom_and_latin1() {
        assert_eq!(decode("grüße".as_bytes()), "grüße");
        assert_eq!(decode(b"\xEF\xBB\xBFhello"), "hello");
        assert_eq!(
            decode(b"Gr\xFC\xDFe aus M\xFCnchen, sch\xF6ne Gr\xFC\xDFe"),
            "Grüße aus München, schöne Grüße"
        );
    }

    #[test]
    fn html_keeps_visible_text_and_title_only() {
        let (title, text) = html_to_text(
            "<html><head><title>Hi there</title><style>p{}</style></head><body><p>One <b>two</b></p>\
             <script>var secret=1;</script><div>three</div></body></html>",
        );
        assert_eq!(title.as_deref(), Some("Hi there"));
        assert!(text.contains("One two"), "{text:?}");
        assert!(text.contains("three"));
        assert!(!text.contains("secret") && !text.contains("p{}"));
    }

    #[test]
    fn markdown_drops_markup_and_takes_first_heading_as_title() {
        let (title, text) = markdown_to_text("# Release notes\n\nSome *emphasis* and `code`.\n");
        assert_eq!(title.as_deref(), Some("Release notes"));
        assert!(text.contains("Some emphasis and code."));
    }
}
