//! PKCS#11 key slots: the secret of a key slot sealed by a non-extractable AES key inside a
//! PKCS#11 token, so that the root key opens only where the token answers.
//!
//! PKCS#11 is what SoftHSM2, YubiHSM, AWS CloudHSM, Thales Luna and the cloud KMS PKCS#11
//! libraries speak: one slot kind covers them. The slot (in the keyring) stores the token's
//! and the key's labels, the mechanism and the sealed secret, never the PIN:
//!
//! ```text
//! secret = 32 random bytes                          (made when the slot is added)
//! sealed = IV ‖ C_Encrypt(CKM_AES_GCM(IV, aad, 128-bit tag), token key, secret)
//! aad    = lp("phonevault/v1/pkcs11-seal") ‖ lp(vault id) ‖ lp(u32 BE slot id)
//! KEK    = HKDF-SHA-256(secret, vault id, "phonevault/v1/pkcs11-kek")  → wraps RK as every slot
//! ```
//!
//! The PIN comes from a file or the environment (`PHONEVAULT_PKCS11_PIN`), never from the
//! command line; it lives in a zeroizing buffer and is handed to `C_Login` only.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, PoisonError};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use phonevault_keys::{HsmSecret, Pkcs11Mechanism, Pkcs11Slot, MAX_PKCS11_LABEL};
use zeroize::Zeroizing;

/// GCM IV length used for sealing (96 bits).
const IV_LEN: usize = 12;
/// GCM tag length (128 bits).
const TAG_BITS: u64 = 128;

/// A token PIN. No `Debug` that prints it, zeroized on drop.
pub struct Pin(Zeroizing<String>);

impl Pin {
    /// A PIN as read from its file or the environment (first line, no line end).
    ///
    /// # Errors
    ///
    /// [`HsmError::EmptyPin`] for an empty PIN.
    pub fn new(text: &str) -> Result<Pin, HsmError> {
        let line = text.lines().next().unwrap_or_default();
        if line.is_empty() {
            return Err(HsmError::EmptyPin);
        }
        Ok(Pin(Zeroizing::new(line.to_owned())))
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pin").finish_non_exhaustive()
    }
}

/// Where to find the key that seals a PKCS#11 slot's secret, and how to log in.
pub struct Pkcs11Config {
    /// The PKCS#11 library (e.g. `/usr/lib/softhsm/libsofthsm2.so`).
    pub module: PathBuf,
    /// The token's label.
    pub token: String,
    /// The AES key's label (`CKA_LABEL`).
    pub key: String,
    /// The user PIN.
    pub pin: Pin,
}

impl fmt::Debug for Pkcs11Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Config")
            .field("module", &self.module)
            .field("token", &self.token)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// Why the HSM could not seal or unseal. Messages name the module, token and key labels
/// (not secret) and what to do; never the PIN.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HsmError {
    /// The PIN is empty.
    #[error("the PKCS#11 PIN is empty: put it in the file given with --pkcs11-pin-file (or PHONEVAULT_PKCS11_PIN)")]
    EmptyPin,
    /// No PIN was given.
    #[error("no PKCS#11 PIN: give --pkcs11-pin-file FILE or set PHONEVAULT_PKCS11_PIN (never on the command line)")]
    NoPin,
    /// A label is empty or too long for a slot.
    #[error("the PKCS#11 {what} label must be 1 to {MAX_PKCS11_LABEL} bytes")]
    Label {
        /// Which label.
        what: &'static str,
    },
    /// The library could not be loaded or initialized.
    #[error("cannot load the PKCS#11 module {}: {reason}", module.display())]
    Module {
        /// The module.
        module: PathBuf,
        /// What the loader said.
        reason: String,
    },
    /// No token with that label.
    #[error("no PKCS#11 token labelled {token:?} in {}: check --pkcs11-token (softhsm2-util --show-slots lists them)", module.display())]
    NoToken {
        /// The module.
        module: PathBuf,
        /// The label.
        token: String,
    },
    /// The PIN was refused.
    #[error("the PKCS#11 token {token:?} refused the PIN (wrong PIN, or the PIN is locked)")]
    Login {
        /// The token.
        token: String,
    },
    /// No AES key with that label in the token.
    #[error("the PKCS#11 token {token:?} has no AES secret key labelled {key:?}: the key was removed, or --pkcs11-key names another; the vault cannot be unsealed by this HSM")]
    NoKey {
        /// The token.
        token: String,
        /// The key label.
        key: String,
    },
    /// Several keys carry the label: which one seals is ambiguous.
    #[error("the PKCS#11 token {token:?} has {count} keys labelled {key:?}: give the key a label of its own")]
    AmbiguousKey {
        /// The token.
        token: String,
        /// The key label.
        key: String,
        /// How many.
        count: usize,
    },
    /// The key can leave the token: refused, since a copy of it would open the slot anywhere.
    #[error("the PKCS#11 key {key:?} is extractable or not sensitive: make a key with CKA_EXTRACTABLE=false and CKA_SENSITIVE=true (phonevault refuses keys that can leave the HSM)")]
    Extractable {
        /// The key label.
        key: String,
    },
    /// The token could not seal.
    #[error("the PKCS#11 token {token:?} could not seal with CKM_AES_GCM: {reason}")]
    Seal {
        /// The token.
        token: String,
        /// What the token said.
        reason: String,
    },
    /// The token could not unseal this slot's secret (another key, or a modified slot).
    #[error("the PKCS#11 key {key:?} of token {token:?} does not open this key slot (another key with that label, or a modified keyring)")]
    Unseal {
        /// The token.
        token: String,
        /// The key label.
        key: String,
    },
    /// Another PKCS#11 call failed.
    #[error("PKCS#11 {action} failed on token {token:?}: {reason}")]
    Token {
        /// What was being done.
        action: &'static str,
        /// The token.
        token: String,
        /// What the token said.
        reason: String,
    },
}

/// A logged-in session on the configured token, with the key found and checked.
struct Opened {
    session: Session,
    key: ObjectHandle,
}

/// The loaded, initialized PKCS#11 library at `module`: `C_Initialize` runs once per
/// process and library (a second call fails), so contexts are kept.
fn context(module: &Path) -> Result<Pkcs11, HsmError> {
    static LOADED: OnceLock<Mutex<HashMap<PathBuf, Pkcs11>>> = OnceLock::new();
    let mut loaded = LOADED
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(ctx) = loaded.get(module) {
        return Ok(ctx.clone());
    }
    let module_err = |e: CkError| HsmError::Module {
        module: module.to_owned(),
        reason: e.to_string(),
    };
    let ctx = Pkcs11::new(module).map_err(module_err)?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(module_err(e)),
    }
    loaded.insert(module.to_owned(), ctx.clone());
    Ok(ctx)
}

impl Pkcs11Config {
    fn check_labels(&self) -> Result<(), HsmError> {
        for (what, l) in [("token", &self.token), ("key", &self.key)] {
            if l.is_empty() || l.len() > MAX_PKCS11_LABEL {
                return Err(HsmError::Label { what });
            }
        }
        Ok(())
    }

    fn token_err(&self, action: &'static str) -> impl Fn(CkError) -> HsmError + '_ {
        move |e| HsmError::Token {
            action,
            token: self.token.clone(),
            reason: e.to_string(),
        }
    }

    /// A session on the configured token, logged in as the user.
    fn login(&self) -> Result<Session, HsmError> {
        self.check_labels()?;
        let ctx = context(&self.module)?;
        let slot = ctx
            .get_slots_with_token()
            .map_err(self.token_err("listing slots"))?
            .into_iter()
            .find(|s| {
                ctx.get_token_info(*s)
                    .is_ok_and(|t| t.label().trim_end() == self.token)
            })
            .ok_or_else(|| HsmError::NoToken {
                module: self.module.clone(),
                token: self.token.clone(),
            })?;
        let session = ctx
            .open_rw_session(slot)
            .map_err(self.token_err("opening a session"))?;
        let pin = AuthPin::from(self.pin.0.as_str().to_owned());
        match session.login(UserType::User, Some(&pin)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(CkError::Pkcs11(
                RvError::PinIncorrect
                | RvError::PinLocked
                | RvError::PinInvalid
                | RvError::PinLenRange,
                _,
            )) => {
                return Err(HsmError::Login {
                    token: self.token.clone(),
                })
            }
            Err(e) => return Err(self.token_err("login")(e)),
        }
        Ok(session)
    }

    fn open(&self) -> Result<Opened, HsmError> {
        let session = self.login()?;
        let found = session
            .find_objects(&[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES),
                Attribute::Label(self.key.as_bytes().to_vec()),
            ])
            .map_err(self.token_err("finding the key"))?;
        let key = match found.as_slice() {
            [] => {
                return Err(HsmError::NoKey {
                    token: self.token.clone(),
                    key: self.key.clone(),
                })
            }
            [one] => *one,
            more => {
                return Err(HsmError::AmbiguousKey {
                    token: self.token.clone(),
                    key: self.key.clone(),
                    count: more.len(),
                })
            }
        };
        let attrs = session
            .get_attributes(key, &[AttributeType::Extractable, AttributeType::Sensitive])
            .map_err(self.token_err("reading the key's attributes"))?;
        let extractable = attrs
            .iter()
            .any(|a| matches!(a, Attribute::Extractable(true)));
        let sensitive = attrs
            .iter()
            .any(|a| matches!(a, Attribute::Sensitive(true)));
        if extractable || !sensitive {
            return Err(HsmError::Extractable {
                key: self.key.clone(),
            });
        }
        Ok(Opened { session, key })
    }

    /// Seals `secret` under the token's key, bound to `aad`.
    ///
    /// # Errors
    ///
    /// [`HsmError`] saying which part failed (module, token, PIN, key, mechanism).
    pub fn seal(&self, aad: &[u8], secret: &HsmSecret) -> Result<Pkcs11Slot, HsmError> {
        let opened = self.open()?;
        let mut iv = [0u8; IV_LEN];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut iv);
        let mut iv_param = iv;
        let params =
            GcmParams::new(&mut iv_param, aad, TAG_BITS.into()).map_err(|e| HsmError::Seal {
                token: self.token.clone(),
                reason: e.to_string(),
            })?;
        let sealed = opened
            .session
            .encrypt(
                &Mechanism::AesGcm(params),
                opened.key,
                secret.expose_secret(),
            )
            .map_err(|e| HsmError::Seal {
                token: self.token.clone(),
                reason: e.to_string(),
            })?;
        let mut out = Vec::with_capacity(IV_LEN + sealed.len());
        out.extend_from_slice(&iv);
        out.extend_from_slice(&sealed);
        Ok(Pkcs11Slot {
            token: self.token.clone(),
            key: self.key.clone(),
            mechanism: Pkcs11Mechanism::AesGcm,
            sealed: out,
        })
    }

    /// Unseals the secret of a slot whose labels are this configuration's.
    ///
    /// # Errors
    ///
    /// [`HsmError::Unseal`] when the key does not open it; the others as [`seal`](Self::seal).
    pub fn unseal(&self, aad: &[u8], slot: &Pkcs11Slot) -> Result<HsmSecret, HsmError> {
        let unseal = || HsmError::Unseal {
            token: self.token.clone(),
            key: self.key.clone(),
        };
        if slot.sealed.len() <= IV_LEN || slot.mechanism != Pkcs11Mechanism::AesGcm {
            return Err(unseal());
        }
        let opened = self.open()?;
        let (iv, ct) = slot.sealed.split_at(IV_LEN);
        let mut iv = iv.to_vec();
        let params = GcmParams::new(&mut iv, aad, TAG_BITS.into()).map_err(|_| unseal())?;
        let plain = Zeroizing::new(
            opened
                .session
                .decrypt(&Mechanism::AesGcm(params), opened.key, ct)
                .map_err(|_| unseal())?,
        );
        HsmSecret::from_bytes(&plain).map_err(|_| unseal())
    }

    /// Whether a slot was made with this configuration's token and key.
    pub fn matches(&self, slot: &Pkcs11Slot) -> bool {
        slot.token == self.token && slot.key == self.key
    }

    /// Makes a non-extractable, sensitive AES-256 key labelled `self.key` in the token (for
    /// set-up and tests; operators usually make it with their HSM's own tools).
    ///
    /// # Errors
    ///
    /// As [`seal`](Self::seal).
    pub fn generate_key(&self) -> Result<(), HsmError> {
        let session = self.login()?;
        session
            .generate_key(
                &Mechanism::AesKeyGen,
                &[
                    Attribute::Token(true),
                    Attribute::Private(true),
                    Attribute::Sensitive(true),
                    Attribute::Extractable(false),
                    Attribute::Encrypt(true),
                    Attribute::Decrypt(true),
                    Attribute::ValueLen(32u64.into()),
                    Attribute::Label(self.key.as_bytes().to_vec()),
                ],
            )
            .map_err(self.token_err("generating the key"))?;
        Ok(())
    }
}
