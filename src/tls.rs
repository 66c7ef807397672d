//! TLS settings: rustls with the ring provider, the operating system's
//! trust store plus SMTPCaFile, TLS 1.2 or 1.3 as the floor.

use once_cell::sync::Lazy;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::cell::RefCell;
use std::sync::Arc;

use crate::config::ProfileSettings;
use crate::error::{Code, Error, Result};

/// The operating system's trusted roots, read once per process (empty
/// where the system has none that rustls can use; the Mozilla roots then
/// stand in).
static SYSTEM_ROOTS: Lazy<Vec<CertificateDer<'static>>> = Lazy::new(|| rustls_native_certs::load_native_certs().certs);

/// The operating system's trusted roots (read once per process).
pub fn system_roots() -> &'static [CertificateDer<'static>] {
    &SYSTEM_ROOTS
}

/// The rustls client configuration for a profile.
pub fn client_config(settings: &ProfileSettings) -> Result<Arc<ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&'static rustls::SupportedProtocolVersion] = if settings.min_tls13 {
        &[&rustls::version::TLS13]
    } else {
        &[&rustls::version::TLS13, &rustls::version::TLS12]
    };
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| Error::new(Code::Tls, format!("TLS setup failed: {e}")))?;
    let config = if settings.accept_invalid_certificates {
        log::warn!("SMTPAcceptInvalidCertificates is on for profile {}: any certificate is trusted", settings.name);
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
            .with_no_client_auth()
    } else {
        let mut roots = RootCertStore::empty();
        if SYSTEM_ROOTS.is_empty() {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        } else {
            roots.add_parsable_certificates(SYSTEM_ROOTS.iter().cloned());
        }
        if let Some(ca) = &settings.ca_file {
            for cert in crate::pem::read_ca_file(ca).map_err(|e| e.context("SMTPCaFile"))? {
                roots.add(cert).map_err(|e| {
                    Error::config(format!("SMTPCaFile: {} has an unusable certificate: {e}", ca.display()))
                })?;
            }
        }
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| Error::new(Code::Tls, format!("TLS setup failed: {e}")))?;
        builder.dangerous().with_custom_certificate_verifier(Arc::new(SubjectRecorder(webpki))).with_no_client_auth()
    };
    Ok(Arc::new(config))
}

/// The name the server's certificate must carry.
pub fn server_name(settings: &ProfileSettings, host: &str) -> Result<ServerName<'static>> {
    let name = settings.tls_server_name.as_deref().unwrap_or(host);
    let bare = name.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(bare.to_string())
        .map_err(|_| Error::config(format!("SMTPTlsServerName: \"{name}\" is not a valid TLS server name")))
}

/// SMTPAcceptInvalidCertificates: checks signatures, trusts any
/// certificate. For test servers only.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        record_subject(end_entity);
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

thread_local! {
    /// The subject of the last server certificate verified on this thread.
    static PEER_SUBJECT: RefCell<Option<String>> = const { RefCell::new(None) };
}

fn record_subject(der: &CertificateDer<'_>) {
    use x509_cert::der::Decode;
    let subject = x509_cert::Certificate::from_der(der.as_ref())
        .map(|c| c.tbs_certificate.subject.to_string())
        .unwrap_or_else(|_| "(unreadable certificate)".into());
    let _ = PEER_SUBJECT.try_with(|s| *s.borrow_mut() = Some(subject));
}

/// The subject (RFC 4514) of the last server certificate this thread's
/// handshake saw, taken once: for transcripts, logs and advice.
pub fn take_peer_subject() -> Option<String> {
    PEER_SUBJECT.try_with(|s| s.borrow_mut().take()).ok().flatten()
}

/// rustls's WebPKI verifier, which also notes the certificate's subject
/// (handshakes run on the thread of the session, so a thread-local is the
/// right place).
#[derive(Debug)]
struct SubjectRecorder(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for SubjectRecorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        record_subject(end_entity);
        self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}
