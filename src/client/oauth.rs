//! OAuth2 done by the library (ABI §13): sign-in flows, refresh before
//! AUTH, app-only tokens, and their storage in the credential store.
//!
//! Thread safety: a sign-in's waiting (loopback listener, device polling)
//! runs on a thread of its own that holds no client lock; the tokens it
//! gets are stored by `smtpb_oauth2_complete`. Refreshes of one credential
//! are serialised by a per-credential mutex, so concurrent sends of one
//! user make one request to the token endpoint and the others wait for it.

use serde::Serialize;
use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

use super::pipeline::LoginError;
use super::Client;
use crate::clock::SharedClock;
use crate::config::{AuthModel, OAuth2Provider, ProfileSettings};
use crate::credentials::{Masked, SecretKind};
use crate::error::{Code, Error, Result};
use crate::fsutil;
use crate::http::Http;
use crate::oauth2::{self, Endpoints, Pkce, Redirect, TokenError, Tokens};

/// A token is refreshed when it expires within this many seconds, or
/// within half its lifetime when that is shorter (see [`refresh_due`]).
pub(crate) const REFRESH_MARGIN_S: i64 = 300;
/// How long a browser sign-in may take.
const BROWSER_FLOW_S: i64 = 600;

type Key = Option<String>;
/// Trust settings an HTTP client is made from: SMTPCaFile,
/// SMTPAcceptInvalidCertificates, SMTPMinTlsVersion=1.3, the timeout.
type HttpKey = (Option<std::path::PathBuf>, bool, bool, u32);
/// A cached app-only token: the token, its expiry and when it was fetched
/// (unix seconds).
type AppToken = (Zeroizing<String>, i64, i64);
/// What a sign-in thread does until it has tokens.
type FlowWork = Box<dyn FnOnce(&Flow) -> std::result::Result<Tokens, Error> + Send>;

/// The OAuth2 state of one client.
pub(crate) struct OAuthState {
    /// The time refresh margins are measured in.
    clock: SharedClock,
    discovery: Mutex<HashMap<String, Endpoints>>,
    http: Mutex<HashMap<HttpKey, Http>>,
    refresh_locks: Mutex<HashMap<Key, Arc<Mutex<()>>>>,
    /// App-only tokens by profile (lowercase).
    app_tokens: Mutex<HashMap<String, AppToken>>,
    app_lock: Mutex<()>,
    flows: Mutex<HashMap<String, Arc<Flow>>>,
}

/// A sign-in under way (`smtpb_oauth2_begin`): what the host shows the
/// user. Fields that do not apply to the kind are `None`.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct SignIn {
    /// Browser: the address the host opens in the user's browser.
    pub authorize_url: Option<String>,
    pub expires_at: Option<String>,
    pub flow_id: String,
    /// Device: how often the library polls, in seconds.
    pub interval: Option<i64>,
    /// `browser` or `device`.
    pub kind: &'static str,
    /// Device: the code the user enters at `verification_uri`.
    pub user_code: Option<String>,
    pub verification_uri: Option<String>,
    pub verification_uri_complete: Option<String>,
}

/// A finished sign-in (`smtpb_oauth2_complete`): the stored credential,
/// and what to change when the provider gave no refresh token.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
pub struct SignedIn {
    pub advice: Option<crate::advice::Advice>,
    #[serde(flatten)]
    pub credential: Masked,
}

struct Flow {
    user: Key,
    profile: String,
    cancelled: AtomicBool,
    result: Mutex<Option<std::result::Result<Tokens, Error>>>,
    done: Condvar,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl OAuthState {
    pub(crate) fn new(clock: SharedClock) -> OAuthState {
        OAuthState {
            clock,
            discovery: Default::default(),
            http: Default::default(),
            refresh_locks: Default::default(),
            app_tokens: Default::default(),
            app_lock: Default::default(),
            flows: Default::default(),
        }
    }

    pub(crate) fn forget_app_tokens(&self) {
        self.app_tokens.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// Cancels every sign-in and joins their threads (shutdown).
    pub(crate) fn stop_flows(&self) {
        let flows: Vec<Arc<Flow>> =
            self.flows.lock().unwrap_or_else(|e| e.into_inner()).drain().map(|(_, f)| f).collect();
        for flow in flows {
            flow.cancelled.store(true, Ordering::Release);
            if let Some(handle) = flow.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
                let _ = handle.join();
            }
        }
    }
}

/// What a login did about OAuth2, for `smtpb_test_connection`.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct OAuthInfo {
    pub refreshed: bool,
    pub expires_at: i64,
}

/// Whether a token that expires at `expires_at` (0: unknown) and was
/// issued at `issued_at` is due for a refresh at `now`: when it expires
/// within min(5 minutes, half its lifetime). The half keeps a provider's
/// short-lived tokens (under 10 minutes) from being refreshed for every
/// session; an unknown lifetime counts as long.
pub(crate) fn refresh_due(expires_at: i64, issued_at: i64, now: i64) -> bool {
    if expires_at <= 0 {
        return false;
    }
    let lifetime = expires_at - issued_at;
    let margin = if issued_at > 0 && lifetime > 0 { REFRESH_MARGIN_S.min(lifetime / 2) } else { REFRESH_MARGIN_S };
    expires_at - now <= margin
}

/// The `scope` of a refresh request: the original grant's. Microsoft's
/// token endpoint wants scopes on a refresh, so it gets exactly the
/// profile's SMTPOAuth2Scopes; every other provider gets none, which
/// RFC 6749 §6 defines as "the scopes originally granted" (a refresh
/// token the host obtained with fewer scopes stays usable).
fn refresh_scope(settings: &ProfileSettings) -> Option<String> {
    match settings.oauth2_provider {
        OAuth2Provider::Microsoft => settings.oauth2_scopes.clone().filter(|s| !s.trim().is_empty()),
        _ => None,
    }
}

fn who(user: Option<&str>) -> String {
    match user {
        Some(u) => format!("user \"{}\"", crate::text::printable(u)),
        None => "the shared credential".to_string(),
    }
}

impl Client {
    fn oauth(&self) -> &OAuthState {
        &self.inner.oauth
    }

    /// An HTTP client with the profile's trust settings (kept per setting,
    /// so connections are reused).
    pub(crate) fn http_for(&self, settings: &ProfileSettings) -> Result<Http> {
        let key =
            (settings.ca_file.clone(), settings.accept_invalid_certificates, settings.min_tls13, settings.timeout_ms);
        let mut cache = self.oauth().http.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(h) = cache.get(&key) {
            return Ok(h.clone());
        }
        let h = Http::for_profile(settings)?;
        cache.insert(key, h.clone());
        Ok(h)
    }

    /// The issuer's endpoints, discovered once per issuer for the client's life.
    fn endpoints(&self, settings: &ProfileSettings) -> Result<Endpoints> {
        let issuer = settings.oauth2_issuer.clone().ok_or_else(|| {
            Error::config(format!(
                "profile {}: SMTPOAuth2Issuer is not set (SMTPOAuth2Provider=OpenID needs it)",
                settings.name
            ))
        })?;
        if let Some(e) = self.oauth().discovery.lock().unwrap_or_else(|e| e.into_inner()).get(&issuer) {
            return Ok(e.clone());
        }
        let endpoints = oauth2::discover(&self.http_for(settings)?, &issuer)?;
        self.oauth().discovery.lock().unwrap_or_else(|e| e.into_inner()).insert(issuer, endpoints.clone());
        Ok(endpoints)
    }

    fn check_oauth_profile(&self, settings: &ProfileSettings) -> Result<String> {
        if settings.auth_model != AuthModel::OAuth2 {
            return Err(Error::config(format!("profile {}: SMTPAuthModel is not OAuth2", settings.name)));
        }
        if settings.oauth2_provider == OAuth2Provider::None {
            return Err(Error::config(format!(
                "profile {}: SMTPOAuth2Provider is None (the host supplies tokens); set Microsoft, Google or OpenID",
                settings.name
            )));
        }
        settings
            .oauth2_client_id
            .clone()
            .ok_or_else(|| Error::config(format!("profile {}: SMTPOAuth2ClientId is not set", settings.name)))
    }

    fn client_secret(&self, settings: &ProfileSettings) -> Result<Option<Zeroizing<String>>> {
        self.credentials().client_secret(&settings.name)
    }

    /// The client's own fields of a token request.
    fn with_client_auth<'a>(
        form: &mut Vec<(&'a str, &'a str)>,
        client_id: &'a str,
        secret: &'a Option<Zeroizing<String>>,
    ) {
        form.push(("client_id", client_id));
        if let Some(s) = secret {
            form.push(("client_secret", s.as_str()));
        }
    }

    // --- sign-in ---------------------------------------------------------

    /// Starts a sign-in (`smtpb_oauth2_begin`): `kind` `browser` or
    /// `device`.
    pub fn oauth2_begin(&self, profile: Option<&str>, user_id: Option<&str>, kind: &str) -> Result<SignIn> {
        self.check_open()?;
        super::check_user_id(user_id)?;
        let device = match kind.to_ascii_lowercase().as_str() {
            "browser" => false,
            "device" => true,
            _ => {
                return Err(Error::invalid_argument(format!(
                    "kind \"{}\": \"browser\" or \"device\" expected",
                    crate::text::printable(kind)
                )))
            }
        };
        let config = self.read_config().clone();
        let settings = config.choose_profile(profile, None)?;
        let client_id = self.check_oauth_profile(&settings)?;
        if settings.oauth2_client_credentials {
            return Err(Error::config(format!(
                "profile {}: SMTPOAuth2Flow=ClientCredentials signs in no user; the app token is fetched when needed",
                settings.name
            )));
        }
        // The credential the profile logs in with (its own, where it has one).
        let user: Key = self.credential_user(&settings, user_id);
        let http = self.http_for(&settings)?;
        let endpoints = self.endpoints(&settings)?;
        let secret = self.client_secret(&settings)?;
        let scopes = oauth2::scopes_with_openid(settings.oauth2_scopes.as_deref().unwrap_or(""));
        let flow_id = crate::status::new_id();
        let flow = Arc::new(Flow {
            user: user.clone(),
            profile: settings.name.clone(),
            cancelled: AtomicBool::new(false),
            result: Mutex::new(None),
            done: Condvar::new(),
            thread: Mutex::new(None),
        });
        let (answer, work): (SignIn, FlowWork) = if device {
            let url = endpoints.device_authorization.clone().ok_or_else(|| {
                Error::config(format!("the issuer of profile {} offers no device flow", settings.name))
            })?;
            let mut form = vec![("scope", scopes.as_str())];
            Self::with_client_auth(&mut form, &client_id, &secret);
            let response = http.post_form(&url, "device authorization endpoint", &form)?;
            let doc = response.json("device authorization endpoint")?;
            if let Some(e) = doc.get("error").and_then(|v| v.as_str()) {
                return Err(Error::new(Code::Auth, format!("device sign-in refused by the provider ({e})")));
            }
            let text = |k: &str| doc.get(k).and_then(|v| v.as_str()).map(str::to_string);
            let device_code =
                Zeroizing::new(text("device_code").ok_or_else(|| {
                    Error::new(Code::Connect, "the device authorization endpoint gave no device_code")
                })?);
            let user_code = text("user_code").unwrap_or_default();
            let verification = text("verification_uri").or_else(|| text("verification_url")).unwrap_or_default();
            // Bounded, so the wait and its deadline cannot overflow: a
            // device code lives minutes (RFC 8628 suggests 15).
            let expires_in = doc.get("expires_in").and_then(|v| v.as_i64()).unwrap_or(600).clamp(1, 86_400);
            let interval = doc.get("interval").and_then(|v| v.as_i64()).unwrap_or(5).clamp(1, 600);
            let expires_at = fsutil::unix_now() + expires_in;
            let answer = SignIn {
                authorize_url: None,
                expires_at: fsutil::rfc3339_unix(expires_at),
                flow_id: flow_id.clone(),
                interval: Some(interval),
                kind: "device",
                user_code: Some(user_code),
                verification_uri: Some(verification),
                verification_uri_complete: text("verification_uri_complete"),
            };
            let token_url = endpoints.token.clone();
            let http = http.clone();
            let client_id = client_id.clone();
            let work = move |flow: &Flow| {
                poll_device(&http, &token_url, &client_id, &secret, &device_code, interval, expires_in, &flow.cancelled)
            };
            (answer, Box::new(work))
        } else {
            let authorize = endpoints.authorization.clone().ok_or_else(|| {
                Error::config(format!("the issuer of profile {} has no authorization_endpoint", settings.name))
            })?;
            let listener = TcpListener::bind("127.0.0.1:0")
                .map_err(|e| Error::internal(format!("cannot listen on 127.0.0.1 for the sign-in: {e}")))?;
            let port = listener.local_addr().map_err(|e| Error::internal(e.to_string()))?.port();
            let redirect_uri = format!("http://127.0.0.1:{port}/");
            let state = oauth2::random_string(16)?;
            let pkce = Pkce::new()?;
            let url = oauth2::url_with_query(
                &authorize,
                &[
                    ("response_type", "code"),
                    ("client_id", &client_id),
                    ("redirect_uri", &redirect_uri),
                    ("scope", &scopes),
                    ("state", &state),
                    ("code_challenge", &pkce.challenge),
                    ("code_challenge_method", "S256"),
                    // Not "consent": tenants that forbid user consent
                    // would block every sign-in.
                    ("prompt", "select_account"),
                ],
            );
            let expires_at = fsutil::unix_now() + BROWSER_FLOW_S;
            let answer = SignIn {
                authorize_url: Some(url),
                expires_at: fsutil::rfc3339_unix(expires_at),
                flow_id: flow_id.clone(),
                interval: None,
                kind: "browser",
                user_code: None,
                verification_uri: None,
                verification_uri_complete: None,
            };
            let token_url = endpoints.token.clone();
            let http = http.clone();
            let client_id = client_id.clone();
            let work = move |flow: &Flow| {
                let deadline = Instant::now() + Duration::from_secs(BROWSER_FLOW_S as u64);
                let redirect = oauth2::await_redirect(&listener, &state, deadline, &flow.cancelled);
                drop(listener); // a second redirect finds nothing listening
                match redirect? {
                    Redirect::Refused(error) => {
                        Err(Error::new(Code::Auth, format!("the sign-in was refused by the provider ({error})")))
                    }
                    Redirect::Code(code) => {
                        let mut form = vec![
                            ("grant_type", "authorization_code"),
                            ("code", code.as_str()),
                            ("redirect_uri", redirect_uri.as_str()),
                            ("code_verifier", pkce.verifier.as_str()),
                        ];
                        Self::with_client_auth(&mut form, &client_id, &secret);
                        oauth2::token_request(&http, &token_url, &form)
                            .map_err(|e| e.to_error("exchanging the authorization code"))
                    }
                }
            };
            (answer, Box::new(work))
        };
        let runner = flow.clone();
        let handle = std::thread::Builder::new()
            .name("smtpb-oauth2".into())
            .spawn(move || {
                let result = work(&runner);
                *runner.result.lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
                runner.done.notify_all();
            })
            .map_err(|e| Error::internal(format!("cannot start the sign-in thread: {e}")))?;
        *flow.thread.lock().unwrap_or_else(|e| e.into_inner()) = Some(handle);
        self.oauth().flows.lock().unwrap_or_else(|e| e.into_inner()).insert(flow_id, flow);
        Ok(answer)
    }

    /// Waits for a sign-in (`smtpb_oauth2_complete`); stores its tokens.
    pub fn oauth2_complete(&self, flow_id: &str, timeout_ms: u32) -> Result<SignedIn> {
        self.check_open()?;
        let flow =
            self.oauth().flows.lock().unwrap_or_else(|e| e.into_inner()).get(flow_id).cloned().ok_or_else(|| {
                Error::not_found(format!("no sign-in under way with flow_id \"{}\"", crate::text::printable(flow_id)))
            })?;
        let guard = flow.result.lock().unwrap_or_else(|e| e.into_inner());
        let mut guard = if timeout_ms == u32::MAX {
            flow.done.wait_while(guard, |r| r.is_none()).unwrap_or_else(|e| e.into_inner())
        } else {
            flow.done
                .wait_timeout_while(guard, Duration::from_millis(timeout_ms as u64), |r| r.is_none())
                .unwrap_or_else(|e| e.into_inner())
                .0
        };
        let Some(result) = guard.take() else {
            return Err(Error::new(
                Code::Timeout,
                "the sign-in is not finished yet (call smtpb_oauth2_complete again)",
            ));
        };
        drop(guard);
        self.oauth().flows.lock().unwrap_or_else(|e| e.into_inner()).remove(flow_id);
        if let Some(handle) = flow.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = handle.join();
        }
        let tokens = result?;
        let settings = self.read_config().settings(&flow.profile)?;
        let refreshable = tokens.refresh.is_some();
        self.store_tokens(&settings, flow.user.as_deref(), tokens)?;
        self.credentials_changed();
        let credential = self.credentials_masked(flow.user.as_deref())?;
        // A sign-in without a refresh token lasts one access token: say
        // what to change (in the result, so the host can show it now).
        if !refreshable {
            log::warn!("the sign-in of {} gave no refresh token (no offline_access)", who(flow.user.as_deref()));
        }
        let advice = (!refreshable).then(|| crate::advice::text_for("not_refreshable", &settings));
        Ok(SignedIn { advice, credential })
    }

    /// Cancels a sign-in (`smtpb_oauth2_cancel`).
    pub fn oauth2_cancel(&self, flow_id: &str) -> Result<()> {
        self.check_open()?;
        let flow = self.oauth().flows.lock().unwrap_or_else(|e| e.into_inner()).remove(flow_id).ok_or_else(|| {
            Error::not_found(format!("no sign-in under way with flow_id \"{}\"", crate::text::printable(flow_id)))
        })?;
        flow.cancelled.store(true, Ordering::Release);
        if let Some(handle) = flow.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = handle.join();
        }
        Ok(())
    }

    /// Stores tokens for `user`: refreshable when a refresh token came.
    fn store_tokens(&self, settings: &ProfileSettings, user: Option<&str>, tokens: Tokens) -> Result<()> {
        let mut store = self.credentials();
        let existing = store.get(user).ok().flatten();
        let username = existing
            .as_ref()
            .map(|c| c.username.clone())
            .filter(|u| !u.is_empty())
            .or(tokens.username.clone())
            .unwrap_or_default();
        let provider = settings.oauth2_provider.name();
        let expires_at = tokens.expires_at(self.oauth().clock.unix());
        match &tokens.refresh {
            Some(refresh) => {
                store.set_oauth2_refreshable(user, &username, &tokens.access, expires_at, refresh, provider)
            }
            None => store.set(user, &username, &tokens.access, SecretKind::Oauth2, expires_at),
        }
    }

    /// Stores a refresh token the host obtained (`smtpb_credentials_set_oauth2_refresh`).
    pub fn credentials_set_oauth2_refresh(
        &self,
        user_id: Option<&str>,
        username: &str,
        refresh_token: &str,
    ) -> Result<()> {
        self.check_open()?;
        super::check_user_id(user_id)?;
        if refresh_token.is_empty() {
            return Err(Error::invalid_argument("refresh_token is empty"));
        }
        let provider = {
            let config = self.read_config();
            config.choose_profile(None, None).map(|s| s.oauth2_provider.name()).unwrap_or("OpenID")
        };
        self.credentials().set_oauth2_refreshable(user_id, username, "", 0, refresh_token, provider)?;
        self.credentials_changed();
        Ok(())
    }

    // --- refresh -----------------------------------------------------------

    /// The OAuth2 part of `login`: a fresh access token for `user`'s
    /// credential, refreshing it when it expires within min(5 minutes, half
    /// its lifetime), is not there yet, or `force` (the server refused it).
    /// Returns the token's (username, token, info).
    pub(super) fn oauth_token(
        &self,
        settings: &ProfileSettings,
        user: Option<&str>,
        force: bool,
    ) -> std::result::Result<Option<(String, Zeroizing<String>, OAuthInfo)>, LoginError> {
        if settings.oauth2_client_credentials {
            return self.app_token(settings, force).map(Some);
        }
        let Some(credential) = self.credentials().get(user)? else { return Ok(None) };
        let Some(_) = credential.refresh.as_ref().filter(|_| credential.kind == SecretKind::Oauth2) else {
            return Ok(None); // host-supplied token: as in 1.0
        };
        let now = self.oauth().clock.unix();
        let stale = credential.secret.is_empty() || refresh_due(credential.expires_at, credential.stored_at, now);
        if !stale && !force {
            let info = OAuthInfo { refreshed: false, expires_at: credential.expires_at };
            return Ok(Some((credential.username, credential.secret, info)));
        }
        self.refresh(settings, user, &credential.secret).map(Some)
    }

    /// Refreshes `user`'s token once for all who ask at the same time:
    /// whoever comes second finds the token `seen` replaced and uses the
    /// new one.
    fn refresh(
        &self,
        settings: &ProfileSettings,
        user: Option<&str>,
        seen: &str,
    ) -> std::result::Result<(String, Zeroizing<String>, OAuthInfo), LoginError> {
        let lock = {
            let mut locks = self.oauth().refresh_locks.lock().unwrap_or_else(|e| e.into_inner());
            locks.entry(user.map(str::to_string)).or_default().clone()
        };
        let _one = lock.lock().unwrap_or_else(|e| e.into_inner());
        let credential = self
            .credentials()
            .get(user)?
            .ok_or_else(|| Error::credentials(format!("no credentials for {}", who(user))))?;
        let now = self.oauth().clock.unix();
        // Someone refreshed while this thread waited: use their token.
        if credential.secret.as_str() != seen
            && !credential.secret.is_empty()
            && !refresh_due(credential.expires_at, credential.stored_at, now)
        {
            let info = OAuthInfo { refreshed: false, expires_at: credential.expires_at };
            return Ok((credential.username, credential.secret, info));
        }
        let Some(refresh_token) = credential.refresh.clone() else {
            return Err(Error::credentials(format!("the credential of {} cannot be refreshed", who(user))).into());
        };
        let client_id = self.check_oauth_profile(settings)?;
        let endpoints = self.endpoints(settings)?;
        let http = self.http_for(settings)?;
        let secret = self.client_secret(settings)?;
        let scope = refresh_scope(settings);
        let mut form = vec![("grant_type", "refresh_token"), ("refresh_token", refresh_token.as_str())];
        if let Some(scope) = &scope {
            form.push(("scope", scope.as_str()));
        }
        Self::with_client_auth(&mut form, &client_id, &secret);
        let tokens = match oauth2::token_request(&http, &endpoints.token, &form) {
            Ok(t) => t,
            Err(TokenError::Refused { error, .. }) if error == "invalid_grant" => {
                return Err(LoginError {
                    error: Error::credentials(format!(
                        "the provider refused to refresh the token of {} (invalid_grant: revoked, expired or the password changed); sign in again",
                        who(user)
                    )),
                    oauth: true,
                    provider_error: Some("invalid_grant"),
                })
            }
            Err(e) => return Err(e.to_error(&format!("refreshing the token of {}", who(user))).into()),
        };
        // The rotated refresh token is stored (atomically, with the new
        // access token) before the access token is used.
        let username = if credential.username.is_empty() {
            tokens.username.clone().unwrap_or_default()
        } else {
            credential.username.clone()
        };
        let next_refresh = tokens.refresh.clone().unwrap_or(refresh_token);
        let provider = credential.provider.clone().unwrap_or_else(|| settings.oauth2_provider.name().to_string());
        let expires_at = tokens.expires_at(self.oauth().clock.unix());
        self.credentials().set_oauth2_refreshable(
            user,
            &username,
            &tokens.access,
            expires_at,
            &next_refresh,
            &provider,
        )?;
        self.inner.credential_revision.fetch_add(1, Ordering::AcqRel);
        let info = OAuthInfo { refreshed: true, expires_at };
        Ok((username, tokens.access, info))
    }

    /// The app-only token (SMTPOAuth2Flow=ClientCredentials), cached until
    /// it nears expiry. The username is SMTPUsername, else "" (the caller
    /// takes the message's sender: ABI §20).
    fn app_token(
        &self,
        settings: &ProfileSettings,
        force: bool,
    ) -> std::result::Result<(String, Zeroizing<String>, OAuthInfo), LoginError> {
        let username = self.credentials().shared_username_of(&settings.name).unwrap_or_default();
        let key = settings.name.to_ascii_lowercase();
        let _one = self.oauth().app_lock.lock().unwrap_or_else(|e| e.into_inner());
        let now = self.oauth().clock.unix();
        if !force {
            if let Some((token, expires_at, fetched_at)) =
                self.oauth().app_tokens.lock().unwrap_or_else(|e| e.into_inner()).get(&key)
            {
                if !refresh_due(*expires_at, *fetched_at, now) {
                    let info = OAuthInfo { refreshed: false, expires_at: *expires_at };
                    return Ok((username, token.clone(), info));
                }
            }
        }
        let client_id = self.check_oauth_profile(settings)?;
        let secret = self.client_secret(settings)?.ok_or_else(|| {
            Error::credentials(format!(
                "profile {}: SMTPOAuth2Flow=ClientCredentials needs SMTPOAuth2ClientSecret",
                settings.name
            ))
        })?;
        let endpoints = self.endpoints(settings)?;
        let http = self.http_for(settings)?;
        let scopes = settings.oauth2_scopes.clone().unwrap_or_default();
        let scopes = match settings.oauth2_provider {
            // App-only tokens take the resource's ".default" scope.
            OAuth2Provider::Microsoft => scopes
                .split_whitespace()
                .filter(|s| *s != "offline_access")
                .map(|s| s.rsplit_once('/').map(|(r, _)| format!("{r}/.default")).unwrap_or(s.to_string()))
                .collect::<Vec<_>>()
                .join(" "),
            _ => scopes.split_whitespace().filter(|s| *s != "offline_access").collect::<Vec<_>>().join(" "),
        };
        let secret = Some(secret);
        let mut form = vec![("grant_type", "client_credentials"), ("scope", scopes.as_str())];
        Self::with_client_auth(&mut form, &client_id, &secret);
        let tokens = oauth2::token_request(&http, &endpoints.token, &form).map_err(|e| {
            LoginError::from(e.to_error(&format!("getting the app token of profile {}", settings.name)))
        })?;
        let expires_at = tokens.expires_at(self.oauth().clock.unix());
        self.oauth()
            .app_tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, (tokens.access.clone(), expires_at, now));
        let info = OAuthInfo { refreshed: true, expires_at };
        Ok((username, tokens.access, info))
    }
}

/// Polls the token endpoint for a device sign-in (RFC 8628 §3.4–3.5):
/// every `interval` seconds, 5 more after each `slow_down`, until the
/// code expires or the flow is cancelled.
#[allow(clippy::too_many_arguments)]
fn poll_device(
    http: &Http,
    token_url: &str,
    client_id: &str,
    secret: &Option<Zeroizing<String>>,
    device_code: &str,
    mut interval: i64,
    expires_in: i64,
    cancelled: &AtomicBool,
) -> std::result::Result<Tokens, Error> {
    let deadline = Instant::now() + Duration::from_secs(expires_in as u64);
    loop {
        let wake = Instant::now() + Duration::from_secs(interval as u64);
        while Instant::now() < wake {
            if cancelled.load(Ordering::Acquire) {
                return Err(Error::new(Code::Auth, "the sign-in was cancelled"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if Instant::now() >= deadline {
            return Err(Error::new(Code::Auth, "the device sign-in expired (expired_token)"));
        }
        let mut form =
            vec![("grant_type", "urn:ietf:params:oauth:grant-type:device_code"), ("device_code", device_code)];
        Client::with_client_auth(&mut form, client_id, secret);
        match oauth2::token_request(http, token_url, &form) {
            Ok(tokens) => return Ok(tokens),
            Err(TokenError::Refused { error, .. }) if error == "authorization_pending" => {}
            Err(TokenError::Refused { error, .. }) if error == "slow_down" => interval += 5,
            Err(TokenError::Refused { error, description }) => {
                let detail = description.map(|d| format!(": {d}")).unwrap_or_default();
                return Err(Error::new(Code::Auth, format!("the device sign-in was refused ({error}{detail})")));
            }
            // The endpoint is unreachable for now: keep polling until the
            // code expires.
            Err(TokenError::Failed(_)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, TestClock};
    use std::io::{BufRead, BufReader, Read, Write};
    use std::sync::atomic::AtomicUsize;

    const USER: &str = "emp-42";

    /// An OpenID issuer on 127.0.0.1 whose token endpoint answers every
    /// refresh with a new access token of an hour, and counts them.
    struct Issuer {
        url: String,
        refreshes: Arc<AtomicUsize>,
    }

    impl Issuer {
        fn start() -> Issuer {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let url = format!("http://{}", listener.local_addr().unwrap());
            let refreshes = Arc::new(AtomicUsize::new(0));
            let (base, count) = (url.clone(), refreshes.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    let Ok(stream) = stream else { return };
                    let mut reader = BufReader::new(stream);
                    let (mut request, mut length) = (String::new(), 0);
                    reader.read_line(&mut request).unwrap();
                    loop {
                        let mut header = String::new();
                        reader.read_line(&mut header).unwrap();
                        if header.trim().is_empty() {
                            break;
                        }
                        if let Some((name, value)) = header.split_once(':') {
                            if name.eq_ignore_ascii_case("content-length") {
                                length = value.trim().parse().unwrap();
                            }
                        }
                    }
                    let mut form = vec![0; length];
                    reader.read_exact(&mut form).unwrap();
                    let answer = if request.starts_with("GET /.well-known/openid-configuration ") {
                        serde_json::json!({"issuer": base, "token_endpoint": format!("{base}/token")})
                    } else {
                        assert!(String::from_utf8_lossy(&form).contains("grant_type=refresh_token"));
                        let n = count.fetch_add(1, Ordering::SeqCst) + 1;
                        serde_json::json!({"access_token": format!("refreshed-{n}"), "token_type": "Bearer", "expires_in": 3600})
                    }
                    .to_string();
                    let mut stream = reader.into_inner();
                    write!(
                        stream,
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                        answer.len()
                    )
                    .unwrap();
                }
            });
            Issuer { url, refreshes }
        }

        fn refreshes(&self) -> usize {
            self.refreshes.load(Ordering::SeqCst)
        }
    }

    /// A client on `clock` with an OpenID profile at `issuer`.
    fn client_of(issuer: &Issuer, clock: Arc<TestClock>) -> (Client, ProfileSettings) {
        let client = Client::open_with_clock(None, Some("unit test secret"), 0, clock).unwrap();
        for (key, value) in [
            ("SMTPAuthModel", "OAuth2"),
            ("SMTPOAuth2Provider", "OpenID"),
            ("SMTPOAuth2Issuer", issuer.url.as_str()),
            ("SMTPOAuth2ClientId", "unit-test"),
        ] {
            client.config_set(key, Some(value)).unwrap();
        }
        let settings = ProfileSettings::clone(&client.read_config().settings("Default").unwrap());
        (client, settings)
    }

    /// Stores a refreshable access token that expires `lifetime` from now by `clock`.
    fn store_token(client: &Client, clock: &TestClock, access: &str, lifetime: i64) {
        let expires_at = clock.unix() + lifetime;
        client
            .credentials()
            .set_oauth2_refreshable(Some(USER), "anna@example.test", access, expires_at, "r", "OpenID")
            .unwrap();
    }

    /// The access token a login would use now, and whether it was refreshed for it.
    fn token(client: &Client, settings: &ProfileSettings) -> (String, bool) {
        let (_, access, info) = client.oauth_token(settings, Some(USER), false).map_err(|e| e.error).unwrap().unwrap();
        (access.to_string(), info.refreshed)
    }

    #[test]
    fn an_hours_token_is_refreshed_in_its_last_five_minutes_by_the_clock() {
        let issuer = Issuer::start();
        let clock = TestClock::new();
        let (client, settings) = client_of(&issuer, clock.clone());
        store_token(&client, &clock, "first", 3600);
        clock.advance(Duration::from_secs(3600 - 301));
        assert_eq!(token(&client, &settings), ("first".into(), false));
        assert_eq!(issuer.refreshes(), 0);
        clock.advance(Duration::from_secs(2));
        assert_eq!(token(&client, &settings), ("refreshed-1".into(), true));
        assert_eq!(client.credentials().get(Some(USER)).unwrap().unwrap().expires_at, clock.unix() + 3600);
        // The new token lives its own hour, by the same clock.
        clock.advance(Duration::from_secs(3600 - 301));
        assert_eq!(token(&client, &settings), ("refreshed-1".into(), false));
        clock.advance(Duration::from_secs(2));
        assert_eq!(token(&client, &settings), ("refreshed-2".into(), true));
        assert_eq!(issuer.refreshes(), 2);
    }

    #[test]
    fn a_short_token_is_refreshed_after_half_its_life_not_for_every_session() {
        let issuer = Issuer::start();
        let clock = TestClock::new();
        let (client, settings) = client_of(&issuer, clock.clone());
        store_token(&client, &clock, "six seconds", 6);
        assert_eq!(token(&client, &settings), ("six seconds".into(), false));
        clock.advance(Duration::from_secs(2));
        assert_eq!(token(&client, &settings), ("six seconds".into(), false));
        clock.advance(Duration::from_secs(1));
        assert_eq!(token(&client, &settings), ("refreshed-1".into(), true));
        assert_eq!(issuer.refreshes(), 1);
    }

    #[test]
    fn concurrent_logins_of_one_user_refresh_once_when_the_token_is_due() {
        let issuer = Issuer::start();
        let clock = TestClock::new();
        let (client, settings) = client_of(&issuer, clock.clone());
        store_token(&client, &clock, "first", 3600);
        clock.advance(Duration::from_secs(3400));
        let tokens: Vec<String> = std::thread::scope(|scope| {
            let logins: Vec<_> = (0..6).map(|_| scope.spawn(|| token(&client, &settings).0)).collect();
            logins.into_iter().map(|t| t.join().unwrap()).collect()
        });
        assert_eq!(tokens, vec!["refreshed-1".to_string(); 6]);
        assert_eq!(issuer.refreshes(), 1);
    }

    #[test]
    fn refresh_is_due_within_five_minutes_or_half_the_lifetime() {
        let now = 1_000_000;
        // An hour's token: due in its last 5 minutes.
        assert!(!refresh_due(now + 301, now - 3299, now));
        assert!(refresh_due(now + 299, now - 3301, now));
        // A 60 s token: due in its last 30 s, not at once.
        assert!(!refresh_due(now + 60, now, now));
        assert!(!refresh_due(now + 31, now - 29, now));
        assert!(refresh_due(now + 29, now - 31, now));
        // Issue time unknown (a host's token): the 5 minutes.
        assert!(refresh_due(now + 60, 0, now));
        // Expiry unknown: only when the server refuses the token.
        assert!(!refresh_due(0, now, now));
    }
}
