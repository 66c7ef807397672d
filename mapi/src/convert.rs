//! A `MapiMessage` (ANSI or wide) as the drop-ins' [`Mail`], and the
//! library's errors as `mapi.h` codes.

use smtpbridge::{Code, Error};
use smtpbridge_dropin::mail::strip_address_type;
use smtpbridge_dropin::{Attachment, Body, Class, Mail, Recipient};

use crate::types::*;

/// Why a message was refused before it reached the library: the MAPI code
/// and the text for the log.
#[derive(Debug, PartialEq, Eq)]
pub struct Refused {
    pub code: Ulong,
    pub why: String,
}

fn refused(code: Ulong, why: impl Into<String>) -> Refused {
    Refused { code, why: why.into() }
}

/// Reads a `MapiMessage`: recipients by class (`lpszAddress`, without an
/// `SMTP:` prefix, with `lpszName` as display name; a recipient with no
/// address whose name is one is taken by its name), `lpszNoteText` as
/// text or HTML, `lpFiles` with `lpszFileName` as the name, and the
/// originator's address as the sender when it has one.
///
/// # Safety
/// `message` and everything it points to follow `mapi.h`'s layout and
/// stay valid for the call.
pub unsafe fn to_mail<S: MapiString>(message: &Message<S>) -> Result<Mail, Refused> {
    let mut mail = Mail {
        // SAFETY (every read and slice below): as the caller promises.
        subject: unsafe { message.subject.to_text() }.unwrap_or_default(),
        body: unsafe { message.note_text.to_text() }.map(Body::guess),
        ..Mail::default()
    };
    if let Some(originator) = unsafe { message.originator.as_ref() } {
        if let Some(email) = unsafe { address(originator) } {
            let name = unsafe { originator.name.to_text() }.unwrap_or_default();
            mail.from = Some(Recipient::Named { email, name });
        }
    }
    for (n, recip) in unsafe { slice(message.recips, message.recip_count) }.iter().enumerate() {
        let class = match recip.recip_class {
            MAPI_TO => Class::To,
            MAPI_CC => Class::Cc,
            MAPI_BCC => Class::Bcc,
            other => return Err(refused(MAPI_E_BAD_RECIPTYPE, format!("recipient {n}: class {other}"))),
        };
        let name = unsafe { recip.name.to_text() }.unwrap_or_default();
        let recipient = match unsafe { address(recip) } {
            Some(email) => Recipient::Named { email, name },
            None if name.contains('@') => Recipient::Typed(name),
            None => return Err(refused(MAPI_E_UNKNOWN_RECIPIENT, format!("recipient {n} ({name:?}) has no address"))),
        };
        mail.recipients.push((class, recipient));
    }
    for (n, file) in unsafe { slice(message.files, message.file_count) }.iter().enumerate() {
        let Some(path) = unsafe { file.path_name.to_text() }.filter(|p| !p.is_empty()) else {
            return Err(refused(MAPI_E_ATTACHMENT_NOT_FOUND, format!("file {n} has no lpszPathName")));
        };
        mail.attachments.push(Attachment { path, name: unsafe { file.file_name.to_text() } });
    }
    Ok(mail)
}

/// The recipient's address without its type prefix, if it has one.
unsafe fn address<S: MapiString>(recip: &RecipDesc<S>) -> Option<String> {
    // SAFETY: as the caller promises.
    let address = unsafe { recip.address.to_text() }?;
    Some(strip_address_type(address.trim()).to_string()).filter(|a| !a.is_empty())
}

/// What the checks before queueing found ([`Mail::check`]), as a MAPI code.
pub fn check_code(error: &Error) -> Ulong {
    match error.code() {
        Code::NotFound => MAPI_E_ATTACHMENT_NOT_FOUND,
        Code::Message => MAPI_E_INVALID_RECIPS,
        _ => MAPI_E_FAILURE,
    }
}

/// An error of opening the data_dir, as a MAPI code.
pub fn open_code(_error: &Error) -> Ulong {
    MAPI_E_LOGON_FAILURE
}

/// An error of queueing (or of the mail, failed for good), as a MAPI code.
pub fn queue_code(error: &Error) -> Ulong {
    match error.code() {
        Code::Io => MAPI_E_ATTACHMENT_OPEN_FAILURE,
        _ => MAPI_E_FAILURE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ptr::{null, null_mut};

    fn wide(text: &str) -> Vec<u16> {
        text.encode_utf16().chain(std::iter::once(0)).collect()
    }

    fn recip(class: Ulong, name: &[u16], address: Option<&[u16]>) -> RecipDesc<Wide> {
        RecipDesc {
            reserved: 0,
            recip_class: class,
            name: name.as_ptr(),
            address: address.map_or(null(), |a| a.as_ptr()),
            eid_size: 0,
            entry_id: null_mut(),
        }
    }

    fn message(recips: &mut [RecipDesc<Wide>], files: &mut [FileDesc<Wide>], note: &[u16]) -> Message<Wide> {
        Message {
            reserved: 0,
            subject: null(),
            note_text: note.as_ptr(),
            message_type: null(),
            date_received: null(),
            conversation_id: null(),
            flags: 0,
            originator: null_mut(),
            recip_count: recips.len() as Ulong,
            recips: recips.as_mut_ptr(),
            file_count: files.len() as Ulong,
            files: files.as_mut_ptr(),
        }
    }

    #[test]
    fn recipients_by_class_files_and_html() {
        let (hans, hans_address, bcc, by_name) =
            (wide("Müller, Hans"), wide("SMTP:hans@example.com"), wide("c@example.com"), wide("B <b@example.com>"));
        let empty = wide("");
        let mut recips = [
            recip(MAPI_TO, &hans, Some(&hans_address)),
            recip(MAPI_CC, &by_name, None),
            recip(MAPI_BCC, &empty, Some(&bcc)),
        ];
        let (path, name) = (wide(r"C:\docs\inv.pdf"), wide("Rechnung €.pdf"));
        let mut files = [FileDesc {
            reserved: 0,
            flags: 0,
            position: u32::MAX,
            path_name: path.as_ptr(),
            file_name: name.as_ptr(),
            file_type: null_mut(),
        }];
        let note = wide("<p>Dear client</p>");
        let mail = unsafe { to_mail(&message(&mut recips, &mut files, &note)) }.unwrap();
        assert_eq!(
            mail.recipients,
            vec![
                (Class::To, Recipient::Named { email: "hans@example.com".into(), name: "Müller, Hans".into() }),
                (Class::Cc, Recipient::Typed("B <b@example.com>".into())),
                (Class::Bcc, Recipient::Named { email: "c@example.com".into(), name: "".into() }),
            ]
        );
        assert_eq!(mail.body, Some(Body::Html("<p>Dear client</p>".into())));
        assert_eq!(
            mail.attachments,
            vec![Attachment { path: r"C:\docs\inv.pdf".into(), name: Some("Rechnung €.pdf".into()) }]
        );
        assert_eq!(mail.subject, "");
    }

    #[test]
    fn refusals_name_the_recipient_or_file() {
        let (name, note) = (wide("Hans Müller"), wide("hello"));
        let mut recips = [recip(MAPI_TO, &name, None)];
        let refusal = unsafe { to_mail(&message(&mut recips, &mut [], &note)) }.unwrap_err();
        assert_eq!(refusal.code, MAPI_E_UNKNOWN_RECIPIENT);
        assert!(refusal.why.contains("Hans Müller"), "{}", refusal.why);
        let address = wide("a@example.com");
        let mut recips = [recip(7, &name, Some(&address))];
        assert_eq!(unsafe { to_mail(&message(&mut recips, &mut [], &note)) }.unwrap_err().code, MAPI_E_BAD_RECIPTYPE);
        let mut recips = [recip(MAPI_TO, &name, Some(&address))];
        let mut files = [FileDesc {
            reserved: 0,
            flags: 0,
            position: 0,
            path_name: null(),
            file_name: null(),
            file_type: null_mut(),
        }];
        let refusal = unsafe { to_mail(&message(&mut recips, &mut files, &note)) }.unwrap_err();
        assert_eq!(refusal.code, MAPI_E_ATTACHMENT_NOT_FOUND);
    }

    #[test]
    fn ansi_strings_are_read() {
        let text = crate::ansi::encode("Invoice 117");
        assert_eq!(unsafe { (text.as_ptr() as Ansi).to_text() }, Some("Invoice 117".to_string()));
        assert_eq!(unsafe { (null::<u8>()).to_text() }, None);
    }
}
