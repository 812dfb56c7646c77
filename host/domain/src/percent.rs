//! Percent-encoding for the URLs the host builds (GitHub queries, console links).

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

#[cfg(test)]
mod tests {
    #[test]
    fn reserved_bytes_are_escaped_unless_kept() {
        assert_eq!(super::encode("a/b c<é", b""), "a%2Fb%20c%3C%C3%A9");
        assert_eq!(super::encode("agent/task-1", b"/"), "agent/task-1");
    }
}
