//! Which column of a file holds which field of a customer.
//!
//! A file's headers are matched to the eleven fields import knows (its *columns*, named as the
//! API's JSON paths: `firstName`, `address.city`, …) whatever their case, spacing and
//! punctuation (`First Name`, `first_name` and `FirstName` are one header), against the names
//! the common CRM exports use:
//!
//! | field | headers matched by default |
//! | --- | --- |
//! | `id` | `id`, exactly as `crm export` writes it: never `Id`, `ID` or `Record ID` (see below) |
//! | `firstName` | `First Name` (in `HubSpot` exports), `FirstName` (in Salesforce ones), `Given Name`, `Forename` |
//! | `lastName` | `Last Name`, `LastName`, `Surname`, `Family Name` |
//! | `email` | `Email`, `Email Address`, `E-mail` |
//! | `phone` | `Phone Number` (in `HubSpot` exports), `Phone` (in Salesforce ones), `Telephone` |
//! | `address.line1` | `Street Address`, `MailingStreet`, `Street`, `Address`, `Address 1`, `Address Line 1` |
//! | `address.line2` | `Street Address 2`, `Address 2`, `Address Line 2` |
//! | `address.city` | `City`, `MailingCity`, `Town` |
//! | `address.region` | `State/Region`, `MailingState`, `State`, `Region`, `Province` |
//! | `address.postalCode` | `Postal Code`, `MailingPostalCode`, `Zip`, `Zip Code`, `Postcode` |
//! | `address.country` | `Country/Region`, `MailingCountry`, `Country`, `Country Code` |
//!
//! `--map field=Header` overrides a field's match, case-insensitively on the header.
//!
//! **Another system's record id is not taken as ours by default.** `HubSpot`'s `Record ID` and
//! Salesforce's `Id` name records in *their* systems: `HubSpot`'s are small numbers, so two portals'
//! exports collide, and an id is forever here (it is in every URL of the customer). A rerun is
//! safe without them: rows without an id get one derived from the file and the row, and rows
//! with an email are matched by it. `--map id="Record ID"` takes them when that is wanted.

use std::fmt;

/// A field of a customer that import fills, named by its JSON path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Column {
    /// `id`
    Id,
    /// `firstName`
    FirstName,
    /// `lastName`
    LastName,
    /// `email`
    Email,
    /// `phone`
    Phone,
    /// `address.line1`
    Line1,
    /// `address.line2`
    Line2,
    /// `address.city`
    City,
    /// `address.region`
    Region,
    /// `address.postalCode`
    PostalCode,
    /// `address.country`
    Country,
}

impl Column {
    /// Every column, in the order export writes them.
    pub const ALL: [Self; 11] = [
        Self::Id,
        Self::FirstName,
        Self::LastName,
        Self::Email,
        Self::Phone,
        Self::Line1,
        Self::Line2,
        Self::City,
        Self::Region,
        Self::PostalCode,
        Self::Country,
    ];

    /// The field's JSON path: the header export writes, the name `--map` takes.
    pub fn name(self) -> &'static str {
        match self {
            Self::Id => "id",
            Self::FirstName => "firstName",
            Self::LastName => "lastName",
            Self::Email => "email",
            Self::Phone => "phone",
            Self::Line1 => "address.line1",
            Self::Line2 => "address.line2",
            Self::City => "address.city",
            Self::Region => "address.region",
            Self::PostalCode => "address.postalCode",
            Self::Country => "address.country",
        }
    }

    /// Its position in [`Column::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The headers matched by default, [folded](fold).
    fn aliases(self) -> &'static [&'static str] {
        match self {
            // Only the exact header `id`: see the module docs.
            Self::Id => &[],
            Self::FirstName => &["firstname", "givenname", "forename"],
            Self::LastName => &["lastname", "surname", "familyname"],
            Self::Email => &["email", "emailaddress"],
            Self::Phone => &["phone", "phonenumber", "telephone"],
            Self::Line1 => &[
                "addressline1",
                "streetaddress",
                "mailingstreet",
                "street",
                "address",
                "address1",
            ],
            Self::Line2 => &["addressline2", "streetaddress2", "address2"],
            Self::City => &["addresscity", "city", "mailingcity", "town"],
            Self::Region => &[
                "addressregion",
                "stateregion",
                "mailingstate",
                "state",
                "region",
                "province",
            ],
            Self::PostalCode => &[
                "addresspostalcode",
                "postalcode",
                "mailingpostalcode",
                "zip",
                "zipcode",
                "postcode",
            ],
            Self::Country => &[
                "addresscountry",
                "countryregion",
                "mailingcountry",
                "country",
                "countrycode",
            ],
        }
    }

    /// The column a `--map` field name names (`firstName`, `address.city`, case-insensitively).
    fn named(name: &str) -> Option<Self> {
        let name = name.trim();
        Self::ALL
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for Column {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The columns the server sets, which export writes and import skips without a note.
pub const SERVER_COLUMNS: [&str; 3] = ["createdAt", "updatedAt", "version"];

/// A header as matched: lower case, letters and digits only (`State/Region` → `stateregion`).
fn fold(header: &str) -> String {
    header
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// The column map: defaults plus the user's `--map` choices.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ColumnMap {
    /// Fields mapped by `--map`, to a header (compared case-insensitively) or to none (`field=`).
    chosen: Vec<(Column, Option<String>)>,
}

impl ColumnMap {
    /// Reads `--map` values: `field=Header` pairs, separated by commas or given one per flag.
    ///
    /// # Errors
    /// A pair without `=`, an unknown field, or a field given twice; the message names it.
    pub fn parse(specs: &[String]) -> Result<Self, String> {
        let mut chosen: Vec<(Column, Option<String>)> = Vec::new();
        for pair in specs.iter().flat_map(|s| s.split(',')) {
            if pair.trim().is_empty() {
                continue;
            }
            let Some((field, header)) = pair.split_once('=') else {
                return Err(format!(
                    "--map takes field=Header pairs, such as firstName=\"First Name\"; `{pair}` has no `=`"
                ));
            };
            let column = Column::named(field).ok_or_else(|| {
                format!(
                    "--map: `{}` is not a field; the fields are {}",
                    field.trim(),
                    Column::ALL.map(Column::name).join(", ")
                )
            })?;
            if chosen.iter().any(|(c, _)| *c == column) {
                return Err(format!("--map gives {column} twice"));
            }
            let header = header.trim().trim_matches('"').trim();
            chosen.push((column, (!header.is_empty()).then(|| header.to_owned())));
        }
        Ok(Self { chosen })
    }

    /// The column `header` feeds, if any: a `--map` choice first, then the defaults (for a field
    /// that `--map` did not name).
    pub fn column_of(&self, header: &str) -> Option<Column> {
        let header = header.trim();
        if let Some((column, _)) = self.chosen.iter().find(|(_, h)| {
            h.as_deref()
                .is_some_and(|h| h.to_lowercase() == header.to_lowercase())
        }) {
            return Some(*column);
        }
        let folded = fold(header);
        Column::ALL
            .into_iter()
            .filter(|c| !self.chosen.iter().any(|(chosen, _)| chosen == c))
            .find(|c| {
                if *c == Column::Id {
                    header == "id"
                } else {
                    c.aliases().contains(&folded.as_str())
                }
            })
    }

    /// Resolves a CSV header row: which header index feeds each column.
    ///
    /// # Errors
    /// When two headers feed one column, when a `--map` header is not in the file, or when no
    /// header feeds `firstName` or `lastName`; the message names the headers and the fix.
    pub fn resolve(&self, headers: &[&str]) -> Result<Resolved, String> {
        let mut sources: [Option<usize>; 11] = [None; 11];
        let mut ignored = Vec::new();
        for (index, header) in headers.iter().enumerate() {
            let Some(column) = self.column_of(header) else {
                let header = header.trim();
                // A header given twice is named once.
                if !SERVER_COLUMNS.contains(&header) && !ignored.iter().any(|h| h == header) {
                    ignored.push(header.to_owned());
                }
                continue;
            };
            if let Some(earlier) = sources[column.index()] {
                return Err(format!(
                    "the columns \"{}\" and \"{}\" both hold {column}; choose one with --map {column}=\"…\"",
                    headers[earlier].trim(),
                    header.trim()
                ));
            }
            sources[column.index()] = Some(index);
        }
        for (column, header) in &self.chosen {
            if let Some(header) = header
                && sources[column.index()].is_none()
            {
                return Err(format!(
                    "--map {column}=\"{header}\": the file has no column \"{header}\""
                ));
            }
        }
        for required in [Column::FirstName, Column::LastName] {
            if sources[required.index()].is_none() {
                return Err(format!(
                    "no column holds {required}, which every customer needs; name it with --map {required}=\"<header>\""
                ));
            }
        }
        Ok(Resolved { sources, ignored })
    }
}

/// A header row resolved: where each column's value is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    sources: [Option<usize>; 11],
    ignored: Vec<String>,
}

impl Resolved {
    /// The index, in a record, of the value of `column`, if the file has it.
    pub fn source(&self, column: Column) -> Option<usize> {
        self.sources[column.index()]
    }

    /// The headers that feed no column (the server's own columns left out), in file order.
    pub fn ignored(&self) -> &[String] {
        &self.ignored
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(map: &[&str], headers: &[&str]) -> Result<Resolved, String> {
        let specs: Vec<String> = map.iter().map(|s| (*s).to_owned()).collect();
        ColumnMap::parse(&specs)?.resolve(headers)
    }

    #[test]
    fn a_header_given_twice_is_named_once_among_the_ignored() {
        let r = resolve(
            &[],
            &["First Name", "Last Name", "Owner", " Owner", "Notes"],
        )
        .unwrap();
        assert_eq!(r.ignored(), ["Owner", "Notes"]);
    }

    #[test]
    fn hubspot_headers_are_read_by_default() {
        let headers = [
            "Record ID",
            "First Name",
            "Last Name",
            "Email",
            "Phone Number",
            "Street Address",
            "City",
            "State/Region",
            "Postal Code",
            "Country/Region",
            "Lead Status",
        ];
        let r = resolve(&[], &headers).unwrap();
        assert_eq!(r.source(Column::FirstName), Some(1));
        assert_eq!(r.source(Column::Region), Some(7));
        assert_eq!(r.source(Column::Country), Some(9));
        assert_eq!(r.source(Column::Id), None);
        assert_eq!(r.ignored(), ["Record ID", "Lead Status"]);
    }

    #[test]
    fn salesforce_headers_are_read_by_default_but_not_its_ids() {
        let headers = [
            "Id",
            "FirstName",
            "LastName",
            "Email",
            "Phone",
            "MailingStreet",
            "MailingCity",
            "MailingState",
            "MailingPostalCode",
            "MailingCountry",
        ];
        let r = resolve(&[], &headers).unwrap();
        assert_eq!(r.source(Column::Id), None);
        assert_eq!(r.source(Column::Line1), Some(5));
        assert_eq!(r.source(Column::PostalCode), Some(8));
        assert_eq!(r.ignored(), ["Id"]);
        let mapped = resolve(&["id=ID"], &headers).unwrap();
        assert_eq!(mapped.source(Column::Id), Some(0));
    }

    #[test]
    fn exported_headers_round_trip() {
        let mut headers: Vec<&str> = Column::ALL.map(Column::name).to_vec();
        headers.extend(SERVER_COLUMNS);
        let r = resolve(&[], &headers).unwrap();
        for column in Column::ALL {
            assert_eq!(r.source(column), Some(column.index()), "{column}");
        }
        assert!(r.ignored().is_empty());
    }

    #[test]
    fn a_map_overrides_the_defaults_case_insensitively() {
        let r = resolve(
            &["firstName=given, lastName=\"Family\"", "email="],
            &["First Name", "GIVEN", "family", "Email"],
        )
        .unwrap();
        assert_eq!(r.source(Column::FirstName), Some(1));
        assert_eq!(r.source(Column::LastName), Some(2));
        assert_eq!(r.source(Column::Email), None);
        assert_eq!(r.ignored(), ["First Name", "Email"]);
    }

    #[test]
    fn mistakes_are_named() {
        let e = resolve(&[], &["Name", "Email"]).unwrap_err();
        assert!(e.contains("no column holds firstName"), "{e}");
        let e = resolve(&[], &["First Name", "Last Name", "Email", "E-mail"]).unwrap_err();
        assert!(
            e.contains("\"Email\" and \"E-mail\" both hold email"),
            "{e}"
        );
        let e = resolve(&["fistName=X"], &["First Name"]).unwrap_err();
        assert!(e.contains("`fistName` is not a field"), "{e}");
        let e = resolve(&["firstName"], &[]).unwrap_err();
        assert!(e.contains("has no `=`"), "{e}");
        let e = resolve(&["phone=Mobile"], &["First Name", "Last Name"]).unwrap_err();
        assert!(e.contains("no column \"Mobile\""), "{e}");
    }
}
