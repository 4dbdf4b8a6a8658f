//! Images (PNG, JPEG, TIFF): no text of their own, only a size; the OCR step
//! reads them. The header is checked here, in the parser process, so that an
//! image too large to recognise fails before any OCR process sees it.

use serde_json::json;

use crate::errors::Code;
use crate::extract::{ParseError, ParseLimits};
use crate::model::Extracted;

pub fn extract(bytes: &[u8], limits: &ParseLimits) -> Result<Extracted, ParseError> {
    let size = imagesize::blob_size(bytes)
        .map_err(|e| ParseError::new(Code::Malformed, format!("not a readable image: {e}")))?;
    let pixels = size.width as u64 * size.height as u64;
    if pixels == 0 {
        return Err(ParseError::new(Code::Malformed, "the image has no pixels"));
    }
    if pixels > u64::from(limits.max_image_megapixels) * 1_000_000 {
        return Err(ParseError::new(
            Code::TooLarge,
            format!(
                "the image has {}×{} pixels, more than {} megapixels (pipeline.ocr.max_image_megapixels)",
                size.width, size.height, limits.max_image_megapixels
            ),
        ));
    }
    Ok(Extracted {
        pages: Some(1),
        fields: Some(json!({"width": size.width, "height": size.height})),
        ocr_pages: vec![1],
        ..Default::default()
    })
}
