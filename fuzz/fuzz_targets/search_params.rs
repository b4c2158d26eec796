//! The search-parameter parser: any query string gives a search or a located error, never a
//! panic; a search that parses can be evaluated.
#![no_main]

use kinfold_fhir::search::{DateParam, SearchQuery};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(data)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let parsed = SearchQuery::parse(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    match parsed {
        Ok(query) => {
            let _ = query.matches("x", &kinfold_fhir::SearchIndex::default(), 0);
        }
        Err(err) => assert!(err.location().is_some(), "a search error says where: {err}"),
    }
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(date) = DateParam::parse("date", text)
    {
        let _ = date.constraint();
    }
});
