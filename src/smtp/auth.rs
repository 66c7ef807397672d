//! AUTH: choosing a mechanism among those offered, and PLAIN, LOGIN,
//! XOAUTH2 and OAUTHBEARER.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use std::time::Instant;
use zeroize::Zeroizing;

use super::failure::{connect_failure, failure, local, Failure};
use super::io::IoFail;
use super::session::Session;
use super::Login;
use crate::config::{AuthModel, Authentication, ProfileSettings};
use crate::error::Code;
use crate::failure::Cause;

impl Session {
    pub(super) fn authenticate(
        &mut self,
        settings: &ProfileSettings,
        login: Option<&Login>,
        deadline: Instant,
    ) -> Result<(), Failure> {
        let login = match (settings.authentication, login) {
            (Authentication::None, _) => return Ok(()),
            (Authentication::Optional, None) => return Ok(()),
            (Authentication::Optional, Some(_)) if self.caps.auth.is_empty() => return Ok(()),
            (Authentication::Required, None) => {
                return Err(failure(
                    Code::Credentials,
                    "auth",
                    "SMTPAuthentication=Required, but no credentials were found",
                ))
            }
            (_, Some(login)) => login,
        };
        if !self.is_tls() && !settings.allow_plaintext_auth {
            if self.caps.starttls {
                // Encryption is to be had: say so, not "allow plaintext".
                return Err(local(
                    Code::Auth,
                    "auth",
                    "AUTH would go over an unencrypted connection, but the server offers STARTTLS: set \
                     SMTPServerEncryption=TLS",
                )
                .with_cause(Some(Cause::PlaintextAuthWithStarttls)));
            }
            return Err(local(
                Code::Auth,
                "auth",
                "AUTH would go over an unencrypted connection; use SSL or TLS, or set SMTPAllowPlaintextAuth=true",
            ));
        }
        let mechanism = choose_mechanism(settings.auth_model, &self.caps.auth)
            .map_err(|m| local(Code::Auth, "auth", m).with_cause(Some(Cause::Key("auth_mechanism_unsupported"))))?;
        log::info!("AUTH {mechanism} as {}", login.username);
        // The session breaking during AUTH is no refusal: CONNECT, retried.
        let io = |e: IoFail| connect_failure("auth", &format!("during AUTH {mechanism}"), e);
        let reply = match mechanism {
            "PLAIN" => {
                let token = Zeroizing::new(format!("\0{}\0{}", login.username, login.secret.as_str()));
                let line = Zeroizing::new(format!("AUTH PLAIN {}\r\n", B64.encode(token.as_bytes())));
                self.write_secret(line.as_bytes(), "AUTH PLAIN ********", deadline).map_err(io)?;
                self.read_reply(deadline).map_err(io)?
            }
            "LOGIN" => {
                self.write(b"AUTH LOGIN\r\n", deadline).map_err(io)?;
                let mut reply = self.read_reply(deadline).map_err(io)?;
                for part in [login.username.as_str(), login.secret.as_str()] {
                    if reply.code != 334 {
                        break;
                    }
                    let line = Zeroizing::new(format!("{}\r\n", B64.encode(part.as_bytes())));
                    self.write_secret(line.as_bytes(), "********", deadline).map_err(io)?;
                    reply = self.read_reply(deadline).map_err(io)?;
                }
                reply
            }
            _ => {
                let (token, dummy): (Zeroizing<String>, &[u8]) = if mechanism == "OAUTHBEARER" {
                    // RFC 7628 §3.1: a GS2 header naming the user, then
                    // key/value pairs; after an error challenge the client
                    // answers with a lone %x01 (§3.2.3).
                    let host = settings.server.as_deref().unwrap_or("");
                    let token = format!(
                        "n,a={},\x01host={host}\x01port={}\x01auth=Bearer {}\x01\x01",
                        gs2_saslname(&login.username),
                        settings.port,
                        login.secret.as_str()
                    );
                    (Zeroizing::new(token), b"AQ==\r\n")
                } else {
                    // XOAUTH2: the error challenge is answered by an empty line.
                    let token = format!("user={}\x01auth=Bearer {}\x01\x01", login.username, login.secret.as_str());
                    (Zeroizing::new(token), b"\r\n")
                };
                let line = Zeroizing::new(format!("AUTH {mechanism} {}\r\n", B64.encode(token.as_bytes())));
                self.write_secret(line.as_bytes(), &format!("AUTH {mechanism} ********"), deadline).map_err(io)?;
                let reply = self.read_reply(deadline).map_err(io)?;
                if reply.code == 334 {
                    // The server explains the refusal in a base64 JSON
                    // challenge and waits for the client's answer.
                    let detail =
                        B64.decode(reply.text.trim()).ok().and_then(|b| String::from_utf8(b).ok()).unwrap_or_default();
                    self.write(dummy, deadline).map_err(io)?;
                    let last = self.read_reply(deadline).map_err(io)?;
                    let mut f = failure(
                        Code::Auth,
                        "auth",
                        format!(
                            "the server refused the OAuth2 token of {} ({mechanism}): {} {}",
                            login.username,
                            last.summary(),
                            crate::text::printable(&detail)
                        ),
                    );
                    // SMTP AUTH switched off is no refused token: no
                    // refresh or new sign-in can help (advice smtp_auth_disabled).
                    f.token_refused = !last.smtp_auth_disabled();
                    return Err(f.with_reply(last));
                }
                reply
            }
        };
        if reply.code == 235 {
            return Ok(());
        }
        let mut f = failure(
            Code::Auth,
            "auth",
            format!("the server refused authentication of {} ({mechanism}): {}", login.username, reply.summary()),
        );
        f.token_refused = settings.auth_model == AuthModel::OAuth2 && !reply.smtp_auth_disabled();
        Err(f.with_reply(reply))
    }
}

/// The AUTH mechanism for `model` among those the server `offered` (after
/// TLS, upper case): PLAIN, else LOGIN, for a password; XOAUTH2, else
/// OAUTHBEARER, for an OAuth2 token. Never one the server did not offer;
/// the error names what it offers.
pub fn choose_mechanism(model: AuthModel, offered: &[String]) -> Result<&'static str, String> {
    let has = |m: &str| offered.iter().any(|a| a == m);
    let offers = || {
        if offered.is_empty() {
            "the server offers no AUTH mechanism".to_string()
        } else {
            format!("the server offers AUTH {}", offered.join(" "))
        }
    };
    match model {
        AuthModel::Basic if has("PLAIN") => Ok("PLAIN"),
        AuthModel::Basic if has("LOGIN") => Ok("LOGIN"),
        AuthModel::Basic => {
            Err(format!("{}, but not PLAIN or LOGIN, which a password (SMTPAuthModel=Basic) needs", offers()))
        }
        AuthModel::OAuth2 if has("XOAUTH2") => Ok("XOAUTH2"),
        AuthModel::OAuth2 if has("OAUTHBEARER") => Ok("OAUTHBEARER"),
        AuthModel::OAuth2 => {
            Err(format!("{}, but not XOAUTH2 or OAUTHBEARER, which SMTPAuthModel=OAuth2 needs", offers()))
        }
    }
}

/// A user name as a GS2 `saslname` (RFC 5801): `,` and `=` escaped.
pub(super) fn gs2_saslname(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mechanisms_are_only_those_offered() {
        let offer = |list: &[&str]| list.iter().map(|m| m.to_string()).collect::<Vec<_>>();
        assert_eq!(choose_mechanism(AuthModel::Basic, &offer(&["LOGIN", "PLAIN"])), Ok("PLAIN"));
        assert_eq!(choose_mechanism(AuthModel::Basic, &offer(&["LOGIN"])), Ok("LOGIN"));
        assert_eq!(choose_mechanism(AuthModel::OAuth2, &offer(&["OAUTHBEARER", "XOAUTH2"])), Ok("XOAUTH2"));
        assert_eq!(choose_mechanism(AuthModel::OAuth2, &offer(&["OAUTHBEARER"])), Ok("OAUTHBEARER"));
        let e = choose_mechanism(AuthModel::OAuth2, &offer(&["PLAIN", "LOGIN"])).unwrap_err();
        assert!(e.contains("AUTH PLAIN LOGIN") && e.contains("XOAUTH2 or OAUTHBEARER"), "{e}");
        let e = choose_mechanism(AuthModel::Basic, &[]).unwrap_err();
        assert!(e.contains("no AUTH mechanism"), "{e}");
        assert_eq!(gs2_saslname("a,b=c"), "a=2Cb=3Dc");
    }
}
