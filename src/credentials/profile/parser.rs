//! The shared config/credentials file dialect, exactly as the cross-SDK suite
//! (`profile-parser-tests.json`) defines it, in two passes:
//!
//! 1. [`parse`] turns one file's text into raw sections (`[header]` + `key = value` lines), or
//!    a [`ParseError`] with its line number. Comments (`#`/`;` at the start of a line, or after
//!    whitespace in a property value, or anywhere after a section header) are dropped; an
//!    indented line continues the previous value (`value\ncontinued`), and under an empty
//!    value it is a sub-property that must itself look like `key = value`.
//! 2. [`ProfileSet::merge_file`] keeps the sections valid for the file's kind — `[profile x]`
//!    and `[default]` in config, bare `[x]` in credentials, `[sso-session x]` and
//!    `[services x]` in config — drops invalid names silently (as every SDK does), lowercases
//!    property names, and merges: later definitions win, the credentials file merged last wins
//!    over config, and `[profile default]` hides a bare `[default]` in the same config file.
//!
//! Values may be secrets (`aws_secret_access_key`): [`Section`]'s `Debug` shows keys only,
//! and parse errors never quote a line.

use std::collections::BTreeMap;
use std::fmt;

const WHITESPACE: &[char] = &[' ', '\t'];
const COMMENT: &[char] = &['#', ';'];

/// Which file a text came from: they name profiles differently.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// `~/.aws/config`: `[profile name]`, `[default]`, `[sso-session name]`, `[services name]`.
    Config,
    /// `~/.aws/credentials`: `[name]` only.
    Credentials,
}

/// Why a file could not be parsed: the line and what was expected there (never its text,
/// which may hold a secret).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub message: &'static str,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// One `[header]` and the properties under it, before validation.
#[derive(Debug, Default)]
pub struct RawSection {
    pub header: String,
    pub properties: Vec<(String, String)>,
}

/// Where the line-by-line parse is.
enum State {
    Starting,
    /// In a section; `property` is the index of the last property (for continuations) and
    /// `sub` whether its value started empty (continuations are then sub-properties).
    InSection {
        property: Option<usize>,
        sub: bool,
    },
}

/// Parses one file's text into raw sections, in file order.
pub fn parse(text: &str) -> Result<Vec<RawSection>, ParseError> {
    let mut sections: Vec<RawSection> = Vec::new();
    let mut state = State::Starting;
    for (index, line) in text.lines().enumerate() {
        let error = |message| ParseError {
            line: index + 1,
            message,
        };
        if line.trim_matches(WHITESPACE).is_empty() || line.starts_with(COMMENT) {
            continue;
        }
        if line.starts_with('[') {
            let header = prepare_line(line, false)
                .strip_prefix('[')
                .and_then(|l| l.strip_suffix(']'))
                .ok_or(error("Profile definition must end with ']'"))?;
            sections.push(RawSection {
                header: header.to_string(),
                properties: Vec::new(),
            });
            state = State::InSection {
                property: None,
                sub: false,
            };
        } else if line.starts_with(WHITESPACE) {
            let (property, sub) = match state {
                State::Starting => return Err(error("Expected a profile definition")),
                State::InSection { property: None, .. } => {
                    return Err(error("Expected a property definition, found continuation"))
                }
                State::InSection {
                    property: Some(p),
                    sub,
                } => (p, sub),
            };
            if sub {
                split_property(line).map_err(|e| error(e.message(true)))?;
            }
            let section = sections
                .last_mut()
                .ok_or(error("Expected a profile definition"))?;
            let (_, value) = section
                .properties
                .get_mut(property)
                .ok_or(error("Expected a property definition, found continuation"))?;
            value.push('\n');
            value.push_str(line.trim_matches(WHITESPACE));
        } else {
            let Some(section) = sections.last_mut() else {
                return Err(error("Expected a profile definition"));
            };
            let (key, value) = split_property(line).map_err(|e| error(e.message(false)))?;
            section
                .properties
                .push((key.to_string(), value.to_string()));
            state = State::InSection {
                property: Some(section.properties.len() - 1),
                sub: value.is_empty(),
            };
        }
    }
    Ok(sections)
}

enum PropertyError {
    NoEquals,
    NoName,
}

impl PropertyError {
    fn message(&self, sub: bool) -> &'static str {
        match (self, sub) {
            (PropertyError::NoEquals, false) => "Expected an '=' sign defining a property",
            (PropertyError::NoEquals, true) => "Expected an '=' sign defining a sub-property",
            (PropertyError::NoName, false) => "Property did not have a name",
            (PropertyError::NoName, true) => "Sub-property did not have a name",
        }
    }
}

fn split_property(line: &str) -> Result<(&str, &str), PropertyError> {
    let line = prepare_line(line, true);
    let (key, value) = line.split_once('=').ok_or(PropertyError::NoEquals)?;
    let key = key.trim_matches(WHITESPACE);
    if key.is_empty() {
        return Err(PropertyError::NoName);
    }
    Ok((key, value.trim_matches(WHITESPACE)))
}

/// Trims the line and cuts a trailing comment. In property values a comment must follow
/// whitespace (`value;x` keeps its `;`, as the SDKs do); after a section header it need not.
fn prepare_line(line: &str, comment_needs_whitespace: bool) -> &str {
    let line = line.trim_matches(WHITESPACE);
    let mut previous_is_space = false;
    let mut end = line.len();
    for (i, c) in line.char_indices() {
        if COMMENT.contains(&c) && (previous_is_space || !comment_needs_whitespace) {
            end = i;
            break;
        }
        previous_is_space = c.is_whitespace();
    }
    line[..end].trim_matches(WHITESPACE)
}

/// Names of profiles, sessions and properties: the characters every SDK accepts.
fn is_identifier(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-/.%@:+".contains(c))
}

/// The properties of one profile or session. Keys are lowercase.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Section {
    properties: BTreeMap<String, String>,
}

impl Section {
    /// A property, by case-insensitive name, as written (possibly empty).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.properties
            .get(&key.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// A property that is set to something other than blanks (blank counts as unset, as for
    /// environment variables: `aws_session_token =` written by a tool means no token).
    pub fn value(&self, key: &str) -> Option<&str> {
        self.get(key).map(str::trim).filter(|v| !v.is_empty())
    }

    /// Every property, name → value (for conformance checks; values may be secrets).
    pub fn properties(&self) -> &BTreeMap<String, String> {
        &self.properties
    }

    fn insert(&mut self, key: &str, value: &str) {
        self.properties
            .insert(key.to_ascii_lowercase(), value.to_string());
    }
}

impl fmt::Debug for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Values may be secrets: show which keys are set, never what they hold.
        f.debug_set().entries(self.properties.keys()).finish()
    }
}

/// Every profile and section of the config and credentials files, merged.
#[derive(Clone, Debug, Default)]
pub struct ProfileSet {
    pub profiles: BTreeMap<String, Section>,
    pub sso_sessions: BTreeMap<String, Section>,
    pub services: BTreeMap<String, Section>,
}

/// What a section header names.
#[derive(Debug, PartialEq, Eq)]
enum SectionKey<'a> {
    Profile { name: &'a str, prefixed: bool },
    SsoSession(&'a str),
    Services(&'a str),
}

impl<'a> SectionKey<'a> {
    /// The section a header names in a file of `kind`, or `None` when the SDKs ignore it.
    fn parse(header: &'a str, kind: FileKind) -> Option<Self> {
        let header = header.trim_matches(WHITESPACE);
        let key = match (header.split_once(WHITESPACE), kind) {
            (None, FileKind::Config) if header == "default" => SectionKey::Profile {
                name: header,
                prefixed: false,
            },
            (None, FileKind::Config) => return None,
            (None, FileKind::Credentials) => SectionKey::Profile {
                name: header,
                prefixed: false,
            },
            (Some(_), FileKind::Credentials) => return None,
            (Some((prefix, name)), FileKind::Config) => {
                let name = name.trim_matches(WHITESPACE);
                match prefix {
                    "profile" => SectionKey::Profile {
                        name,
                        prefixed: true,
                    },
                    "sso-session" => SectionKey::SsoSession(name),
                    "services" => SectionKey::Services(name),
                    _ => return None,
                }
            }
        };
        let name = match key {
            SectionKey::Profile { name, .. } => name,
            SectionKey::SsoSession(name) | SectionKey::Services(name) => name,
        };
        is_identifier(name).then_some(key)
    }
}

impl ProfileSet {
    /// Merges one parsed file into the set. Call with config first, then credentials, so
    /// that credentials win, as in every SDK.
    pub fn merge_file(&mut self, sections: &[RawSection], kind: FileKind) {
        let keyed: Vec<(SectionKey<'_>, &RawSection)> = sections
            .iter()
            .filter_map(|s| SectionKey::parse(&s.header, kind).map(|k| (k, s)))
            .collect();
        let has_prefixed_default = keyed.iter().any(|(k, _)| {
            *k == SectionKey::Profile {
                name: "default",
                prefixed: true,
            }
        });
        for (key, raw) in keyed {
            let target = match key {
                SectionKey::Profile {
                    name: "default",
                    prefixed: false,
                } if has_prefixed_default => continue,
                SectionKey::Profile { name, .. } => self.profiles.entry(name.to_string()),
                SectionKey::SsoSession(name) => self.sso_sessions.entry(name.to_string()),
                SectionKey::Services(name) => self.services.entry(name.to_string()),
            }
            .or_default();
            for (k, v) in &raw.properties {
                if is_identifier(k) {
                    target.insert(k, v);
                }
            }
        }
    }

    /// Parses and merges the two files' texts (either may be absent).
    pub fn from_texts(config: Option<&str>, credentials: Option<&str>) -> Result<Self, ParseError> {
        let mut set = ProfileSet::default();
        if let Some(text) = config {
            set.merge_file(&parse(text)?, FileKind::Config);
        }
        if let Some(text) = credentials {
            set.merge_file(&parse(text)?, FileKind::Credentials);
        }
        Ok(set)
    }

    /// True when neither file defined any profile.
    pub fn is_empty(&self) -> bool {
        self.profiles.is_empty()
    }

    pub fn profile(&self, name: &str) -> Option<&Section> {
        self.profiles.get(name)
    }

    pub fn sso_session(&self, name: &str) -> Option<&Section> {
        self.sso_sessions.get(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Config wants `[profile x]`, credentials wants `[x]`; credentials win on a clash.
    #[test]
    fn credentials_file_overrides_config_for_the_same_profile() {
        let set = ProfileSet::from_texts(
            Some("[profile dev]\nregion = eu-west-1\naws_access_key_id = OLD\n[dev]\nx = 1"),
            Some("[dev]\naws_access_key_id = NEW\n[profile skipped]\ny = 2"),
        )
        .unwrap();
        let dev = set.profile("dev").unwrap();
        assert_eq!(dev.get("aws_access_key_id"), Some("NEW"));
        assert_eq!(dev.get("REGION"), Some("eu-west-1"));
        assert_eq!(dev.get("x"), None);
        assert!(set.profile("skipped").is_none());
    }

    /// A parse error names the line and never quotes it.
    #[test]
    fn parse_error_names_line_without_its_text() {
        let err = parse("[default]\naws_secret_access_key: SECRETVALUE").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(!err.to_string().contains("SECRETVALUE"));
    }

    /// `Debug` of a section lists its keys but none of its values.
    #[test]
    fn section_debug_hides_values() {
        let set =
            ProfileSet::from_texts(None, Some("[default]\naws_secret_access_key = SECRETVALUE"))
                .unwrap();
        let text = format!("{set:?}");
        assert!(text.contains("aws_secret_access_key"));
        assert!(!text.contains("SECRETVALUE"));
    }

    /// Blank values read as unset through `value`, but are present through `get`.
    #[test]
    fn blank_value_is_unset() {
        let set = ProfileSet::from_texts(None, Some("[default]\naws_session_token =")).unwrap();
        let p = set.profile("default").unwrap();
        assert_eq!(p.get("aws_session_token"), Some(""));
        assert_eq!(p.value("aws_session_token"), None);
    }
}
