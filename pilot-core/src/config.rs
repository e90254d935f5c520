//! Helpers every configuration in the workspace uses (pilot descriptions, MASS and MASA settings): reading a
//! TOML file with errors that name the file and line, common checks, and run ids.

use std::path::Path;

/// A configuration that cannot be used: which program's, where it came from (a file or "command line"), why.
#[derive(Debug, thiserror::Error)]
#[error("invalid {app} configuration ({origin}): {message}")]
pub struct ConfigError {
    pub app: &'static str,
    pub origin: String,
    pub message: String,
}

/// Two-stage settings: a raw serde struct (unknown keys rejected) that [`Settings::check`] turns into a validated
/// plan. Reading files and wrapping errors with their origin are provided.
pub trait Settings: serde::de::DeserializeOwned {
    /// The validated form.
    type Plan;
    /// The program the settings belong to, for messages ("MASS", "MASA").
    const APP: &'static str;
    /// Check everything and fill defaults.
    fn check(&self) -> Result<Self::Plan, String>;

    /// Read a TOML settings file.
    fn from_file(path: &Path) -> Result<Self, ConfigError> {
        read_toml(path).map_err(|message| ConfigError {
            app: Self::APP,
            origin: path.display().to_string(),
            message,
        })
    }

    /// Parse TOML; errors name `origin` and the line.
    fn from_toml(text: &str, origin: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError {
            app: Self::APP,
            origin: origin.into(),
            message: e.to_string(),
        })
    }

    /// Validate; errors name `origin`.
    fn validate(&self, origin: &str) -> Result<Self::Plan, ConfigError> {
        self.check().map_err(|message| ConfigError {
            app: Self::APP,
            origin: origin.into(),
            message,
        })
    }
}

/// Read and parse a TOML file into `T`. A parse error names the line and key (the caller names the file); a read
/// error names the file.
pub fn read_toml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| e.to_string())
}

/// `Err` unless `v` (when set) is a finite positive number.
pub fn positive(name: &str, v: Option<f64>) -> Result<(), String> {
    match v {
        Some(x) if !(x.is_finite() && x > 0.0) => {
            Err(format!("{name} must be a positive number (got {x})"))
        }
        _ => Ok(()),
    }
}

/// `Err` unless `topic` is a valid Kafka topic name.
pub fn check_topic(topic: &str) -> Result<(), String> {
    if topic.is_empty()
        || topic.len() > 249
        || !topic
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        Err(format!(
            "topic `{topic}` is not a valid Kafka topic name (letters, digits, . _ -; at most 249)"
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

    #[test]
    fn checks() {
        assert!(positive("x", Some(0.0)).is_err() && positive("x", Some(f64::NAN)).is_err());
        assert!(positive("x", None).is_ok() && positive("x", Some(1e-9)).is_ok());
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
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.toml");
        std::fs::write(&p, "a = 1\nb = [\n").unwrap();
        let e = read_toml::<toml::Value>(&p).unwrap_err();
        assert!(e.contains("line 2"), "{e}");
        let e = read_toml::<toml::Value>(&dir.path().join("nope.toml")).unwrap_err();
        assert!(e.contains("nope.toml"), "{e}");
    }
}
