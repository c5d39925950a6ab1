//! Whether a text people typed says anything: a reason, a "why", an incident's update.
//!
//! `trim()` removes white space only; a zero-width space (U+200B), a byte-order mark or a
//! bidi control is a Unicode *format* character (category Cf), invisible, and a text of
//! nothing else was taken as a reason (break-it, session 10). [`says_nothing`] is the one
//! test for "blank" where something must be said. Not here: limits on length or on control
//! characters (each field's own check).

use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// True when `text` shows nothing: every character is white space, a control character or
/// an invisible format character (Cf), or a filler that renders as nothing (U+115F, U+1160,
/// U+3164, U+FFA0, the Hangul fillers; U+2800, the blank Braille pattern).
pub fn says_nothing(text: &str) -> bool {
    text.chars().all(|c| {
        c.is_whitespace()
            || c.is_control()
            || c.general_category() == GeneralCategory::Format
            || matches!(
                c,
                '\u{115f}' | '\u{1160}' | '\u{3164}' | '\u{ffa0}' | '\u{2800}'
            )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invisible_only_text_says_nothing_and_any_visible_letter_does() {
        for blank in [
            "",
            "  \t\n",
            "\u{200b}",
            "\u{200b}\u{200c}\u{200d}\u{2060}",
            "\u{feff} ",
            "\u{202e}\u{2066}",
            "\u{00ad}",
            "\u{3164}",
            "\u{e0020}",
        ] {
            assert!(says_nothing(blank), "{blank:?}");
        }
        for said in ["x", "\u{200b}disk failing", "硬盘故障", "?", "👍\u{200d}"] {
            assert!(!says_nothing(said), "{said:?}");
        }
    }
}
