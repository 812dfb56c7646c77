//! Typed reading of YAML values with errors that name the file, the item and the field.

use serde_norway::Value;
use std::path::{Path, PathBuf};

/// An input file that could not be read or is not valid.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}: invalid YAML: {message}")]
    Syntax { file: PathBuf, message: String },
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

/// Reads and parses a YAML file.
pub fn load(file: &Path) -> Result<Value, InputError> {
    let text = std::fs::read_to_string(file).map_err(|source| InputError::Read {
        file: file.to_path_buf(),
        source,
    })?;
    parse(file, &text)
}

/// Parses YAML text read from `file`.
pub fn parse(file: &Path, text: &str) -> Result<Value, InputError> {
    serde_norway::from_str(text).map_err(|e| InputError::Syntax {
        file: file.to_path_buf(),
        message: e.to_string(),
    })
}

/// A short description of a value's type for error messages.
pub fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) => format!("string {s:?}"),
        Value::Sequence(_) => "a list".into(),
        Value::Mapping(_) => "a mapping".into(),
        Value::Tagged(t) => format!("tagged value {}", t.tag),
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

    /// An optional boolean.
    pub fn opt_bool(&self, field: &str) -> Result<Option<bool>, InputError> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(self.error(
                field,
                format!("expected true or false, found {}", describe(v)),
            )),
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
