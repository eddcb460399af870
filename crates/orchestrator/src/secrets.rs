//! Secrets at rest (`orchestrator.md` §15.1): the master key and the AES-256-GCM envelope of
//! every value in `scoped_secrets`.
//!
//! Stored form: `base64(IV ‖ tag ‖ ciphertext)` with a 12-byte random IV and the 16-byte tag;
//! the associated data is `"<orgId>:<scope>:<key>"`, so a ciphertext copied into another
//! slot (another source, another key name) fails to decrypt instead of being accepted.

use std::io::Write;
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use kici_engine::protocol::Secret;

const IV_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// The key file written on first start when no key is configured.
pub const KEY_FILE: &str = "secret.key";

/// Why a key could not be loaded or a value not be decrypted. Messages never contain key
/// material or plaintext.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("KICI_SECRET_KEY must be 64 hex digits or the base64 of 32 bytes")]
    BadKey,
    #[error("the key file {path} is not a valid key (64 hex digits or base64 of 32 bytes)")]
    BadKeyFile { path: String },
    #[error("cannot read or write the key file {path}: {source}")]
    KeyFile {
        path: String,
        source: std::io::Error,
    },
    #[error("PostgreSQL needs KICI_SECRET_KEY (the same on every node)")]
    KeyRequired,
    #[error("could not generate random bytes: {0}")]
    Random(String),
    #[error("the stored secret {slot} cannot be decrypted with the current key")]
    Decrypt { slot: String },
}

/// The master key and the cipher built from it. Cheap to clone.
#[derive(Clone)]
pub struct SecretBox {
    /// `None`: no key could be obtained; every operation fails.
    cipher: Option<Aes256Gcm>,
    /// Where the key came from, for `GET diagnose` and `GET config`.
    origin: KeyOrigin,
}

/// Where the master key came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOrigin {
    /// `KICI_SECRET_KEY`.
    Configured,
    /// `<data dir>/secret.key` (created now or earlier).
    File(PathBuf),
    /// A random key that lives only in memory: nothing encrypted with it survives a restart.
    Ephemeral,
    /// No key at all (not even random bytes could be had): secrets cannot be used.
    Unavailable,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretBox")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

impl SecretBox {
    /// A box over a 32-byte key.
    pub fn from_key(key: &[u8; 32], origin: KeyOrigin) -> SecretBox {
        SecretBox {
            cipher: Some(Aes256Gcm::new(key.into())),
            origin,
        }
    }

    /// The configured key, else the key file in `data_dir` (created with mode 0600 when
    /// missing). `require_configured` (PostgreSQL) refuses the file fallback.
    pub fn load(
        configured: Option<&Secret>,
        data_dir: &Path,
        require_configured: bool,
    ) -> Result<SecretBox, SecretError> {
        if let Some(key) = configured {
            let key = parse_key(key.expose()).ok_or(SecretError::BadKey)?;
            return Ok(SecretBox::from_key(&key, KeyOrigin::Configured));
        }
        if require_configured {
            return Err(SecretError::KeyRequired);
        }
        let path = data_dir.join(KEY_FILE);
        let key = load_or_create_key_file(&path)?;
        Ok(SecretBox::from_key(&key, KeyOrigin::File(path)))
    }

    /// A random in-memory key (tests, and the fallback of [`crate::AppState::new`]).
    pub fn ephemeral() -> Result<SecretBox, SecretError> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| SecretError::Random(e.to_string()))?;
        Ok(SecretBox::from_key(&key, KeyOrigin::Ephemeral))
    }

    /// A box without a key: encryption and decryption fail.
    pub fn unavailable() -> SecretBox {
        SecretBox {
            cipher: None,
            origin: KeyOrigin::Unavailable,
        }
    }

    fn cipher(&self, slot: &str) -> Result<&Aes256Gcm, SecretError> {
        self.cipher.as_ref().ok_or_else(|| SecretError::Decrypt {
            slot: slot.to_string(),
        })
    }

    pub fn origin(&self) -> &KeyOrigin {
        &self.origin
    }

    /// Encrypts `plaintext` for the slot `(org, scope, key)`.
    pub fn encrypt(
        &self,
        org_id: &str,
        scope: &str,
        key: &str,
        plaintext: &str,
    ) -> Result<String, SecretError> {
        let mut iv = [0u8; IV_LEN];
        getrandom::fill(&mut iv).map_err(|e| SecretError::Random(e.to_string()))?;
        let aad = aad(org_id, scope, key);
        // aes-gcm appends the tag to the ciphertext; the stored layout puts it first.
        let sealed = self
            .cipher(&aad)?
            .encrypt(
                &Nonce::from(iv),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| SecretError::Decrypt { slot: aad.clone() })?;
        let (ciphertext, tag) = sealed.split_at(sealed.len() - TAG_LEN);
        let mut out = Vec::with_capacity(IV_LEN + sealed.len());
        out.extend_from_slice(&iv);
        out.extend_from_slice(tag);
        out.extend_from_slice(ciphertext);
        Ok(BASE64.encode(out))
    }

    /// Decrypts a stored value of the slot `(org, scope, key)`.
    pub fn decrypt(
        &self,
        org_id: &str,
        scope: &str,
        key: &str,
        stored: &str,
    ) -> Result<Secret, SecretError> {
        let aad = aad(org_id, scope, key);
        let failed = || SecretError::Decrypt { slot: aad.clone() };
        let bytes = BASE64.decode(stored.trim()).map_err(|_| failed())?;
        if bytes.len() < IV_LEN + TAG_LEN {
            return Err(failed());
        }
        let (iv, rest) = bytes.split_at(IV_LEN);
        let iv: [u8; IV_LEN] = iv.try_into().map_err(|_| failed())?;
        let (tag, ciphertext) = rest.split_at(TAG_LEN);
        let mut sealed = Vec::with_capacity(rest.len());
        sealed.extend_from_slice(ciphertext);
        sealed.extend_from_slice(tag);
        let plain = self
            .cipher(&aad)?
            .decrypt(
                &Nonce::from(iv),
                Payload {
                    msg: &sealed,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| failed())?;
        String::from_utf8(plain)
            .map(Secret::new)
            .map_err(|_| failed())
    }
}

fn aad(org_id: &str, scope: &str, key: &str) -> String {
    format!("{org_id}:{scope}:{key}")
}

/// 64 hex digits, or base64 of exactly 32 bytes.
pub fn parse_key(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    let mut key = [0u8; 32];
    if text.len() == 64 && hex_decode(text, &mut key) {
        return Some(key);
    }
    let bytes = BASE64.decode(text).ok()?;
    key.copy_from_slice(bytes.get(..32).filter(|_| bytes.len() == 32)?);
    Some(key)
}

fn hex_decode(text: &str, out: &mut [u8; 32]) -> bool {
    let digits = text.as_bytes();
    for (i, byte) in out.iter_mut().enumerate() {
        let hi = (digits[2 * i] as char).to_digit(16);
        let lo = (digits[2 * i + 1] as char).to_digit(16);
        match (hi, lo) {
            (Some(hi), Some(lo)) => *byte = u8::try_from(hi * 16 + lo).unwrap_or(0),
            _ => return false,
        }
    }
    true
}

fn load_or_create_key_file(path: &Path) -> Result<[u8; 32], SecretError> {
    let io_error = |source| SecretError::KeyFile {
        path: path.display().to_string(),
        source,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => {
            return parse_key(&text).ok_or_else(|| SecretError::BadKeyFile {
                path: path.display().to_string(),
            });
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_error(e)),
    }
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| SecretError::Random(e.to_string()))?;
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    let mut options = std::fs::OpenOptions::new();
    // `create_new`: two processes starting at once must not each write a different key.
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(mut file) => {
            file.write_all(format!("{hex}\n").as_bytes())
                .map_err(io_error)?;
            file.sync_all().map_err(io_error)?;
            tracing::info!(path = %path.display(), "generated the secret key file");
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let text = std::fs::read_to_string(path).map_err(io_error)?;
            parse_key(&text).ok_or_else(|| SecretError::BadKeyFile {
                path: path.display().to_string(),
            })
        }
        Err(e) => Err(io_error(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_binds_the_slot() {
        let sb = SecretBox::ephemeral().unwrap();
        let stored = sb.encrypt("o", "s", "k", "hunter2").unwrap();
        assert!(!stored.contains("hunter2"));
        assert_eq!(
            sb.decrypt("o", "s", "k", &stored).unwrap().expose(),
            "hunter2"
        );
        assert!(sb.decrypt("o", "s", "other", &stored).is_err());
        let other = SecretBox::ephemeral().unwrap();
        assert!(other.decrypt("o", "s", "k", &stored).is_err());
    }

    #[test]
    fn keys_parse_from_hex_and_base64() {
        let hex = "00".repeat(31) + "ff";
        assert_eq!(parse_key(&hex).unwrap()[31], 0xff);
        assert!(parse_key(&BASE64.encode([7u8; 32])).is_some());
        assert!(parse_key("short").is_none());
        assert!(parse_key(&BASE64.encode([7u8; 31])).is_none());
    }

    #[test]
    fn key_file_is_created_once_with_mode_0600() {
        let dir = std::env::temp_dir().join(format!("kici-key-{}", kici_store::new_id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = SecretBox::load(None, &dir, false).unwrap();
        let stored = a.encrypt("o", "s", "k", "v").unwrap();
        let b = SecretBox::load(None, &dir, false).unwrap();
        assert_eq!(b.decrypt("o", "s", "k", &stored).unwrap().expose(), "v");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join(KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(matches!(
            SecretBox::load(None, &dir, true),
            Err(SecretError::KeyRequired)
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
