//! The client's side of directory buckets (S3 Express One Zone, [`crate::s3::express`]):
//! `CreateSession`, the sessions' refresher, which cell signs a request, `RenameObject`,
//! and appends (PutObject with `x-amz-write-offset-bytes`).
//!
//! A directory bucket's client holds two credentials cells: the mount's own (which signs
//! `CreateSession` only) and the sessions' (which signs everything else, its token in
//! `x-amz-s3session-token`). The sessions' cell is renewed by a
//! [`Refresher`](crate::credentials::refresher::Refresher) of its own whose source is
//! [`SessionProvider`]: the same owner thread, atomic swap, renewal ahead of expiry and
//! forced renewal on `ExpiredToken` as the mount's credentials get, so a request never
//! signs with half of one session and half of another, and a burst of `ExpiredToken`
//! answers causes one `CreateSession`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::SystemTime;

use log::{info, warn};
use reqwest::Method;

use super::addressing::Target;
use super::transport::Request;
use super::{build_http_unpooled, ClientConfig, S3Client};
use crate::credentials::refresher::{Refresher, StatusHandle};
use crate::credentials::{mask_key_id, Credentials, CredentialsCell};
use crate::s3::express::{parse_create_session, SessionProvider, SESSION_TOKEN_HEADER};
use crate::s3::settings::Applies;
use crate::s3::{AppendObjectParams, S3Error};
use crate::sigv4::Signed;

/// The operation name of `CreateSession`: the one request the mount's own credentials sign.
pub(super) const CREATE_SESSION: &str = "CreateSession";

/// A directory bucket's sessions: the cell every data request signs from, and its refresher
/// (dropped with the client, which stops its thread).
pub(super) struct Sessions {
    pub cell: Arc<CredentialsCell>,
    refresher: Refresher,
}

impl S3Client {
    /// Whether the bucket is a directory bucket (S3 Express One Zone), by its name.
    pub fn is_directory_bucket(&self) -> bool {
        self.directory
    }

    /// The sessions' refresher status, on a directory bucket whose sessions started.
    pub fn session_status(&self) -> Option<StatusHandle> {
        self.sessions.as_ref().map(|s| s.refresher.status_handle())
    }

    /// The credentials cell that signs `req`: the sessions' on a directory bucket (all but
    /// `CreateSession`), else the mount's.
    pub(super) fn signing_cell(&self, req: &Request<'_>) -> Option<&Arc<CredentialsCell>> {
        match &self.sessions {
            Some(sessions) if req.op != CREATE_SESSION => Some(&sessions.cell),
            _ => self.credentials.as_ref(),
        }
    }

    /// SigV4 for one attempt with `creds` (a snapshot of [`S3Client::signing_cell`]): on a
    /// directory bucket's session the token goes in `x-amz-s3session-token`, signed, and
    /// never as `x-amz-security-token`; anything else is signed as always.
    pub(super) fn sign_attempt(
        &self,
        req: &Request<'_>,
        target: &Target,
        headers: &[(String, String)],
        payload_hash: &str,
        creds: &Credentials,
    ) -> Signed {
        if self.sessions.is_none() || req.op == CREATE_SESSION {
            return self.sign(req, target, headers, payload_hash, creds);
        }
        let token = creds.session_token.as_ref().map(|t| t.expose().to_string());
        let mut headers = headers.to_vec();
        if let Some(token) = &token {
            headers.push((SESSION_TOKEN_HEADER.to_string(), token.clone()));
        }
        let tokenless = Credentials {
            session_token: None,
            ..creds.clone()
        };
        let mut signed = self.sign(req, target, &headers, payload_hash, &tokenless);
        if let Some(token) = token {
            signed.headers.push((SESSION_TOKEN_HEADER, token));
        }
        signed
    }

    /// `CreateSession` (`GET /?session`), signed with the mount's credentials: a new
    /// session's credentials for this bucket.
    pub async fn create_session(&self) -> Result<Credentials, S3Error> {
        let req = Request::new(CREATE_SESSION, Method::GET, None)
            .query("session", "")
            .header("x-amz-create-session-mode", "ReadWrite");
        let resp = self.execute(&req).await?;
        parse_create_session(&resp.body)
    }

    /// Opens the first session and starts the refresher that keeps sessions current. Called
    /// once the region is known, before the first data request.
    pub(super) async fn start_sessions(&mut self, config: &ClientConfig) -> Result<(), S3Error> {
        if config.credentials.is_none() {
            return Err(S3Error::InvalidConfig(format!(
                "{} is a directory bucket (S3 Express One Zone): its requests are signed with \
                 session credentials from CreateSession, which needs credentials; drop \
                 --no-sign-request",
                self.bucket
            )));
        }
        // A client of its own for CreateSession, without pooled connections: the refresher
        // calls it from its own runtime, where a connection pooled by another would not run.
        let mut session_client =
            S3Client::for_region(build_http_unpooled(config)?, config, &self.region)?;
        session_client.retry = self.retry;
        let first = session_client.create_session().await?;
        let obtained = SystemTime::now();
        info!(
            "directory bucket {}: session {} opened ({})",
            self.bucket,
            mask_key_id(&first.access_key_id),
            match first.expiry.and_then(|e| e.duration_since(obtained).ok()) {
                Some(left) => format!("expires in {} s", left.as_secs()),
                None => "no expiry given".to_string(),
            }
        );
        let cell = Arc::new(CredentialsCell::new(first));
        let provider = Arc::new(SessionProvider::new(session_client));
        let refresher = Refresher::start(Arc::clone(&cell), provider, obtained).map_err(|e| {
            S3Error::InvalidConfig(format!("cannot start the session refresher: {e}"))
        })?;
        self.sessions = Some(Sessions { cell, refresher });
        Ok(())
    }

    /// `RenameObject` (`PUT /TO?renameObject`, `x-amz-rename-source: /BUCKET/FROM`): `from`
    /// becomes `to` in one atomic step, overwriting `to`. `Ok(false)` when the server does not
    /// know the operation (a copy and a delete must do instead). A client token makes a retry
    /// whose first answer was lost the same rename, not a failed second one.
    pub(super) async fn rename_object_request(
        &self,
        from: &str,
        to: &str,
    ) -> Result<bool, S3Error> {
        use rand::distributions::{Alphanumeric, DistString};
        let token = Alphanumeric.sample_string(&mut rand::thread_rng(), 32);
        let mut req = Request::new("RenameObject", Method::PUT, Some(to))
            .query("renameObject", "")
            .header("x-amz-rename-source", self.addressing.copy_source(from))
            .header("x-amz-client-token", token);
        req.error_key = Some(from);
        match self.execute(&req).await {
            Ok(_) => Ok(true),
            Err(S3Error::Service { status, code, .. })
                if status == 501 || code == "NotImplemented" =>
            {
                if !self.rename_missing.swap(true, Ordering::Relaxed) {
                    warn!(
                        "the server does not know RenameObject; renames of files copy and \
                         delete instead (not atomic)"
                    );
                }
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// PutObject with `x-amz-write-offset-bytes: OFFSET`: `body` added at the end of the
    /// object, which keeps its metadata (none is sent: S3 would not change it). Sent with
    /// the object's checksum headers as any PUT (CRC32C of the body), the object
    /// settings S3 wants on requests about an existing object (an SSE-C key), and
    /// `If-Match` when given. S3 takes at most 5 GiB per append and 10,000 appends
    /// and parts per object (then `TooManyParts`: a rewrite resets the count).
    pub(super) async fn append_object_request(
        &self,
        params: &AppendObjectParams,
    ) -> Result<String, S3Error> {
        let build = |md5| {
            let mut req = Request::new("PutObject", Method::PUT, Some(&params.key))
                .object_headers(self.settings.headers(Applies::Access))
                .header("x-amz-write-offset-bytes", params.offset.to_string())
                .body_with_integrity(params.body.clone(), md5);
            if let Some(etag) = &params.if_match {
                req = req.header("if-match", etag.clone());
                req.if_match = Some(etag);
            }
            req
        };
        let (resp, _) = self.send_with_integrity("PutObject", build).await?;
        super::ops::etag_of(&resp)
    }
}
