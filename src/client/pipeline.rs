//! The send pipeline, in ABI order: profile choice → blacklist → test mode
//! → (message bytes, DKIM) → limits → SMTP. `prepare` runs once per
//! message, when the host hands it over; `attempt` runs for every delivery
//! attempt, from `smtpb_send` or a delivery thread.

use lettre::message::Mailbox;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::{Client, SendOutcome};
use crate::address;
use crate::config::{self, Authentication, Config, ProfileSettings};
use crate::credentials::SecretKind;
use crate::delivery::{self, Delivery, Transport};
use crate::error::{Code, Error, Result};
use crate::failure::Failure;
use crate::fsutil;
use crate::message::{self, BuildContext, MessageSpec};
use crate::message_bounds::{self, PartBudget};
use crate::outbox::spool::Record;
use crate::outbox::{Attempt, RetryPolicy};
use crate::smtp::{Login, Mail};
use crate::status::{ArchivePaths, State, Status, TestMode};

/// Puts SMTPTestSubjectPrefix before a redirected message's subject, with
/// a space between unless the prefix ends in one.
fn prefix_subject(subject: &mut String, prefix: &str) {
    if prefix.is_empty() {
        return;
    }
    let space = if prefix.ends_with([' ', '\t']) || subject.is_empty() { "" } else { " " };
    *subject = format!("{prefix}{space}{subject}");
}

/// What a message's parts may take before they are read: SMTPMaxMessageBytes
/// of the profile it names, else the largest of the enabled profiles' (the
/// chosen profile's own limit is checked once the message is built).
pub(super) fn part_budget(config: &Config, explicit: Option<&str>) -> PartBudget {
    if let Some(s) = explicit.and_then(|name| config.settings(name).ok()) {
        return PartBudget::new(s.max_message_bytes, s.name.clone());
    }
    let largest = config.largest_enabled();
    match largest {
        Some(s) => PartBudget::new(s.max_message_bytes, s.name.clone()),
        None => PartBudget::new(config::Key::SMTPMaxMessageBytes.default_number(), config::DEFAULT_PROFILE),
    }
}

/// An envelope address with its domain as A-labels.
fn ascii_envelope(address: &str) -> Result<String> {
    if address.is_ascii() {
        return Ok(address.to_string());
    }
    Ok(address::ascii_domain(&address::parse_address(address)?)?.to_string())
}
/// A login, and what it did about a token the library manages.
pub(super) type ManagedLogin = (Option<String>, Option<Login>, Option<super::OAuthInfo>);

/// Why a login could not be had.
pub(crate) struct LoginError {
    pub error: Error,
    /// An OAuth2 token that expired: new credentials will release it.
    pub oauth: bool,
    /// The provider's error that refused a refresh (`invalid_grant`).
    pub provider_error: Option<&'static str>,
}

impl From<Error> for LoginError {
    fn from(error: Error) -> Self {
        LoginError { error, oauth: false, provider_error: None }
    }
}

/// An app token's login (SMTPOAuth2Flow=ClientCredentials without
/// SMTPUsername) names the message's sender as its user.
pub(super) fn with_sender(login: Option<Login>, sender: &str) -> Option<Login> {
    login.map(|mut l| {
        if l.username.is_empty() {
            l.username = sender.to_string();
        }
        l
    })
}

impl Client {
    /// The delivery step of a profile: SMTP or Graph (SMTPTransport).
    pub(super) fn transport(&self, settings: &ProfileSettings) -> &dyn Transport {
        match settings.transport {
            config::Transport::Smtp => &self.inner.pool,
            config::Transport::Graph => &self.inner.graph,
        }
    }

    /// A login made again after the server refused the OAuth2 token of
    /// [`Client::login_with`]: `Ok(None)` when nothing can be refreshed.
    #[allow(clippy::result_large_err)] // see delivery.rs
    pub(super) fn refreshed_login(
        &self,
        settings: &ProfileSettings,
        user: Option<&str>,
    ) -> std::result::Result<Option<Login>, delivery::Failure> {
        let refused = |error: Error, oauth: bool| {
            let mut f = delivery::Failure::new("oauth2", error.code(), error.message());
            f.token_refused = oauth;
            f
        };
        match self.login_refreshed(settings, user) {
            Ok((_, login)) => Ok(login),
            Err(LoginError { error, oauth, .. }) => Err(refused(error, oauth)),
        }
    }

    /// The login with its OAuth2 token refreshed (an app token fetched
    /// again) whatever its expiry: for a server that refused it (an SMTP
    /// 535, a Graph 401).
    pub(crate) fn login_refreshed(
        &self,
        settings: &ProfileSettings,
        user: Option<&str>,
    ) -> std::result::Result<(Option<String>, Option<Login>), LoginError> {
        self.login_with(settings, user, true).map(|(u, l, _)| (u, l))
    }

    /// The login for a profile and a message's user: the user's credential
    /// (SMTPCredentials=PerUser), else the shared one, each the profile's
    /// own (`profile:user`, `profile:`) where it has one; `None` when the
    /// profile does not authenticate, or (Optional) has no credential. An
    /// OAuth2 token the library can refresh is refreshed first when it
    /// expires within min(5 minutes, half its lifetime), or whatever its expiry with `force`;
    /// SMTPOAuth2Flow=ClientCredentials uses the cached app token. Also
    /// returns what it did about OAuth2 (`None`: no token the library
    /// manages).
    pub(super) fn login_with(
        &self,
        settings: &ProfileSettings,
        user: Option<&str>,
        force: bool,
    ) -> std::result::Result<ManagedLogin, LoginError> {
        if settings.authentication == Authentication::None {
            return Ok((None, None, None));
        }
        let user = self.credential_user(settings, user);
        let user = user.as_deref();
        let wants_oauth = settings.auth_model == config::AuthModel::OAuth2;
        if wants_oauth {
            if let Some((username, token, info)) = self.oauth_token(settings, user, force)? {
                // An app token's user is SMTPUsername, else the message's
                // sender, which the caller fills in (ABI §20).
                if username.is_empty() && !settings.oauth2_client_credentials {
                    return Err(Error::credentials(format!(
                        "the OAuth2 credential of {} has no username, and the ID token named none",
                        match user {
                            Some(u) => format!("user \"{}\"", crate::text::printable(u)),
                            None => "the shared credential".to_string(),
                        }
                    ))
                    .into());
                }
                return Ok((user.map(str::to_string), Some(Login { username, secret: token }), Some(info)));
            }
        }
        let credential = self.credentials().get(user)?;
        let who = || match user.map(|u| (u, crate::credentials::split_profile_id(u))) {
            Some((_, Some((profile, "")))) => {
                format!("the shared credential of profile {profile} ({profile}.SMTPUsername/{profile}.SMTPPassword)")
            }
            Some((u, _)) => format!("user \"{}\"", crate::text::printable(u)),
            None => "the shared credential (SMTPUsername/SMTPPassword)".to_string(),
        };
        let Some(credential) = credential else {
            if settings.authentication == Authentication::Optional {
                return Ok((user.map(str::to_string), None, None));
            }
            return Err(Error::credentials(format!("no credentials for {} (profile {})", who(), settings.name)).into());
        };
        if credential.username.is_empty() {
            return Err(Error::credentials(format!("the credential of {} has no username", who())).into());
        }
        if wants_oauth != (credential.kind == SecretKind::Oauth2) {
            return Err(Error::credentials(format!(
                "profile {} uses SMTPAuthModel={}, but {} is {}",
                settings.name,
                if wants_oauth { "OAuth2" } else { "Basic" },
                who(),
                if wants_oauth { "a password" } else { "an OAuth2 token" }
            ))
            .into());
        }
        if settings.authentication == Authentication::Required && credential.secret.is_empty() {
            return Err(Error::credentials(format!("the credential of {} has an empty password", who())).into());
        }
        if wants_oauth && credential.expires_at > 0 && credential.expires_at <= fsutil::unix_now() {
            return Err(LoginError {
                error: Error::credentials(format!("the OAuth2 token of {} expired", who())),
                oauth: true,
                provider_error: None,
            });
        }
        Ok((user.map(str::to_string), Some(Login { username: credential.username, secret: credential.secret }), None))
    }

    /// The user id of the credential a message of `user` logs in with on
    /// `settings`' profile: the user's (SMTPCredentials=PerUser) or the
    /// shared one (`None`), the profile's own where it has one.
    pub(super) fn credential_user(&self, settings: &ProfileSettings, user: Option<&str>) -> Option<String> {
        let user = if settings.shared_credentials || settings.oauth2_client_credentials { None } else { user };
        self.credentials().resolve(&settings.name, user)
    }

    /// Runs the pipeline up to the bytes: profile, blacklist, test mode,
    /// MIME and DKIM. Returns the message's record (state `state`) and its
    /// bytes. Errors here are not recorded.
    pub(super) fn prepare(&self, config: &Config, spec: &mut MessageSpec, state: State) -> Result<(Record, Vec<u8>)> {
        message_bounds::check_recipient_count(&[
            ("to", spec.to.len()),
            ("cc", spec.cc.len()),
            ("bcc", spec.bcc.len()),
        ])?;
        let sender = spec.from.as_ref().map(|m| m.email.to_string());
        let settings = config.choose_profile(spec.profile.as_deref(), sender.as_deref())?;
        let transport = self.transport(&settings);
        transport.check(&settings)?;
        let from = match (&spec.from, &settings.sender_email) {
            (Some(f), _) => f.clone(),
            (None, Some(email)) => Mailbox::new(
                settings.sender_name.clone(),
                address::parse_address(email).map_err(|e| e.context("SMTPSenderEmail"))?,
            ),
            (None, None) => {
                return Err(Error::message_error(format!(
                    "the message has no from, and profile {0} has no default sender: set {0}.SMTPSenderEmail \
                     (and {0}.SMTPSenderName), or give the message a from",
                    settings.name
                )))
            }
        };
        let reply_to = match (&spec.reply_to, &settings.reply_to) {
            (Some(r), _) => Some(r.clone()),
            (None, Some(r)) => Some(Mailbox::new(None, address::parse_address(r)?)),
            (None, None) => None,
        };

        let (allowed, blocked): (Vec<_>, Vec<_>) =
            spec.all_recipients().partition(|r| !config.is_blacklisted(r.mailbox.email.as_ref()));
        let given = |list: &[&message::Recipient]| list.iter().map(|r| r.given.clone()).collect::<Vec<_>>();
        let (recipients, blocked) = (given(&allowed), given(&blocked));
        if allowed.is_empty() {
            return Err(Error::new(Code::Blocked, "every recipient is on the blacklist"));
        }
        let global = config.global_settings();
        let envelope: Vec<String> = allowed.iter().map(|r| r.mailbox.email.to_string()).collect();
        let (envelope_to, original_to, test_mode) = if global.test_mode {
            if global.test_addresses.is_empty() {
                return Err(Error::config("SMTPTestMode is on, but SMTPTestAddresses is empty"));
            }
            let original: Vec<String> = spec.to.iter().chain(&spec.cc).map(|r| r.mailbox.email.to_string()).collect();
            prefix_subject(&mut spec.subject, &settings.test_subject_prefix);
            let test_mode = TestMode { redirected_to: global.test_addresses.clone(), original: envelope };
            (global.test_addresses.clone(), Some(original.join(", ")), Some(test_mode))
        } else {
            (envelope, None, None)
        };
        // International domains go out as A-labels, in the envelope and
        // in the headers: every server takes those, with or without
        // SMTPUTF8 (the bytes are built before any server is asked).
        let envelope_to = envelope_to.iter().map(|a| ascii_envelope(a)).collect::<Result<Vec<_>>>()?;
        let from = address::ascii_mailbox(&from).map_err(|e| e.context("from"))?;
        let reply_to = reply_to.map(|r| address::ascii_mailbox(&r)).transpose().map_err(|e| e.context("reply_to"))?;
        for (field, list) in [("to", &mut spec.to), ("cc", &mut spec.cc), ("bcc", &mut spec.bcc)] {
            for (i, r) in list.iter_mut().enumerate() {
                r.mailbox = address::ascii_mailbox(&r.mailbox).map_err(|e| e.context(format!("{field}[{i}]")))?;
            }
        }
        if spec.archive && settings.archive_dir.is_none() && self.inner.data_dir.is_none() {
            return Err(Error::config("archive: an in-memory client archives only with SMTPArchiveDir set"));
        }

        let id = crate::status::new_id();
        // A host's own MIME message keeps its Message-ID.
        let message_id = match spec.raw.as_ref().and_then(|r| r.message_id.clone()) {
            Some(own) => own,
            None => format!("<{id}@{}>", from.email.domain()),
        };
        let dkim = match (&settings.dkim_domain, &settings.dkim_selector, &settings.dkim_key_file) {
            (Some(domain), Some(selector), Some(key)) if transport.signs_dkim() => Some(message::dkim_config(
                domain,
                selector,
                crate::pem::read_dkim_key(key).map_err(|e| e.context("SMTPDkimKeyFile"))?,
            )),
            _ => None,
        };
        let ctx = BuildContext {
            from: from.clone(),
            reply_to,
            message_id: message_id.clone(),
            original_to,
            dkim: dkim.as_ref(),
        };
        let bytes = message::build(spec, &ctx)?; // takes the attachments' bytes
        if bytes.len() as u64 > settings.max_message_bytes {
            return Err(Error::message_error(format!(
                "the message is {} bytes of MIME; SMTPMaxMessageBytes of profile {} allows {}",
                bytes.len(),
                settings.name,
                settings.max_message_bytes
            )));
        }
        let status = Status {
            reference: spec.reference.clone(),
            attempts: u32::from(state == State::Sending),
            message_id,
            recipients,
            blocked,
            test_mode,
            ..Status::new(id, settings.name.clone(), state)
        };
        let record = Record {
            status,
            user: spec.user.clone(),
            envelope_from: from.email.to_string(),
            envelope_to,
            idempotency_key: spec.idempotency_key.clone(),
            archive: spec.archive,
            body_dropped: false,
            origin: None,
            writer: None,
        };
        Ok((record, bytes))
    }

    /// One delivery attempt of a recorded message: the per-minute throttle
    /// (waiting up to `throttle_wait`), the period limit, the login, SMTP.
    #[allow(clippy::result_large_err)] // see delivery.rs
    pub(super) fn attempt(&self, record: &Record, bytes: &[u8], throttle_wait: Duration) -> (Attempt, RetryPolicy) {
        let _scope = crate::logging::enter_message(&record.status.id, &record.status.profile);
        let config = self.read_config();
        let global = config.global_settings();
        let settings = config.settings(&record.status.profile);
        let transport = match &settings {
            Ok(settings) => self.transport(settings).name(),
            Err(_) => "smtp",
        };
        let mode = global.transcript;
        let recording = (mode != crate::transcript::Mode::Off).then(|| crate::transcript::begin(transport));
        let (outcome, policy) = self.attempt_recorded(record, bytes, throttle_wait, &global, settings);
        match &outcome {
            Attempt::Sent { delivery, .. } => {
                let reply = match (&delivery.reply, delivery.http_status) {
                    (Some(reply), _) => reply.summary(),
                    (None, Some(http)) => format!("HTTP {http}"),
                    (None, None) => String::new(),
                };
                log::info!(
                    "sent (attempt {}) over {}: {reply}; {} recipients refused",
                    record.status.attempts,
                    delivery.transport,
                    delivery.rejected.len()
                )
            }
            Attempt::Failed { failure, .. } => {
                log::warn!("attempt {} failed: {} ({})", record.status.attempts, failure.message, failure.code.name())
            }
            Attempt::Held { reason, .. } => log::info!("held: {reason}"),
        }
        if let Some(recording) = recording {
            let keep = match &outcome {
                Attempt::Sent { .. } => mode == crate::transcript::Mode::All,
                Attempt::Failed { failure, .. } => {
                    crate::transcript::note(|| format!("failed: {}", failure.message));
                    true
                }
                // A limit held it: no dialogue to keep.
                Attempt::Held { .. } => false,
            };
            // Dropped unkept: the lines are never made into a transcript.
            if let Some(attempt) = keep.then(|| recording.finish(record.status.attempts.max(1))).flatten() {
                if !attempt.lines.is_empty() {
                    if let Err(e) = self.inner.transcripts.append(&record.status.id, attempt) {
                        log::warn!("the transcript could not be kept: {}", e.message());
                    }
                }
            }
        }
        (outcome, policy)
    }

    #[allow(clippy::result_large_err)] // see delivery.rs
    fn attempt_recorded(
        &self,
        record: &Record,
        bytes: &[u8],
        throttle_wait: Duration,
        global: &config::GlobalSettings,
        settings: Result<Arc<ProfileSettings>>,
    ) -> (Attempt, RetryPolicy) {
        let policy = RetryPolicy {
            initial_ms: global.retry_initial_ms,
            max_ms: global.retry_max_ms,
            max_age_ms: global.retry_max_age_ms,
        };
        let failed = Attempt::failed;
        let settings = match settings {
            Ok(s) => s,
            Err(e) => {
                return (failed(Error::config(format!("{} (the message's profile was removed)", e.message()))), policy)
            }
        };
        let limits = &self.inner.limits;
        if let Err(e) = limits.throttle(&settings, throttle_wait) {
            let until_ms = (fsutil::unix_now() + 1) * 1000;
            return (Attempt::Held { until_ms, reason: e.message().to_string() }, policy);
        }
        let reservation = match limits.reserve(&settings, record.envelope_to.len() as u32) {
            Ok(r) => r,
            // The counters could not be saved (a file held by a scanner, a
            // full disk): try again shortly rather than fail the message.
            Err(e) if e.code() != Code::Limit => {
                let until_ms = (fsutil::unix_now() + 5) * 1000;
                return (Attempt::Held { until_ms, reason: e.message().to_string() }, policy);
            }
            Err(e) => {
                let whole_limit = record.envelope_to.len() as u32 > settings.send_limit;
                if whole_limit {
                    return (failed(e), policy);
                }
                let resets = limits.usage(&settings).resets_at.unwrap_or_else(fsutil::unix_now);
                return (Attempt::Held { until_ms: resets * 1000, reason: e.message().to_string() }, policy);
            }
        };
        // Read before the credential is: a change in between opens a
        // session that is pooled under the old revision, never the new.
        let revision = self.credential_revision();
        // The credential the login uses: the message's user's, or shared.
        let credential_user = self.credential_user(&settings, record.user.as_deref());
        let mut login = self.login_with(&settings, record.user.as_deref(), false);
        let mut revision = revision;
        let mut retried = false;
        let outcome = loop {
            let (user, login_now, managed) = match login {
                Err(LoginError { error, oauth, provider_error }) => {
                    // A refused refresh has advice of its own; nothing was said over SMTP.
                    let advice = provider_error.and_then(|e| crate::advice::from_oauth_error(e, &settings));
                    let transport = if advice.is_some() { self.transport(&settings).name() } else { "" };
                    let failure = Failure {
                        advice,
                        token_refused: oauth,
                        ..Failure::new(transport, error.code(), error.message())
                    };
                    break Attempt::Failed { failure: Box::new(failure), credential: credential_user };
                }
                Ok((user, login_now, managed)) => (user, with_sender(login_now, &record.envelope_from), managed),
            };
            if managed.is_some_and(|m| m.refreshed) {
                // Pool the new session under the revision the refresh made.
                revision = self.credential_revision();
            }
            // An app token logs in as the sender when SMTPUsername is not
            // set: one sender's session is no other sender's.
            let key_user = match (&login_now, settings.oauth2_client_credentials) {
                (Some(l), true) => Some(format!("app:{}", l.username)),
                _ => user,
            };
            let identity = delivery::Identity { user: key_user, revision };
            let utf8 = !record.envelope_from.is_ascii() || record.envelope_to.iter().any(|a| !a.is_ascii());
            let mail = Mail { from: &record.envelope_from, to: &record.envelope_to, body: bytes, utf8 };
            // A refused token is refreshed once by this loop, for either
            // transport.
            break match self.transport(&settings).send(&settings, &identity, login_now.as_ref(), &mail) {
                Ok(delivery) => Attempt::Sent { archive: self.archive(&settings, record, bytes, &delivery), delivery },
                Err(f) if f.token_refused && managed.is_some() && !retried => {
                    // A token the server refused (revoked, or of unknown
                    // expiry and stale): refresh once and try again.
                    retried = true;
                    login = self.login_with(&settings, record.user.as_deref(), true);
                    continue;
                }
                Err(failure) => Attempt::Failed { failure: Box::new(failure), credential: credential_user },
            };
        };
        if let (Attempt::Failed { .. }, Some(r)) = (&outcome, reservation) {
            // Not given back durably, the count stays high until the
            // window passes: better than turning this outcome into another.
            let _ = limits.release(r);
        }
        (outcome, policy)
    }

    /// Files the sent copy when the message or its profile asks for one.
    fn archive(
        &self,
        settings: &ProfileSettings,
        record: &Record,
        bytes: &[u8],
        delivery: &Delivery,
    ) -> Option<Result<ArchivePaths>> {
        let root = match (&settings.archive_dir, &self.inner.data_dir) {
            (Some(dir), _) => dir.clone(),
            (None, Some(data_dir)) if record.archive => data_dir.join("archive"),
            _ => return None,
        };
        let s = &record.status;
        let meta = crate::archive::ArchiveMeta {
            id: s.id.clone(),
            message_id: s.message_id.clone(),
            reference: s.reference.clone(),
            batch_id: s.batch_id.clone(),
            profile: s.profile.clone(),
            from: record.envelope_from.clone(),
            recipients: s.recipients.clone(),
            envelope_to: record.envelope_to.clone(),
            sent_at: fsutil::rfc3339(SystemTime::now()),
            smtp_response: delivery.reply.as_ref().map(|r| r.text.clone()),
            transport: delivery.transport,
            http_status: delivery.http_status,
            ..Default::default()
        };
        Some(crate::archive::write(&root, &s.id, bytes, meta))
    }

    /// Sends a message now and waits for the outcome (`smtpb_send`).
    pub fn send(&self, message_json: &str) -> SendOutcome {
        let unrecorded = |e: Error| SendOutcome { result: Err(e), status: None };
        if let Err(e) = self.check_open().and_then(|_| self.check_may_send()) {
            return unrecorded(e);
        }
        let config = self.read_config().clone();
        let mut spec = match MessageSpec::parse(message_json, &|profile| part_budget(&config, profile)) {
            Ok(s) => s,
            Err(e) => return unrecorded(e),
        };
        let (record, bytes) = match self.prepare(&config, &mut spec, State::Sending) {
            Ok(p) => p,
            Err(e) => return unrecorded(e),
        };
        let id = record.status.id.clone();
        let timeout = config.settings(&record.status.profile).map(|s| s.timeout_ms).unwrap_or(30_000);
        let outbox = &self.inner.outbox;
        let (recorded_id, bytes) = match outbox.add(record.clone(), bytes) {
            Ok(added) => added,
            Err(e) => return unrecorded(e),
        };
        if recorded_id != id {
            // The idempotency key was used before: nothing new is sent, and
            // the answer is the first message's.
            let status = outbox.status(&recorded_id).ok();
            let result = match &status {
                Some(s) if s.state == State::Failed => Err(Error::new(
                    s.error_code,
                    format!(
                        "idempotency_key was used by message {recorded_id}, which failed: {}",
                        s.error.as_deref().unwrap_or("")
                    ),
                )),
                _ => Ok(()),
            };
            return SendOutcome { result, status };
        }
        let (outcome, _) = self.attempt(&record, &bytes, Duration::from_millis(timeout as u64));
        let result = match &outcome {
            Attempt::Sent { .. } => Ok(()),
            Attempt::Failed { failure, .. } => {
                // The host's error dialog shows this text: add what to change.
                let advice = failure.advice.as_ref().map(|a| a.suffix()).unwrap_or_default();
                Err(Error::new(failure.code, format!("{}{advice}", failure.message)))
            }
            Attempt::Held { reason, .. } => Err(Error::new(Code::Limit, reason.clone())),
        };
        match outbox.finish_now(&id, outcome, bytes) {
            Ok(status) => SendOutcome { result, status: Some(status) },
            Err(e) => SendOutcome { result: Err(e), status: outbox.status(&id).ok() },
        }
    }

    /// Validates a message, makes it durable in the outbox and returns its
    /// id (`smtpb_enqueue`). Attachment files are read now.
    pub fn enqueue(&self, message_json: &str) -> Result<String> {
        self.check_open()?;
        let config = self.read_config().clone();
        let mut spec = MessageSpec::parse(message_json, &|profile| part_budget(&config, profile))?;
        let (record, bytes) = self.prepare(&config, &mut spec, State::Queued)?;
        self.inner.outbox.add(record, bytes).map(|(id, _)| id)
    }
}
