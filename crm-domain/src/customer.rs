//! The customer entity and the inputs that create and change it.
//!
//! Inputs are not entities: a [`NewCustomer`] or a [`CustomerPatch`] comes in, a [`Customer`] comes out.
//! The entity's fields are private and only the application service and the repositories build one,
//! so a `Customer` always carries a server-set id, timestamps and version.

use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::fields::{
    Address, AddressText, CountryCode, CustomerId, Email, PersonName, Phone, Timestamp, Version,
};
use crate::validation::ValidationErrors;

/// A customer, as stored and as returned by the API.
///
/// Deserialization goes through every field's constructor, so even a stored item cannot produce an
/// invalid `Customer`.
///
/// A customer is an immutable value behind a shared pointer: cloning one, as every page of a
/// listing does for each customer it returns from a store, copies a pointer, not a dozen strings.
/// A change makes a new customer ([`patched`](Self::patched)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Customer(Arc<Fields>);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Fields {
    id: CustomerId,
    first_name: PersonName,
    last_name: PersonName,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    email: Option<Email>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    phone: Option<Phone>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    address: Option<Address>,
    created_at: Timestamp,
    updated_at: Timestamp,
    version: Version,
}

impl Serialize for Customer {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Customer {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Fields::deserialize(deserializer).map(|fields| Self(Arc::new(fields)))
    }
}

impl Customer {
    /// A customer made from `input`: version 1, created and updated at `now`, with `input.id` or `id`.
    pub fn create(input: NewCustomer, id: CustomerId, now: Timestamp) -> Self {
        Self(Arc::new(Fields {
            id: input.id.unwrap_or(id),
            first_name: input.first_name,
            last_name: input.last_name,
            email: input.email,
            phone: input.phone,
            address: input.address,
            created_at: now,
            updated_at: now,
            version: Version::FIRST,
        }))
    }

    /// A customer restored from its parts: for repositories reading back what they stored.
    ///
    /// Every part is already a valid value; the service, not this constructor, decides ids,
    /// timestamps and versions of new and changed customers.
    pub fn from_parts(parts: CustomerParts) -> Self {
        let CustomerParts {
            id,
            first_name,
            last_name,
            email,
            phone,
            address,
            created_at,
            updated_at,
            version,
        } = parts;
        Self(Arc::new(Fields {
            id,
            first_name,
            last_name,
            email,
            phone,
            address,
            created_at,
            updated_at,
            version,
        }))
    }

    /// The customer taken apart, e.g. to be written to storage.
    pub fn into_parts(self) -> CustomerParts {
        let fields = Arc::unwrap_or_clone(self.0);
        CustomerParts {
            id: fields.id,
            first_name: fields.first_name,
            last_name: fields.last_name,
            email: fields.email,
            phone: fields.phone,
            address: fields.address,
            created_at: fields.created_at,
            updated_at: fields.updated_at,
            version: fields.version,
        }
    }

    /// The customer's id.
    pub fn id(&self) -> &CustomerId {
        &self.0.id
    }
    /// First name.
    pub fn first_name(&self) -> &PersonName {
        &self.0.first_name
    }
    /// Last name.
    pub fn last_name(&self) -> &PersonName {
        &self.0.last_name
    }
    /// Email address, if any.
    pub fn email(&self) -> Option<&Email> {
        self.0.email.as_ref()
    }
    /// Phone number, if any.
    pub fn phone(&self) -> Option<&Phone> {
        self.0.phone.as_ref()
    }
    /// Postal address, if any.
    pub fn address(&self) -> Option<&Address> {
        self.0.address.as_ref()
    }
    /// When the customer was created.
    pub fn created_at(&self) -> Timestamp {
        self.0.created_at
    }
    /// When the customer last changed.
    pub fn updated_at(&self) -> Timestamp {
        self.0.updated_at
    }
    /// The current version.
    pub fn version(&self) -> Version {
        self.0.version
    }

    /// Whether `other` holds the same value as this customer in every field a client sets: the
    /// names, the email (as written: another case is another value), the phone and the address.
    /// A patch that leads from one to the other changes nothing, and repositories then write
    /// nothing: the version, `updated_at` and the change events stay as they were.
    pub fn has_same_fields_as(&self, other: &Customer) -> bool {
        let (this, other) = (&*self.0, &*other.0);
        this.first_name == other.first_name
            && this.last_name == other.last_name
            && this.email == other.email
            && this.phone == other.phone
            && this.address == other.address
    }

    /// This customer with `patch` applied (RFC 7396 semantics), its version bumped and `updated_at`
    /// set to `now`. Repositories that cannot express the patch in storage use this.
    ///
    /// # Errors
    /// When the patch sets parts of an address the customer does not have without giving `line1`.
    pub fn patched(&self, patch: &CustomerPatch, now: Timestamp) -> Result<Self, ValidationErrors> {
        let mut next = Fields::clone(&self.0);
        if let Some(name) = &patch.first_name {
            next.first_name = name.clone();
        }
        if let Some(name) = &patch.last_name {
            next.last_name = name.clone();
        }
        patch.email.apply_to(&mut next.email);
        patch.phone.apply_to(&mut next.phone);
        match &patch.address {
            Patch::Keep => {}
            Patch::Clear => next.address = None,
            Patch::Set(address_patch) => {
                next.address = Some(address_patch.merge_into(next.address.take())?);
            }
        }
        next.version = self.0.version.next();
        next.updated_at = now;
        Ok(Self(Arc::new(next)))
    }
}

/// The parts of a [`Customer`], each already valid: what a repository stores and reads back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerParts {
    /// The id.
    pub id: CustomerId,
    /// First name.
    pub first_name: PersonName,
    /// Last name.
    pub last_name: PersonName,
    /// Email address.
    pub email: Option<Email>,
    /// Phone number.
    pub phone: Option<Phone>,
    /// Postal address.
    pub address: Option<Address>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Time of the last change.
    pub updated_at: Timestamp,
    /// Version.
    pub version: Version,
}

/// What a client gives to create a customer. Every field is already valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCustomer {
    /// The id to use; the server generates one (UUIDv7) when absent.
    pub id: Option<CustomerId>,
    /// First name.
    pub first_name: PersonName,
    /// Last name.
    pub last_name: PersonName,
    /// Email address, unique across customers (case-insensitively).
    pub email: Option<Email>,
    /// Phone number.
    pub phone: Option<Phone>,
    /// Postal address.
    pub address: Option<Address>,
}

impl NewCustomer {
    /// A new customer with only the required names.
    pub fn new(first_name: PersonName, last_name: PersonName) -> Self {
        Self {
            id: None,
            first_name,
            last_name,
            email: None,
            phone: None,
            address: None,
        }
    }
}

/// How a patch treats one optional field (JSON Merge Patch: absent keeps, `null` clears, a value sets).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Patch<T> {
    /// The field was absent: keep the current value.
    #[default]
    Keep,
    /// The field was `null`: remove the value.
    Clear,
    /// The field holds a new value.
    Set(T),
}

impl<T: Clone> Patch<T> {
    /// Applies this change to `slot`.
    pub fn apply_to(&self, slot: &mut Option<T>) {
        match self {
            Patch::Keep => {}
            Patch::Clear => *slot = None,
            Patch::Set(value) => *slot = Some(value.clone()),
        }
    }

    /// True when the field is left as it is.
    pub fn is_keep(&self) -> bool {
        matches!(self, Patch::Keep)
    }
}

/// A change to some customer fields, with JSON Merge Patch (RFC 7396) semantics.
///
/// Required fields can be replaced but not cleared, which is why they are plain `Option`s.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CustomerPatch {
    /// A new first name.
    pub first_name: Option<PersonName>,
    /// A new last name.
    pub last_name: Option<PersonName>,
    /// Keep, clear or replace the email address.
    pub email: Patch<Email>,
    /// Keep, clear or replace the phone number.
    pub phone: Patch<Phone>,
    /// Keep or clear the address, or merge parts into it.
    pub address: Patch<AddressPatch>,
}

impl CustomerPatch {
    /// True when the patch changes nothing.
    pub fn is_empty(&self) -> bool {
        self.first_name.is_none()
            && self.last_name.is_none()
            && self.email.is_keep()
            && self.phone.is_keep()
            && self.address.is_keep()
    }
}

/// A change merged into an address: `line1` can be replaced but not cleared, the other parts follow
/// [`Patch`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AddressPatch {
    /// A new first line.
    pub line1: Option<AddressText>,
    /// Keep, clear or replace the second line.
    pub line2: Patch<AddressText>,
    /// Keep, clear or replace the city.
    pub city: Patch<AddressText>,
    /// Keep, clear or replace the region.
    pub region: Patch<AddressText>,
    /// Keep, clear or replace the postal code.
    pub postal_code: Patch<AddressText>,
    /// Keep, clear or replace the country.
    pub country: Patch<CountryCode>,
}

impl AddressPatch {
    /// Merges this patch into `current` (or into an empty address).
    ///
    /// # Errors
    /// When there is no current address and the patch gives no `line1`.
    pub fn merge_into(&self, current: Option<Address>) -> Result<Address, ValidationErrors> {
        let mut address = match (current, &self.line1) {
            (Some(current), _) => current,
            (None, Some(line1)) => Address::new(line1.clone()),
            (None, None) => return Err(Self::line1_required()),
        };
        if let Some(line1) = &self.line1 {
            address.line1 = line1.clone();
        }
        self.line2.apply_to(&mut address.line2);
        self.city.apply_to(&mut address.city);
        self.region.apply_to(&mut address.region);
        self.postal_code.apply_to(&mut address.postal_code);
        self.country.apply_to(&mut address.country);
        Ok(address)
    }

    /// The error for a patch that starts an address without its first line.
    pub fn line1_required() -> ValidationErrors {
        ValidationErrors::single(
            "address.line1",
            "is required: the customer has no address yet, so a patch that sets address parts must give line1",
        )
    }
}
