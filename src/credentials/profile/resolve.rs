//! From a profile set and the active profile's name to the chain of credential steps the
//! SDKs would run: one base source, then the roles assumed on top of it, innermost first
//! (`assume-role-tests.json` is the reference). Pure data and no I/O: building providers
//! from the chain is `mod.rs`'s job.
//!
//! The walk follows `source_profile` links from the active profile. A profile after the
//! first that holds static keys ends the walk with those keys (its own `role_arn` is not
//! assumed); a profile naming itself as its source is read as its own base; a link back to a
//! visited profile is a cycle, reported whole (`A → B → A`).

use std::path::PathBuf;
use std::time::Duration;

pub use super::error::ResolveError;
use super::parser::{ProfileSet, Section};
use crate::credentials::Secret;

/// Where the innermost credentials of a profile chain come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BaseSource {
    /// `aws_access_key_id` / `aws_secret_access_key` (/ `aws_session_token`) of `profile`.
    AccessKey(StaticKeys),
    /// `credential_source` of a role profile.
    Named(NamedSource),
    /// `web_identity_token_file` + `role_arn` of `profile`.
    WebIdentity {
        profile: String,
        role_arn: String,
        token_file: PathBuf,
        session_name: Option<String>,
    },
    /// `sso_*` keys (legacy) or `sso_session` of `profile`.
    Sso(SsoSettings),
    /// `credential_process` of `profile`.
    Process { profile: String, command: String },
}

/// Long-term or session keys written in a profile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaticKeys {
    pub profile: String,
    pub access_key_id: String,
    pub secret_access_key: Secret,
    pub session_token: Option<Secret>,
    pub account_id: Option<String>,
}

/// The values `credential_source` may take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NamedSource {
    Environment,
    Ec2InstanceMetadata,
    EcsContainer,
}

impl NamedSource {
    pub fn as_str(self) -> &'static str {
        match self {
            NamedSource::Environment => "Environment",
            NamedSource::Ec2InstanceMetadata => "Ec2InstanceMetadata",
            NamedSource::EcsContainer => "EcsContainer",
        }
    }
}

/// An SSO profile, legacy (`sso_start_url` and `sso_region` in the profile) or with an
/// `sso_session` (both in `[sso-session name]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SsoSettings {
    pub profile: String,
    pub session_name: Option<String>,
    pub start_url: Option<String>,
    pub region: Option<String>,
    pub account_id: Option<String>,
    pub role_name: Option<String>,
}

/// One `role_arn` to assume with the credentials of the step below.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleStep {
    pub profile: String,
    pub role_arn: String,
    pub external_id: Option<String>,
    pub session_name: Option<String>,
    pub duration: Option<Duration>,
    pub mfa_serial: Option<String>,
}

/// A resolved profile: the base source, then each role in the order it is assumed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProfileChain {
    pub base: BaseSource,
    pub roles: Vec<RoleStep>,
}

/// STS refuses shorter role sessions.
const MIN_ROLE_DURATION_SECONDS: u64 = 900;
/// STS's hard maximum for a role session (the role's own maximum may be lower).
const MAX_ROLE_DURATION_SECONDS: u64 = 43_200;

/// Resolves `selected` in `set` into the chain of credential steps.
pub fn resolve_chain(set: &ProfileSet, selected: &str) -> Result<ProfileChain, ResolveError> {
    if set.is_empty() {
        return Err(ResolveError::NoProfiles);
    }
    let mut name = selected.to_string();
    let mut visited: Vec<String> = Vec::new();
    let mut roles: Vec<RoleStep> = Vec::new();
    let base = loop {
        let profile = set.profile(&name).ok_or_else(|| match visited.last() {
            Some(from) => ResolveError::MissingSourceProfile {
                name: name.clone(),
                referenced_from: from.clone(),
            },
            None => ResolveError::MissingProfile { name: name.clone() },
        })?;
        if visited.contains(&name) {
            let mut path = visited.clone();
            path.push(name);
            return Err(ResolveError::Cycle { path });
        }
        visited.push(name.clone());
        if visited.len() > 1 {
            // A source profile with keys is used for its keys, even if it names a role itself.
            if let Ok(keys) = static_keys(&name, profile) {
                break BaseSource::AccessKey(keys);
            }
        }
        // Web identity profiles are a base in themselves: their role_arn is for that call.
        if profile.value("web_identity_token_file").is_some() {
            break base_source(set, &name, profile)?;
        }
        let Some(role_arn) = profile.value("role_arn") else {
            break base_source(set, &name, profile)?;
        };
        roles.push(role_step(&name, role_arn, profile)?);
        match (
            profile.value("source_profile"),
            profile.value("credential_source"),
        ) {
            (Some(_), Some(_)) => return Err(ResolveError::BothSources { profile: name }),
            (None, None) => return Err(ResolveError::NoSource { profile: name }),
            (None, Some(source)) => break BaseSource::Named(named_source(&name, source)?),
            (Some(source), None) if source == name => break base_source(set, &name, profile)?,
            (Some(source), None) => name = source.to_string(),
        }
    };
    roles.reverse();
    Ok(ProfileChain { base, roles })
}

fn role_step(profile: &str, role_arn: &str, section: &Section) -> Result<RoleStep, ResolveError> {
    let duration = match section.value("duration_seconds") {
        None => None,
        Some(text) => {
            let bad = || ResolveError::BadValue {
                profile: profile.to_string(),
                key: "duration_seconds",
                value: text.to_string(),
                expected: "use a whole number of seconds from 900 to 43200",
            };
            let secs: u64 = text.parse().map_err(|_| bad())?;
            if !(MIN_ROLE_DURATION_SECONDS..=MAX_ROLE_DURATION_SECONDS).contains(&secs) {
                return Err(bad());
            }
            Some(Duration::from_secs(secs))
        }
    };
    Ok(RoleStep {
        profile: profile.to_string(),
        role_arn: role_arn.to_string(),
        external_id: section.value("external_id").map(str::to_string),
        session_name: section.value("role_session_name").map(str::to_string),
        duration,
        mfa_serial: section.value("mfa_serial").map(str::to_string),
    })
}

/// The base a profile provides by itself, in the SDKs' order of precedence.
fn base_source(
    set: &ProfileSet,
    name: &str,
    profile: &Section,
) -> Result<BaseSource, ResolveError> {
    if let Some(source) = profile.value("credential_source") {
        return Ok(BaseSource::Named(named_source(name, source)?));
    }
    if let Some(token_file) = profile.value("web_identity_token_file") {
        let role_arn =
            profile
                .value("role_arn")
                .ok_or_else(|| ResolveError::WebIdentityWithoutRole {
                    profile: name.to_string(),
                })?;
        return Ok(BaseSource::WebIdentity {
            profile: name.to_string(),
            role_arn: role_arn.to_string(),
            token_file: PathBuf::from(token_file),
            session_name: profile.value("role_session_name").map(str::to_string),
        });
    }
    if let Some(sso) = sso_settings(set, name, profile)? {
        return Ok(BaseSource::Sso(sso));
    }
    if let Some(command) = profile.value("credential_process") {
        return Ok(BaseSource::Process {
            profile: name.to_string(),
            command: command.to_string(),
        });
    }
    static_keys(name, profile).map(BaseSource::AccessKey)
}

fn named_source(profile: &str, value: &str) -> Result<NamedSource, ResolveError> {
    match value {
        "Environment" => Ok(NamedSource::Environment),
        "Ec2InstanceMetadata" => Ok(NamedSource::Ec2InstanceMetadata),
        "EcsContainer" => Ok(NamedSource::EcsContainer),
        other => Err(ResolveError::UnknownCredentialSource {
            profile: profile.to_string(),
            value: other.to_string(),
        }),
    }
}

/// The profile's static keys, or why it has none.
pub fn static_keys(name: &str, profile: &Section) -> Result<StaticKeys, ResolveError> {
    let id = profile.value("aws_access_key_id");
    let secret = profile.value("aws_secret_access_key");
    let token = profile.value("aws_session_token");
    let partial = |present, missing| ResolveError::PartialKeys {
        profile: name.to_string(),
        present,
        missing,
    };
    match (id, secret) {
        (Some(id), Some(secret)) => Ok(StaticKeys {
            profile: name.to_string(),
            access_key_id: id.to_string(),
            secret_access_key: Secret::new(secret),
            session_token: token.map(Secret::new),
            account_id: profile.value("aws_account_id").map(str::to_string),
        }),
        (Some(_), None) => Err(partial("aws_access_key_id", "aws_secret_access_key")),
        (None, Some(_)) => Err(partial("aws_secret_access_key", "aws_access_key_id")),
        (None, None) if token.is_some() => Err(partial("aws_session_token", "aws_access_key_id")),
        (None, None) => Err(ResolveError::NoCredentials {
            profile: name.to_string(),
        }),
    }
}

fn sso_settings(
    set: &ProfileSet,
    name: &str,
    profile: &Section,
) -> Result<Option<SsoSettings>, ResolveError> {
    let keys = [
        "sso_account_id",
        "sso_region",
        "sso_role_name",
        "sso_start_url",
        "sso_session",
    ];
    if keys.iter().all(|k| profile.value(k).is_none()) {
        return Ok(None);
    }
    let owned = |k: &str| profile.value(k).map(str::to_string);
    let invalid = |message: String| ResolveError::InvalidSso {
        profile: name.to_string(),
        message,
    };
    let mut region = owned("sso_region");
    let mut start_url = owned("sso_start_url");
    let session_name = owned("sso_session");
    if let Some(session) = &session_name {
        let section = set
            .sso_session(session)
            .ok_or_else(|| ResolveError::MissingSsoSession {
                profile: name.to_string(),
                session: session.clone(),
            })?;
        for (key, value) in [
            ("sso_region", &mut region),
            ("sso_start_url", &mut start_url),
        ] {
            if value.is_some() {
                return Err(invalid(format!(
                    "`{key}` can only be specified in the [sso-session] config when a session \
                     name is given; move it to [sso-session {session}]"
                )));
            }
            *value = section.value(key).map(str::to_string);
        }
    }
    let account_id = owned("sso_account_id");
    let role_name = owned("sso_role_name");
    match (&account_id, &role_name) {
        (Some(_), None) => Err(invalid(
            "if `sso_account_id` is set, then `sso_role_name` must also be set".into(),
        )),
        (None, Some(_)) => Err(invalid(
            "if `sso_role_name` is set, then `sso_account_id` must also be set".into(),
        )),
        _ => Ok(Some(SsoSettings {
            profile: name.to_string(),
            session_name,
            start_url,
            region,
            account_id,
            role_name,
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(config: &str) -> ProfileSet {
        ProfileSet::from_texts(Some(config), None).unwrap()
    }

    /// A three-profile cycle is reported with every profile on it.
    #[test]
    fn cycle_error_names_the_whole_cycle() {
        let s = set("[profile a]\nrole_arn = r1\nsource_profile = b\n\
                     [profile b]\nrole_arn = r2\nsource_profile = c\n\
                     [profile c]\nrole_arn = r3\nsource_profile = a");
        let err = resolve_chain(&s, "a").unwrap_err();
        assert_eq!(
            err,
            ResolveError::Cycle {
                path: vec!["a".into(), "b".into(), "c".into(), "a".into()]
            }
        );
        assert!(err.to_string().contains("a → b → c → a"));
    }

    /// duration_seconds, mfa_serial, external_id and role_session_name reach the role step.
    #[test]
    fn role_options_are_carried() {
        let s = set(
            "[profile a]\nrole_arn = r\nsource_profile = b\nduration_seconds = 3600\n\
                     mfa_serial = arn:mfa\nexternal_id = x\nrole_session_name = s\n\
                     [profile b]\naws_access_key_id = K\naws_secret_access_key = S",
        );
        let chain = resolve_chain(&s, "a").unwrap();
        let role = &chain.roles[0];
        assert_eq!(role.duration, Some(Duration::from_secs(3600)));
        assert_eq!(role.mfa_serial.as_deref(), Some("arn:mfa"));
        assert_eq!(role.external_id.as_deref(), Some("x"));
        assert_eq!(role.session_name.as_deref(), Some("s"));
    }

    /// An out-of-range duration is refused before any call to STS.
    #[test]
    fn duration_out_of_range_is_refused() {
        let s = set(
            "[profile a]\nrole_arn = r\ncredential_source = Environment\nduration_seconds = 60",
        );
        assert!(matches!(
            resolve_chain(&s, "a"),
            Err(ResolveError::BadValue {
                key: "duration_seconds",
                ..
            })
        ));
    }

    /// An unknown credential_source names the valid values.
    #[test]
    fn unknown_credential_source_is_refused() {
        let s = set("[profile a]\nrole_arn = r\ncredential_source = Ec2");
        let err = resolve_chain(&s, "a").unwrap_err().to_string();
        assert!(err.contains("Ec2InstanceMetadata"), "{err}");
    }
}
