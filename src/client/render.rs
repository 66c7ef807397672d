//! Looking before sending: `smtpb_render` (the MIME the library would
//! send) and `smtpb_validate` (a message and the settings it would use),
//! both without sending or recording anything.

use std::sync::Arc;

use super::Client;
use crate::config::{AuthModel, Authentication, ProfileSettings};
use crate::credentials::SecretKind;
use crate::error::{Error, Result};
use crate::message::MessageSpec;
use crate::status::State;

impl Client {
    /// The MIME a message would be sent as: after profile choice, the
    /// blacklist, test mode (envelope, X-Original-To, SMTPTestSubjectPrefix)
    /// and DKIM. Nothing is sent, recorded or counted against a limit. The
    /// Message-ID and Date are those of this rendering: a message sent
    /// later gets its own.
    pub fn render(&self, message_json: &str) -> Result<String> {
        let (_, _, bytes) = self.render_checked(message_json)?;
        String::from_utf8(bytes).map_err(|e| {
            Error::message_error(format!(
                "the message's MIME is not UTF-8 text (byte {}): a host's own 8-bit message (mime_base64) \
                 cannot be returned as a string",
                e.utf8_error().valid_up_to()
            ))
        })
    }

    /// Checks a message and the settings it would use, as `smtpb_send`
    /// would before talking to a server: the message, its profile, sender,
    /// attachments, size, DKIM key, and a credential the profile can log
    /// in with. No network: an OAuth2 token is checked for presence, not
    /// fetched or refreshed.
    pub fn validate(&self, message_json: &str) -> Result<()> {
        let (settings, user, _) = self.render_checked(message_json)?;
        self.check_login(&settings, user.as_deref())
    }

    /// Runs the pipeline up to the bytes, as for a message queued now:
    /// the profile chosen, the message's user and the bytes.
    fn render_checked(&self, message_json: &str) -> Result<(Arc<ProfileSettings>, Option<String>, Vec<u8>)> {
        self.check_open()?;
        let config = self.read_config().clone();
        let mut spec = MessageSpec::parse(message_json, &|profile| super::pipeline::part_budget(&config, profile))?;
        let (record, bytes) = self.prepare(&config, &mut spec, State::Queued)?;
        Ok((config.settings(&record.status.profile)?, record.user, bytes))
    }

    /// Whether the profile has a credential to log in with for `user`.
    fn check_login(&self, settings: &ProfileSettings, user: Option<&str>) -> Result<()> {
        if settings.authentication == Authentication::None {
            return Ok(());
        }
        match settings.auth_model {
            // A store lookup and the checks of a send: no network.
            AuthModel::Basic => self.login_with(settings, user, false).map(|_| ()).map_err(|e| e.error),
            AuthModel::OAuth2 if settings.oauth2_client_credentials => {
                let secret = self.credentials().client_secret(&settings.name)?;
                match secret {
                    Some(_) => Ok(()),
                    None => Err(Error::credentials(format!(
                        "profile {}: SMTPOAuth2Flow=ClientCredentials needs SMTPOAuth2ClientSecret",
                        settings.name
                    ))),
                }
            }
            AuthModel::OAuth2 => {
                let id = self.credential_user(settings, user);
                let credential = self.credentials().get(id.as_deref())?; // the store's lock ends here
                match credential {
                    // The library refreshes it when it sends: no network now.
                    Some(c) if c.kind == SecretKind::Oauth2 && c.refresh.is_some() => Ok(()),
                    // A host-supplied token (or none): the checks of a send,
                    // which need no network for it.
                    _ => self.login_with(settings, user, false).map(|_| ()).map_err(|e| e.error),
                }
            }
        }
    }
}
