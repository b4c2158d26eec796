//! HL7 v2 escape sequences (HL7 v2.x chapter 2, "Use of escape sequences in text fields").

/// Decodes a value's escape sequences, given the message's separators (field, component,
/// repetition, escape, subcomponent):
///
/// * `\F\` `\S\` `\T\` `\R\` `\E\`: the field, component, subcomponent, repetition and escape
///   characters themselves;
/// * `\Xhh…\`: bytes given in hexadecimal, read as UTF-8 (as Latin-1 if they are not UTF-8);
/// * `\.br\`: a line break;
/// * `\H\` `\N\` (highlighting on and off) and any other sequence Kinfold does not render:
///   dropped, their text kept out.
///
/// It works on byte positions of the escape character, never on character counts, so text in
/// any script next to an escape is left whole. An escape character with no closing one is
/// kept as it is.
pub fn unescape(raw: &str, separators: [char; 5]) -> String {
    let [field, component, repetition, escape, subcomponent] = separators;
    if !raw.contains(escape) {
        return raw.to_owned();
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(start) = rest.find(escape) {
        out.push_str(&rest[..start]);
        let after = &rest[start + escape.len_utf8()..];
        let Some(end) = after.find(escape) else {
            out.push_str(&rest[start..]);
            return out;
        };
        let sequence = &after[..end];
        match sequence {
            "F" => out.push(field),
            "S" => out.push(component),
            "T" => out.push(subcomponent),
            "R" => out.push(repetition),
            "E" => out.push(escape),
            ".br" => out.push('\n'),
            hex if hex.starts_with('X') && hex.len() > 1 => out.push_str(&from_hex(&hex[1..])),
            _ => {}
        }
        rest = &after[end + escape.len_utf8()..];
    }
    out.push_str(rest);
    out
}

fn from_hex(hex: &str) -> String {
    let bytes: Vec<u8> = hex
        .as_bytes()
        .chunks(2)
        .filter_map(|pair| std::str::from_utf8(pair).ok())
        .filter_map(|pair| u8::from_str_radix(pair, 16).ok())
        .collect();
    match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(not_utf8) => not_utf8.into_bytes().into_iter().map(char::from).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEPARATORS: [char; 5] = ['|', '^', '~', '\\', '&'];

    #[test]
    fn the_separator_escapes_give_back_their_characters() {
        assert_eq!(
            unescape("a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f", SEPARATORS),
            "a|b^c&d~e\\f"
        );
        assert_eq!(unescape("Smith \\T\\ Sons", SEPARATORS), "Smith & Sons");
    }

    #[test]
    fn non_ascii_text_beside_an_escape_is_left_whole() {
        assert_eq!(unescape("Łucja\\F\\Wójcik", SEPARATORS), "Łucja|Wójcik");
        assert_eq!(unescape("żółw\\.br\\źrebię", SEPARATORS), "żółw\nźrebię");
    }

    #[test]
    fn hexadecimal_is_read_as_utf8_or_latin1() {
        assert_eq!(unescape("\\XC582\\", SEPARATORS), "ł");
        assert_eq!(unescape("K\\XF6\\ln", SEPARATORS), "Köln");
    }

    #[test]
    fn highlighting_and_unknown_sequences_are_dropped_and_a_lone_escape_kept() {
        assert_eq!(unescape("\\H\\urgent\\N\\", SEPARATORS), "urgent");
        assert_eq!(unescape("a\\Zfoo\\b", SEPARATORS), "ab");
        assert_eq!(unescape("C:\\temp", SEPARATORS), "C:\\temp");
    }
}
