//! Layered configuration: built-in defaults < TOML file < environment variables.
//!
//! Each service has its own prefix, `KINFOLD_GATEWAY_` or `KINFOLD_ADAPTER_`; nested keys use a
//! double underscore: `KINFOLD_GATEWAY_AUTH__ISSUER`. Unknown keys are errors, not silence.

use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::de::DeserializeOwned;

/// The environment prefix of the gateway's settings.
pub const GATEWAY_ENV: &str = "KINFOLD_GATEWAY_";
/// The environment prefix of an adapter's settings.
pub const ADAPTER_ENV: &str = "KINFOLD_ADAPTER_";

/// Loads a configuration: the type's defaults, then `file` if given, then the environment
/// variables that start with `prefix`.
pub fn load<T: DeserializeOwned>(
    file: Option<&Path>,
    prefix: &str,
) -> Result<T, Box<figment::Error>> {
    let mut figment = Figment::new();
    if let Some(file) = file {
        if !file.exists() {
            return Err(Box::new(figment::Error::from(format!(
                "configuration file {} does not exist",
                file.display()
            ))));
        }
        figment = figment.merge(Toml::file(file));
    }
    figment = figment.merge(Env::prefixed(prefix).split("__"));
    figment.extract().map_err(Box::new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kinfold_gateway::GatewayConfig;

    #[test]
    fn file_values_override_defaults_and_secrets_stay_hidden() {
        let dir = std::env::temp_dir().join(format!("kinfold-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("gateway.toml");
        std::fs::write(
            &file,
            r#"
adapter_timeout_ms = 750
[[adapters]]
agency = "gp"
url = "http://127.0.0.1:9000"
[[auth.keys]]
kid = "k1"
secret = "a-secret-of-at-least-thirty-two-bytes"
"#,
        )
        .expect("write config");
        let config: GatewayConfig = load(Some(&file), GATEWAY_ENV).expect("loads");
        assert_eq!(config.adapter_timeout_ms, 750);
        assert_eq!(config.bind, "127.0.0.1:8080", "default kept");
        assert_eq!(config.adapters.len(), 1);
        assert!(!format!("{config:?}").contains("a-secret-of"));
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn unknown_keys_are_errors_not_silence() {
        let dir = std::env::temp_dir().join(format!("kinfold-config-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("gateway.toml");
        std::fs::write(&file, "adapter_timeout = 750\n").expect("write config");
        assert!(load::<GatewayConfig>(Some(&file), GATEWAY_ENV).is_err());
        std::fs::remove_dir_all(dir).ok();
    }
}
