//! The demo's identity story: one family whose members each agency registered its own way, so
//! that the person index and the family graph can be seen working.
//!
//! * The GP registers the mother, her daughter (as "Łucja", with an NHS number) and her son
//!   (as "Tomasz", with an NHS number), with RelatedPerson records naming the mother.
//! * School nursing knows the daughter as "LUCJA KOWALCZYK", with no NHS number.
//! * A&E saw the daughter with a wrist fracture (HL7 v2 over MLLP), her mother named in `NK1`.
//! * Midwifery notified the son's birth before he was named ("Baby of Kowalczyk", no NHS
//!   number), and has booked the mother's current pregnancy (an unborn child with a due date).
//! * Health visiting has the daughter on the area's central pool, records her mother as her
//!   carer, and holds two domestic-abuse notifications about her naming the mother's partner
//!   (once with the diacritics of his name, once without), who is on no agency's records
//!   otherwise: one man.
//! * The GP also holds the mother's consultation about her back: a health visitor sees the
//!   family's safeguarding items, not that.

use chrono::{Duration, NaiveDate};
use kinfold_fhir::{Agency, Resource};
use serde_json::{Value, json};

use crate::Feed;

/// The mother's NHS number (test range).
pub const MOTHER_NHS: &str = "9999000002";
/// The daughter's NHS number: the family example's child.
pub const CHILD_NHS: &str = "9999000010";
/// The son's NHS number, as the GP registered him after he was named.
pub const SON_NHS: &str = "9999000029";
/// The family's GP practice (ODS code).
pub const PRACTICE: &str = "A81002";

/// The story's feeds, dated back from `as_of`.
pub fn identity_family(as_of: NaiveDate) -> Vec<(Agency, Feed)> {
    let day = |back: i64| (as_of - Duration::days(back)).to_string();
    let hl7_time = |back: i64| (as_of - Duration::days(back)).format("%Y%m%d").to_string();
    let son_born = day(240);
    let mother = json!({"nhs_number": MOTHER_NHS, "family": "Kowalczyk", "given": ["Ewa"], "birth_date": "1991-03-14", "sex": "female", "postcode": "LS6 2AB"});
    let daughter_hv = json!({"nhs_number": CHILD_NHS, "family": "Kowalczyk", "given": ["Łucja"], "birth_date": "2019-05-02", "sex": "female", "postcode": "LS6 2AB"});
    let daughter_school = json!({"local_id": "SCH-4471", "family": "KOWALCZYK", "given": ["LUCJA"], "birth_date": "2019-05-02", "sex": "female", "postcode": "ls6 2ab"});
    let midwifery = vec![
        json!({"record": "birth", "row_id": "STORY-MW-1", "recorded_at": format!("{son_born}T08:00:00Z"), "recorded_by": {"name": "P. Lindqvist", "role": "midwife"},
            "mother": mother, "pregnancy_id": "STORY-P-1", "baby": {"local_id": "MW-B-88", "family": "Kowalczyk", "sex": "male", "postcode": "LS6 2AB"},
            "born_at": format!("{son_born}T05:40:00Z"), "birth_weight_g": 3410, "gestation_weeks": 40, "gestation_days": 1}),
        json!({"record": "booking", "row_id": "STORY-MW-2", "recorded_at": format!("{}T10:00:00Z", day(20)), "recorded_by": {"name": "J. Osei", "role": "community midwife"},
            "mother": mother, "pregnancy_id": "STORY-P-2", "booking_date": day(20), "estimated_due_date": (as_of + Duration::days(150)).to_string(),
            "concerns": [{"kind": "domestic-abuse", "detail": "Partner present throughout; could not ask alone", "disclosed_on": day(20), "routine_enquiry": false}]}),
    ];
    let health_visiting = vec![
        json!({"record": "allocation", "row_id": "STORY-HV-0", "recorded_at": format!("{}T09:00:00Z", day(400)), "recorded_by": {"name": "Caseload coordinator"},
            "child": daughter_hv, "date": day(400), "pool": "Central pool (Leeds north)"}),
        json!({"record": "da-notification", "row_id": "STORY-HV-1", "recorded_at": format!("{}T09:10:00Z", day(30)), "recorded_by": {"name": "MASH administrator"},
        "child": daughter_hv, "incident_date": day(35), "received_date": day(30), "from": "Police", "children_present": true, "child_witnessed": true, "child_injured": false,
        "notes": "Both children in the house.", "adults_named": [{"name": "Marek Zieliński", "relationship": "mother's partner"}]}),
        // Health visiting's record of the daughter's mother, and a second notification that
        // names the partner without his diacritics: still one man.
        json!({"record": "carers", "row_id": "STORY-HV-2", "recorded_at": format!("{}T09:05:00Z", day(400)), "recorded_by": {"name": "Caseload coordinator"},
            "child": daughter_hv, "carers": [{"person": mother, "relationship": "mother", "parental_responsibility": true, "from": "2019-05-02"}]}),
        json!({"record": "da-notification", "row_id": "STORY-HV-3", "recorded_at": format!("{}T09:20:00Z", day(6)), "recorded_by": {"name": "MASH administrator"},
        "child": daughter_hv, "incident_date": day(8), "received_date": day(6), "from": "Police", "children_present": true, "child_witnessed": false,
        "adults_named": [{"name": "Marek Zielinski", "relationship": "mother's partner"}]}),
    ];
    let school_nursing = vec![
        json!({"record": "school", "row_id": "STORY-SN-1", "recorded_at": format!("{}T09:00:00Z", day(88)), "recorded_by": {"name": "R. Adeyemi", "role": "school nurse"},
        "child": daughter_school, "school_urn": "107211", "school_name": "Hyde Park Primary", "from": day(88)}),
    ];
    let ae = format!(
        "MSH|^~\\&|EPR|RXX|KINFOLD|AE|{t}090000+0000||ADT^A04^ADT_A01|STORY-AE-1|P|2.5\rEVN|A04|{t}090500+0000\rPID|1||{CHILD_NHS}^^^NHS^NH||Kowalczyk^Lucja||20190502|F\rNK1|1|Kowalczyk^Ewa|MTH^Mother^HL70063\rPV1|1|E|AE^^^RXX||||||||||||||||STORY-V1|||||||||||||||||||||||||{t}083000+0000\rACC|{t}073000+0000|FALL^Fall^LOCAL||||||Fell from climbing frame\rOBX|1|CWE|injury-type^Injury type^KINFOLD-INJ||125605004^Fracture of bone^SCT\rOBX|2|CWE|body-site^Body site^KINFOLD-INJ||74670003^Wrist^SCT",
        t = hl7_time(12)
    );
    let related_mother = |id: &str, child: &str| {
        json!({"resource": {"resourceType": "RelatedPerson", "id": id, "patient": {"reference": format!("Patient/{child}")},
            "identifier": [{"system": kinfold_fhir::NHS_NUMBER_SYSTEM, "value": MOTHER_NHS}],
            "relationship": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode", "code": "MTH", "display": "mother"}]}],
            "name": [{"family": "Kowalczyk", "given": ["Ewa"]}], "gender": "female", "birthDate": "1991-03-14"},
            "request": {"method": "PUT", "url": format!("RelatedPerson/{id}")}})
    };
    let patient = |id: &str, nhs: &str, given: &str, born: &str, sex: &str| {
        json!({"resource": {"resourceType": "Patient", "id": id,
            "identifier": [{"system": kinfold_fhir::NHS_NUMBER_SYSTEM, "value": nhs}],
            "name": [{"family": "Kowalczyk", "given": [given]}], "gender": sex, "birthDate": born,
            "address": [{"line": ["14 Cardigan Road"], "postalCode": "LS6 2AB"}],
            "generalPractitioner": [{"identifier": {"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": PRACTICE}}]},
            "request": {"method": "PUT", "url": format!("Patient/{id}")}})
    };
    // The mother's consultation about her back: nothing to do with the children's safety.
    let consultation = json!({"resource": {"resourceType": "Encounter", "id": "story-ewa-consult", "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "type": [{"text": "GP consultation: low back pain"}],
        "subject": {"reference": "Patient/story-ewa"}, "period": {"start": format!("{}T10:00:00Z", day(45))}},
        "request": {"method": "PUT", "url": "Encounter/story-ewa-consult"}});
    let gp: Value = json!({
        "resourceType": "Bundle", "type": "transaction", "identifier": {"value": "STORY-GP-1"},
        "timestamp": format!("{}T09:00:00Z", day(1)),
        "entry": [
            patient("story-ewa", MOTHER_NHS, "Ewa", "1991-03-14", "female"),
            patient("story-lucja", CHILD_NHS, "Łucja", "2019-05-02", "female"),
            patient("story-tomasz", SON_NHS, "Tomasz", &son_born, "male"),
            related_mother("story-lucja-mother", "story-lucja"),
            related_mother("story-tomasz-mother", "story-tomasz"),
            consultation,
        ]
    });
    let rows = |values: Vec<Value>| Feed::Rows(values.iter().map(Value::to_string).collect());
    let mut feeds = vec![
        (Agency::Midwifery, rows(midwifery)),
        (Agency::HealthVisiting, rows(health_visiting)),
        (Agency::SchoolNursing, rows(school_nursing)),
        (Agency::Ae, Feed::Hl7v2(vec![ae])),
    ];
    if let Ok(Resource::Bundle(bundle)) = Resource::from_value(gp) {
        feeds.push((Agency::Gp, Feed::Fhir(Box::new(bundle))));
    }
    feeds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_agency_has_its_part_of_the_story() {
        let feeds = identity_family(NaiveDate::from_ymd_opt(2026, 11, 1).expect("date"));
        let agencies: Vec<Agency> = feeds.iter().map(|(a, _)| *a).collect();
        assert_eq!(agencies.len(), 5);
        for agency in Agency::ALL {
            assert!(agencies.contains(&agency), "{agency}");
        }
        let Some((_, Feed::Fhir(bundle))) = feeds.iter().find(|(a, _)| *a == Agency::Gp) else {
            panic!("the GP's Bundle");
        };
        assert_eq!(bundle.entry.len(), 6);
    }
}
