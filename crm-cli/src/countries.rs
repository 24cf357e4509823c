//! Country names and codes as people write them, to ISO 3166-1 alpha-2.
//!
//! Accepted, whatever the case, accents, punctuation and a leading "the": an assigned alpha-2
//! code (`de`), an alpha-3 code (`DEU`), and the names the `countries` dataset (through the
//! `keshvar` crate) gives each country: its ISO short and long names and its common names, some in
//! other languages (`United Kingdom`, `UK`, `Great Britain`, `England`, `Deutschland`, `USA`,
//! `Côte d'Ivoire`, `Ivory Coast`).
//!
//! A name that could mean more than one country is refused, never guessed: any name the dataset
//! gives two countries, and the few that people use for two although the dataset gives them one
//! ([`AMBIGUOUS`]: `Congo`, `Korea`, `Virgin Islands`, `Saint Martin`).

use std::collections::HashMap;
use std::sync::OnceLock;

use crm_domain::CountryCode;

/// Names that people write for more than one country, with the countries they may mean.
pub const AMBIGUOUS: &[(&str, &[&str])] = &[
    ("congo", &["CG", "CD"]),
    ("korea", &["KR", "KP"]),
    ("virgin islands", &["VG", "VI"]),
    ("saint martin", &["MF", "SX"]),
    ("st martin", &["MF", "SX"]),
];

/// Why a country could not be read. The messages never repeat the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CountryError {
    /// No country has this name or code.
    #[error("is not a country name or code we know; write its ISO 3166-1 alpha-2 code, such as DE")]
    Unknown,
    /// More than one country has this name.
    #[error("could name more than one country ({}); write its ISO 3166-1 alpha-2 code", .0.join(" or "))]
    Ambiguous(Vec<String>),
}

/// The name index, built once per process from the dataset.
fn index() -> &'static HashMap<String, Vec<String>> {
    static INDEX: OnceLock<HashMap<String, Vec<String>>> = OnceLock::new();
    INDEX.get_or_init(|| {
        let mut index: HashMap<String, Vec<String>> = HashMap::new();
        for alpha2 in keshvar::SUPPORTED_ALPHA2_LIST {
            let country = alpha2.to_country();
            let code = alpha2.to_string();
            let names = [country.iso_short_name(), country.iso_long_name()]
                .into_iter()
                .chain(country.unofficial_name_list().iter().copied());
            for name in names {
                let key = key(name);
                if key.is_empty() {
                    continue;
                }
                let codes = index.entry(key).or_default();
                if !codes.contains(&code) {
                    codes.push(code.clone());
                }
            }
        }
        for (name, codes) in AMBIGUOUS {
            index.insert(
                (*name).to_owned(),
                codes.iter().map(|c| (*c).to_owned()).collect(),
            );
        }
        index
    })
}

/// A name as compared: folded (case, accents, width), punctuation as spaces, no leading "the".
fn key(name: &str) -> String {
    let folded = crm_domain::listing::fold(name);
    // `U.K.` is `UK`, `St. Lucia` is `St Lucia`; other punctuation separates words.
    let spaced: String = folded
        .chars()
        .filter(|c| *c != '.')
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect();
    let words: Vec<&str> = spaced.split_whitespace().collect();
    let words = match words.split_first() {
        Some((&"the", rest)) if !rest.is_empty() => rest,
        _ => &words[..],
    };
    words.join(" ")
}

/// The country `text` names; `text` is trimmed and not empty.
///
/// # Errors
/// [`CountryError::Unknown`] or [`CountryError::Ambiguous`].
pub fn parse(text: &str) -> Result<CountryCode, CountryError> {
    let text = text.trim();
    if text.len() == 2
        && let Ok(code) = CountryCode::parse(text)
    {
        return Ok(code);
    }
    if text.len() == 3
        && text.bytes().all(|b| b.is_ascii_alphabetic())
        && let Ok(alpha3) = keshvar::Alpha3::try_from(text)
    {
        let alpha2: keshvar::Alpha2 = alpha3.into();
        return CountryCode::parse(&alpha2.to_string()).map_err(|_| CountryError::Unknown);
    }
    match index().get(&key(text)).map(Vec::as_slice) {
        Some([one]) => CountryCode::parse(one).map_err(|_| CountryError::Unknown),
        Some(many) if !many.is_empty() => Err(CountryError::Ambiguous(many.to_vec())),
        _ => Err(CountryError::Unknown),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(text: &str) -> String {
        parse(text).map_or_else(|e| format!("{e:?}"), |c| c.as_str().to_owned())
    }

    #[test]
    fn codes_and_names_as_people_write_them() {
        for (text, expected) in [
            ("de", "DE"),
            ("DEU", "DE"),
            ("gbr", "GB"),
            ("USA", "US"),
            ("United Kingdom", "GB"),
            ("UK", "GB"),
            ("U.K.", "GB"),
            ("Great Britain", "GB"),
            ("england", "GB"),
            ("Deutschland", "DE"),
            ("Germany", "DE"),
            ("The Netherlands", "NL"),
            ("United States of America", "US"),
            ("United States", "US"),
            ("Côte d'Ivoire", "CI"),
            ("cote d ivoire", "CI"),
            ("  France ", "FR"),
            ("Georgia", "GE"),
            ("Democratic Republic of the Congo", "CD"),
            ("Republic of Korea", "KR"),
        ] {
            assert_eq!(code(text), expected, "{text}");
        }
    }

    #[test]
    fn unknown_and_ambiguous_names_are_refused_never_guessed() {
        assert_eq!(parse("Atlantis"), Err(CountryError::Unknown));
        assert_eq!(parse("XX"), Err(CountryError::Unknown));
        assert_eq!(parse("ZZZ"), Err(CountryError::Unknown));
        for ambiguous in ["Congo", "Korea", "Virgin Islands", "the congo"] {
            assert!(
                matches!(parse(ambiguous), Err(CountryError::Ambiguous(_))),
                "{ambiguous}: {:?}",
                parse(ambiguous)
            );
        }
        let message = parse("Korea").unwrap_err().to_string();
        assert!(message.contains("KR or KP"), "{message}");
    }

    #[test]
    fn every_name_the_dataset_gives_two_countries_is_ambiguous() {
        let ambiguous = index().values().filter(|codes| codes.len() > 1).count();
        // The curated ones at least; the dataset's own collisions come on top.
        assert!(ambiguous >= AMBIGUOUS.len());
    }
}
