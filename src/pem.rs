//! Key material read from files named by the configuration: SMTPCaFile
//! (PEM certificates) and SMTPDkimKeyFile (a PEM private key). Bounded
//! reads of regular files only; errors name the file, never its content.
//! The configuration checks a file here when it is set; TLS, HTTPS and
//! DKIM signing read it here when they use it.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use std::path::Path;

use crate::error::{Error, Result};

/// The largest SMTPCaFile read (a system's whole bundle is about 200 KiB).
pub(crate) const MAX_CA_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// Reads the certificates of a PEM file; an unreadable file, one that is
/// not a regular file or is over [`MAX_CA_FILE_BYTES`], or one with no
/// certificate is an error naming the file.
pub fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let bytes = crate::bounded::read(path, MAX_CA_FILE_BYTES)
        .map_err(|e| Error::config(format!("cannot read {}: {e}", path.display())))?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| Error::config(format!("{} is not a PEM certificate file: {e:?}", path.display())))?;
    if certs.is_empty() {
        return Err(Error::config(format!("{} holds no PEM certificate", path.display())));
    }
    Ok(certs)
}

/// The largest DKIM key file read (an 8192-bit RSA key is about 6.5 KiB).
pub(crate) const MAX_DKIM_KEY_BYTES: u64 = 1024 * 1024;

/// Reads a DKIM private key: RSA as PKCS#1 or PKCS#8 PEM, Ed25519 as
/// PKCS#8 PEM. An unusable file (not a regular file, over
/// [`MAX_DKIM_KEY_BYTES`], no key) is `SMTPB_ERR_CONFIG` naming it.
pub fn read_dkim_key(path: &Path) -> Result<lettre::message::dkim::DkimSigningKey> {
    use lettre::message::dkim::{DkimSigningAlgorithm, DkimSigningKey};
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::pkcs8::DecodePrivateKey;
    let bad = |why: &str| Error::config(format!("{} is not a usable DKIM key: {why}", path.display()));
    let bytes = zeroize::Zeroizing::new(
        crate::bounded::read(path, MAX_DKIM_KEY_BYTES)
            .map_err(|e| Error::config(format!("cannot read {}: {e}", path.display())))?,
    );
    let pem =
        zeroize::Zeroizing::new(String::from_utf8(bytes.to_vec()).map_err(|_| bad("the file is not text (UTF-8)"))?);
    if pem.contains("BEGIN RSA PRIVATE KEY") {
        return DkimSigningKey::new(&pem, DkimSigningAlgorithm::Rsa).map_err(|_| bad("the RSA key does not parse"));
    }
    if !pem.contains("BEGIN PRIVATE KEY") {
        return Err(bad("a PEM RSA (PKCS#1 or PKCS#8) or Ed25519 (PKCS#8) private key expected"));
    }
    if let Ok(key) = rsa::RsaPrivateKey::from_pkcs8_pem(&pem) {
        let pkcs1 =
            key.to_pkcs1_pem(rsa::pkcs8::LineEnding::LF).map_err(|_| bad("the RSA key cannot be re-encoded"))?;
        return DkimSigningKey::new(&pkcs1, DkimSigningAlgorithm::Rsa).map_err(|_| bad("the RSA key does not parse"));
    }
    // PKCS#8 Ed25519 (RFC 8410): a fixed 16-byte prefix, then the seed.
    const ED25519_PREFIX: [u8; 16] =
        [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = zeroize::Zeroizing::new(B64.decode(body.trim()).map_err(|_| bad("the PEM body is not base64"))?);
    if der.len() == 48 && der[..16] == ED25519_PREFIX {
        let seed = zeroize::Zeroizing::new(B64.encode(&der[16..]));
        return DkimSigningKey::new(&seed, DkimSigningAlgorithm::Ed25519)
            .map_err(|_| bad("the Ed25519 key does not parse"));
    }
    Err(bad("neither an RSA nor an Ed25519 private key"))
}
