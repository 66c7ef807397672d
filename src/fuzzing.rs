//! Entry points for the fuzz targets (`fuzz/`): each drives one parser of
//! untrusted input the way the library uses it, over in-memory transports
//! that hand the fuzzer's bytes over in pieces of its choosing. Not part
//! of the API (hidden, unstable); the unit tests below run every seed.
//!
//! The input of the stream targets (`smtp_reply`, `http_response`,
//! `graph`, `oauth2_*`) starts with the piece sizes: a byte `n`, then
//! `n % 16` bytes each giving the size of the next read (cycled; 0 is a
//! read that would block), then the stream. No sizes: reads of up to 4 KiB.
//!
//! Every entry point asserts what must hold whatever the input: no panic,
//! bounded answers, errors without raw control characters.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{Buffers, ConnectionDetails, Connector, LazyBuffers, NextTimeout, Transport};

use crate::config::{Config, ProfileSettings};
use crate::error::Error;
use crate::ffi::wire;
use crate::http::Http;
use crate::status::State;
use crate::Client;

/// A byte stream read in pieces of the fuzzer's choosing.
#[derive(Debug)]
pub struct Pieces {
    sizes: Vec<u8>,
    next: usize,
    stream: VecDeque<u8>,
    blocked: bool,
}

impl Pieces {
    /// Splits `data` into the piece sizes and the stream (see the module).
    pub fn new(data: &[u8]) -> Pieces {
        let n = data.first().map_or(0, |b| (*b % 16) as usize);
        let sizes = data.get(1..1 + n).unwrap_or(&[]).to_vec();
        let stream = data.get(1 + n..).unwrap_or(&[]).iter().copied().collect();
        Pieces { sizes, next: 0, stream, blocked: false }
    }

    /// Bytes for a read of at most `want`: `None` for a read that would
    /// block (never twice in a row), else what is left up to the piece size.
    fn piece(&mut self, want: usize) -> Option<Vec<u8>> {
        let size = match self.sizes.get(self.next % self.sizes.len().max(1)) {
            Some(s) => *s as usize,
            None => 4096,
        };
        self.next += 1;
        if size == 0 && !self.blocked {
            self.blocked = true;
            return None;
        }
        self.blocked = false;
        let n = size.max(1).min(want).min(self.stream.len());
        Some(self.stream.drain(..n).collect())
    }
}

impl Read for Pieces {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.piece(buf.len()) {
            None => Err(io::ErrorKind::WouldBlock.into()),
            Some(bytes) => {
                buf[..bytes.len()].copy_from_slice(&bytes);
                Ok(bytes.len())
            }
        }
    }
}

/// A ureq connector whose connections all read one shared [`Pieces`]
/// (what the library sends is dropped).
#[derive(Debug, Clone)]
struct MemConnector(Arc<Mutex<Pieces>>);

#[derive(Debug)]
struct MemTransport {
    input: Arc<Mutex<Pieces>>,
    buffers: LazyBuffers,
}

impl Connector for MemConnector {
    type Out = MemTransport;

    fn connect(&self, _: &ConnectionDetails, _: Option<()>) -> Result<Option<MemTransport>, ureq::Error> {
        Ok(Some(MemTransport { input: self.0.clone(), buffers: LazyBuffers::new(16 * 1024, 16 * 1024) }))
    }
}

impl Transport for MemTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, _amount: usize, _timeout: NextTimeout) -> Result<(), ureq::Error> {
        Ok(())
    }

    fn await_input(&mut self, _timeout: NextTimeout) -> Result<bool, ureq::Error> {
        let mut input = self.input.lock().unwrap_or_else(|e| e.into_inner());
        let buf = self.buffers.input_append_buf();
        // ureq polls; a read that would block is simply a smaller one.
        let bytes = match input.piece(buf.len()) {
            Some(bytes) => bytes,
            None => input.piece(buf.len()).unwrap_or_default(),
        };
        buf[..bytes.len()].copy_from_slice(&bytes);
        self.buffers.input_appended(bytes.len());
        Ok(!bytes.is_empty())
    }

    fn is_open(&mut self) -> bool {
        !self.input.lock().unwrap_or_else(|e| e.into_inner()).stream.is_empty()
    }
}

/// Every host is 127.0.0.1:9 (the connector ignores it). ureq's own
/// resolver looks up on a thread of its own that may outlive the input,
/// which LeakSanitizer reports.
#[derive(Debug)]
struct Loopback;

impl Resolver for Loopback {
    fn resolve(
        &self,
        _: &ureq::http::Uri,
        _: &ureq::config::Config,
        _: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let mut addrs = self.empty();
        addrs.push(std::net::SocketAddr::from(([127, 0, 0, 1], 9)));
        Ok(addrs)
    }
}

/// The settings of a profile with defaults (what `http`, `graph` and the
/// OAuth2 requests take their agent's configuration from).
fn settings(graph_save_to_sent_items: bool) -> ProfileSettings {
    let mut config = Config::new();
    config
        .set("SMTPGraphSaveToSentItems", Some(if graph_save_to_sent_items { "true" } else { "false" }))
        .expect("a key");
    ProfileSettings::clone(&config.settings("Default").expect("the default profile"))
}

/// An agent configured as [`Http::for_profile`] does, reading `pieces`.
fn agent(settings: &ProfileSettings, pieces: Pieces) -> (ureq::Agent, Duration) {
    let (config, timeout) = Http::config_for(settings).expect("the default profile's HTTP settings");
    (ureq::Agent::with_parts(config, MemConnector(Arc::new(Mutex::new(pieces))), Loopback), timeout)
}

/// An error for a host: no raw control character (a server's text is
/// escaped), and bounded.
fn check_error_text(text: &str) {
    assert!(!text.chars().any(|c| c.is_control() && c != '\t'), "a raw control character in {text:?}");
    assert!(text.len() < 200_000, "an error of {} bytes", text.len());
}

fn check_error(e: &Error) {
    check_error_text(e.message());
}

/// SMTP replies read by the session's line reader, the stream in pieces.
/// Reading in pieces gives the replies reading the whole buffer gives
/// ([`crate::smtp::parse_replies`]), and every reply is within bounds.
pub fn smtp_reply(data: &[u8]) {
    let mut pieces = Pieces::new(data);
    let whole: Vec<u8> = pieces.stream.iter().copied().collect();
    let (replies, why) = crate::smtp::read_replies_from(&mut pieces, Instant::now() + Duration::from_secs(10));
    let (expected, error) = crate::smtp::parse_replies(&whole);
    assert_eq!(replies, expected, "pieces and whole buffer disagree (stopped: {why})");
    if let Some(error) = error {
        assert_eq!(why, error, "pieces and whole buffer stop for different reasons");
    }
    for reply in &replies {
        assert!((200..600).contains(&reply.code), "reply code {}", reply.code);
        assert!(!reply.lines.is_empty() && reply.lines.len() <= 256);
        let _ = reply.summary();
    }
}

/// An HTTP response as [`Http::request`] reads it: status line, headers,
/// chunked or sized body, the body limit.
pub fn http_response(data: &[u8]) {
    let settings = settings(true);
    let (agent, timeout) = agent(&settings, Pieces::new(data));
    let http = Http::with_agent(agent, timeout);
    match http.request("GET", "http://127.0.0.1:9/fuzz", "fuzz", &[], None) {
        Ok(response) => {
            assert!(response.body.len() as u64 <= crate::http::MAX_BODY_BYTES);
            let _ = response.header("content-type");
            let _ = response.retry_after_secs();
            let _ = response.is_success();
            if let Err(e) = response.json("fuzz") {
                check_error(&e);
            }
        }
        Err(e) => check_error(&e),
    }
}

/// The stream for an OAuth2 or Graph answer. `data[0]` bit 7 set: the
/// rest is the raw stream (piece sizes first). Clear: the rest is one or
/// more answers separated by `\n===\n`, each a 3-digit status then a JSON
/// body, framed here as HTTP/1.1 with a Content-Length.
fn answers(data: &[u8]) -> Pieces {
    let Some((first, rest)) = data.split_first() else { return Pieces::new(&[]) };
    if first & 0x80 != 0 {
        return Pieces::new(rest);
    }
    let mut stream = vec![0u8];
    let text = String::from_utf8_lossy(rest);
    for answer in text.split("\n===\n") {
        let (status, body) = answer.split_at(answer.char_indices().nth(3).map_or(answer.len(), |(i, _)| i));
        let status = status.parse::<u16>().ok().filter(|s| (100..600).contains(s)).unwrap_or(200);
        stream.extend_from_slice(
            format!(
                "HTTP/1.1 {status} Fuzz\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        );
    }
    Pieces::new(&stream)
}

fn oauth_http(data: &[u8]) -> Http {
    let settings = settings(true);
    let (agent, timeout) = agent(&settings, answers(data));
    Http::with_agent(agent, timeout)
}

/// A token endpoint's answer, as a refresh reads it ([`crate::oauth2::token_request`]).
pub fn oauth2_token(data: &[u8]) {
    let http = oauth_http(data);
    let form = [("grant_type", "refresh_token"), ("refresh_token", "fuzz-refresh"), ("client_id", "fuzz")];
    match crate::oauth2::token_request(&http, "http://127.0.0.1:9/token", &form) {
        Ok(tokens) => {
            assert!(tokens.expires_at(crate::fsutil::unix_now()) >= 0);
            if let Some(user) = &tokens.username {
                assert!(crate::text::check_text(user).is_ok() && !user.is_empty());
            }
        }
        Err(e) => check_error(&e.to_error("refreshing the token")),
    }
}

/// An OpenID discovery document ([`crate::oauth2::discover`]): every
/// endpoint taken is one the library may call (https, or http on loopback).
pub fn oauth2_discovery(data: &[u8]) {
    let http = oauth_http(data);
    match crate::oauth2::discover(&http, "http://127.0.0.1:9") {
        Ok(endpoints) => {
            let urls =
                [Some(&endpoints.token), endpoints.authorization.as_ref(), endpoints.device_authorization.as_ref()];
            for url in urls.into_iter().flatten() {
                crate::url::check_url(url, "endpoint").expect("a discovered endpoint the library may call");
            }
        }
        Err(e) => check_error(&e),
    }
}

/// An ID token's claims ([`crate::oauth2::id_token_username`]).
pub fn id_token(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Some(user) = crate::oauth2::id_token_username(text) {
        assert!(!user.is_empty() && crate::text::check_text(&user).is_ok());
    }
}

/// A small message for the Graph target.
const MIME: &[u8] = b"From: a@example.test\r\nTo: b@example.test\r\nSubject: fuzz\r\nMessage-ID: <f@example.test>\r\n\
MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello\r\n";

/// Graph's answers to one delivery: `sendMail` (`data[0]` bit 0 set), or
/// the draft path (create, PATCH, send) when clear. Failures are
/// classified with bounded, escaped text.
pub fn graph(data: &[u8]) {
    let simple = data.first().is_some_and(|b| b & 1 != 0);
    let settings = settings(simple);
    let (agent, _) = agent(&settings, answers(data));
    let graph = crate::graph::Graph::default();
    match graph.deliver(&agent, "http://127.0.0.1:9/v1.0/me", "fuzz-token", MIME, &settings) {
        Ok(status) => assert!((200..300).contains(&status)),
        Err(f) => {
            check_error_text(&f.message);
            if let Some(code) = &f.server_code {
                assert!(code.len() < 100_000);
            }
        }
    }
}

/// A per-process scratch directory for targets that read files.
fn scratch() -> &'static std::path::Path {
    static DIR: OnceLock<std::path::PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("smtpbridge-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        dir
    })
}

/// The highest PBKDF2 iteration count the credentials target opens (a
/// store asking for more is skipped, so that one input cannot stall a run).
const CREDENTIALS_MAX_ITERATIONS: u64 = 1000;
/// The master secret of the credential seeds.
const CREDENTIALS_SECRET: &str = "fuzz-master-secret";

/// A `credentials.json` as the library opens it, then every credential
/// in it read back.
pub fn credentials(data: &[u8]) {
    let iterations = serde_json::from_slice::<serde_json::Value>(data).ok().and_then(|v| v.get("iterations")?.as_u64());
    if iterations.is_some_and(|i| i > CREDENTIALS_MAX_ITERATIONS) {
        return;
    }
    let dir = scratch().join("credentials");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    let path = dir.join("credentials.json");
    std::fs::write(&path, data).expect("a scratch file");
    let store = match crate::credentials::CredentialStore::open(Some(path), CREDENTIALS_SECRET.as_bytes()) {
        Ok(store) => store,
        Err(e) => return check_error(&e),
    };
    let users: Vec<Option<String>> = serde_json::from_slice::<serde_json::Value>(data)
        .ok()
        .and_then(|v| v.get("entries")?.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .map(|e| e.get("user_id").and_then(|u| u.as_str()).map(str::to_string))
        .collect();
    for user in users.iter().map(Option::as_deref).chain([None, Some("nobody")]) {
        match store.get(user) {
            Ok(_) => {}
            Err(e) => check_error(&e),
        }
        if let Err(e) = store.masked(user) {
            check_error(&e);
        }
    }
    let _ = store.shared_username();
    if let Err(e) = store.client_secret("Default") {
        check_error(&e);
    }
}

/// A DKIM key file (SMTPDkimKeyFile) as the library reads it; a key that
/// loads signs a message.
pub fn dkim_pem(data: &[u8]) {
    let path = scratch().join("dkim.pem");
    std::fs::write(&path, data).expect("a scratch file");
    let key = match crate::pem::read_dkim_key(&path) {
        Ok(key) => key,
        Err(e) => return check_error(&e),
    };
    let dkim = crate::message::dkim_config("example.test", "fuzz", key);
    let mut spec =
        crate::message::MessageSpec::parse(r#"{"to":[{"email":"b@example.test"}],"subject":"s","text":"t"}"#, &|_| {
            crate::message_bounds::PartBudget::new(u64::MAX, "Default")
        })
        .expect("a valid message");
    let ctx = crate::message::BuildContext {
        from: "a@example.test".parse().expect("a valid sender"),
        reply_to: None,
        message_id: "<f@example.test>".into(),
        original_to: None,
        dkim: Some(&dkim),
    };
    match crate::message::build(&mut spec, &ctx) {
        Ok(bytes) => assert!(bytes.windows(15).any(|w| w == b"DKIM-Signature:"), "a signed message"),
        Err(e) => check_error(&e),
    }
}

/// One client (in memory, paused: nothing is sent) for the outbox targets.
fn client() -> &'static crate::Client {
    static CLIENT: OnceLock<crate::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        let c = crate::Client::open(None, Some("fuzz"), crate::client::OPEN_PAUSED).expect("an in-memory client");
        for (key, value) in [
            ("SMTPServer", "127.0.0.1"),
            ("SMTPServerPort", "9"),
            ("SMTPAuthentication", "None"),
            ("SMTPSenderEmail", "sender@example.test"),
        ] {
            c.config_set(key, Some(value)).expect("a key");
        }
        c
    })
}

/// A text body through the one-pass encoder: lettre's encoding and bytes
/// (`Body::new`, the path it replaces), whatever the text.
pub fn text_body(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        crate::message::check_against_lettre(text);
    }
}

/// Opens the outbox targets' client before the first input: its credential
/// store's key derivation (600,000 PBKDF2 rounds) under the fuzzing
/// instrumentation takes seconds, which would count against one input.
pub fn warm_up() {
    let _ = client();
}

/// `smtpb_outbox_query`'s query JSON.
pub fn outbox_query(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match wire::parse_query(text).and_then(|q| client().outbox_query(&q)) {
        Ok(page) => {
            let v: serde_json::Value = serde_json::from_str(&wire::to_json(&page)).expect("the page is JSON");
            assert!(v["items"].is_array());
        }
        Err(e) => check_error(&e),
    }
}

/// `smtpb_outbox_purge`'s `before` and states JSON, split at the first
/// NUL (none: no states JSON).
pub fn outbox_purge(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (before, states) = match text.split_once('\0') {
        Some((b, s)) => (b, Some(s)),
        None => (text, None),
    };
    let purge = |c: &Client| c.outbox_purge(wire::parse_time(before, "before")?, &wire::parse_purge_states(states)?);
    match purge(client()) {
        Ok(purged) => {
            let v: serde_json::Value =
                serde_json::from_str(&wire::to_json(&wire::Purged { purged })).expect("the result is JSON");
            assert!(v["purged"].is_u64());
        }
        Err(e) => check_error(&e),
    }
}

/// `smtpb_merge`'s template and recipients JSON, split at the first NUL.
/// No merge fails as internal (a recipient checked whole by `parse_merge`
/// reads again where it is used; errors quote no raw control character).
/// A merge that queues is cancelled and purged again, so that a long run
/// does not grow. Inputs naming a file (`"path"`) are skipped: the target
/// reads no file of the machine.
pub fn merge(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Some((template, recipients)) = text.split_once('\0') else { return };
    if text.contains("path") {
        return;
    }
    let c = client();
    match wire::parse_merge(template, recipients).and_then(|(t, r)| c.merge(t, &r)) {
        Ok(merged) => {
            let v: serde_json::Value = serde_json::from_str(&wire::to_json(&merged)).expect("the result is JSON");
            let batch = v["batch_id"].as_str().expect("a batch id");
            let count = v["count"].as_u64().expect("a count");
            assert_eq!(v["ids"].as_array().map(Vec::len), Some(count as usize));
            c.batch_cancel(batch).expect("a merged batch cancels");
            c.outbox_purge(SystemTime::now() + Duration::from_secs(86_400), &[State::Cancelled, State::Failed])
                .expect("the purge");
        }
        Err(e) => {
            assert_ne!(e.code(), crate::Code::Internal, "{}", e.message());
            check_error(&e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// Every seed of `target` (fuzz/seeds/<target>), at least one.
    fn seeds(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz").join("seeds").join(target);
        let mut all: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("an entry").path())
            .map(|p| {
                let bytes = std::fs::read(&p).expect("a seed");
                (p, bytes)
            })
            .collect();
        all.sort();
        assert!(!all.is_empty(), "no seeds in {}", dir.display());
        all
    }

    #[test]
    fn pieces_cut_the_stream_as_told() {
        let mut p = Pieces::new(b"\x03\x02\x00\x05abcdefghij");
        let mut buf = [0u8; 64];
        assert_eq!(p.read(&mut buf).unwrap(), 2);
        assert_eq!(p.read(&mut buf).unwrap_err().kind(), io::ErrorKind::WouldBlock);
        assert_eq!(p.read(&mut buf).unwrap(), 5);
        assert_eq!(&buf[..5], b"cdefg");
        assert_eq!(p.read(&mut buf).unwrap(), 2);
        assert_eq!(p.read(&mut buf).unwrap_err().kind(), io::ErrorKind::WouldBlock);
        assert_eq!(p.read(&mut buf).unwrap(), 1);
        assert_eq!(&buf[..1], b"j");
        assert_eq!(p.read(&mut buf).unwrap(), 0);
    }

    #[test]
    fn smtp_replies_read_in_pieces() {
        let stream = b"\x02\x01\x07250-mail.example.test\r\n250-PIPELINING\r\n250 SIZE 1000\r\n354 go\r\n";
        let (replies, why) =
            crate::smtp::read_replies_from(&mut Pieces::new(stream), Instant::now() + Duration::from_secs(5));
        assert_eq!(replies.len(), 2);
        assert_eq!(replies[0].lines, ["mail.example.test", "PIPELINING", "SIZE 1000"]);
        assert_eq!(why, "connection closed by the server");
        for (_, seed) in seeds("smtp_reply") {
            smtp_reply(&seed);
        }
    }

    #[test]
    fn text_body_seeds_encode_as_lettre_does() {
        for (_, seed) in seeds("text_body") {
            text_body(&seed);
        }
    }

    #[test]
    fn http_seeds_parse() {
        for (path, seed) in seeds("http_response") {
            http_response(&seed);
            let http = Http::with_agent(agent(&settings(true), Pieces::new(&seed)).0, Duration::from_secs(5));
            let r = http.request("GET", "http://127.0.0.1:9/x", "x", &[], None);
            assert!(r.is_ok(), "{}: {:?}", path.display(), r.err());
        }
    }

    #[test]
    fn oauth2_seeds_give_tokens_or_refusals() {
        for (path, seed) in seeds("oauth2_token") {
            oauth2_token(&seed);
            let form = [("grant_type", "refresh_token")];
            let r = crate::oauth2::token_request(&oauth_http(&seed), "http://127.0.0.1:9/token", &form);
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            match r {
                Ok(t) => assert!(!t.access.is_empty(), "{name}"),
                Err(crate::oauth2::TokenError::Refused { .. }) => assert!(name.contains("error"), "{name}"),
                Err(crate::oauth2::TokenError::Failed(e)) => panic!("{name}: {e:?}"),
            }
        }
        for (path, seed) in seeds("oauth2_discovery") {
            oauth2_discovery(&seed);
            let r = crate::oauth2::discover(&oauth_http(&seed), "http://127.0.0.1:9");
            assert!(r.is_ok(), "{}: {:?}", path.display(), r.err());
        }
        for (_, seed) in seeds("id_token") {
            id_token(&seed);
        }
    }

    #[test]
    fn graph_seeds_run() {
        for (_, seed) in seeds("graph") {
            graph(&seed);
        }
    }

    #[test]
    fn credential_seeds_open() {
        for (path, seed) in seeds("credentials") {
            credentials(&seed);
            let v: serde_json::Value = serde_json::from_slice(&seed).unwrap();
            if v["iterations"].as_u64().unwrap() > CREDENTIALS_MAX_ITERATIONS {
                continue;
            }
            let file = scratch().join("seed-credentials.json");
            std::fs::write(&file, &seed).unwrap();
            let store = crate::credentials::CredentialStore::open(Some(file), CREDENTIALS_SECRET.as_bytes());
            let store = store.unwrap_or_else(|e| panic!("{}: {e:?}", path.display()));
            assert!(store.get(None).unwrap().is_some(), "{}", path.display());
        }
    }

    #[test]
    fn dkim_seeds_load() {
        for (path, seed) in seeds("dkim_pem") {
            dkim_pem(&seed);
            let file = scratch().join("seed.pem");
            std::fs::write(&file, &seed).unwrap();
            assert!(crate::pem::read_dkim_key(&file).is_ok(), "{}", path.display());
        }
    }

    #[test]
    fn outbox_seeds_run() {
        for (_, seed) in seeds("outbox_query") {
            outbox_query(&seed);
        }
        for (_, seed) in seeds("outbox_purge") {
            outbox_purge(&seed);
        }
        for (path, seed) in seeds("merge") {
            merge(&seed);
            let text = std::str::from_utf8(&seed).unwrap();
            let (t, r) = text.split_once('\0').unwrap();
            assert!(wire::parse_merge(t, r).and_then(|(t, r)| client().merge(t, &r)).is_ok(), "{}", path.display());
        }
    }
}
