//! Credentials from an external program: a profile's `credential_process`. The program prints
//! `{"Version": 1, "AccessKeyId", "SecretAccessKey", "SessionToken"?, "Expiration"?}` on
//! stdout; it runs again on every refresh, so it owns caching and renewal itself.
//!
//! How the command runs: split into words like a shell would for simple quoting (`'..'`,
//! `".."`, `\`) and executed directly, as the AWS CLI does — no shell re-parses the
//! arguments and no extra process is spawned. When the line uses shell syntax that
//! splitting cannot honour (pipes, redirections, `$VAR`, `;`, `&`, backquotes, globs), it runs
//! through `/bin/sh -c` instead, as the Go and Rust SDKs always do, so every configuration
//! that works with some SDK works here too.
//!
//! What never leaves this module: stdout (it holds the secret) is not echoed in any error;
//! of stderr only the first line, shortened, is shown.

use std::process::Stdio;
use std::time::{Duration, SystemTime};

use serde::Deserialize;
use tokio::io::AsyncReadExt;

use super::env::parse_rfc3339;
use super::{BoxFuture, Credentials, CredentialsError, ProvideCredentials, Secret};

/// How long the program may run. Helpers (aws-vault, 1Password, Vault agents) answer in
/// well under a second from their cache and in a few seconds when they must call out; a
/// hung helper must still let the refresher report and retry well within the five-minute
/// margin it renews credentials ahead of expiry.
pub const CREDENTIAL_PROCESS_TIMEOUT: Duration = Duration::from_secs(30);

/// Output larger than this is not credentials: stop reading rather than grow without bound.
const MAX_OUTPUT_BYTES: u64 = 64 * 1024;

/// How much of stderr's first line an error shows: enough to say what went wrong, little
/// enough that a helper printing a token by mistake leaks at most a fragment to a log.
const STDERR_EXCERPT_CHARS: usize = 200;

/// Runs a `credential_process` command.
pub struct ProcessProvider {
    name: String,
    command: String,
    timeout: Duration,
}

impl ProcessProvider {
    /// The command of profile `profile`, as written in the config file.
    pub fn new(profile: &str, command: impl Into<String>) -> Self {
        ProcessProvider {
            name: format!("profile {profile}: credential_process"),
            command: command.into(),
            timeout: CREDENTIAL_PROCESS_TIMEOUT,
        }
    }

    /// Overrides [`CREDENTIAL_PROCESS_TIMEOUT`] (tests, `-o` options).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    async fn run(&self) -> Result<Credentials, CredentialsError> {
        let invalid = |reason: String| CredentialsError::invalid(&self.name, reason);
        let argv = command_line(&self.command)
            .map_err(|e| invalid(format!("{e}; fix credential_process in the config file")))?;
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| invalid("credential_process is empty; set it to a command".into()))?;
        let mut child = tokio::process::Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                invalid(format!(
                    "cannot start {program:?}: {e}; check the path in credential_process"
                ))
            })?;
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(invalid("cannot capture the program's output".into()));
        };
        let read_all = async {
            let mut out = Vec::new();
            let mut err = Vec::new();
            let mut stdout = stdout.take(MAX_OUTPUT_BYTES);
            let mut stderr = stderr.take(MAX_OUTPUT_BYTES);
            let (a, b) = tokio::join!(stdout.read_to_end(&mut out), stderr.read_to_end(&mut err));
            let status = child.wait().await;
            (a.and(b).and(status), out, err)
        };
        let (status, stdout, stderr) = match tokio::time::timeout(self.timeout, read_all).await {
            Ok((Ok(status), out, err)) => (status, out, err),
            Ok((Err(e), _, _)) => {
                return Err(CredentialsError::failed(
                    &self.name,
                    format!("reading the program's output failed: {e}"),
                    true,
                ))
            }
            Err(_) => {
                return Err(CredentialsError::failed(
                    &self.name,
                    format!(
                        "{program:?} did not finish within {}s and was killed; make it answer \
                         faster or check it by hand",
                        self.timeout.as_secs()
                    ),
                    true,
                ))
            }
        };
        if !status.success() {
            let code = match status.code() {
                Some(code) => format!("exit status {code}"),
                None => "a signal".to_string(),
            };
            return Err(CredentialsError::failed(
                &self.name,
                format!(
                    "{program:?} ended with {code}{}; run it by hand to see why",
                    stderr_excerpt(&stderr)
                ),
                true,
            ));
        }
        parse_output(&stdout, &self.name)
    }
}

impl ProvideCredentials for ProcessProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn provide(&self) -> BoxFuture<'_, Result<Credentials, CredentialsError>> {
        Box::pin(self.run())
    }
}

/// `: first line of stderr` (shortened), or nothing when stderr was empty.
fn stderr_excerpt(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let Some(line) = text.lines().map(str::trim).find(|l| !l.is_empty()) else {
        return String::new();
    };
    let mut excerpt: String = line.chars().take(STDERR_EXCERPT_CHARS).collect();
    if line.chars().count() > STDERR_EXCERPT_CHARS {
        excerpt.push('…');
    }
    format!(" (stderr: {excerpt})")
}

/// The JSON a credential process prints (the AWS CLI's documented format).
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ProcessOutput {
    version: Option<serde_json::Value>,
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    session_token: Option<String>,
    expiration: Option<String>,
}

/// Credentials from the program's stdout. Errors never quote it: it holds the secret.
pub fn parse_output(stdout: &[u8], name: &str) -> Result<Credentials, CredentialsError> {
    let invalid = |reason: &str| {
        CredentialsError::invalid(
            name,
            format!("{reason}; the program must print {{\"Version\": 1, \"AccessKeyId\": .., \"SecretAccessKey\": .., \"SessionToken\": .., \"Expiration\": ..}}"),
        )
    };
    let out: ProcessOutput = serde_json::from_slice(stdout).map_err(|e| {
        // serde's message gives line/column and the kind of mistake, never the input.
        invalid(&format!(
            "its output is not the expected JSON ({})",
            e.classify_str()
        ))
    })?;
    match out.version.as_ref().and_then(serde_json::Value::as_u64) {
        Some(1) => {}
        Some(_) | None => {
            let shown = match &out.version {
                Some(v) => v.to_string(),
                None => "missing".into(),
            };
            return Err(invalid(&format!(
                "unsupported Version {shown} (only 1 exists)"
            )));
        }
    }
    let nonblank = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
    let id = nonblank(out.access_key_id).ok_or_else(|| invalid("AccessKeyId is missing"))?;
    let secret =
        nonblank(out.secret_access_key).ok_or_else(|| invalid("SecretAccessKey is missing"))?;
    let expiry: Option<SystemTime> = match nonblank(out.expiration) {
        None => None,
        Some(text) => Some(
            parse_rfc3339(&text)
                .ok_or_else(|| invalid(&format!("Expiration {text:?} is not an RFC 3339 time")))?,
        ),
    };
    Ok(Credentials {
        access_key_id: id,
        secret_access_key: Secret::new(secret),
        session_token: nonblank(out.session_token).map(Secret::new),
        expiry,
        source: name.to_string(),
    })
}

trait ClassifyStr {
    fn classify_str(&self) -> String;
}

impl ClassifyStr for serde_json::Error {
    fn classify_str(&self) -> String {
        let kind = match self.classify() {
            serde_json::error::Category::Io => "unreadable",
            serde_json::error::Category::Syntax => "malformed JSON",
            serde_json::error::Category::Data => "a field has the wrong type",
            serde_json::error::Category::Eof => "truncated",
        };
        format!("{kind} at line {} column {}", self.line(), self.column())
    }
}

/// Characters that mean the line needs a real shell.
const SHELL_SYNTAX: &[char] = &[
    '|', '&', ';', '<', '>', '$', '`', '(', ')', '*', '?', '[', '{', '~', '\n',
];

/// The argv to run: the words of `command`, or `sh -c command` when it uses shell syntax.
pub fn command_line(command: &str) -> Result<Vec<String>, &'static str> {
    match split_words(command)? {
        Split::Words(words) => Ok(words),
        Split::NeedsShell => Ok(vec!["/bin/sh".into(), "-c".into(), command.into()]),
    }
}

enum Split {
    Words(Vec<String>),
    NeedsShell,
}

/// POSIX-shell word splitting for the simple cases: whitespace, single quotes (literal),
/// double quotes (with `\"`, `\\`, `\$`, `` \` `` escapes) and backslash escapes. Any
/// unquoted shell syntax character means "needs a shell".
fn split_words(command: &str) -> Result<Split, &'static str> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = command.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err("unterminated single quote"),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err("unterminated double quote"),
                        },
                        Some('$' | '`') => return Ok(Split::NeedsShell),
                        Some(c) => word.push(c),
                        None => return Err("unterminated double quote"),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(c) => word.push(c),
                    None => return Err("a trailing backslash escapes nothing"),
                }
            }
            c if SHELL_SYNTAX.contains(&c) => return Ok(Split::NeedsShell),
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(Split::Words(words))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(c: &str) -> Vec<String> {
        command_line(c).unwrap()
    }

    /// Quotes group words and are removed; escapes keep the next character.
    #[test]
    fn quoting_splits_like_a_shell() {
        assert_eq!(
            argv(r#"/opt/creds --name 'my role' "a \"b\"" c\ d"#),
            vec!["/opt/creds", "--name", "my role", "a \"b\"", "c d"]
        );
    }

    /// Pipes, variables and redirections run through `sh -c`.
    #[test]
    fn shell_syntax_runs_through_sh() {
        for c in ["get | jq .", "get $HOME", "get > /dev/null", "echo \"$X\""] {
            assert_eq!(argv(c), vec!["/bin/sh", "-c", c]);
        }
    }

    /// An unterminated quote is an error, not a guess.
    #[test]
    fn unterminated_quote_is_an_error() {
        assert!(command_line("run 'oops").is_err());
    }

    /// A Version other than 1 is refused, naming the version.
    #[test]
    fn version_other_than_one_is_refused() {
        let err = parse_output(
            br#"{"Version": 2, "AccessKeyId": "A", "SecretAccessKey": "S"}"#,
            "p",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("Version 2"), "{err}");
    }

    /// Malformed output never appears in the error (it may hold the secret).
    #[test]
    fn malformed_output_is_not_echoed() {
        let err = parse_output(b"{\"SecretAccessKey\": \"TOPSECRET\",", "p")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("TOPSECRET"), "{err}");
    }

    /// A full answer becomes session credentials with an expiry.
    #[test]
    fn full_output_parses() {
        let c = parse_output(
            br#"{"Version": 1, "AccessKeyId": "A", "SecretAccessKey": "S", "SessionToken": "T", "Expiration": "2030-01-01T00:00:00Z"}"#,
            "p",
        )
        .unwrap();
        assert_eq!(c.access_key_id, "A");
        assert_eq!(c.session_token.unwrap().expose(), "T");
        assert!(c.expiry.is_some());
    }
}
