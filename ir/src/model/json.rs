//! Typed reads of one JSON object's keys, with errors that name the key.
//!
//! `config.json` is read as a `serde_json::Value` rather than derived into a
//! struct so that every bad value can name its (dotted) key; serde's derived
//! errors only give a position. Unknown keys are never looked at. A key whose
//! value is `null` counts as absent, as transformers treats it.

use serde_json::{Map, Value};

use super::error::ConfigErrorKind;

/// One JSON object and the dotted path that leads to it (`""` at the top).
pub(super) struct Fields<'a> {
    object: &'a Map<String, Value>,
    prefix: String,
}

impl<'a> Fields<'a> {
    pub(super) fn top(value: &'a Value) -> Result<Fields<'a>, ConfigErrorKind> {
        match value {
            Value::Object(object) => Ok(Fields { object, prefix: String::new() }),
            other => Err(ConfigErrorKind::NotAnObject { found: describe(other) }),
        }
    }

    /// The dotted path of this object itself.
    pub(super) fn name(&self) -> &str {
        self.prefix.trim_end_matches('.')
    }

    /// The dotted path of `key` in this object.
    pub(super) fn path(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// The value of `key` as written, `null` included.
    pub(super) fn raw(&self, key: &str) -> Option<&'a Value> {
        self.object.get(key)
    }

    /// The value of `key`, treating `null` as absent.
    fn get(&self, key: &str) -> Option<&'a Value> {
        self.object.get(key).filter(|v| !v.is_null())
    }

    fn missing(&self, key: &str) -> ConfigErrorKind {
        ConfigErrorKind::Missing { key: self.path(key) }
    }

    fn wrong_type(&self, key: &str, expected: &'static str, found: &Value) -> ConfigErrorKind {
        ConfigErrorKind::WrongType { key: self.path(key), expected, found: describe(found) }
    }

    /// A size: an integer of at least 1.
    pub(super) fn size(&self, key: &str) -> Result<usize, ConfigErrorKind> {
        self.optional_size(key)?.ok_or_else(|| self.missing(key))
    }

    pub(super) fn optional_size(&self, key: &str) -> Result<Option<usize>, ConfigErrorKind> {
        let Some(value) = self.get(key) else { return Ok(None) };
        let size = value
            .as_u64()
            .and_then(|v| usize::try_from(v).ok())
            .ok_or_else(|| self.wrong_type(key, "a non-negative integer", value))?;
        if size == 0 {
            return Err(ConfigErrorKind::Zero { key: self.path(key) });
        }
        Ok(Some(size))
    }

    /// A number that must be positive and finite (eps, theta, factor).
    pub(super) fn positive(&self, key: &str) -> Result<f64, ConfigErrorKind> {
        self.optional_positive(key)?.ok_or_else(|| self.missing(key))
    }

    pub(super) fn optional_positive(&self, key: &str) -> Result<Option<f64>, ConfigErrorKind> {
        let Some(value) = self.get(key) else { return Ok(None) };
        let number = value.as_f64().ok_or_else(|| self.wrong_type(key, "a number", value))?;
        if !(number.is_finite() && number > 0.0) {
            return Err(ConfigErrorKind::NotPositive { key: self.path(key), value: number });
        }
        Ok(Some(number))
    }

    pub(super) fn optional_bool(&self, key: &str) -> Result<Option<bool>, ConfigErrorKind> {
        let Some(value) = self.get(key) else { return Ok(None) };
        value.as_bool().map(Some).ok_or_else(|| self.wrong_type(key, "true or false", value))
    }

    pub(super) fn optional_str(&self, key: &str) -> Result<Option<&'a str>, ConfigErrorKind> {
        let Some(value) = self.get(key) else { return Ok(None) };
        value.as_str().map(Some).ok_or_else(|| self.wrong_type(key, "a string", value))
    }

    pub(super) fn optional_object(&self, key: &str) -> Result<Option<Fields<'a>>, ConfigErrorKind> {
        let Some(value) = self.get(key) else { return Ok(None) };
        match value {
            Value::Object(object) => Ok(Some(Fields { object, prefix: format!("{}.", self.path(key)) })),
            other => Err(self.wrong_type(key, "an object or null", other)),
        }
    }
}

/// A short description of a JSON value for error messages.
fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
        scalar => scalar.to_string(),
    }
}
