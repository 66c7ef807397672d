//! What the server announced in its EHLO reply.

use crate::reply::Reply;

/// What the server announced in its EHLO reply.
#[derive(Clone, Debug, Default)]
pub struct Capabilities {
    /// The keyword lines as the server sent them (without the first line).
    pub lines: Vec<String>,
    pub starttls: bool,
    pub pipelining: bool,
    pub smtputf8: bool,
    /// SIZE, when the server announced a limit (0 = none given).
    pub size: Option<u64>,
    /// AUTH mechanisms, upper case.
    pub auth: Vec<String>,
}

impl Capabilities {
    pub(super) fn parse(reply: &Reply) -> Capabilities {
        let mut caps = Capabilities { lines: reply.lines.iter().skip(1).cloned().collect(), ..Default::default() };
        for line in &caps.lines {
            let mut words = line.split_ascii_whitespace();
            let keyword = words.next().unwrap_or("").to_ascii_uppercase();
            match keyword.as_str() {
                "STARTTLS" => caps.starttls = true,
                "PIPELINING" => caps.pipelining = true,
                "SMTPUTF8" => caps.smtputf8 = true,
                "SIZE" => caps.size = Some(words.next().and_then(|w| w.parse().ok()).unwrap_or(0)),
                "AUTH" => caps.auth.extend(words.map(|w| w.to_ascii_uppercase())),
                // Some old servers announce "AUTH=LOGIN PLAIN".
                k if k.starts_with("AUTH=") => {
                    caps.auth.extend(line[5..].split_ascii_whitespace().map(|w| w.to_ascii_uppercase()))
                }
                _ => {}
            }
        }
        caps.auth.dedup();
        caps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_are_parsed() {
        let reply = Reply {
            code: 250,
            enhanced: None,
            text: String::new(),
            lines: vec![
                "mail.example".into(),
                "PIPELINING".into(),
                "SIZE 1000".into(),
                "AUTH PLAIN login".into(),
                "STARTTLS".into(),
            ],
        };
        let caps = Capabilities::parse(&reply);
        assert!(caps.pipelining && caps.starttls && !caps.smtputf8);
        assert_eq!(caps.size, Some(1000));
        assert_eq!(caps.auth, vec!["PLAIN", "LOGIN"]);
    }
}
