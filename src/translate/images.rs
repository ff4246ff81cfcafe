//! Images between the two APIs: Ollama sends bare base64 strings, OpenAI sends `image_url` content parts
//! with data URLs. Images are never decoded or re-encoded here (the reference's Pillow round trip was slow
//! and lossy) and URLs are never fetched (no SSRF from client input).

use super::TranslateError;

/// The data URL for an Ollama base64 image; the MIME type is guessed from the base64 of the file's magic
/// bytes (PNG when unknown, which servers decode by content anyway). A string that already is a data URL
/// is kept.
pub(crate) fn data_url(base64: &str) -> String {
    let trimmed = base64.trim();
    if trimmed.starts_with("data:") {
        return trimmed.to_string();
    }
    format!("data:{};base64,{trimmed}", mime_from_base64(trimmed))
}

/// Magic numbers as they look once base64-encoded.
fn mime_from_base64(b64: &str) -> &'static str {
    if b64.starts_with("/9j/") {
        "image/jpeg"
    } else if b64.starts_with("iVBORw0KGgo") {
        "image/png"
    } else if b64.starts_with("R0lGOD") {
        "image/gif"
    } else if b64.starts_with("UklGR") {
        "image/webp"
    } else {
        "image/png"
    }
}

/// The base64 payload of an OpenAI image URL, for Ollama's `images`. Only base64 data URLs are accepted:
/// Ollama cannot fetch URLs and the router will not fetch them for it.
pub(crate) fn base64_from_url(url: &str) -> Result<String, TranslateError> {
    let url = url.trim();
    let Some(rest) = url.strip_prefix("data:") else {
        return Err(TranslateError::unsupported(
            "image URLs are not supported by this backend; send the image inline as a base64 data URL",
        ));
    };
    match rest.split_once(',') {
        Some((meta, payload)) if meta.ends_with(";base64") => Ok(payload.to_string()),
        _ => Err(TranslateError::unsupported(
            "only base64 data URLs (data:<type>;base64,...) are supported for images",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guesses_type_from_magic_prefix() {
        assert_eq!(data_url("/9j/4AAQ"), "data:image/jpeg;base64,/9j/4AAQ");
        assert_eq!(
            data_url("iVBORw0KGgoAAA"),
            "data:image/png;base64,iVBORw0KGgoAAA"
        );
        assert_eq!(data_url("R0lGODlh"), "data:image/gif;base64,R0lGODlh");
        assert_eq!(
            data_url("UklGRiQAAABXRUJQ"),
            "data:image/webp;base64,UklGRiQAAABXRUJQ"
        );
        assert_eq!(data_url("AAAA"), "data:image/png;base64,AAAA");
        assert_eq!(
            data_url("data:image/jpeg;base64,/9j/"),
            "data:image/jpeg;base64,/9j/"
        );
    }

    #[test]
    fn accepts_only_base64_data_urls() {
        assert_eq!(
            base64_from_url("data:image/png;base64,iVBO").as_deref(),
            Ok("iVBO")
        );
        assert!(matches!(
            base64_from_url("https://example.com/cat.png"),
            Err(TranslateError::Unsupported(_))
        ));
        assert!(matches!(
            base64_from_url("data:image/svg+xml,%3Csvg"),
            Err(TranslateError::Unsupported(_))
        ));
    }
}
