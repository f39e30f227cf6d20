//! `s3rolefs credentials`: which source supplies credentials and why the sources before it
//! did not, the access key id (masked), expiry, when the next refresh is due, and the
//! region — like `aws configure list`, never a secret.

use std::time::SystemTime;

use super::when::{relative, rfc3339};
use crate::config::CredentialOptions;
use crate::credentials::chain::{self, Attempt};
use crate::credentials::refresher::refresh_at;
use crate::credentials::{mask_key_id, ProviderContext};
use crate::mount::credentials::{chain_options, context_for, region_of};

/// Resolves the chain once and prints what it found.
pub fn report(opts: CredentialOptions, region: Option<String>, json: bool) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let ctx: ProviderContext = context_for(&opts, region.as_deref());
    let chain_opts = chain_options(&opts, true);
    let resolved = runtime.block_on(chain::resolve(&ctx, &chain_opts));
    let resolved = match resolved {
        Ok(r) => r,
        Err(e) => {
            if json {
                let attempts = match &e {
                    chain::ChainError::NoneFound { attempts }
                    | chain::ChainError::SourceFailed { attempts, .. } => attempts.clone(),
                };
                let out = serde_json::json!({
                    "ok": false,
                    "error": e.to_string(),
                    "tried": attempts_json(&attempts),
                });
                println!("{out:#}");
            }
            return Err(e.to_string());
        }
    };
    let now = SystemTime::now();
    let creds = &resolved.credentials;
    let (region, region_from) = runtime.block_on(region_of(&ctx, &resolved));
    let next_refresh = creds.expiry.map(|e| refresh_at(now, e));
    if json {
        let out = serde_json::json!({
            "ok": true,
            "source": creds.source,
            "tried": attempts_json(&resolved.attempts),
            "access_key_id": mask_key_id(&creds.access_key_id),
            "session_token": creds.session_token.is_some(),
            "expiry": creds.expiry.map(rfc3339),
            "next_refresh": next_refresh.map(rfc3339),
            "refreshable": resolved.provider.refreshable(),
            "region": region,
            "region_from": region_from,
        });
        println!("{out:#}");
        return Ok(());
    }
    println!("{:<14}{}", "source", creds.source);
    for attempt in &resolved.attempts {
        if let Some(why) = &attempt.skipped_because {
            println!("{:<14}not {}: {why}", "", attempt.source);
        }
    }
    println!("{:<14}{}", "access key", mask_key_id(&creds.access_key_id));
    println!(
        "{:<14}{}",
        "session token",
        if creds.session_token.is_some() {
            "yes"
        } else {
            "no"
        }
    );
    match creds.expiry {
        Some(e) => println!("{:<14}{} ({})", "expiry", rfc3339(e), relative(now, e)),
        None => println!("{:<14}never (long-term keys)", "expiry"),
    }
    match (next_refresh, resolved.provider.refreshable()) {
        (Some(at), true) => println!(
            "{:<14}{} ({})",
            "next refresh",
            rfc3339(at),
            relative(now, at)
        ),
        (_, false) => println!("{:<14}never (this source cannot renew)", "next refresh"),
        (None, true) => println!("{:<14}not needed", "next refresh"),
    }
    match region {
        Some(r) => println!("{:<14}{r} ({region_from})", "region"),
        None => println!(
            "{:<14}not set (discovered from the bucket at mount)",
            "region"
        ),
    }
    Ok(())
}

fn attempts_json(attempts: &[Attempt]) -> serde_json::Value {
    attempts
        .iter()
        .map(|a| {
            serde_json::json!({
                "source": a.source,
                "applied": a.skipped_because.is_none(),
                "reason": a.skipped_because,
            })
        })
        .collect()
}
