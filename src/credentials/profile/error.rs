//! Why a profile does not resolve into a chain ([`ResolveError`]): one variant per kind of
//! misconfiguration, so tests (and the conformance suite) compare kinds, not wording. Every
//! message names the profile and the fix.

/// Why a profile does not resolve. Each names the profile and the fix.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("no profiles are defined in the config or credentials file; create one with `aws configure`")]
    NoProfiles,
    #[error("profile `{name}` (the source_profile of `{referenced_from}`) does not exist; define it or fix source_profile")]
    MissingSourceProfile {
        name: String,
        referenced_from: String,
    },
    #[error("profile `{name}` does not exist; define it or select another profile")]
    MissingProfile { name: String },
    #[error("source_profile links form a cycle: {}; make one of them hold keys or a credential_source", .path.join(" → "))]
    Cycle { path: Vec<String> },
    #[error("profile `{profile}` sets both source_profile and credential_source; keep only one")]
    BothSources { profile: String },
    #[error("profile `{profile}` sets role_arn but neither source_profile nor credential_source; add one to say which credentials assume the role")]
    NoSource { profile: String },
    #[error("profile `{profile}` has {present} but no {missing}; set both")]
    PartialKeys {
        profile: String,
        present: &'static str,
        missing: &'static str,
    },
    #[error("profile `{profile}` holds no credentials (no keys, role_arn, web_identity_token_file, sso_* or credential_process); add some or select another profile")]
    NoCredentials { profile: String },
    #[error(
        "profile `{profile}` sets web_identity_token_file but no role_arn; add the role to assume"
    )]
    WebIdentityWithoutRole { profile: String },
    #[error("profile `{profile}` has credential_source = {value:?}; use Environment, Ec2InstanceMetadata or EcsContainer")]
    UnknownCredentialSource { profile: String, value: String },
    #[error("profile `{profile}`: {message}")]
    InvalidSso { profile: String, message: String },
    #[error("sso-session named `{session}` (referenced by profile `{profile}`) was not found; add a [sso-session {session}] section to the config file")]
    MissingSsoSession { profile: String, session: String },
    #[error("profile `{profile}` has {key} = {value:?}; {expected}")]
    BadValue {
        profile: String,
        key: &'static str,
        value: String,
        expected: &'static str,
    },
}
