//! E-mail (RFC 822 / MIME, `.eml`) through mail-parser. Runs only inside a
//! parser process. From, To, Subject and Date become fields (and head the
//! text); the body is the text part, or the HTML part as text. Attachments
//! come back whole, for the Extract worker to register as documents of their
//! own; an attached message comes back as its raw `.eml`.

use mail_parser::{Address, MessageParser, MimeHeaders};
use serde_json::json;

use super::{ParseError, ParseLimits};
use crate::errors::Code;
use crate::model::{Attachment, Extracted};

pub fn extract(bytes: &[u8], limits: &ParseLimits) -> Result<Extracted, ParseError> {
    let msg = MessageParser::default()
        .parse(bytes)
        .ok_or_else(|| ParseError::new(Code::Malformed, "not a readable e-mail message"))?;
    // A bare MIME entity (no From or Subject, only Content-Type and the
    // like) is still a message; text without any header line is not.
    let has_header = msg
        .headers_raw()
        .any(|(name, _)| !name.is_empty() && !name.contains(char::is_whitespace));
    if !has_header {
        return Err(ParseError::new(
            Code::Malformed,
            "not an e-mail message: it has no header lines",
        ));
    }
    let from = addresses(msg.from());
    let to = addresses(msg.to());
    let cc = addresses(msg.cc());
    let subject = msg
        .subject()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    let date = msg.date().map(|d| d.to_rfc3339());

    let mut text = String::new();
    for (label, v) in [
        ("From", from.join(", ")),
        ("To", to.join(", ")),
        ("Cc", cc.join(", ")),
    ] {
        if !v.is_empty() {
            text.push_str(&format!("{label}: {v}\n"));
        }
    }
    if let Some(s) = &subject {
        text.push_str(&format!("Subject: {s}\n"));
    }
    if let Some(d) = &date {
        text.push_str(&format!("Date: {d}\n"));
    }
    let mut body = msg
        .body_text(0)
        .map(|t| t.into_owned())
        .or_else(|| msg.body_html(0).map(|h| super::text::html_to_text(&h).1))
        .unwrap_or_default();
    // Unnamed text parts of other subtypes (text/x-whatever) are not files
    // someone attached: they read as more of the body.
    let inline_text = |part: &mail_parser::MessagePart<'_>| {
        part.attachment_name().is_none()
            && !part.is_message()
            && part
                .content_type()
                .is_some_and(|ct| ct.c_type.eq_ignore_ascii_case("text"))
            && part
                .content_disposition()
                .is_none_or(|cd| !cd.c_type.eq_ignore_ascii_case("attachment"))
    };
    for part in msg.attachments().filter(|p| inline_text(p)) {
        if let Some(t) = part.text_contents() {
            if !t.trim().is_empty() {
                body.push_str("\n\n");
                body.push_str(t.trim());
            }
        }
    }
    if !body.trim().is_empty() {
        text.push('\n');
        text.push_str(body.trim());
    }

    let mut attachments = Vec::new();
    let mut skipped = 0usize;
    let mut total: u64 = 0;
    for (i, part) in msg.attachments().enumerate() {
        if inline_text(part) {
            continue;
        }
        let data: &[u8] = match part.message() {
            Some(inner) => inner.raw_message(),
            None => part.contents(),
        };
        if data.is_empty() {
            continue;
        }
        if attachments.len() >= limits.max_attachments {
            skipped += 1;
            continue;
        }
        total = total.saturating_add(data.len() as u64);
        if total > limits.max_zip_bytes {
            return Err(ParseError::new(
                Code::TooLarge,
                format!(
                    "the attachments add up to more than {} MiB (pipeline.extract.max_zip_mb)",
                    limits.max_zip_bytes / (1024 * 1024)
                ),
            ));
        }
        let filename = part
            .attachment_name()
            .map(str::to_string)
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| {
                if part.is_message() {
                    format!("attachment-{}.eml", i + 1)
                } else {
                    format!("attachment-{}", i + 1)
                }
            });
        attachments.push(Attachment {
            filename,
            bytes: data.to_vec(),
        });
    }
    let names: Vec<&str> = attachments.iter().map(|a| a.filename.as_str()).collect();
    let mut fields = json!({
        "from": from,
        "to": to,
        "cc": cc,
        "subject": subject,
        "date": date,
        "attachments": names,
    });
    if skipped > 0 {
        fields["attachments_skipped"] = json!(format!(
            "{skipped} more attachments than pipeline.extract.max_attachments were not unpacked"
        ));
    }
    Ok(Extracted {
        text,
        title: subject,
        pages: None,
        mime: None,
        fields: Some(fields),
        attachments,
        ..Default::default()
    })
}

fn addresses(a: Option<&Address<'_>>) -> Vec<String> {
    let Some(a) = a else { return Vec::new() };
    a.iter()
        .filter_map(|x| match (x.name(), x.address()) {
            (Some(n), Some(e)) if !n.trim().is_empty() => Some(format!("{} <{e}>", n.trim())),
            (_, Some(e)) => Some(e.to_string()),
            (Some(n), None) => Some(n.trim().to_string()),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAIL: &str = "From: Alice Example <alice@example.org>\r\n\
To: bob@example.org\r\n\
Subject: Quarterly numbers\r\n\
Date: Tue, 1 Oct 2024 10:00:00 +0000\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"b1\"\r\n\
\r\n\
--b1\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
\r\n\
See the attached report.\r\n\
--b1\r\n\
Content-Type: text/plain; name=\"report.txt\"\r\n\
Content-Disposition: attachment; filename=\"report.txt\"\r\n\
\r\n\
kangaroo figures\r\n\
--b1--\r\n";

    #[test]
    fn headers_body_and_attachments() {
        let out = extract(MAIL.as_bytes(), &ParseLimits::default()).unwrap();
        assert_eq!(out.title.as_deref(), Some("Quarterly numbers"));
        assert!(
            out.text
                .starts_with("From: Alice Example <alice@example.org>\nTo: bob@example.org\n"),
            "{}",
            out.text
        );
        assert!(out.text.contains("See the attached report."));
        let f = out.fields.unwrap();
        assert_eq!(f["date"], "2024-10-01T10:00:00Z");
        assert_eq!(f["attachments"], json!(["report.txt"]));
        assert_eq!(out.attachments.len(), 1);
        assert_eq!(
            String::from_utf8_lossy(&out.attachments[0].bytes).trim(),
            "kangaroo figures"
        );
        let limits = ParseLimits {
            max_attachments: 0,
            ..ParseLimits::default()
        };
        let out = extract(MAIL.as_bytes(), &limits).unwrap();
        assert!(out.attachments.is_empty());
        assert!(out.fields.unwrap()["attachments_skipped"].is_string());
        assert_eq!(
            extract(b"just words", &ParseLimits::default())
                .unwrap_err()
                .code,
            "malformed"
        );
    }
}
