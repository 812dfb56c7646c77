//! Percent-encoding for the URLs the host builds (GitHub queries, console links),
//! and decoding for those it reads (console paths).

/// `value` with every byte percent-encoded except ASCII letters, digits, `-_.~`
/// and the bytes in `keep`.
pub fn encode(value: &str, keep: &[u8]) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) || keep.contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `text` with its `%XX` escapes decoded; `None` for a bad escape or a result that
/// is not UTF-8.
pub fn decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn reserved_bytes_are_escaped_unless_kept() {
        assert_eq!(super::encode("a/b c<é", b""), "a%2Fb%20c%3C%C3%A9");
        assert_eq!(super::encode("agent/task-1", b"/"), "agent/task-1");
    }

    #[test]
    fn decoding_undoes_encoding_and_refuses_bad_escapes() {
        let text = "a/b c<é%";
        assert_eq!(
            super::decode(&super::encode(text, b"")).as_deref(),
            Some(text)
        );
        for bad in ["%", "%4", "%zz", "%C3"] {
            assert_eq!(super::decode(bad), None, "{bad}");
        }
    }
}
