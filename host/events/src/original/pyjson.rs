//! JSON as the original Leviathan's Python read and wrote it: `json.loads`, then
//! `json.dumps(sort_keys=True, separators=(",", ":"))` with its default
//! `ensure_ascii=True`. Its hash chain was computed over that text, so recomputing it
//! needs the same bytes: integers of any size as written, floats in Python's `repr`
//! (`1e-05`, `1e+16`, `1.0`, `-0.0`), strings as UTF-16 code units escaped `\uXXXX`
//! (surrogate pairs above the BMP, lone surrogates kept), keys sorted by code point,
//! the last of duplicate keys kept, and `NaN`/`Infinity` accepted as Python accepts them.

use std::fmt::Write;

/// A value as Python's `json.loads` produced it.
#[derive(Debug, Clone, PartialEq)]
pub enum PyValue {
    Null,
    Bool(bool),
    /// An integer literal, normalised as Python prints it (`-0` is `0`).
    Int(String),
    Float(f64),
    /// A string as UTF-16 code units (Python strings may hold lone surrogates).
    Str(Vec<u16>),
    List(Vec<PyValue>),
    /// Keys in first-seen order, each with its last value.
    Dict(Vec<(Vec<u16>, PyValue)>),
}

/// Nesting deeper than this is refused (Python's own limit is about 1,000).
const MAX_DEPTH: usize = 512;

impl PyValue {
    /// Parses one JSON document (surrounding white space allowed).
    pub fn parse(text: &str) -> Result<PyValue, String> {
        let mut p = Parser {
            s: text.as_bytes(),
            i: 0,
            text,
        };
        p.ws();
        let v = p.value(0)?;
        p.ws();
        if p.i != p.s.len() {
            return Err(format!("unexpected data after the value at byte {}", p.i));
        }
        Ok(v)
    }

    /// The member `key` of a dict (its last value), if any.
    pub fn get(&self, key: &str) -> Option<&PyValue> {
        let PyValue::Dict(members) = self else {
            return None;
        };
        let key: Vec<u16> = key.encode_utf16().collect();
        members.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// The text of a string value.
    pub fn as_string(&self) -> Option<String> {
        match self {
            PyValue::Str(units) => Some(String::from_utf16_lossy(units)),
            _ => None,
        }
    }

    /// `json.dumps(self, sort_keys=True, separators=(",", ":"))`.
    pub fn canonical(&self) -> String {
        let mut out = String::new();
        self.write_canonical(&mut out);
        out
    }

    fn write_canonical(&self, out: &mut String) {
        match self {
            PyValue::Null => out.push_str("null"),
            PyValue::Bool(true) => out.push_str("true"),
            PyValue::Bool(false) => out.push_str("false"),
            PyValue::Int(digits) => out.push_str(digits),
            PyValue::Float(f) => out.push_str(&float_repr(*f)),
            PyValue::Str(units) => write_str(units, out),
            PyValue::List(items) => {
                out.push('[');
                for (n, item) in items.iter().enumerate() {
                    if n > 0 {
                        out.push(',');
                    }
                    item.write_canonical(out);
                }
                out.push(']');
            }
            PyValue::Dict(members) => {
                let mut sorted: Vec<&(Vec<u16>, PyValue)> = members.iter().collect();
                sorted.sort_by(|a, b| code_points(&a.0).cmp(code_points(&b.0)));
                out.push('{');
                for (n, (key, value)) in sorted.into_iter().enumerate() {
                    if n > 0 {
                        out.push(',');
                    }
                    write_str(key, out);
                    out.push(':');
                    value.write_canonical(out);
                }
                out.push('}');
            }
        }
    }

    /// The value for our own log (serde_json): a lone surrogate becomes U+FFFD, an
    /// integer beyond 64 bits or a non-finite float becomes its Python text.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            PyValue::Null => Value::Null,
            PyValue::Bool(b) => Value::Bool(*b),
            PyValue::Int(digits) => digits
                .parse::<i64>()
                .map(Value::from)
                .or_else(|_| digits.parse::<u64>().map(Value::from))
                .unwrap_or_else(|_| Value::String(digits.clone())),
            PyValue::Float(f) => serde_json::Number::from_f64(*f)
                .map(Value::Number)
                .unwrap_or_else(|| Value::String(float_repr(*f))),
            PyValue::Str(units) => Value::String(String::from_utf16_lossy(units)),
            PyValue::List(items) => Value::Array(items.iter().map(PyValue::to_json).collect()),
            PyValue::Dict(members) => Value::Object(
                members
                    .iter()
                    .map(|(k, v)| (String::from_utf16_lossy(k), v.to_json()))
                    .collect(),
            ),
        }
    }
}

/// Code points of a UTF-16 string, lone surrogates as themselves: Python's order of str.
fn code_points(units: &[u16]) -> impl Iterator<Item = u32> + '_ {
    char::decode_utf16(units.iter().copied()).map(|r| match r {
        Ok(c) => c as u32,
        Err(e) => u32::from(e.unpaired_surrogate()),
    })
}

/// A string as `json.dumps(..., ensure_ascii=True)` writes it.
fn write_str(units: &[u16], out: &mut String) {
    out.push('"');
    for &u in units {
        match u {
            0x22 => out.push_str("\\\""),
            0x5c => out.push_str("\\\\"),
            0x0a => out.push_str("\\n"),
            0x0d => out.push_str("\\r"),
            0x09 => out.push_str("\\t"),
            0x08 => out.push_str("\\b"),
            0x0c => out.push_str("\\f"),
            0x20..=0x7e => out.push(u as u8 as char),
            _ => {
                let _ = write!(out, "\\u{u:04x}");
            }
        }
    }
    out.push('"');
}

/// Python's `repr(float)`: the shortest digits that round-trip, in positional form
/// when the decimal point falls within 16 digits of the first, else `d.ddde±XX`.
pub fn float_repr(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    // Rust's `{:e}` prints the shortest round-trip digits too: `-1.2345e-7`.
    let sci = format!("{:e}", f.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let sign = if f < 0.0 { "-" } else { "" };
    let decpt = exp + 1;
    if decpt <= -4 || decpt > 16 {
        let (first, rest) = digits.split_at(1);
        let dot = if rest.is_empty() { "" } else { "." };
        let esign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{first}{dot}{rest}e{esign}{:02}", exp.abs());
    }
    let len = digits.len() as i32;
    if decpt <= 0 {
        format!("{sign}0.{}{digits}", "0".repeat((-decpt) as usize))
    } else if decpt >= len {
        format!("{sign}{digits}{}.0", "0".repeat((decpt - len) as usize))
    } else {
        let (int, frac) = digits.split_at(decpt as usize);
        format!("{sign}{int}.{frac}")
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    text: &'a str,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.s.get(self.i) {
            self.i += 1;
        }
    }

    fn err<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("{what} at byte {}", self.i))
    }

    fn eat(&mut self, word: &str) -> bool {
        if self.s[self.i..].starts_with(word.as_bytes()) {
            self.i += word.len();
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> Result<PyValue, String> {
        if depth > MAX_DEPTH {
            return self.err("nested too deeply");
        }
        match self.s.get(self.i) {
            None => self.err("unexpected end"),
            Some(b'{') => self.dict(depth),
            Some(b'[') => self.list(depth),
            Some(b'"') => Ok(PyValue::Str(self.string()?)),
            Some(b'-' | b'0'..=b'9') => {
                if self.eat("-Infinity") {
                    return Ok(PyValue::Float(f64::NEG_INFINITY));
                }
                self.number()
            }
            Some(_) => {
                for (word, value) in [
                    ("null", PyValue::Null),
                    ("true", PyValue::Bool(true)),
                    ("false", PyValue::Bool(false)),
                    ("NaN", PyValue::Float(f64::NAN)),
                    ("Infinity", PyValue::Float(f64::INFINITY)),
                ] {
                    if self.eat(word) {
                        return Ok(value);
                    }
                }
                self.err("expected a value")
            }
        }
    }

    fn dict(&mut self, depth: usize) -> Result<PyValue, String> {
        self.i += 1;
        let mut members: Vec<(Vec<u16>, PyValue)> = Vec::new();
        self.ws();
        if self.eat("}") {
            return Ok(PyValue::Dict(members));
        }
        loop {
            self.ws();
            if self.s.get(self.i) != Some(&b'"') {
                return self.err("expected a key");
            }
            let key = self.string()?;
            self.ws();
            if !self.eat(":") {
                return self.err("expected `:`");
            }
            self.ws();
            let value = self.value(depth + 1)?;
            match members.iter_mut().find(|(k, _)| *k == key) {
                Some(slot) => slot.1 = value,
                None => members.push((key, value)),
            }
            self.ws();
            if self.eat(",") {
                continue;
            }
            if self.eat("}") {
                return Ok(PyValue::Dict(members));
            }
            return self.err("expected `,` or `}`");
        }
    }

    fn list(&mut self, depth: usize) -> Result<PyValue, String> {
        self.i += 1;
        let mut items = Vec::new();
        self.ws();
        if self.eat("]") {
            return Ok(PyValue::List(items));
        }
        loop {
            self.ws();
            items.push(self.value(depth + 1)?);
            self.ws();
            if self.eat(",") {
                continue;
            }
            if self.eat("]") {
                return Ok(PyValue::List(items));
            }
            return self.err("expected `,` or `]`");
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while self.s.get(self.i).is_some_and(u8::is_ascii_digit) {
            self.i += 1;
        }
        self.i - start
    }

    fn number(&mut self) -> Result<PyValue, String> {
        let start = self.i;
        self.eat("-");
        match self.s.get(self.i) {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return self.err("expected a digit"),
        }
        let mut float = false;
        if self.eat(".") {
            float = true;
            if self.digits() == 0 {
                return self.err("expected a digit after `.`");
            }
        }
        if let Some(b'e' | b'E') = self.s.get(self.i) {
            float = true;
            self.i += 1;
            if let Some(b'+' | b'-') = self.s.get(self.i) {
                self.i += 1;
            }
            if self.digits() == 0 {
                return self.err("expected a digit in the exponent");
            }
        }
        let literal = &self.text[start..self.i];
        if float {
            return literal
                .parse::<f64>()
                .map(PyValue::Float)
                .or_else(|_| self.err("bad number"));
        }
        Ok(PyValue::Int(if literal == "-0" {
            "0".into()
        } else {
            literal.into()
        }))
    }

    fn hex4(&mut self) -> Result<u16, String> {
        let Some(hex) = self.text.get(self.i..self.i + 4) else {
            return self.err("short `\\u` escape");
        };
        let unit = u16::from_str_radix(hex, 16).or_else(|_| self.err("bad `\\u` escape"))?;
        self.i += 4;
        Ok(unit)
    }

    fn string(&mut self) -> Result<Vec<u16>, String> {
        self.i += 1;
        let mut units = Vec::new();
        loop {
            let Some(&b) = self.s.get(self.i) else {
                return self.err("unterminated string");
            };
            match b {
                b'"' => {
                    self.i += 1;
                    return Ok(units);
                }
                b'\\' => {
                    self.i += 1;
                    let Some(&e) = self.s.get(self.i) else {
                        return self.err("unterminated escape");
                    };
                    self.i += 1;
                    let unit = match e {
                        b'"' => 0x22,
                        b'\\' => 0x5c,
                        b'/' => 0x2f,
                        b'b' => 0x08,
                        b'f' => 0x0c,
                        b'n' => 0x0a,
                        b'r' => 0x0d,
                        b't' => 0x09,
                        b'u' => self.hex4()?,
                        _ => {
                            self.i -= 1;
                            return self.err("bad escape");
                        }
                    };
                    units.push(unit);
                }
                0x00..=0x1f => return self.err("control character in a string"),
                _ => {
                    // One whole UTF-8 character (the input is a &str).
                    let rest = &self.text[self.i..];
                    let c = rest.chars().next().unwrap_or('\u{fffd}');
                    let mut buf = [0u16; 2];
                    units.extend_from_slice(c.encode_utf16(&mut buf));
                    self.i += c.len_utf8();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_as_python_repr() {
        for (f, text) in [
            (1e-5, "1e-05"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (0.0001, "0.0001"),
            (1.0, "1.0"),
            (-0.0, "-0.0"),
            (0.1, "0.1"),
            (123456789.123, "123456789.123"),
            (1.5e300, "1.5e+300"),
            (-2.5e-7, "-2.5e-07"),
            (std::f64::consts::PI, "3.141592653589793"),
            (12345678901234567.0, "1.2345678901234568e+16"),
            (f64::INFINITY, "Infinity"),
        ] {
            assert_eq!(float_repr(f), text, "{f}");
        }
    }

    #[test]
    fn canonical_text_is_what_python_dumps() {
        // Each expectation is `json.dumps(json.loads(input), sort_keys=True,
        // separators=(",", ":"))` printed by CPython 3.11.
        for (input, python) in [
            (
                r#"{"b": 1, "a": [1.0, -0, 2e3, null, true], "é": "x"}"#,
                r#"{"a":[1.0,0,2000.0,null,true],"b":1,"\u00e9":"x"}"#,
            ),
            (
                "{\"s\":\"caf\u{e9} \u{2603} \u{1d11e} \\\" \\\\ \\/ \\u0001\u{7f}\\t\"}",
                r#"{"s":"caf\u00e9 \u2603 \ud834\udd1e \" \\ / \u0001\u007f\t"}"#,
            ),
            (r#"{"a":1,"a":2}"#, r#"{"a":2}"#),
            (
                r#"[NaN, Infinity, -Infinity]"#,
                r#"[NaN,Infinity,-Infinity]"#,
            ),
            (
                r#"{"big": 1180591620717411303424, "lone": "\ud800"}"#,
                r#"{"big":1180591620717411303424,"lone":"\ud800"}"#,
            ),
            // Code-point order: U+FFFF sorts before U+1D11E (UTF-16 order would not).
            (
                "{\"\u{1d11e}\":1,\"\u{ffff}\":2}",
                r#"{"\uffff":2,"\ud834\udd1e":1}"#,
            ),
        ] {
            assert_eq!(
                PyValue::parse(input).unwrap().canonical(),
                python,
                "{input}"
            );
        }
    }

    #[test]
    fn malformed_json_is_refused_with_a_position() {
        for bad in [
            "{",
            "[1,]",
            "{\"a\" 1}",
            "01",
            "1.",
            "\"\u{1}\"",
            "[1] x",
            "tru",
        ] {
            let err = PyValue::parse(bad).unwrap_err();
            assert!(err.contains("byte"), "{bad}: {err}");
        }
        let deep = "[".repeat(MAX_DEPTH + 2) + &"]".repeat(MAX_DEPTH + 2);
        assert!(PyValue::parse(&deep).unwrap_err().contains("deeply"));
    }
}
