//! From the cells of a row, as people write them, to a [`NewCustomer`] the API accepts.
//!
//! The API stays strict; this is where the leniency lives, and only here:
//!
//! - every value is trimmed, and an empty cell is an absent field;
//! - a phone is read by `phonenumber` (Google's libphonenumber, ported): `+44 20 7123 4567`
//!   anywhere, `(020) 7123 4567` with `--phone-region GB`, and written in E.164
//!   (`+442071234567`); a number that is not valid for its country, that has an extension, or
//!   that has no `+` when no region was given, is refused;
//! - a country is a code or a name ([`countries`]);
//! - a first address line written on several lines (as Salesforce's `MailingStreet` is) keeps
//!   its first line, and the rest becomes `line2` when the row has none;
//! - names, emails and the other parts go through the domain's own rules unchanged.
//!
//! What cannot be read is refused with the field and a reason, never guessed. Reasons never
//! repeat the value: they are shown on terminals and in logs.

use crm_domain::{
    Address, AddressText, CountryCode, CustomerId, Email, FieldError, InvalidValue, NewCustomer,
    PersonName, Phone,
};
use phonenumber::country::Id as PhoneRegion;

use crate::columns::Column;
use crate::countries;

/// The values of one row, by [`Column`]; `None` for a column the file does not have.
pub type Cells<'a> = [Option<&'a str>; 11];

/// Turns rows into customers, with the user's defaults.
#[derive(Debug, Clone, Default)]
pub struct Normalizer {
    phone_region: Option<(PhoneRegion, String)>,
}

impl Normalizer {
    /// A normalizer that reads phone numbers without `+` as numbers of `phone_region` (an ISO
    /// 3166-1 alpha-2 code, such as `GB`).
    ///
    /// # Errors
    /// When `phone_region` is not a region libphonenumber knows.
    pub fn new(phone_region: Option<&str>) -> Result<Self, String> {
        let phone_region = match phone_region.map(str::trim) {
            None => None,
            Some(region) => {
                let upper = region.to_ascii_uppercase();
                let id = upper
                    .parse::<PhoneRegion>()
                    .ok()
                    .filter(|_| upper.len() == 2)
                    .ok_or_else(|| {
                        format!(
                            "--phone-region {region}: not a region of phone numbers; give an ISO 3166-1 alpha-2 code, such as GB"
                        )
                    })?;
                Some((id, upper))
            }
        };
        Ok(Self { phone_region })
    }

    /// The customer in `cells`, or every field that cannot be read.
    ///
    /// # Errors
    /// Each failing field, named by its JSON path, with its reason.
    pub fn customer(&self, cells: &Cells<'_>) -> Result<NewCustomer, Vec<FieldError>> {
        let mut errors = Vec::new();
        let cell = |column: Column| {
            cells[column.index()]
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        let id = field(&mut errors, Column::Id, cell(Column::Id), CustomerId::parse);
        let first = required(&mut errors, Column::FirstName, cell(Column::FirstName));
        let last = required(&mut errors, Column::LastName, cell(Column::LastName));
        let email = field(
            &mut errors,
            Column::Email,
            cell(Column::Email),
            Email::parse,
        );
        let phone = cell(Column::Phone).and_then(|text| match self.phone(text) {
            Ok(phone) => Some(phone),
            Err(reason) => {
                errors.push(FieldError::new(Column::Phone.name(), reason));
                None
            }
        });
        let address = address(&mut errors, &cell);
        match (first, last) {
            (Some(first_name), Some(last_name)) if errors.is_empty() => Ok(NewCustomer {
                id,
                first_name,
                last_name,
                email,
                phone,
                address,
            }),
            _ => Err(errors),
        }
    }

    /// A phone number in E.164.
    ///
    /// # Errors
    /// Why it cannot be one, without repeating it.
    pub fn phone(&self, text: &str) -> Result<Phone, String> {
        let international = text.starts_with('+');
        let region = self.phone_region.as_ref();
        if !international && region.is_none() {
            return Err(
                "has no country code: write it with + and the country code, or give --phone-region"
                    .to_owned(),
            );
        }
        let number = phonenumber::parse(region.map(|(id, _)| *id), text)
            .map_err(|_| "is not a phone number".to_owned())?;
        if number.extension().is_some() {
            return Err("has an extension, which an E.164 number cannot hold".to_owned());
        }
        if !phonenumber::is_valid(&number) {
            return Err(match (international, region) {
                (false, Some((_, code))) => format!("is not a valid phone number in {code}"),
                _ => "is not a valid phone number".to_owned(),
            });
        }
        let e164 = number.format().mode(phonenumber::Mode::E164).to_string();
        Phone::parse(&e164).map_err(|e| e.message().to_owned())
    }
}

fn field<T>(
    errors: &mut Vec<FieldError>,
    column: Column,
    text: Option<&str>,
    parse: fn(&str) -> Result<T, InvalidValue>,
) -> Option<T> {
    let text = text?;
    match parse(text) {
        Ok(value) => Some(value),
        Err(e) => {
            errors.push(e.at(column.name()));
            None
        }
    }
}

fn required(
    errors: &mut Vec<FieldError>,
    column: Column,
    text: Option<&str>,
) -> Option<PersonName> {
    if text.is_none() {
        errors.push(FieldError::new(column.name(), "is required"));
        return None;
    }
    field(errors, column, text, PersonName::parse)
}

fn address<'a>(
    errors: &mut Vec<FieldError>,
    cell: &impl Fn(Column) -> Option<&'a str>,
) -> Option<Address> {
    let parts = [
        Column::Line1,
        Column::Line2,
        Column::City,
        Column::Region,
        Column::PostalCode,
        Column::Country,
    ];
    if parts.iter().all(|c| cell(*c).is_none()) {
        return None;
    }
    let mut line1_text = cell(Column::Line1).map(str::to_owned);
    let mut line2_text = cell(Column::Line2).map(str::to_owned);
    // A street on several lines: its first line, and the rest as line 2 when there is none.
    if let Some(street) = line1_text.clone()
        && street.contains(['\n', '\r'])
        && line2_text.is_none()
    {
        let mut lines = street.lines().map(str::trim).filter(|l| !l.is_empty());
        line1_text = lines.next().map(str::to_owned);
        let rest: Vec<&str> = lines.collect();
        line2_text = (!rest.is_empty()).then(|| rest.join(", "));
    }
    let line1 = if let Some(text) = line1_text.as_deref() {
        field(errors, Column::Line1, Some(text), AddressText::parse)
    } else {
        errors.push(FieldError::new(
            Column::Line1.name(),
            "is required when the address has other parts (city, region, postal code or country)",
        ));
        None
    };
    let line2 = field(
        errors,
        Column::Line2,
        line2_text.as_deref(),
        AddressText::parse,
    );
    let city = field(errors, Column::City, cell(Column::City), AddressText::parse);
    let region = field(
        errors,
        Column::Region,
        cell(Column::Region),
        AddressText::parse,
    );
    let postal_code = field(
        errors,
        Column::PostalCode,
        cell(Column::PostalCode),
        AddressText::parse,
    );
    let country: Option<CountryCode> = cell(Column::Country).and_then(|text| {
        countries::parse(text)
            .map_err(|e| errors.push(FieldError::new(Column::Country.name(), e.to_string())))
            .ok()
    });
    Some(Address {
        line1: line1?,
        line2,
        city,
        region,
        postal_code,
        country,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cells<'a>(pairs: &[(Column, &'a str)]) -> Cells<'a> {
        let mut cells: Cells<'a> = [None; 11];
        for (column, value) in pairs {
            cells[column.index()] = Some(value);
        }
        cells
    }

    fn fields(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn phones_are_read_as_written_and_written_in_e164() {
        let gb = Normalizer::new(Some("gb")).unwrap();
        for written in [
            "(020) 7123 4567",
            "020 7123 4567",
            "+44 20 7123 4567",
            "+44 (0)20 7123-4567",
        ] {
            assert_eq!(
                gb.phone(written).unwrap().as_str(),
                "+442071234567",
                "{written}"
            );
        }
        // A + number keeps its own country whatever the default.
        assert_eq!(
            gb.phone("+1 415-555-2671").unwrap().as_str(),
            "+14155552671"
        );
        let none = Normalizer::new(None).unwrap();
        assert_eq!(none.phone("+49 30 901820").unwrap().as_str(), "+4930901820");
        assert!(
            none.phone("(020) 7123 4567")
                .unwrap_err()
                .contains("--phone-region")
        );
    }

    #[test]
    fn phones_that_cannot_be_numbers_are_refused() {
        let gb = Normalizer::new(Some("GB")).unwrap();
        assert!(gb.phone("12").is_err());
        assert!(gb.phone("call me").is_err());
        assert!(gb.phone("020 7123").unwrap_err().contains("in GB"));
        assert!(
            gb.phone("+44 20 7123 4567 ext. 12")
                .unwrap_err()
                .contains("extension")
        );
        assert!(Normalizer::new(Some("Britain")).is_err());
        assert!(Normalizer::new(Some("XX")).is_err());
    }

    #[test]
    fn a_row_becomes_a_customer_with_every_value_trimmed_and_read() {
        let n = Normalizer::new(Some("GB")).unwrap();
        let customer = n
            .customer(&cells(&[
                (Column::FirstName, " Ada "),
                (Column::LastName, "Lovelace"),
                (Column::Email, "ada@example.com "),
                (Column::Phone, "(020) 7123 4567"),
                (Column::Line1, "12 St James's Square\nFloor 2"),
                (Column::City, "London"),
                (Column::Country, "United Kingdom"),
                (Column::Region, ""),
            ]))
            .unwrap();
        assert_eq!(customer.first_name.as_str(), "Ada");
        assert_eq!(customer.email.unwrap().as_str(), "ada@example.com");
        assert_eq!(customer.phone.unwrap().as_str(), "+442071234567");
        let address = customer.address.unwrap();
        assert_eq!(address.line1.as_str(), "12 St James's Square");
        assert_eq!(address.line2.unwrap().as_str(), "Floor 2");
        assert_eq!(address.country.unwrap().as_str(), "GB");
        assert!(address.region.is_none());
        assert!(customer.id.is_none());
    }

    #[test]
    fn every_failing_field_is_reported_without_its_value() {
        let n = Normalizer::new(None).unwrap();
        let errors = n
            .customer(&cells(&[
                (Column::FirstName, "  "),
                (Column::Email, "not-an-email"),
                (Column::Phone, "0207 123 4567"),
                (Column::City, "London"),
                (Column::Country, "Korea"),
                (Column::Id, "a b"),
            ]))
            .unwrap_err();
        assert_eq!(
            fields(&errors),
            [
                "id",
                "firstName",
                "lastName",
                "email",
                "phone",
                "address.line1",
                "address.country"
            ]
        );
        for error in &errors {
            for value in ["not-an-email", "0207", "London", "Korea"] {
                assert!(!error.message.contains(value), "{error}");
            }
        }
    }
}
