//! `ProviderContext`: what every credentials source reads its configuration from — the
//! environment variables (the real ones, or a map in tests) and the settings that flags
//! give (profile name, region for STS). Sources never call `std::env` themselves, so every
//! one of them can be tested with a made-up environment.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use super::SkewedClock;

type Lookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Configuration shared by every credentials source.
#[derive(Clone)]
pub struct ProviderContext {
    vars: Lookup,
    /// `--profile` (overrides `AWS_PROFILE`).
    pub profile: Option<String>,
    /// The region STS calls go to when a source does not name one (`--region`, env).
    pub region: Option<String>,
    /// The clock STS calls are signed by; the mount hands the same one to its S3 client, so
    /// a skew either of them learns corrects both.
    pub clock: SkewedClock,
}

impl std::fmt::Debug for ProviderContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The environment may hold secrets: never print it.
        f.debug_struct("ProviderContext")
            .field("profile", &self.profile)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl ProviderContext {
    /// The real process environment.
    pub fn from_process() -> Self {
        Self::with_lookup(|k| std::env::var(k).ok())
    }

    /// Variables from `lookup` (tests, `-o` options).
    pub fn with_lookup(lookup: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> Self {
        ProviderContext {
            vars: Arc::new(lookup),
            profile: None,
            region: None,
            clock: SkewedClock::new(),
        }
    }

    /// Variables from a fixed map (tests, conformance cases).
    pub fn with_vars(vars: HashMap<String, String>) -> Self {
        Self::with_lookup(move |k| vars.get(k).cloned())
    }

    /// An environment variable; blank counts as unset, as in the AWS SDKs.
    pub fn var(&self, name: &str) -> Option<String> {
        (self.vars)(name).filter(|v| !v.trim().is_empty())
    }

    /// A boolean variable: `true`/`false`, case-insensitive; anything else is unset.
    pub fn flag(&self, name: &str) -> Option<bool> {
        match self.var(name)?.trim().to_ascii_lowercase().as_str() {
            "true" => Some(true),
            "false" => Some(false),
            _ => None,
        }
    }

    /// The profile in force: `--profile`, else `AWS_PROFILE`, else `default`.
    pub fn profile_name(&self) -> String {
        self.profile
            .clone()
            .or_else(|| self.var("AWS_PROFILE"))
            .unwrap_or_else(|| "default".to_string())
    }

    /// The home directory (`HOME`), for `~/.aws/...`.
    pub fn home(&self) -> Option<PathBuf> {
        self.var("HOME").map(PathBuf::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Blank variables are unset; flags parse case-insensitively.
    #[test]
    fn blank_is_unset_and_flags_parse() {
        let ctx = ProviderContext::with_vars(HashMap::from([
            ("A".to_string(), " ".to_string()),
            ("B".to_string(), "TRUE".to_string()),
        ]));
        assert_eq!(ctx.var("A"), None);
        assert_eq!(ctx.flag("B"), Some(true));
        assert_eq!(ctx.profile_name(), "default");
    }
}
