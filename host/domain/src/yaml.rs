//! Typed reading of YAML values with errors that name the file, the item and the field.
//!
//! Every YAML document the host reads (backlogs, policies, configuration, tokens) is
//! parsed under two bounds: the file's size (checked before it is read) and an
//! expansion budget on what the parse produces. Aliases are expanded by copying the
//! anchored node, so a small document can ask for gigabytes (a large scalar aliased
//! thousands of times); the budget counts the bytes and nodes actually produced,
//! aliases included, and stops the parse once they pass [`MAX_EXPANSION`]. Errors
//! never quote a value from the file.

use crate::repofs::{Limit, RepoFsError};
use serde::de::{self, DeserializeSeed, Visitor};
use serde_norway::Value;
use serde_norway::value::{Tag, TaggedValue};
use std::cell::Cell;
use std::fmt;
use std::path::{Path, PathBuf};

/// The largest operator-supplied YAML file read (configuration, policy, tokens).
pub const MAX_FILE: Limit = Limit::new(1 << 20, "configuration file limit");

/// What one parse may produce: scalar bytes plus [`NODE_COST`] per node, aliases
/// counted at every use.
pub const MAX_EXPANSION: u64 = 4 << 20;

/// The cost of one node (scalar, list, mapping, tag) in the expansion budget.
pub const NODE_COST: u64 = 16;

/// An input file that could not be read or is not valid.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    /// Refused before or while reading: a link, a special file, over a size limit.
    #[error("{file}: refused: {source}")]
    Refused { file: PathBuf, source: RepoFsError },
    #[error("{file}: invalid YAML: {message}")]
    Syntax { file: PathBuf, message: String },
    #[error("{file}: the document expands to more than {limit} bytes (aliases included); refused")]
    Expansion { file: PathBuf, limit: u64 },
    #[error("{file}: {context}field `{field}`: {message}")]
    Field {
        file: PathBuf,
        context: String,
        field: String,
        message: String,
    },
    #[error("{file}: {context}{message}")]
    Invalid {
        file: PathBuf,
        context: String,
        message: String,
    },
}

impl InputError {
    /// The same error with `note` after its message (one without a message of its own
    /// is returned as it is).
    pub fn noted(mut self, note: &str) -> InputError {
        if let InputError::Field { message, .. } | InputError::Invalid { message, .. } = &mut self {
            message.push_str(note);
        }
        self
    }

    /// The error for a file refused by a capability read.
    pub fn refused(file: &Path, source: RepoFsError) -> InputError {
        match source {
            RepoFsError::Io { source, .. } => InputError::Read {
                file: file.to_path_buf(),
                source,
            },
            source => InputError::Refused {
                file: file.to_path_buf(),
                source,
            },
        }
    }
}

/// The text of `bytes` read from `file` (`what` names it in the error: "the backlog"),
/// or an error naming the line and column of the first byte that is not UTF-8 (never
/// the byte itself).
pub fn utf8_text(file: &Path, bytes: Vec<u8>, what: &str) -> Result<String, InputError> {
    String::from_utf8(bytes).map_err(|e| InputError::Syntax {
        file: file.to_path_buf(),
        message: format!("{what} is not UTF-8 ({})", first_bad_byte(&e)),
    })
}

/// Where the first invalid byte of a failed UTF-8 decode sits: "line L, column C"
/// (both from 1, the column counted in bytes).
pub fn first_bad_byte(error: &std::string::FromUtf8Error) -> String {
    let valid = &error.as_bytes()[..error.utf8_error().valid_up_to()];
    let line = 1 + valid.iter().filter(|&&b| b == b'\n').count();
    let line_start = valid.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    format!("line {line}, column {}", valid.len() - line_start + 1)
}

/// Reads and parses an operator-supplied YAML file (a link to it is followed: Kubernetes
/// mounts ConfigMaps and Secrets through links), at most [`MAX_FILE`] bytes.
pub fn load(file: &Path) -> Result<Value, InputError> {
    let bytes = crate::repofs::read_operator_file(file, MAX_FILE)
        .map_err(|e| InputError::refused(file, e))?;
    let text = utf8_text(file, bytes, "the file")?;
    parse(file, &text)
}

/// Parses YAML text read from `file` under the expansion budget.
pub fn parse(file: &Path, text: &str) -> Result<Value, InputError> {
    parse_within(file, text, MAX_EXPANSION)
}

/// [`parse`] with an expansion budget of `limit`.
fn parse_within(file: &Path, text: &str, limit: u64) -> Result<Value, InputError> {
    let budget = Budget {
        left: Cell::new(limit),
        exceeded: Cell::new(false),
    };
    let deserializer = serde_norway::Deserializer::from_str(text);
    Budgeted(&budget).deserialize(deserializer).map_err(|e| {
        if budget.exceeded.get() {
            InputError::Expansion {
                file: file.to_path_buf(),
                limit,
            }
        } else {
            InputError::Syntax {
                file: file.to_path_buf(),
                message: e.to_string(),
            }
        }
    })
}

/// What a parse may still produce.
struct Budget {
    left: Cell<u64>,
    exceeded: Cell<bool>,
}

impl Budget {
    fn charge<E: de::Error>(&self, bytes: usize) -> Result<(), E> {
        let cost = NODE_COST.saturating_add(bytes as u64);
        match self.left.get().checked_sub(cost) {
            Some(left) => {
                self.left.set(left);
                Ok(())
            }
            None => {
                self.exceeded.set(true);
                Err(E::custom("expansion budget exceeded"))
            }
        }
    }
}

/// Deserializes one [`Value`], charging every node to the budget as it is produced.
#[derive(Clone, Copy)]
struct Budgeted<'b>(&'b Budget);

impl<'de> DeserializeSeed<'de> for Budgeted<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Budgeted<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Value, E> {
        self.0.charge(0)?;
        Ok(Value::Bool(b))
    }

    fn visit_i64<E: de::Error>(self, i: i64) -> Result<Value, E> {
        self.0.charge(0)?;
        Ok(Value::Number(i.into()))
    }

    fn visit_u64<E: de::Error>(self, u: u64) -> Result<Value, E> {
        self.0.charge(0)?;
        Ok(Value::Number(u.into()))
    }

    // Integers past 64 bits are read as floats, as YAML allows; never an error
    // quoting the number.
    fn visit_i128<E: de::Error>(self, i: i128) -> Result<Value, E> {
        self.visit_f64(i as f64)
    }

    fn visit_u128<E: de::Error>(self, u: u128) -> Result<Value, E> {
        self.visit_f64(u as f64)
    }

    fn visit_f64<E: de::Error>(self, f: f64) -> Result<Value, E> {
        self.0.charge(0)?;
        Ok(Value::Number(f.into()))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Value, E> {
        self.0.charge(s.len())?;
        Ok(Value::String(s.to_owned()))
    }

    fn visit_string<E: de::Error>(self, s: String) -> Result<Value, E> {
        self.0.charge(s.len())?;
        Ok(Value::String(s))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        self.0.charge(0)?;
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        self.visit_unit()
    }

    fn visit_some<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        self.deserialize(deserializer)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut items: A) -> Result<Value, A::Error> {
        self.0.charge(0)?;
        let mut out = Vec::new();
        while let Some(item) = items.next_element_seed(self)? {
            out.push(item);
        }
        Ok(Value::Sequence(out))
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut entries: A) -> Result<Value, A::Error> {
        self.0.charge(0)?;
        let mut out = serde_norway::Mapping::new();
        while let Some(key) = entries.next_key_seed(self)? {
            if let Some(first) = out.keys().position(|k| k == &key) {
                // The key is not quoted (errors never repeat the file's contents): it is
                // named by its place among the mapping's keys.
                return Err(de::Error::custom(format!(
                    "duplicate key in a mapping: its key {} repeats its key {}",
                    out.len() + 1,
                    first + 1
                )));
            }
            let value = entries.next_value_seed(self)?;
            out.insert(key, value);
        }
        Ok(Value::Mapping(out))
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<Value, A::Error> {
        use de::VariantAccess;
        let (tag, contents) = data.variant_seed(TagSeed(self.0))?;
        let value = contents.newtype_variant_seed(self)?;
        Ok(Value::Tagged(Box::new(TaggedValue { tag, value })))
    }
}

/// Reads a tag's name (`!name`), charged like a scalar.
struct TagSeed<'b>(&'b Budget);

impl<'de> DeserializeSeed<'de> for TagSeed<'_> {
    type Value = Tag;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Tag, D::Error> {
        deserializer.deserialize_string(self)
    }
}

impl<'de> Visitor<'de> for TagSeed<'_> {
    type Value = Tag;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a YAML tag")
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Tag, E> {
        if s.is_empty() {
            return Err(E::custom("empty YAML tag"));
        }
        self.0.charge(s.len())?;
        Ok(Tag::new(s))
    }
}

/// The known field `key` is most likely a misspelling of: one that differs only in
/// case, `-` for `_` or a trailing `s`, or by one letter inserted, removed, replaced or
/// swapped (keys of six characters or more), or two (nine or more). Shorter keys are
/// left alone: `state` or `reads` are as likely an executor's own parameters as typos
/// of `status` or `ready`. Formats that keep unknown fields (a backlog's task, a
/// policy) use it to name a typo that would otherwise have no effect.
pub fn near_miss(key: &str, known: &[&'static str]) -> Option<&'static str> {
    let fold = |k: &str| {
        k.to_ascii_lowercase()
            .replace('-', "_")
            .trim_end_matches('s')
            .to_string()
    };
    if known.contains(&key) {
        return None;
    }
    let folded = fold(key);
    let allowed = match key.chars().count() {
        0..=5 => 0,
        6..=8 => 1,
        _ => 2,
    };
    known
        .iter()
        .copied()
        .find(|k| fold(k) == folded)
        .or_else(|| {
            known
                .iter()
                .copied()
                .map(|k| (strsim::osa_distance(&folded, &fold(k)), k))
                .filter(|&(d, _)| d <= allowed)
                .min_by_key(|&(d, _)| d)
                .map(|(_, k)| k)
        })
}

/// A short description of a value's type for error messages; never the value itself,
/// so an error cannot repeat a file's contents (a token, a host file's text).
pub fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(_) => "a boolean".into(),
        Value::Number(_) => "a number".into(),
        Value::String(_) => "a string".into(),
        Value::Sequence(_) => "a list".into(),
        Value::Mapping(_) => "a mapping".into(),
        Value::Tagged(_) => "a tagged value".into(),
    }
}

/// The booleans of YAML 1.1 that YAML 1.2 reads as strings: `yes`, `no`, `on`, `off`
/// in lower, title or upper case. The original Leviathan read its backlogs and
/// policies with PyYAML (YAML 1.1), so `ready: yes` was true there, and stays so.
pub fn yaml11_bool(word: &str) -> Option<bool> {
    match word {
        "yes" | "Yes" | "YES" | "on" | "On" | "ON" => Some(true),
        "no" | "No" | "NO" | "off" | "Off" | "OFF" => Some(false),
        _ => None,
    }
}

/// Reads fields out of one YAML mapping, producing located errors.
pub struct Fields<'a> {
    pub file: &'a Path,
    /// Prefix naming the item, e.g. "task `docs-1`: " (may be empty).
    pub context: String,
    pub map: &'a serde_norway::Mapping,
}

impl<'a> Fields<'a> {
    /// An error about `field`.
    pub fn error(&self, field: &str, message: impl Into<String>) -> InputError {
        InputError::Field {
            file: self.file.to_path_buf(),
            context: self.context.clone(),
            field: field.into(),
            message: message.into(),
        }
    }

    /// The raw value of `field`, treating YAML null as absent.
    pub fn get(&self, field: &str) -> Option<&'a Value> {
        self.map.get(field).filter(|v| !v.is_null())
    }

    /// A required string.
    pub fn string(&self, field: &str) -> Result<String, InputError> {
        self.opt_string(field)?
            .ok_or_else(|| self.error(field, "is required"))
    }

    /// An optional string (numbers are not accepted as strings here).
    pub fn opt_string(&self, field: &str) -> Result<Option<String>, InputError> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v) => Err(self.error(field, format!("expected a string, found {}", describe(v)))),
        }
    }

    /// An optional scalar (string, number or boolean) rendered as a string.
    pub fn opt_scalar(&self, field: &str) -> Result<Option<String>, InputError> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => scalar_text(v).map(Some).ok_or_else(|| {
                self.error(field, format!("expected a scalar, found {}", describe(v)))
            }),
        }
    }

    /// An optional boolean: `true` or `false`, or one of the words YAML 1.1 reads
    /// as one ([`yaml11_bool`]), as the original Leviathan's PyYAML read its files.
    pub fn opt_bool(&self, field: &str) -> Result<Option<bool>, InputError> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => match v.as_str().and_then(yaml11_bool) {
                Some(b) => Ok(Some(b)),
                None => Err(self.error(
                    field,
                    format!(
                        "expected true or false (or yes, no, on, off), found {}",
                        describe(v)
                    ),
                )),
            },
        }
    }

    /// An optional non-negative integer.
    pub fn opt_u64(&self, field: &str) -> Result<Option<u64>, InputError> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::Number(n)) if n.as_u64().is_some() => Ok(n.as_u64()),
            Some(v) => Err(self.error(
                field,
                format!("expected a non-negative integer, found {}", describe(v)),
            )),
        }
    }

    /// An optional list of scalars rendered as strings (absent → empty).
    pub fn string_list(&self, field: &str) -> Result<Vec<String>, InputError> {
        match self.get(field) {
            None => Ok(Vec::new()),
            Some(Value::Sequence(items)) => items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    scalar_text(item).ok_or_else(|| {
                        self.error(
                            field,
                            format!("item {} must be a string, found {}", i + 1, describe(item)),
                        )
                    })
                })
                .collect(),
            Some(v) => Err(self.error(field, format!("expected a list, found {}", describe(v)))),
        }
    }

    /// An optional nested mapping as fields of its own, their errors prefixed with
    /// this one's context and `field`.
    pub fn opt_nested(&self, field: &str) -> Result<Option<Fields<'a>>, InputError> {
        Ok(self.opt_mapping(field)?.map(|map| Fields {
            file: self.file,
            context: format!("{}{field}: ", self.context),
            map,
        }))
    }

    /// An optional nested mapping.
    pub fn opt_mapping(
        &self,
        field: &str,
    ) -> Result<Option<&'a serde_norway::Mapping>, InputError> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::Mapping(m)) => Ok(Some(m)),
            Some(v) => Err(self.error(field, format!("expected a mapping, found {}", describe(v)))),
        }
    }
}

/// The text of a scalar value, or `None` for lists, mappings and null.
pub fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_bad_byte_is_placed_by_line_and_column_counted_from_one() {
        let place = |bytes: &[u8]| first_bad_byte(&String::from_utf8(bytes.to_vec()).unwrap_err());
        assert_eq!(place(b"\xff"), "line 1, column 1");
        assert_eq!(place(b"ab\ncd\n\xc3"), "line 3, column 1");
        assert_eq!(place(b"a\nb\xc3\xa9c\xe2\x82"), "line 2, column 5");
        let err = utf8_text(Path::new("f.yaml"), b"ok\n\x80".to_vec(), "the file")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "f.yaml: invalid YAML: the file is not UTF-8 (line 2, column 1)"
        );
    }

    #[test]
    fn near_misses_name_the_field_a_typo_was_meant_for() {
        let known = &[
            "dependencies",
            "ready",
            "allowed_paths",
            "max_open_prs",
            "id",
            "title",
            "status",
            "executor",
        ];
        for (typo, meant) in [
            ("dependecies", "dependencies"),
            ("Dependencies", "dependencies"),
            ("depedencies", "dependencies"),
            ("allowed-paths", "allowed_paths"),
            ("allowed_path", "allowed_paths"),
            ("alowed_paths", "allowed_paths"),
            ("max_open_pr", "max_open_prs"),
            ("max_open_rps", "max_open_prs"),
            ("Ready", "ready"),
            ("titles", "title"),
            ("statsu", "status"),
            ("executer", "executor"),
            ("dependency", "dependencies"),
        ] {
            assert_eq!(near_miss(typo, known), Some(meant), "{typo}");
        }
        // Fields far from every known one (an executor's own parameters), known
        // fields, and short keys a letter or two away from a field are not typos.
        for other in [
            "changelog_section",
            "owner",
            "rdy",
            "ix",
            "dependencies",
            "target_id",
            "is",
            "state",
            "reads",
            "files",
            "table",
        ] {
            assert_eq!(near_miss(other, known), None, "{other}");
        }
    }

    /// What a value costs in the budget: [`NODE_COST`] per node plus scalar bytes.
    fn cost(v: &Value) -> u64 {
        NODE_COST
            + match v {
                Value::String(s) => s.len() as u64,
                Value::Sequence(items) => items.iter().map(cost).sum(),
                Value::Mapping(m) => m.iter().map(|(k, v)| cost(k) + cost(v)).sum(),
                Value::Tagged(t) => t.tag.to_string().len() as u64 + cost(&t.value),
                _ => 0,
            }
    }

    /// A small deterministic generator (xorshift64*).
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// A document of anchored scalars and lists whose items alias earlier anchors, so
    /// its expansion ranges from a few bytes to far more than its text.
    fn document(rng: &mut Rng) -> String {
        let mut text = String::new();
        let keys = 1 + rng.below(7);
        for k in 0..keys {
            if k == 0 || rng.below(3) == 0 {
                let len = rng.below(40) as usize;
                text.push_str(&format!("k{k}: &a{k} \"{}\"\n", "s".repeat(len)));
            } else {
                let items: Vec<String> = (0..1 + rng.below(6))
                    .map(|_| match rng.below(4) {
                        0 => format!("\"{}\"", "t".repeat(rng.below(10) as usize)),
                        _ => format!("*a{}", rng.below(k)),
                    })
                    .collect();
                text.push_str(&format!("k{k}: &a{k} [{}]\n", items.join(", ")));
            }
        }
        text
    }

    /// The budget holds exactly: a document parses under a budget if and only if what
    /// it expands to costs no more, and then to the very value an unbounded parse gives.
    #[test]
    fn the_expansion_budget_refuses_exactly_what_expands_past_it() {
        let file = Path::new("generated.yaml");
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let (mut accepted, mut refused) = (0, 0);
        for _ in 0..2000 {
            let text = document(&mut rng);
            let full: Value = serde_norway::from_str(&text).expect("generated YAML is valid");
            let needed = cost(&full);
            let budget = 50 + rng.below(4000);
            match parse_within(file, &text, budget) {
                Ok(value) => {
                    assert!(needed <= budget, "{needed} > {budget} accepted:\n{text}");
                    assert_eq!(value, full, "{text}");
                    accepted += 1;
                }
                Err(InputError::Expansion { limit, .. }) => {
                    assert_eq!(limit, budget);
                    assert!(needed > budget, "{needed} <= {budget} refused:\n{text}");
                    refused += 1;
                }
                Err(other) => panic!("{other}:\n{text}"),
            }
        }
        assert!(
            accepted > 200 && refused > 200,
            "{accepted} accepted, {refused} refused"
        );
    }

    #[test]
    fn an_alias_bomb_stops_at_the_budget_and_names_the_file() {
        let mut text = format!("big: &a \"{}\"\nrefs: [", "x".repeat(100_000));
        text.push_str(&vec!["*a"; 1000].join(", "));
        text.push_str("]\n");
        let err = parse(Path::new("backlog.yaml"), &text)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("backlog.yaml: the document expands"),
            "{err}"
        );
        // The classic billion laughs is refused too, by the same budget.
        let mut laughs = String::from("a0: &a0 [\"lol\"]\n");
        for i in 1..12 {
            let prev = vec![format!("*a{}", i - 1); 9].join(", ");
            laughs.push_str(&format!("a{i}: &a{i} [{prev}]\n"));
        }
        assert!(matches!(
            parse(Path::new("b.yaml"), &laughs),
            Err(InputError::Expansion { .. }) | Err(InputError::Syntax { .. })
        ));
    }

    #[test]
    fn errors_never_quote_values() {
        let described = parse(Path::new("t.yaml"), "token: 98765432109876543210\n")
            .map(|v| describe(&v["token"]))
            .unwrap();
        assert_eq!(described, "a number");
        let dup = parse(Path::new("t.yaml"), "secret-key: 1\nsecret-key: 2\n").unwrap_err();
        assert!(!dup.to_string().contains("secret-key"), "{dup}");
    }

    #[test]
    fn a_duplicate_key_is_named_by_its_place_in_its_mapping() {
        let text = "tasks:\n  - id: a\n    title: A\n    ready: true\n    title: B\n";
        let err = parse(Path::new("backlog.yaml"), text)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("duplicate key in a mapping: its key 4 repeats its key 2"),
            "{err}"
        );
        assert!(err.starts_with("backlog.yaml: "), "{err}");
    }
}
