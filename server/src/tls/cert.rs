//! The TLS ports' certificate: generated at start, or the instructor's own.

use std::path::{Path, PathBuf};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The names a generated certificate is valid for: what a participant on
/// this machine types (`localhost` goes over `::1` in Chromium).
pub const GENERATED_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// The largest certificate or key file read: a chain of a few certificates
/// is a few KiB, so 1 MiB is generous, and `--tls-cert /dev/zero` (or a
/// mistaken huge file) cannot take the machine's memory (review L2).
pub const MAX_PEM_BYTES: u64 = 1024 * 1024;

/// Reads the PEM file `path` given by `flag`, refusing before any read what
/// is not a regular file or is over [`MAX_PEM_BYTES`] (review L2). `stat`
/// does not block, but reading a FIFO or a terminal (`/dev/stdin`) waits
/// for a writer on the runtime's thread, where neither Ctrl-C nor SIGTERM
/// could stop it; and a character device such as `/dev/zero` never ends.
/// The read itself is capped too, for a file that grows meanwhile.
pub fn read_pem(path: &Path, flag: &str) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let shown = path.display();
    let meta =
        std::fs::metadata(path).map_err(|e| format!("{flag} {shown}: cannot read it: {e}"))?;
    if !meta.is_file() {
        return Err(format!(
            "{flag} {shown}: not a regular file (a PEM file is needed, not a directory, a pipe \
             or a device)"
        ));
    }
    if meta.len() > MAX_PEM_BYTES {
        return Err(format!(
            "{flag} {shown}: {} bytes, over the {MAX_PEM_BYTES} bytes (1 MiB) a PEM file may have",
            meta.len()
        ));
    }
    let file =
        std::fs::File::open(path).map_err(|e| format!("{flag} {shown}: cannot read it: {e}"))?;
    let mut pem = Vec::new();
    file.take(MAX_PEM_BYTES + 1)
        .read_to_end(&mut pem)
        .map_err(|e| format!("{flag} {shown}: cannot read it: {e}"))?;
    if pem.len() as u64 > MAX_PEM_BYTES {
        return Err(format!(
            "{flag} {shown}: over the {MAX_PEM_BYTES} bytes (1 MiB) a PEM file may have"
        ));
    }
    Ok(pem)
}

/// Where the certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertSource {
    /// A self-signed certificate made at start for [`GENERATED_NAMES`] (and
    /// the given extra names, e.g. a workshop machine's name or address).
    Generate {
        /// Extra DNS names or IP addresses.
        extra_names: Vec<String>,
    },
    /// PEM files: `--tls-cert` (the chain, leaf first) and `--tls-key`.
    Files {
        /// The certificate chain.
        cert: PathBuf,
        /// Its private key (PKCS#8, PKCS#1 or SEC1).
        key: PathBuf,
    },
}

/// A certificate chain and its key.
#[derive(Debug)]
pub struct Identity {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    generated: bool,
}

impl Identity {
    /// Makes or loads the certificate; the error says what is wrong with
    /// which file.
    pub fn load(source: &CertSource) -> Result<Identity, String> {
        match source {
            CertSource::Generate { extra_names } => Identity::generate(extra_names),
            CertSource::Files { cert, key } => Identity::from_files(cert, key),
        }
    }

    /// A fresh self-signed certificate for [`GENERATED_NAMES`] and `extra`.
    pub fn generate(extra: &[String]) -> Result<Identity, String> {
        let mut names: Vec<String> = GENERATED_NAMES.iter().map(|n| (*n).to_owned()).collect();
        for name in extra {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
        let certified = rcgen::generate_simple_self_signed(names)
            .map_err(|e| format!("could not generate the TLS certificate: {e}"))?;
        let key = PrivateKeyDer::try_from(certified.signing_key.serialize_der())
            .map_err(|e| format!("could not use the generated TLS key: {e}"))?;
        Ok(Identity {
            chain: vec![certified.cert.der().clone()],
            key,
            generated: true,
        })
    }

    /// The instructor's own certificate chain and key, from PEM files: each
    /// must be a regular file of at most [`MAX_PEM_BYTES`] (see
    /// [`read_pem`]).
    pub fn from_files(cert: &Path, key: &Path) -> Result<Identity, String> {
        let cert_pem = read_pem(cert, "--tls-cert")?;
        let key_pem = read_pem(key, "--tls-key")?;
        let chain = CertificateDer::pem_slice_iter(&cert_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("--tls-cert {}: not a PEM certificate: {e}", cert.display()))?;
        if chain.is_empty() {
            return Err(format!(
                "--tls-cert {}: no `-----BEGIN CERTIFICATE-----` block in it",
                cert.display()
            ));
        }
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
            format!(
                "--tls-key {}: no usable private key (PEM `PRIVATE KEY`, `RSA PRIVATE KEY` or \
                 `EC PRIVATE KEY`): {e}",
                key.display()
            )
        })?;
        Ok(Identity {
            chain,
            key,
            generated: false,
        })
    }

    /// The certificate chain, leaf first.
    pub fn chain(&self) -> Vec<CertificateDer<'static>> {
        self.chain.clone()
    }

    /// The private key.
    pub fn key(&self) -> PrivateKeyDer<'static> {
        self.key.clone_key()
    }

    /// Whether it was generated at start (browsers warn about it).
    pub fn generated(&self) -> bool {
        self.generated
    }

    /// The leaf certificate, for a client (a test) that trusts it.
    pub fn leaf(&self) -> CertificateDer<'static> {
        self.chain[0].clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_certificate_makes_a_config() {
        let identity = Identity::generate(&["lab-box".into()]).unwrap();
        assert!(identity.generated());
        assert!(super::super::server_config(&identity, super::super::Offer::H2AndHttp11).is_ok());
    }

    /// A certificate block whose body is not a certificate is told as
    /// such, not as a certificate and key that do not go together (found
    /// in review); a key of another certificate is the mismatch.
    #[test]
    fn a_certificate_that_does_not_parse_is_not_a_mismatch() {
        use super::super::{Offer, server_config};
        let good = Identity::generate(&[]).unwrap();
        let garbled = Identity {
            chain: vec![CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x00])],
            key: good.key.clone_key(),
            generated: false,
        };
        let e = server_config(&garbled, Offer::H2AndHttp11).unwrap_err();
        assert!(e.starts_with("TLS: the certificate cannot be read"), "{e}");
        let other = Identity::generate(&[]).unwrap();
        let mismatched = Identity {
            chain: good.chain.clone(),
            key: other.key.clone_key(),
            generated: false,
        };
        let e = server_config(&mismatched, Offer::H2AndHttp11).unwrap_err();
        assert!(e.contains("do not go together"), "{e}");
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        let dir = std::env::temp_dir().join(format!("kal-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.pem");
        let junk = dir.join("junk.pem");
        std::fs::write(&junk, "not a certificate\n").unwrap();
        let e = Identity::from_files(&missing, &junk).unwrap_err();
        assert!(
            e.starts_with("--tls-cert") && e.contains("cannot read"),
            "{e}"
        );
        let e = Identity::from_files(&junk, &junk).unwrap_err();
        assert!(e.contains("no `-----BEGIN CERTIFICATE-----`"), "{e}");
        // A good certificate with a key file that holds none.
        let good = Identity::generate(&[]).unwrap();
        let cert = dir.join("cert.pem");
        let pem = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        std::fs::write(&cert, pem.cert.pem()).unwrap();
        let e = Identity::from_files(&cert, &junk).unwrap_err();
        assert!(e.starts_with("--tls-key"), "{e}");
        let key = dir.join("key.pem");
        std::fs::write(&key, pem.signing_key.serialize_pem()).unwrap();
        let loaded = Identity::from_files(&cert, &key).unwrap();
        assert!(!loaded.generated());
        assert_ne!(loaded.leaf(), good.leaf());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn only_regular_files_of_at_most_a_mebibyte_are_read() {
        let dir = std::env::temp_dir().join(format!("kal-tls-size-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let e = read_pem(&dir, "--tls-cert").unwrap_err();
        assert!(e.contains("not a regular file"), "{e}");
        #[cfg(unix)]
        {
            let e = read_pem(Path::new("/dev/zero"), "--tls-key").unwrap_err();
            assert!(
                e.starts_with("--tls-key /dev/zero: not a regular file"),
                "{e}"
            );
        }
        let big = dir.join("big.pem");
        std::fs::write(&big, vec![b'A'; MAX_PEM_BYTES as usize + 1]).unwrap();
        let e = read_pem(&big, "--tls-cert").unwrap_err();
        assert!(e.contains("over the 1048576 bytes"), "{e}");
        let fits = dir.join("fits.pem");
        std::fs::write(&fits, vec![b'A'; MAX_PEM_BYTES as usize]).unwrap();
        assert_eq!(
            read_pem(&fits, "--tls-cert").unwrap().len(),
            MAX_PEM_BYTES as usize
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
