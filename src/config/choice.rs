//! Profile choice (ABI §4): the enabled profiles indexed once per
//! configuration, so that choosing one for a message costs the same with
//! one profile or a thousand.

use std::collections::HashMap;
use std::sync::Arc;

use super::{Config, ProfileSettings};
use crate::error::{Error, Result};

/// The enabled profiles of a configuration, in creation order, and what
/// choosing among them looks up. Made at the first choice after a change
/// (every change empties it, with the rest of the typed settings).
#[derive(Debug)]
pub(super) struct Choice {
    enabled: Vec<Arc<ProfileSettings>>,
    /// The first enabled profile whose SMTPFilter is this address.
    by_address: HashMap<String, usize>,
    /// The first enabled profile whose SMTPFilter is this domain (`@d` or `d`).
    by_domain: HashMap<String, usize>,
    /// The enabled default profile, else the first enabled one.
    fallback: Option<usize>,
    /// The enabled profile with the largest SMTPMaxMessageBytes (the last
    /// of several equal ones).
    largest: Option<usize>,
}

impl Choice {
    fn new(config: &Config) -> Result<Choice> {
        let mut enabled = Vec::new();
        let mut default = None;
        // The one marked SMTPDefault, or the first profile.
        let default_profile = config.profiles().iter().position(|p| config.is_default(p));
        for (n, p) in config.profiles().iter().enumerate() {
            let settings = config.settings(&p.name)?;
            if settings.enabled {
                if default_profile == Some(n) {
                    default = Some(enabled.len());
                }
                enabled.push(settings);
            }
        }
        let mut by_address = HashMap::new();
        let mut by_domain = HashMap::new();
        for (i, s) in enabled.iter().enumerate() {
            let Some(filter) = &s.filter else { continue };
            // As ProfileSettings::filter_matches reads a filter.
            let (map, key) = match filter.strip_prefix('@') {
                Some(domain) => (&mut by_domain, domain),
                None if filter.contains('@') => (&mut by_address, filter.as_str()),
                None => (&mut by_domain, filter.as_str()),
            };
            map.entry(key.to_string()).or_insert(i);
        }
        let largest = enabled.iter().enumerate().max_by_key(|(_, s)| s.max_message_bytes).map(|(i, _)| i);
        let fallback = default.or((!enabled.is_empty()).then_some(0));
        Ok(Choice { enabled, by_address, by_domain, fallback, largest })
    }

    /// The first enabled profile whose filter matches `sender`.
    fn filtered(&self, sender: &str) -> Option<usize> {
        let address = sender.to_ascii_lowercase();
        let domain = address.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
        let by_address = self.by_address.get(&address).copied();
        let by_domain = self.by_domain.get(domain).copied();
        by_address.into_iter().chain(by_domain).min()
    }
}

impl Config {
    fn choice<T>(&self, f: impl FnOnce(&Choice) -> T) -> Result<T> {
        let choice = self.derived.choice.get_or_init(|| Choice::new(self));
        choice.as_ref().map(f).map_err(Error::clone)
    }

    /// The profile for a message (ABI §4 "Profile choice"): the explicit
    /// one; else the first enabled profile whose SMTPFilter matches the
    /// sender; else the enabled default; else the first enabled.
    pub fn choose_profile(&self, explicit: Option<&str>, sender: Option<&str>) -> Result<Arc<ProfileSettings>> {
        if let Some(name) = explicit {
            let settings = self.settings(name)?;
            if !settings.enabled {
                return Err(Error::config(format!("profile {} is disabled (SMTPEnabled=false)", settings.name)));
            }
            return Ok(settings);
        }
        self.choice(|c| {
            let i = sender.and_then(|s| c.filtered(s)).or(c.fallback);
            i.map(|i| c.enabled[i].clone())
        })?
        .ok_or_else(|| Error::config("no enabled profile: set SMTPServer (and SMTPEnabled) for at least one profile"))
    }

    /// The enabled profile with the largest SMTPMaxMessageBytes, if any.
    pub fn largest_enabled(&self) -> Option<Arc<ProfileSettings>> {
        self.choice(|c| c.largest.map(|i| c.enabled[i].clone())).ok().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(keys: &[(&str, &str)]) -> Config {
        let mut c = Config::new();
        for (k, v) in keys {
            c.set(k, Some(v)).unwrap();
        }
        c
    }

    fn chosen(c: &Config, sender: Option<&str>) -> String {
        c.choose_profile(None, sender).unwrap().name.clone()
    }

    #[test]
    fn the_first_matching_filter_in_creation_order_wins_then_the_default_then_the_first() {
        let mut c = config(&[
            ("A.SMTPServer", "a.example"),
            ("A.SMTPFilter", "@firm.example"),
            ("B.SMTPServer", "b.example"),
            ("B.SMTPFilter", "boss@firm.example"),
            ("C.SMTPServer", "c.example"),
            ("C.SMTPFilter", "other.example"),
        ]);
        assert_eq!(chosen(&c, Some("Boss@Firm.example")), "A", "A's domain filter comes first");
        assert_eq!(chosen(&c, Some("x@other.example")), "C");
        assert_eq!(chosen(&c, Some("x@nowhere.example")), "A", "no default profile: the first enabled");
        c.set("A.SMTPEnabled", Some("false")).unwrap();
        assert_eq!(chosen(&c, Some("boss@firm.example")), "B", "a change is seen at once");
        assert_eq!(chosen(&c, Some("clerk@firm.example")), "B", "no filter matches: the first enabled");
        c.set("C.SMTPDefault", Some("true")).unwrap();
        assert_eq!(chosen(&c, Some("clerk@firm.example")), "C", "the enabled default");
        assert_eq!(chosen(&c, None), "C");
    }

    #[test]
    fn the_largest_enabled_profile_is_the_last_of_equals() {
        let mut c = config(&[("A.SMTPServer", "a.example"), ("B.SMTPServer", "b.example")]);
        assert_eq!(c.largest_enabled().unwrap().name, "B");
        c.set("A.SMTPMaxMessageBytes", Some("99999999")).unwrap();
        assert_eq!(c.largest_enabled().unwrap().name, "A");
        c.set("A.SMTPEnabled", Some("false")).unwrap();
        c.set("B.SMTPEnabled", Some("false")).unwrap();
        assert!(c.largest_enabled().is_none());
        assert_eq!(c.choose_profile(None, None).unwrap_err().code(), crate::error::Code::Config);
    }
}
