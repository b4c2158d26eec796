//! Blocking: the keys a record is filed under, so that an identity is compared only with the
//! records sharing one of its keys, not with everyone.
//!
//! Each key is a pair of things a true match rarely gets wrong together: the date of birth
//! (day and month in either order) with the year; family name with the year of birth; given
//! name with postcode; both names; postcode with house number; the first address line; family
//! name with postcode; street with postcode. A
//! record with typos in both names and no date of birth is still found through its address.

use std::hash::{DefaultHasher, Hash, Hasher};

use crate::matching::{Field, Prepared};

/// The blocking keys a record is filed under.
pub(crate) fn block_keys(p: &Prepared) -> Vec<u64> {
    keyed_blocks(p).into_iter().map(|(_, key)| key).collect()
}

/// The blocking keys with the fields each one holds fixed: every pair a key brings together
/// agrees on those fields by construction, so they say nothing there about matches (the
/// estimate leaves them out).
pub(crate) fn keyed_blocks(p: &Prepared) -> Vec<(&'static [Field], u64)> {
    let mut keys = Vec::with_capacity(8);
    let mut key = |fixed: &'static [Field], parts: &[&dyn std::fmt::Display]| {
        let mut hasher = DefaultHasher::new();
        for part in parts {
            part.to_string().hash(&mut hasher);
        }
        keys.push((fixed, hasher.finish()));
    };
    const DOB: &[Field] = &[Field::BirthDate];
    const FAMILY_DOB: &[Field] = &[Field::FamilyName, Field::BirthDate];
    const GIVEN_ADDRESS: &[Field] = &[Field::GivenName, Field::Address];
    const NAMES: &[Field] = &[Field::FamilyName, Field::GivenName];
    const ADDRESS: &[Field] = &[Field::Address];
    const FAMILY_ADDRESS: &[Field] = &[Field::FamilyName, Field::Address];
    if let Some(dob) = p.dob {
        let (low, high) = dob.day_month_pair();
        key(DOB, &[&"dob", &dob.year(), &low, &high]);
        if let Some(family) = &p.family {
            key(FAMILY_DOB, &[&"family-year", family, &dob.year()]);
        }
    }
    let postcode = p.postcode_key();
    if let (Some(given), Some(postcode)) = (&p.given, postcode) {
        key(GIVEN_ADDRESS, &[&"given-postcode", given, &postcode]);
    }
    if let (Some(family), Some(given)) = (&p.family, &p.given) {
        key(NAMES, &[&"names", family, given]);
    }
    if let (Some(postcode), Some(house)) = (postcode, &p.house) {
        key(ADDRESS, &[&"postcode-house", &postcode, house]);
    }
    if let Some(line) = &p.line {
        key(ADDRESS, &[&"line", line]);
    }
    if let Some(postcode) = postcode {
        if let Some(family) = &p.family {
            key(FAMILY_ADDRESS, &[&"family-postcode", family, &postcode]);
        }
        if let Some(street) = p
            .line
            .as_deref()
            .map(crate::matching::street)
            .filter(|s| !s.is_empty())
        {
            key(ADDRESS, &[&"street-postcode", &street, &postcode]);
        }
    }
    keys
}
