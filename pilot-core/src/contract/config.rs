//! Helpers every configuration in the workspace uses (MASS and MASA settings, experiment files): two-stage
//! settings ([`Settings`]: a raw serde struct, unknown keys rejected, checked into a plan), errors that carry the
//! key and the line ([`SettingError`], [`ConfigError`]), flags laid over a file ([`Settings::overlay`]), bounded
//! numbers ([`positive`], [`seconds`]), and run ids.
//!
//! A settings struct is declared once: the same struct is the TOML schema (serde) and the command line (clap's
//! `Args`), and every overlay or per-key check here works through serde, so no list of field names is kept
//! anywhere else.

use std::path::Path;

/// A setting that cannot be used: which key is to blame (when one is) and why. The message names the key too.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SettingError {
    /// The key, as written in a file (`window`, `kafka`), when one setting is to blame.
    pub key: Option<String>,
    pub message: String,
}

impl SettingError {
    /// An error about `key`.
    pub fn key(key: &str, message: impl Into<String>) -> Self {
        SettingError {
            key: Some(key.to_string()),
            message: message.into(),
        }
    }

    /// An error about the settings together (no single key to blame).
    pub fn general(message: impl Into<String>) -> Self {
        SettingError {
            key: None,
            message: message.into(),
        }
    }
}

/// A configuration that cannot be used: which program's, where it came from (a file or "command line"), the
/// line and key when known, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {app} configuration ({}): {message}", self.place())]
pub struct ConfigError {
    pub app: &'static str,
    pub origin: String,
    /// 1-based line in the origin file, when the error has one.
    pub line: Option<usize>,
    /// The key to blame, when there is one.
    pub key: Option<String>,
    pub message: String,
}

impl ConfigError {
    fn place(&self) -> String {
        let mut s = self.origin.clone();
        if let Some(l) = self.line {
            s.push_str(&format!(" line {l}"));
        }
        if let Some(k) = &self.key {
            s.push_str(&format!(", key `{k}`"));
        }
        s
    }

    /// From a TOML error in `text`: the line from its span, the key from that line.
    pub fn from_toml(app: &'static str, origin: &str, text: &str, e: &toml::de::Error) -> Self {
        let (line, key) = match e.span() {
            Some(span) => {
                let line = line_of(text, span.start);
                (Some(line), key_on_line(text, line))
            }
            None => (None, None),
        };
        ConfigError {
            app,
            origin: origin.to_string(),
            line,
            key,
            message: e.message().trim().to_string(),
        }
    }
}

/// 1-based line of byte `offset` in `text`.
pub fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// The key a `key = value` line sets (quotes removed), if the line is one.
fn key_on_line(text: &str, line: usize) -> Option<String> {
    let l = text.lines().nth(line.checked_sub(1)?)?;
    let (k, _) = l.split_once('=')?;
    let k = k.trim().trim_matches('"').trim_matches('\'').trim();
    (!k.is_empty() && !k.starts_with('[')).then(|| k.to_string())
}

/// `over`'s set fields laid over `base` through their TOML form: fields set in `over` win, tables merge key by key
/// (one level), unset (`None`) fields leave `base` alone. Works for any serde settings struct, so no struct keeps
/// a list of its field names for merging.
pub fn overlay<T: serde::Serialize + serde::de::DeserializeOwned>(
    base: T,
    over: T,
) -> Result<T, String> {
    let table = |s: &T| match toml::Value::try_from(s) {
        Ok(toml::Value::Table(t)) => Ok(t),
        Ok(_) => Ok(toml::Table::new()),
        Err(e) => Err(e.to_string()),
    };
    let mut merged = table(&base)?;
    for (k, v) in table(&over)? {
        match (merged.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => b.extend(o),
            (_, v) => {
                merged.insert(k, v);
            }
        }
    }
    T::deserialize(toml::Value::Table(merged)).map_err(|e| e.to_string())
}

/// Largest duration any setting may ask for, seconds (about 31 years): every time in the project is a u64 of
/// nanoseconds since the epoch, and a start time plus this still fits.
pub const MAX_SECONDS: f64 = 1e9;

/// Two-stage settings: a raw serde struct (unknown keys rejected) that [`Settings::check`] turns into a validated
/// plan. Reading files, laying flags over a file and naming keys and lines in errors are provided.
pub trait Settings: serde::de::DeserializeOwned + serde::Serialize + Default {
    /// The validated form.
    type Plan;
    /// The program the settings belong to, for messages ("MASS", "MASA").
    const APP: &'static str;
    /// Check everything and fill defaults.
    fn check(&self) -> Result<Self::Plan, SettingError>;

    /// Read a TOML settings file.
    fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            app: Self::APP,
            origin: origin.clone(),
            line: None,
            key: None,
            message: format!("reading the file: {e}"),
        })?;
        Self::from_toml(&text, &origin)
    }

    /// Parse TOML; errors name `origin`, the line and the key.
    fn from_toml(text: &str, origin: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::from_toml(Self::APP, origin, text, &e))
    }

    /// Settings from a TOML table built in code (an experiment's point): a key that does not parse is named.
    fn from_table(table: &toml::Table, origin: &str) -> Result<Self, ConfigError> {
        let parse = |t: toml::Table| Self::deserialize(toml::Value::Table(t));
        parse(table.clone()).map_err(|e: toml::de::Error| {
            // Find the key to blame: the first that fails on its own.
            let key = table
                .iter()
                .find(|(k, v)| {
                    let mut one = toml::Table::new();
                    one.insert((*k).clone(), (*v).clone());
                    parse(one).is_err()
                })
                .map(|(k, _)| k.clone());
            ConfigError {
                app: Self::APP,
                origin: origin.to_string(),
                line: None,
                key,
                message: e.message().trim().to_string(),
            }
        })
    }

    /// Settings set in `over` replace those in `self` (command-line flags over a file); tables (`kafka`) merge
    /// key by key.
    fn overlay(self, over: Self) -> Result<Self, ConfigError> {
        overlay(self, over).map_err(|message| ConfigError {
            app: Self::APP,
            origin: "command line".into(),
            line: None,
            key: None,
            message,
        })
    }

    /// Validate; errors name `origin` and the key.
    fn validate(&self, origin: &str) -> Result<Self::Plan, ConfigError> {
        self.check().map_err(|e| ConfigError {
            app: Self::APP,
            origin: origin.into(),
            line: None,
            key: e.key,
            message: e.message,
        })
    }
}

/// `Err` unless `v` (when set) is a finite positive number.
pub fn positive(name: &str, v: Option<f64>) -> Result<(), SettingError> {
    match v {
        Some(x) if !(x.is_finite() && x > 0.0) => Err(SettingError::key(
            name,
            format!("{name} must be a positive number (got {x})"),
        )),
        _ => Ok(()),
    }
}

/// `Err` unless `v` (when set) is a number of seconds in (0, [`MAX_SECONDS`]].
pub fn seconds(name: &str, v: Option<f64>) -> Result<(), SettingError> {
    positive(name, v)?;
    match v {
        Some(x) if x > MAX_SECONDS => Err(SettingError::key(
            name,
            format!("{name} = {x} s is longer than the {MAX_SECONDS:e} s (about 31 years) any run may last"),
        )),
        _ => Ok(()),
    }
}

/// Seconds (already checked by [`seconds`]) as nanoseconds.
pub fn seconds_to_ns(s: f64) -> u64 {
    (s.clamp(0.0, MAX_SECONDS) * 1e9) as u64
}

/// `Err` unless `topic` is a valid Kafka topic name.
pub fn check_topic(topic: &str) -> Result<(), SettingError> {
    if topic.is_empty()
        || topic.len() > 249
        || !topic
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        Err(SettingError::key(
            "topic",
            format!(
                "topic `{topic}` is not a valid Kafka topic name (letters, digits, . _ -; at most 249)"
            ),
        ))
    } else {
        Ok(())
    }
}

/// `<prefix>-<UTC yyyymmddhhmmss>-<pid>`.
pub fn default_run_id(prefix: &str) -> String {
    let t = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let digits: String = t.chars().filter(|c| c.is_ascii_digit()).collect();
    format!("{prefix}-{}-{}", &digits[..14], std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};

    #[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct T {
        a: Option<u32>,
        b: Option<String>,
        d: Option<f64>,
        kafka: Option<std::collections::BTreeMap<String, String>>,
    }

    impl Settings for T {
        type Plan = ();
        const APP: &'static str = "T";
        fn check(&self) -> Result<(), SettingError> {
            seconds("d", self.d)
        }
    }

    #[test]
    fn checks() {
        assert!(positive("x", Some(0.0)).is_err() && positive("x", Some(f64::NAN)).is_err());
        assert!(positive("x", None).is_ok() && positive("x", Some(1e-9)).is_ok());
        let e = seconds("duration_s", Some(1e11)).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("duration_s"));
        assert!(e.message.contains("31 years"), "{e}");
        assert!(seconds("duration_s", Some(1e9)).is_ok());
        assert_eq!(seconds_to_ns(1.5), 1_500_000_000);
        assert!(
            check_topic("a.b_c-1").is_ok()
                && check_topic("a b").is_err()
                && check_topic("").is_err()
        );
        let id = default_run_id("mass");
        assert!(
            id.starts_with("mass-20") && id.ends_with(&std::process::id().to_string()),
            "{id}"
        );
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let e = T::from_toml("a = 1\nb = =\n", "x.toml").unwrap_err();
        assert_eq!(e.line, Some(2));
        let e = T::from_toml("a = 1\n\nc = 2\n", "x.toml").unwrap_err();
        assert_eq!((e.line, e.key.as_deref()), (Some(3), Some("c")));
        let text = e.to_string();
        assert!(
            text.contains("x.toml line 3, key `c`") && text.contains("unknown field `c`"),
            "{text}"
        );
        let e = T::from_toml("a = \"many\"\n", "x.toml").unwrap_err();
        assert_eq!((e.line, e.key.as_deref()), (Some(1), Some("a")));
        let dir = tempfile::tempdir().unwrap();
        let e = T::from_file(&dir.path().join("nope.toml")).unwrap_err();
        assert!(e.to_string().contains("nope.toml"), "{e}");
        // A table built in code: the failing key is found.
        let mut t = toml::Table::new();
        t.insert("a".into(), 1.into());
        t.insert("b".into(), 2.into());
        let e = T::from_table(&t, "point 1").unwrap_err();
        assert_eq!(e.key.as_deref(), Some("b"), "{e}");
        let e = T {
            d: Some(1e12),
            ..Default::default()
        }
        .validate("flags")
        .unwrap_err();
        assert_eq!(e.key.as_deref(), Some("d"));
    }

    #[test]
    fn overlay_replaces_set_keys_and_merges_tables() {
        let file = T::from_toml("a = 1\nb = \"x\"\n[kafka]\np = \"1\"\nq = \"2\"\n", "f").unwrap();
        let flags = T {
            a: Some(7),
            kafka: Some([("q".to_string(), "9".to_string())].into()),
            ..Default::default()
        };
        let m = file.overlay(flags).unwrap();
        assert_eq!(m.a, Some(7));
        assert_eq!(m.b.as_deref(), Some("x"));
        let k = m.kafka.unwrap();
        assert_eq!((k["p"].as_str(), k["q"].as_str()), ("1", "9"));
        // NaN from a flag survives the overlay (and is then refused by the check), never silently dropped.
        let m = T::default()
            .overlay(T {
                d: Some(f64::NAN),
                ..Default::default()
            })
            .unwrap();
        assert!(m.d.unwrap().is_nan());
    }
}
