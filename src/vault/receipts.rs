//! Consent receipts (see [`crate::receipt`]): the vault's Ed25519 receipt key, each
//! tenant's controller details, and the list of receipts issued for each record. All
//! three are `meta` rows sealed under the vault state key (as the SMS settings are):
//!
//! ```text
//! "receipt-key"                                 the signing key's 32-byte seed
//! "receipt-ctl:" ‖ u32-be(tenant id)            controller, contact, policy URL, jurisdiction
//! "receipts:" ‖ u32-be(tenant id) ‖ record id   (receipt id, time, purposes, SHA-256 of the file)
//! ```
//!
//! A receipt names a record's purposes, so its list is sealed like the record; it is
//! deleted with the record (erase, delete, purge).

use bincode::{Decode, Encode};
use rand::RngCore;
use zeroize::{Zeroize, Zeroizing};

use super::lifecycle::Target;
use super::{Vault, VaultError};
use crate::policy::{Source, TenantName};
use crate::receipt::{self, ReceiptFields};
use crate::record::RecordId;
use crate::store::{Batch, Tree};

const KEY_ROW: &[u8] = b"receipt-key";
const KEY_LABEL: &[u8] = b"phonevault/v1/receipt-signing-key";
const CTL_PREFIX: &[u8] = b"receipt-ctl:";
const CTL_LABEL: &[u8] = b"phonevault/v1/receipt-controller";
const LIST_PREFIX: &[u8] = b"receipts:";
const LIST_LABEL: &[u8] = b"phonevault/v1/receipts";
/// Most receipts listed per record; older ones drop off the list (their files still
/// verify).
pub const MAX_RECEIPTS_PER_RECORD: usize = 256;

#[derive(Encode, Decode)]
struct KeyRow {
    seed: [u8; 32],
}

impl Drop for KeyRow {
    fn drop(&mut self) {
        self.seed.zeroize();
    }
}

/// A tenant's controller details, as receipts name them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Encode, Decode, serde::Serialize)]
pub struct ReceiptController {
    /// The controller's name.
    pub controller: String,
    /// Its privacy contact (address, e-mail).
    pub contact: String,
    /// The privacy policy consents are given under.
    pub policy_url: String,
    /// Jurisdiction (e.g. `GB`), optional.
    pub jurisdiction: Option<String>,
}

/// One receipt issued for a record, as `subject` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, serde::Serialize)]
pub struct ReceiptEntry {
    /// Receipt id.
    pub id: String,
    /// Unix seconds of the consent it records.
    pub time: u64,
    /// Its purposes.
    pub purposes: Vec<String>,
    /// SHA-256 of the receipt file, hex.
    pub sha256: String,
}

fn ctl_key(tenant_id: u32) -> Vec<u8> {
    let mut k = CTL_PREFIX.to_vec();
    k.extend_from_slice(&tenant_id.to_be_bytes());
    k
}

pub(super) fn list_key(tenant_id: u32, id: &RecordId) -> Vec<u8> {
    let mut k = LIST_PREFIX.to_vec();
    k.extend_from_slice(&tenant_id.to_be_bytes());
    k.extend_from_slice(&id.0);
    k
}

fn check_field(what: &str, s: &str, max: usize) -> Result<(), VaultError> {
    if s.trim().is_empty() || s.chars().count() > max || s.chars().any(char::is_control) {
        return Err(VaultError::InvalidArgument(format!(
            "{what} must be 1 to {max} characters without control characters"
        )));
    }
    Ok(())
}

impl Vault {
    /// The receipt signing key, made (and stored sealed) on first use.
    fn receipt_key(&self) -> Result<ed25519_dalek::SigningKey, VaultError> {
        loop {
            if let Some((row, _)) = self.sealed_row::<KeyRow>(KEY_LABEL, "receipt key", KEY_ROW)? {
                return Ok(ed25519_dalek::SigningKey::from_bytes(&row.seed));
            }
            let mut row = KeyRow { seed: [0; 32] };
            rand::rngs::OsRng.fill_bytes(&mut row.seed);
            let sealed = self.seal_row(KEY_LABEL, KEY_ROW, &row)?;
            let made = self.audited("receipt-key-create", None, None, |ev| {
                let mut b = Batch::default();
                b.guard(Tree::Meta, KEY_ROW.to_vec(), None);
                b.put(Tree::Meta, KEY_ROW.to_vec(), sealed);
                self.commit_audited(&mut b, ev)
            });
            match made {
                // Another process made it first: use theirs.
                Ok(()) | Err(VaultError::Store(crate::store::StoreError::Conflict)) => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// The public key receipts are signed with (32 bytes), made on first use.
    ///
    /// # Errors
    /// Store and key errors.
    pub fn receipt_public_key(&self) -> Result<[u8; 32], VaultError> {
        Ok(self.receipt_key()?.verifying_key().to_bytes())
    }

    /// Sets the controller details receipts of `tenant` name; audited as
    /// `tenant-set-receipt`.
    ///
    /// # Errors
    /// [`VaultError::UnknownTenant`], [`VaultError::InvalidArgument`].
    pub fn set_receipt_controller(
        &self,
        tenant: &TenantName,
        c: &ReceiptController,
    ) -> Result<ReceiptController, VaultError> {
        let tenant = tenant.as_str();
        check_field("--controller", &c.controller, 256)?;
        check_field("--contact", &c.contact, 256)?;
        check_field("--policy-url", &c.policy_url, 2048)?;
        if !c.policy_url.starts_with("https://") && !c.policy_url.starts_with("http://") {
            return Err(VaultError::InvalidArgument(
                "--policy-url must be an http(s) URL".into(),
            ));
        }
        if let Some(j) = &c.jurisdiction {
            check_field("--jurisdiction", j, 64)?;
        }
        self.audited("tenant-set-receipt", Some(tenant), None, |ev| {
            let ctx = self.tenant(tenant)?;
            let key = ctl_key(ctx.row.id);
            let _w = self.write_guard();
            let old = self
                .sealed_row::<ReceiptController>(CTL_LABEL, "receipt controller", &key)?
                .map(|(_, stored)| stored);
            let mut b = Batch::default();
            b.guard(Tree::Meta, key.clone(), old);
            b.put(Tree::Meta, key.clone(), self.seal_row(CTL_LABEL, &key, c)?);
            self.commit_audited(&mut b, ev)?;
            Ok(c.clone())
        })
    }

    /// The controller details of `tenant`, if set.
    ///
    /// # Errors
    /// [`VaultError::UnknownTenant`], [`VaultError::RowTampered`].
    pub fn receipt_controller(
        &self,
        tenant: &TenantName,
    ) -> Result<Option<ReceiptController>, VaultError> {
        let tenant = tenant.as_str();
        let ctx = self.tenant(tenant)?;
        Ok(self
            .sealed_row::<ReceiptController>(CTL_LABEL, "receipt controller", &ctl_key(ctx.row.id))?
            .map(|(c, _)| c))
    }

    /// The receipts issued for record `id` of `tenant`, oldest first.
    pub(super) fn receipts_of(
        &self,
        tenant_id: u32,
        id: &RecordId,
    ) -> Result<Vec<ReceiptEntry>, VaultError> {
        Ok(self
            .sealed_row::<Vec<ReceiptEntry>>(LIST_LABEL, "receipts", &list_key(tenant_id, id))?
            .map(|(l, _)| l)
            .unwrap_or_default())
    }

    /// Grants consent for `purposes` (as [`Vault::add`] by number, or
    /// [`Vault::grant_by_id`]) and issues a signed receipt of it: what the grant
    /// changed (with the record id) and the receipt file's bytes. The grant is durable before the receipt is made; the
    /// receipt is listed with the record (`subject`) once this returns. Audited as the
    /// grant's own entry, then `consent-receipt` with the record id.
    ///
    /// # Errors
    /// As the grant; [`VaultError::InvalidArgument`] when the tenant has no controller
    /// details (`tenant set-receipt`), checked before anything is granted.
    pub fn grant_with_receipt(
        &self,
        tenant: &TenantName,
        target: Target<'_>,
        purposes: &[String],
        source: &Source,
        method: &str,
    ) -> Result<(super::Changed, Vec<u8>), VaultError> {
        let Some(ctl) = self.receipt_controller(tenant)? else {
            return Err(VaultError::InvalidArgument(format!(
                "tenant `{tenant}` has no controller details for receipts: set them with `phonevault tenant set-receipt {tenant} --controller NAME --contact EMAIL --policy-url URL`"
            )));
        };
        let changed = match target {
            Target::Phone { input, region } => {
                match self.add(tenant, input, region, purposes, source)? {
                    super::AddOutcome::Unchanged(id) => super::Changed::No(id),
                    super::AddOutcome::Created(id) | super::AddOutcome::Merged(id) => {
                        super::Changed::Yes(id)
                    }
                }
            }
            Target::Id(id) => self.grant_by_id(tenant, id, purposes, source)?,
        };
        let id = changed.id();
        let key = self.receipt_key()?;
        let mut rid = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut rid);
        let fields = ReceiptFields {
            receipt_id: hex::encode(rid),
            time: self.now(),
            jurisdiction: ctl.jurisdiction.clone(),
            controller: ctl.controller.clone(),
            contact: ctl.contact.clone(),
            policy_url: ctl.policy_url.clone(),
            service: tenant.to_string(),
            record_id: id.to_string(),
            purposes: purposes.to_vec(),
            source: source.to_string(),
            method: method.to_owned(),
        };
        let file = Zeroizing::new(receipt::issue(&key, &fields));
        let entry = ReceiptEntry {
            id: fields.receipt_id.clone(),
            time: fields.time,
            purposes: fields.purposes.clone(),
            sha256: hex::encode(receipt::digest(&file)),
        };
        self.audited("consent-receipt", Some(tenant.as_str()), None, |ev| {
            let ctx = self.tenant(tenant.as_str())?;
            let lk = list_key(ctx.row.id, &id);
            let _w = self.write_guard();
            // The record may have been erased since the grant: no list for it then.
            if self.open_record(&ctx, &id)?.is_none() {
                return Err(VaultError::NoSuchRecord(tenant.to_string()));
            }
            ev.touch(&id);
            let (mut list, old) =
                match self.sealed_row::<Vec<ReceiptEntry>>(LIST_LABEL, "receipts", &lk)? {
                    Some((l, stored)) => (l, Some(stored)),
                    None => (Vec::new(), None),
                };
            list.push(entry.clone());
            if list.len() > MAX_RECEIPTS_PER_RECORD {
                list.remove(0);
            }
            let mut b = Batch::default();
            b.guard(Tree::Meta, lk.clone(), old);
            b.put(
                Tree::Meta,
                lk.clone(),
                self.seal_row(LIST_LABEL, &lk, &list)?,
            );
            self.commit_audited(&mut b, ev)
        })?;
        Ok((changed, file.to_vec()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;
    use crate::policy::values::{source, tenant};
    use crate::store::MemoryStore;
    use std::sync::Arc;

    fn vault() -> Vault {
        let v = Vault::in_memory(Arc::new(MemoryStore::new())).unwrap();
        v.create_tenant(
            &tenant("shop"),
            &["otp".to_owned(), "marketing".to_owned()],
            None,
        )
        .unwrap();
        v.set_receipt_controller(
            &tenant("shop"),
            &ReceiptController {
                controller: "Shop Ltd".into(),
                contact: "privacy@shop.example".into(),
                policy_url: "https://shop.example/privacy".into(),
                jurisdiction: None,
            },
        )
        .unwrap();
        v
    }

    const PHONE: Target<'static> = Target::Phone {
        input: "+447400123958",
        region: None,
    };

    #[test]
    fn a_receipt_is_listed_sealed_and_goes_with_its_record() {
        let v = vault();
        let p = ["marketing".to_owned()];
        let (c, file) = v
            .grant_with_receipt(&tenant("shop"), PHONE, &p, &source("web"), "api")
            .unwrap();
        let tid = v.tenant("shop").unwrap().row.id;
        let list = v.receipts_of(tid, &c.id()).unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].sha256, hex::encode(receipt::digest(&file)));
        // Sealed at rest: the stored row names no purpose in clear.
        let stored = v
            .store
            .get(Tree::Meta, &list_key(tid, &c.id()))
            .unwrap()
            .unwrap();
        assert!(!stored.windows(9).any(|w| w == b"marketing"));
        let pk = v.receipt_public_key().unwrap();
        assert!(receipt::verify(&file, &pk).is_ok());
        v.erase(&tenant("shop"), PHONE).unwrap();
        assert!(v
            .store
            .get(Tree::Meta, &list_key(tid, &c.id()))
            .unwrap()
            .is_none());
    }

    #[test]
    fn without_controller_details_nothing_is_granted() {
        let v = Vault::in_memory(Arc::new(MemoryStore::new())).unwrap();
        v.create_tenant(&tenant("shop"), &["otp".to_owned()], None)
            .unwrap();
        let e = v
            .grant_with_receipt(
                &tenant("shop"),
                PHONE,
                &["otp".to_owned()],
                &source("web"),
                "api",
            )
            .unwrap_err();
        assert!(matches!(e, VaultError::InvalidArgument(_)), "{e}");
        assert!(v
            .subject(&tenant("shop"), "+447400123958", None)
            .unwrap()
            .is_none());
    }
}
