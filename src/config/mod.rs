//! Configuration: the YAML file of the reference router plus our keys, `${ENV}` expansion,
//! `NOMYO_ROUTER_*` variables and command-line flags (CLI > env > file > defaults), validated with
//! errors that name the file, line and key.

pub mod build;
pub mod env_expand;
pub mod load;
pub mod reload;
pub mod schema;
pub mod source;
mod types;
pub mod url;

pub use source::ConfigError;
pub use types::*;

/// Loads the configuration from the file chosen by flag/env/cwd, the environment and the given flag overrides
/// (`(flat key, value, flag name)`).
pub fn load_config(
    config_flag: Option<&str>,
    flags: &[(&str, String, &str)],
) -> Result<Config, ConfigError> {
    let env = |name: &str| std::env::var(name).ok();
    let path = load::resolve_path(config_flag, &env);
    let (mut layers, source) = match &path {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| {
                ConfigError::new(None, "", format!("cannot read config file '{p}': {e}"))
                    .hint("pass --config PATH or set NOMYO_ROUTER_CONFIG_PATH")
            })?;
            (load::parse_file(&text, p)?, p.clone())
        }
        None => (
            load::parse_file(load::EMBEDDED_DEFAULT, "<built-in defaults>")?,
            "built-in defaults".to_string(),
        ),
    };
    load::apply_env(&mut layers, &env);
    load::apply_flags(&mut layers, flags);
    load::expand_all(&mut layers, &env)?;
    build::build(&layers, &source)
}
